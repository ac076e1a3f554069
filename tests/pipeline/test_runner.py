"""`gaplab run` end to end on params/ci.yaml: papermill stages, cache, reruns, failure isolation."""

import json
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml
from gaplab import cli
from gaplab.train.history import HISTORY_COLUMNS

pytestmark = pytest.mark.slow


def _run(args, capsys):
    code = cli.main(["run", *args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _errors_in(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    return [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory, root):
    """One full run of params/ci.yaml shared by the tests below."""
    out = tmp_path_factory.mktemp("runs") / "outputs"
    study = tmp_path_factory.mktemp("study") / "ci.yaml"
    shutil.copy(root / "params" / "ci.yaml", study)
    code = cli.main(["run", str(study), "--outputs", str(out), "--threads", "1"])
    return code, out, study


def test_ci_study_runs_every_stage(ci_run):
    code, out, _ = ci_run
    assert code == 0
    sdir = out / "ci"
    for phase in ("small_data", "more_data"):
        pdir = sdir / phase
        for stage in ("01_inspect_data", "02_train", "03_loss_gap", "04_samples"):
            nb = pdir / f"{stage}.ipynb"
            assert nb.exists() and not _errors_in(nb), nb
        hist = pd.read_csv(pdir / "history.csv")
        assert tuple(hist.columns) == HISTORY_COLUMNS  # the one history schema (gaplab.train.history)
        assert hist["val_bpb"].notna().all() and (hist["val_loss_se"] >= 0).all()
        assert hist.train_loss.iloc[-1] < hist.train_loss.iloc[0] - 0.5  # it learned
        assert (hist.gap - (hist.val_loss - hist.train_loss)).abs().max() < 1e-9
        metrics = json.loads((pdir / "metrics.json").read_text())
        assert metrics["final_gap"] == pytest.approx(metrics["final_val_loss"] - metrics["final_train_loss"])
        assert "analysis" in metrics and "samples" in metrics
        assert metrics["threads"] == 1  # --threads reached the kernel
        params = yaml.safe_load((pdir / "params.yaml").read_text())
        assert params["run_dir"] == str(pdir) and params["phase"] == phase
        assert (pdir / "data_report.json").exists() and (pdir / "ckpt" / "best.pt").exists()
        assert json.loads((pdir / "status.json").read_text())["state"] == "done"
    summary = pd.read_csv(sdir / "summary.csv")
    assert list(summary.phase) == ["small_data", "more_data"]
    assert summary.train_tokens.tolist() == [1800, 7200]
    html = (sdir / "report.html").read_text()
    assert "small_data" in html and "more_data" in html
    assert not (sdir / ".staging").exists()


def test_threads_and_workers_must_be_positive(ci_run, capsys):
    _, out, study = ci_run
    for flag in ("--threads", "--workers"):
        with pytest.raises(SystemExit) as exc:
            cli.main(["run", str(study), "--outputs", str(out), flag, "0"])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert flag in err and "'0' is not allowed" in err and "at least 1" in err


def _study_files(sdir):
    """Every file 05_compare writes, with its bytes and modification time."""
    paths = [sdir / "summary.csv", sdir / "report.html", sdir / "05_compare.ipynb", *(sdir / "figures").rglob("*.*")]
    return {p.relative_to(sdir).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}


def test_second_run_is_cached(ci_run, capsys):
    """Nothing changed: every phase is cached and 05_compare does not run either (the issue: it ran again)."""
    code, out, study = ci_run
    before = (out / "ci" / "small_data" / "history.csv").stat().st_mtime_ns
    study_files = _study_files(out / "ci")
    assert len(study_files) > 3  # figures too
    code, stdout, err = _run([str(study), "--outputs", str(out)], capsys)
    assert code == 0
    assert "small_data: cached" in err and "more_data: cached" in err
    assert "05_compare: cached" in err and "nothing to run" in err
    assert (out / "ci" / "small_data" / "history.csv").stat().st_mtime_ns == before
    assert _study_files(out / "ci") == study_files  # not rewritten
    assert "report.html" in stdout


def test_new_code_reruns_a_finished_phase(ci_run, capsys, monkeypatch):
    """A bug fix in gaplab (same __version__, other code) must not leave old results reported as cached."""
    from gaplab.pipeline import runs

    _, out, study = ci_run
    monkeypatch.setattr(runs, "code_fingerprint", lambda: "the code after a bug fix")
    code, stdout, _ = _run([str(study), "--outputs", str(out), "--dry-run"], capsys)
    assert code == 0 and "cached" not in stdout.split("05_compare")[0] and stdout.count("would run") == 3


def test_dry_run_lists_cache_state(ci_run, capsys):
    _, out, study = ci_run
    code, stdout, _ = _run([str(study), "--outputs", str(out), "--dry-run"], capsys)
    assert (
        code == 0 and "small_data" in stdout and "cached" in stdout and "would run" not in stdout.split("05_compare")[0]
    )
    assert "would run" not in stdout.split("05_compare")[1]  # nothing changed: 05_compare would not run either


@pytest.mark.parametrize(
    "damage, why",
    [
        (lambda sdir: (sdir / "summary.csv").write_text("phase\nedited\n"), "summary.csv does not match"),
        (lambda sdir: next((sdir / "figures").glob("*.png")).unlink(), "is missing"),
    ],
    ids=["edited summary", "missing figure"],
)
def test_a_changed_study_file_reruns_only_05_compare(ci_run, capsys, damage, why):
    _, out, study = ci_run
    sdir = out / "ci"
    expected = {name: data for name, (data, _) in _study_files(sdir).items() if not name.endswith(".ipynb")}
    damage(sdir)
    code, _, err = _run([str(study), "--outputs", str(out)], capsys)
    assert code == 0 and "small_data: cached" in err and "more_data: cached" in err
    assert "05_compare: re-running:" in err and why in err
    rewritten = {name: data for name, (data, _) in _study_files(sdir).items() if not name.endswith(".ipynb")}
    assert set(rewritten) == set(expected)
    assert rewritten["summary.csv"] == expected["summary.csv"]  # the same phases give the same table
    code, _, err = _run([str(study), "--outputs", str(out)], capsys)
    assert code == 0 and "05_compare: cached" in err  # and now its files are recorded again


def test_changing_one_phase_reruns_only_it(ci_run, capsys):
    _, out, study = ci_run
    raw = yaml.safe_load(study.read_text())
    raw["phases"]["more_data"] = {"data": {"max_tokens": 8000}, "train": {"max_iters": 40}}
    study.write_text(yaml.safe_dump(raw))
    old_hist = (out / "ci" / "more_data" / "history.csv").read_text()
    code, _, err = _run([str(study), "--outputs", str(out)], capsys)
    assert code == 0
    assert "small_data: cached" in err and "more_data: done" in err
    assert pd.read_csv(out / "ci" / "more_data" / "history.csv").iter.max() == 40
    assert (out / "ci" / "_previous" / "more_data" / "history.csv").read_text() == old_hist  # kept, not lost


def test_a_failing_phase_is_isolated(tmp_path, capsys, ci_study_with_a_broken_phase):
    study = ci_study_with_a_broken_phase("broken")
    out = tmp_path / "outputs"
    code, _, err = _run([str(study), "--outputs", str(out), "--phases", "small_data,broken"], capsys)
    assert code == 1
    assert "broken: FAILED at 04_samples" in err and "iter_999.pt is missing" in err
    failed_nb = out / "ci" / "_failed" / "broken" / "04_samples.ipynb"
    assert failed_nb.exists() and _errors_in(failed_nb)
    assert not (out / "ci" / "broken").exists()
    assert json.loads((out / "ci" / "small_data" / "status.json").read_text())["state"] == "done"
    summary = pd.read_csv(out / "ci" / "summary.csv")
    assert dict(zip(summary.phase, summary.state)) == {"small_data": "done", "broken": "failed"}
    assert "broken" in (out / "ci" / "report.html").read_text()


def test_papermill_by_hand_with_params_yaml(ci_run, root, tmp_path):
    """`papermill notebooks/03_loss_gap.ipynb out.ipynb -f outputs/<study>/<phase>/params.yaml` works as it is.

    (On a copy of the phase folder: a stage re-run by hand rewrites files, so the next `gaplab run` would
    re-run the phase, and the tests after this one expect it cached.)"""
    import subprocess
    import sys

    _, out, _ = ci_run
    pdir = tmp_path / "small_data"
    shutil.copytree(out / "ci" / "small_data", pdir)
    params = yaml.safe_load((pdir / "params.yaml").read_text())
    (pdir / "params.yaml").write_text(yaml.safe_dump(dict(params, run_dir=str(pdir))))
    before = json.loads((pdir / "metrics.json").read_text())["analysis"]
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            str(root / "notebooks" / "03_loss_gap.ipynb"),
            str(tmp_path / "out.ipynb"),
            "-f",
            str(pdir / "params.yaml"),
            "--no-progress-bar",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert not _errors_in(tmp_path / "out.ipynb")
    after = json.loads((pdir / "metrics.json").read_text())["analysis"]
    assert after["best_iter"] == before["best_iter"] and after["verdict"] == before["verdict"]


@pytest.mark.parametrize(
    "signame, whole_group, code, workers",
    [("SIGINT", True, 130, 1), ("SIGTERM", False, 143, 1), ("SIGINT", True, 130, 2)],
    ids=["ctrl-c", "kill-parent", "ctrl-c-two-workers"],
)
def test_ctrl_c_stops_cleanly_and_keeps_finished_phases(tmp_path, root, signame, whole_group, code, workers):
    """Ctrl-C (SIGINT to the process group), or a plain `kill` of the gaplab process alone (SIGTERM), mid-run:
    exit 130 / 143, no worker or kernel left training, no staging left, finished phases reused.  With one
    worker the first phase has finished and the second is mid-stage; with two both run when it comes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    study = tmp_path / "ci.yaml"
    shutil.copy(root / "params" / "ci.yaml", study)
    out = tmp_path / "outputs"
    cmd = [sys.executable, "-m", "gaplab.cli", "run", str(study), "--outputs", str(out), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 240
    if workers == 1:
        while time.time() < deadline and not (out / "ci" / "small_data" / "status.json").exists():
            time.sleep(0.5)  # wait until the first phase is finished and in place
        assert (out / "ci" / "small_data" / "status.json").exists(), "first phase never finished"
        time.sleep(2)  # the second phase is now mid-stage
    else:  # both phases at once: wait until both are in their first stage
        while time.time() < deadline and len(list((out / "ci" / ".staging").glob("run-*/*/01_inspect_data.ipynb"))) < 2:
            time.sleep(0.2)
        assert len(list((out / "ci" / ".staging").glob("run-*/*/01_inspect_data.ipynb"))) == 2, "phases never started"
    sig = getattr(signal, signame)
    os.killpg(proc.pid, sig) if whole_group else os.kill(proc.pid, sig)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == code, err[-2000:]
    assert "interrupted" in err
    assert not (out / "ci" / ".staging").exists()
    finished = {p for p in ("small_data", "more_data") if (out / "ci" / p / "status.json").exists()}
    assert not (out / "ci" / "more_data").exists() or "more_data" in finished  # nothing half-written
    if workers == 1:
        assert finished == {"small_data"}
    # no kernel left behind still training in a deleted folder (it would recreate .staging)
    if Path("/proc").is_dir():
        leftovers = []
        for entry in Path("/proc").iterdir():
            try:
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            if cwd.startswith(str(out)):
                leftovers.append((entry.name, cwd))
        assert not leftovers, f"processes still working under the outputs after Ctrl-C: {leftovers}"
    time.sleep(3)
    assert not (out / "ci" / ".staging").exists()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-2000:]
    for phase in ("small_data", "more_data"):  # finished phases are reused, the others run again
        assert f"{phase}: {'cached' if phase in finished else 'done'}" in res.stderr
    assert "without encryption" not in res.stderr  # kernels get CurveZMQ keys: no warning per notebook


# --------------------------------------------------------------------------- corrupt files in a finished study
@pytest.mark.parametrize(
    "name, damage",
    [
        ("ckpt/best.pt", lambda b: b[: len(b) // 2]),  # truncated
        ("history.csv", lambda b: b + b"999,garbage,,\n"),  # a garbage row appended
        ("metrics.json", lambda b: b[:-5]),  # no longer JSON
    ],
)
def test_a_damaged_artifact_is_not_cached(ci_run, capsys, name, damage):
    _, out, study = ci_run
    path = out / "ci" / "small_data" / name
    original = path.read_bytes()
    path.write_bytes(damage(original))
    try:
        code, stdout, _ = _run([str(study), "--outputs", str(out), "--dry-run"], capsys)
        assert code == 0
        line = next(line for line in stdout.splitlines() if "small_data" in line)
        assert "would run" in line and f"({name} does not match its recorded hash)" in line
        assert "cached" in next(line for line in stdout.splitlines() if "more_data" in line)
    finally:
        path.write_bytes(original)


def test_an_invalid_status_is_not_done_even_with_force_or_dry_run(ci_run, capsys):
    _, out, study = ci_run
    path = out / "ci" / "more_data" / "status.json"
    original = path.read_bytes()
    path.write_bytes(original[:40])
    try:
        for extra in ([], ["--force"]):
            code, stdout, err = _run([str(study), "--outputs", str(out), "--dry-run", *extra], capsys)
            assert code == 0 and "Traceback" not in err
            line = next(line for line in stdout.splitlines() if "more_data" in line)
            assert "would run" in line
            assert ("--force" in line) if extra else ("status.json does not read as JSON" in line)
    finally:
        path.write_bytes(original)


def test_a_phase_with_an_invalid_metrics_json_is_rerun_and_the_report_rebuilt(ci_run, capsys):
    """The issue: an invalid metrics.json was 'cached', then 05_compare failed naming no file while the old
    report.html was still announced.  Now the phase re-runs, the run says why, and the report is new."""
    _, out, study = ci_run
    sdir = out / "ci"
    (sdir / "small_data" / "metrics.json").write_text('{"best_val_loss": 3.')
    report_before = (sdir / "report.html").stat().st_mtime_ns
    code, stdout, err = _run([str(study), "--outputs", str(out)], capsys)
    assert code == 0, err[-3000:]
    assert "small_data: re-running: metrics.json does not match its recorded hash" in err
    assert "more_data: cached" in err and "small_data: done" in err
    assert json.loads((sdir / "small_data" / "metrics.json").read_text())["best_val_loss"] > 0
    assert (sdir / "_previous" / "small_data" / "metrics.json").read_text() == '{"best_val_loss": 3.'  # kept
    assert (sdir / "report.html").stat().st_mtime_ns != report_before and f"report: {sdir / 'report.html'}" in stdout


def test_replicates_train_together_inside_the_phase_kernel(tmp_path, root, capsys):
    """``replicates: 3`` through ``gaplab run``: 02_train runs in the phase's kernel after IPython's reset (which
    deletes ``__main__.__spec__``, what spawn reads), and the replicates train in processes of their own."""
    from gaplab.train.replicates import replicate_plan

    study = tmp_path / "ci_r3.yaml"
    study.write_text(
        f"study: ci_r3\nextends: {root / 'params' / 'ci.yaml'}\ndefaults:\n  replicates: 3\n"
        "phases:\n  small_data:\n    data: {max_tokens: 2000}\n",
        encoding="utf-8",
    )
    out = tmp_path / "outputs"
    code, text, err = _run([str(study), "--outputs", str(out), "--phases", "small_data"], capsys)
    assert code == 0, text + err
    phase = out / "ci_r3" / "small_data"
    seeds = sorted(p.name for p in (phase / "replicates").glob("seed-*"))
    assert len(seeds) == 2 and (phase / "replicates" / "mean" / "history.csv").exists()  # seed 0 lives in the phase
    assert replicate_plan(3, "cpu", 2).processes > 1  # on CI's 2 cores this took the processes' path
    metrics = json.loads((phase / "metrics.json").read_text())
    assert metrics["replicates"]["n"] == 3
