"""The Dask executor: packing, worker-side checks, thread/GPU planning, and runs on a LocalCluster.

The fast tests use crafted inputs.  The ``slow`` ones start real
``distributed.LocalCluster``s: first with four tiny stand-in notebooks (so the
executor's contract — unpacked folders, stage events, failures, lost workers,
``keep_going`` — is checked without training), then ``params/ci.yaml`` end to
end, whose metrics must equal the local executor's for the same seeds.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml
from gaplab.pipeline.execute import PhaseJob
from gaplab.pipeline.executors.dask import (
    DaskExecutor,
    DaskExecutorError,
    decide_gpu,
    lost_status,
    missing_paths,
    pack_dir,
    plan_threads,
    run_phase_on_worker,
    unpack_into,
)
from gaplab.pipeline.runs import PhaseStatus
from gaplab.pipeline.stages import STAGES
from gaplab.versioning import gaplab_version


# --------------------------------------------------------------------------- packing
def test_pack_unpack_round_trip(tmp_path):
    src = tmp_path / "phase"
    (src / "ckpt").mkdir(parents=True)
    (src / "figures" / "empty").mkdir(parents=True)
    (src / "metrics.json").write_text('{"best_val_loss": 1.25}')
    blob = bytes(range(256)) * 40
    (src / "ckpt" / "best.pt").write_bytes(blob)
    data = pack_dir(src)
    assert data[:2] == b"\x1f\x8b"  # gzip magic
    dest = unpack_into(data, tmp_path / "out")
    assert (dest / "metrics.json").read_text() == '{"best_val_loss": 1.25}'
    assert (dest / "ckpt" / "best.pt").read_bytes() == blob
    assert (dest / "figures" / "empty").is_dir()
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "ckpt",
        "ckpt/best.pt",
        "figures",
        "figures/empty",
        "metrics.json",
    ]


def _tar_with(member: tarfile.TarInfo, payload: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        member.size = len(payload) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(payload) if member.isfile() else None)
    return buf.getvalue()


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", "a/../../evil.txt"])
def test_unpack_refuses_paths_outside(tmp_path, name):
    with pytest.raises(DaskExecutorError, match="outside its folder"):
        unpack_into(_tar_with(tarfile.TarInfo(name), b"x"), tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_unpack_refuses_links(tmp_path):
    link = tarfile.TarInfo("link")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    with pytest.raises(DaskExecutorError, match="not a regular file"):
        unpack_into(_tar_with(link), tmp_path / "out")


# --------------------------------------------------------------------------- worker-side checks
def test_missing_paths_names_key_and_path(tmp_path):
    data_file = tmp_path / "corpus.txt"
    data_file.write_text("hello")
    params = {
        "data": {"source": "text", "path": str(data_file)},
        "sample": {"prompts": str(tmp_path / "nope.txt"), "keyword_sets": None},
    }
    assert missing_paths(params) == [f"sample.prompts = {tmp_path / 'nope.txt'}"]
    assert missing_paths({"data": {"source": "stdlib", "path": None}, "sample": {"prompts": ["def "]}}) == []


def _job(tmp_path, name="p", params=None, notebooks="") -> PhaseJob:
    params = params or {"study": "s", "phase": name, "run_dir": str(tmp_path / "final" / name)}
    return PhaseJob("s", name, params, "fp", str(tmp_path / "final" / name), notebooks=notebooks)


def test_worker_refuses_other_gaplab_version(tmp_path):
    from dataclasses import asdict

    out = run_phase_on_worker(asdict(_job(tmp_path)), {}, client_version="0.0.0-other")
    assert out["archive"] is None
    assert out["status"]["state"] == "failed"
    assert f"gaplab {gaplab_version()}, the client has 0.0.0-other" in out["status"]["error"]


def test_worker_reports_missing_data_before_running(tmp_path):
    from dataclasses import asdict

    params = {"study": "s", "phase": "p", "run_dir": "x", "data": {"source": "files", "path": "/no/such/corpus"}}
    out = run_phase_on_worker(asdict(_job(tmp_path, params=params)), {})
    assert out["status"]["state"] == "failed"
    assert "data.path = /no/such/corpus" in out["status"]["error"]
    assert "same absolute paths" in out["status"]["error"]


# --------------------------------------------------------------------------- planning
def test_decide_gpu():
    with_gpu = {"tcp://a:1": {"resources": {"GPU": 1}}, "tcp://b:1": {"resources": {}}}
    without = {"tcp://a:1": {"resources": {}}, "tcp://b:1": {}}
    assert decide_gpu("auto", with_gpu) is True
    assert decide_gpu("auto", without) is False
    assert decide_gpu(True, without) is True
    assert decide_gpu("0", with_gpu) is False
    with pytest.raises(DaskExecutorError, match="allowed: auto, 1"):
        decide_gpu("maybe", without)


def test_decide_gpu_reads_environment(monkeypatch):
    monkeypatch.setenv("GAPLAB_DASK_GPU", "1")
    assert decide_gpu(None, {}) is True
    monkeypatch.setenv("GAPLAB_DASK_GPU", "auto")
    assert decide_gpu(None, {}) is False


def test_plan_threads_shares_each_hosts_cpus():
    workers = {
        "tcp://10.0.0.1:1": {"host": "10.0.0.1", "nthreads": 1},
        "tcp://10.0.0.1:2": {"host": "10.0.0.1", "nthreads": 1},
        "tcp://10.0.0.2:1": {"host": "10.0.0.2", "nthreads": 2},
        "tcp://10.0.0.3:1": {"host": "10.0.0.3", "nthreads": 3},
    }
    cpus = {"tcp://10.0.0.1:1": 8, "tcp://10.0.0.1:2": 8, "tcp://10.0.0.2:1": 2, "tcp://10.0.0.3:1": 2}
    assert plan_threads(workers, cpus, gpu=False) == {
        "tcp://10.0.0.1:1": 4,
        "tcp://10.0.0.1:2": 4,  # 8 CPUs, two phases at once
        "tcp://10.0.0.2:1": 1,  # 2 CPUs, two phases at once
        "tcp://10.0.0.3:1": 1,  # fewer CPUs than phases: still one thread, never zero
    }


def test_plan_threads_with_gpus_counts_one_phase_per_gpu():
    workers = {
        "tcp://g:1": {"host": "g", "nthreads": 8, "resources": {"GPU": 1}},
        "tcp://g:2": {"host": "g", "nthreads": 8, "resources": {"GPU": 1}},
    }
    cpus = {"tcp://g:1": 16, "tcp://g:2": 16}
    assert plan_threads(workers, cpus, gpu=True) == {"tcp://g:1": 8, "tcp://g:2": 8}
    assert plan_threads(workers, cpus, gpu=False) == {"tcp://g:1": 1, "tcp://g:2": 1}


def test_lost_status_wording():
    from types import SimpleNamespace

    from distributed.scheduler import KilledWorker

    st = lost_status("a", KilledWorker("gaplab-s-a-1", SimpleNamespace(address="tcp://127.0.0.1:4000"), 0))
    assert "tcp://127.0.0.1:4000" in st.error
    assert st.state == "failed" and st.error.startswith("worker lost: KilledWorker")
    assert lost_status("a", ValueError("bad")).error == "the phase task raised on its worker: ValueError: bad"
    assert "install the same gaplab" in lost_status("a", ModuleNotFoundError("No module named 'gaplab'")).error
    # where the phase was when its worker went: the stage it had started, the worker (or KilledWorker's last one)
    assert st.worker == "tcp://127.0.0.1:4000"
    st = lost_status("a", OSError("gone"), stage="02_train", worker="tcp://w:1")
    assert st.stage == "02_train" and st.worker == "tcp://w:1"


def test_a_failure_names_phase_stage_and_worker_never_none():
    """The issue: Dask failures printed as "FAILED at None / executed notebook: None"."""
    from gaplab.pipeline.runner import failure_message

    lost = PhaseStatus(
        "p1", "failed", stage="02_train", worker="tcp://10.0.0.5:4000", error="worker lost: KilledWorker"
    )
    msg = failure_message("p1", lost, "02_train", None)
    assert msg.startswith("p1: FAILED at 02_train on worker tcp://10.0.0.5:4000: worker lost: KilledWorker")
    assert "None" not in msg and "no executed notebook came back" in msg
    early = failure_message("p2", PhaseStatus("p2", "failed", error="worker tcp://w has gaplab 0.0"), None, None)
    assert early == "p2: FAILED before its first stage: worker tcp://w has gaplab 0.0"
    local = failure_message(
        "p3", PhaseStatus("p3", "failed", error="ValueError: boom"), "03_loss_gap", "/o/s/_failed/p3/03_loss_gap.ipynb"
    )
    assert (
        local == "p3: FAILED at 03_loss_gap: ValueError: boom\n  executed notebook: /o/s/_failed/p3/03_loss_gap.ipynb"
    )


# --------------------------------------------------------------------------- LocalCluster, stand-in notebooks
STANDIN = """
import os, pathlib, signal
if phase == "bad" and STAGE == "03_loss_gap":
    raise ValueError("boom")
if phase == "kill" and STAGE == "02_train":
    os.kill(os.getppid(), signal.SIGKILL)  # the kernel's parent is the Dask worker process
pathlib.Path(STAGE + ".txt").write_text(f"{phase}:{x}:{os.environ.get('GAPLAB_THREADS')}")
"""


def _standin_notebooks(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stage in STAGES:
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell('study = "s"\nphase = "p"\nrun_dir = "."\nx = 0')
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell(f"STAGE = {stage!r}\n" + STANDIN)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, folder / f"{stage}.ipynb")
    return folder


class Recorder:
    def __init__(self):
        self.stages: list[tuple[str, str]] = []
        self.done: dict[str, dict] = {}

    def on_stage(self, phase, stage):
        self.stages.append((phase, stage))

    def on_done(self, job, status):
        assert isinstance(status, PhaseStatus)
        folder = status.run_dir
        files = {}
        if folder:
            assert Path(folder).parent == self.work_root  # a fresh folder in the staging area
            files = {p.name: p.read_text() for p in Path(folder).glob("*.txt")}
        self.done[job.name] = dict(
            status.to_json(), files=files, ipynbs=sorted(p.name for p in Path(folder).glob("*.ipynb")) if folder else []
        )
        return status.state == "done"


def _standin_jobs(tmp_path, names):
    nbdir = _standin_notebooks(tmp_path / "nbs")
    jobs = []
    for i, name in enumerate(names):
        params = {"study": "s", "phase": name, "run_dir": str(tmp_path / "final" / name), "x": i * 10}
        jobs.append(
            PhaseJob(
                "s",
                name,
                params,
                f"fp{i}",
                str(tmp_path / "final" / name),
                timeout=60,
                kernel="python3",
                notebooks=str(nbdir),
                threads=None,
            )
        )
    return jobs


def _run(executor, tmp_path, jobs, keep_going=True):
    rec = Recorder()
    rec.work_root = tmp_path / "staging"
    rec.work_root.mkdir(exist_ok=True)
    executor.run(jobs, rec.work_root, rec.on_stage, rec.on_done, keep_going)
    return rec


@pytest.mark.slow
def test_local_cluster_runs_phases_and_isolates_a_failure(tmp_path):
    jobs = _standin_jobs(tmp_path, ["one", "two", "bad"])
    ex = DaskExecutor(workers=2, log=lambda m: None)
    rec = _run(ex, tmp_path, jobs)
    assert rec.done["one"]["state"] == "done" and rec.done["two"]["state"] == "done"
    # every stage ran on the worker and came back; 2 CPUs / 2 workers = 1 thread per phase
    assert rec.done["one"]["files"] == {f"{s}.txt": "one:0:1" for s in STAGES}
    assert rec.done["two"]["files"] == {f"{s}.txt": "two:10:1" for s in STAGES}
    assert rec.done["one"]["ipynbs"] == [f"{s}.ipynb" for s in STAGES]
    bad = rec.done["bad"]
    assert bad["state"] == "failed" and bad["stage"] == "03_loss_gap" and bad["error"] == "ValueError: boom"
    assert set(bad["files"]) == {"01_inspect_data.txt", "02_train.txt"}
    assert "03_loss_gap.ipynb" in bad["ipynbs"]  # the executed notebook with the error cell comes back
    # stage events arrive in order, once each, before the phase's result
    for name in ("one", "two"):
        assert [s for p, s in rec.stages if p == name] == list(STAGES)
    assert [s for p, s in rec.stages if p == "bad"] == list(STAGES[:3])
    assert {v["threads"] for v in ex.last_run.values()} == {1}


@pytest.mark.slow
def test_keep_going_false_cancels_the_rest(tmp_path):
    jobs = _standin_jobs(tmp_path, ["bad", "one", "two", "three"])
    rec = _run(DaskExecutor(workers=1, log=lambda m: None), tmp_path, jobs, keep_going=False)
    assert rec.done["bad"]["state"] == "failed"
    assert len(rec.done) < 4  # at most the phase already handed to the worker finishes


@pytest.mark.slow
def test_lost_worker_is_a_failed_phase_and_the_rest_completes(tmp_path):
    import dask

    jobs = _standin_jobs(tmp_path, ["kill", "one"])
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        rec = _run(DaskExecutor(workers=2, log=lambda m: None), tmp_path, jobs)
    assert rec.done["kill"]["state"] == "failed"
    assert rec.done["kill"]["error"].startswith("worker lost: KilledWorker")
    assert rec.done["kill"]["stage"] == "02_train"  # where it was lost, from its progress events
    assert rec.done["kill"]["worker"].startswith("tcp://")
    assert "run_dir" not in rec.done["kill"]
    assert rec.done["one"]["state"] == "done" and len(rec.done["one"]["files"]) == 4


# --------------------------------------------------------------------------- params/ci.yaml end to end
def _metrics(pdir: Path) -> dict:
    m = json.loads((pdir / "metrics.json").read_text())
    hist = pd.read_csv(pdir / "history.csv").drop(columns=["elapsed_s"])
    return {
        "best_val_loss": m["best_val_loss"],
        "best_iter": m["best_iter"],
        "final_train_loss": m["final_train_loss"],
        "final_val_loss": m["final_val_loss"],
        "history": hist.to_dict("list"),
    }


@pytest.mark.slow
def test_ci_study_on_dask_matches_local(tmp_path, capsys, ci_study_with_a_broken_phase):
    from distributed import LocalCluster
    from gaplab import cli

    study = ci_study_with_a_broken_phase("bad_ckpt")

    # both executors run one phase per core with one torch thread each, so the numbers can match exactly
    local_out = tmp_path / "local"
    assert (
        cli.main(["run", str(study), "--outputs", str(local_out), "--workers", "2", "--phases", "small_data,more_data"])
        == 0
    )
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        dask_out = tmp_path / "dask"
        code = cli.main(
            [
                "run",
                str(study),
                "--outputs",
                str(dask_out),
                "--executor",
                "dask",
                "--scheduler",
                cluster.scheduler_address,
            ]
        )
    err = capsys.readouterr().err
    assert code == 1
    assert "bad_ckpt: FAILED at 04_samples" in err

    for phase in ("small_data", "more_data"):
        d, loc = dask_out / "ci" / phase, local_out / "ci" / phase
        assert json.loads((d / "status.json").read_text())["state"] == "done"
        assert json.loads((d / "status.json").read_text())["worker"].startswith("tcp://")
        assert _metrics(d) == _metrics(loc)
        params = yaml.safe_load((d / "params.yaml").read_text())
        assert params["run_dir"] == str(d.resolve())
        assert (d / "ckpt" / "best.pt").exists() and (d / "04_samples.ipynb").exists()
    failed = dask_out / "ci" / "_failed" / "bad_ckpt"
    assert (failed / "04_samples.ipynb").exists() and not (dask_out / "ci" / "bad_ckpt").exists()
    st = json.loads((failed / "status.json").read_text())
    assert st["state"] == "failed" and st["stage"] == "04_samples" and "iter_999" in st["error"]
    summary = json.loads((dask_out / "ci" / "study_status.json").read_text())["phases"]
    assert {k: v["state"] for k, v in summary.items()} == {
        "small_data": "done",
        "more_data": "done",
        "bad_ckpt": "failed",
    }
    assert not (dask_out / "ci" / ".staging").exists()
    shutil.rmtree(local_out, ignore_errors=True)
