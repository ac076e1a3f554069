"""kill -9 of the whole process group, and two commands on one outputs folder.

- ``gaplab train`` killed mid-run leaves the finished phase folder exactly as it was, and
  ``gaplab train --resume`` continues the killed run to a history equal, row for row, to an uninterrupted one.
- ``gaplab run`` while another holds the study: a second one stops with one sentence (who, since when,
  ``--wait``); one started with ``--wait`` takes over when the first is killed with ``kill -9``, clears what it
  left in ``.staging/`` and finishes the study.

The ``gaplab run`` test uses stand-in stage notebooks (``$GAPLAB_NOTEBOOKS``) that write a few files and can
be told to hold in 02_train, so the kill lands mid-stage without training anything.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

STUDY = """
study: crash
defaults:
  data: {source: stdlib, packages: [json], max_tokens: 6000}
  tokenizer: {name: gpt2, compact: true}
  model: {n_layer: 2, n_head: 2, n_embd: 48, block_size: 48}
  train: {max_iters: 160, batch_size: 8, eval_interval: 20, eval_iters: 2, learning_rate: 3.0e-3, threads: 1}
  sample: {enabled: false}
phases:
  p: {}
"""


def gaplab(*args) -> list[str]:
    return [sys.executable, "-m", "gaplab.cli", *args]


def _as_from_a_terminal() -> None:
    """SIGINT as a command typed at a terminal has it: a shell's background job (``make test &``, ``nohup``)
    starts with SIGINT ignored, every child inherits that, and Python then installs no Ctrl-C handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(cmd, log: Path, env=None) -> subprocess.Popen:
    """A command in its own session (so ``os.killpg`` reaches it and every child), output into ``log``."""
    fh = open(log, "w")
    return subprocess.Popen(
        cmd,
        stdout=fh,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env=env,
        preexec_fn=_as_from_a_terminal,
    )


def wait_for(predicate, what: str, timeout: float = 180.0, proc=None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the command ended (rc {proc.returncode}) before {what}")
        time.sleep(0.02)
    pytest.fail(f"timed out waiting until {what}")


def kill9(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def history(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "history.csv").drop(columns=["elapsed_s"])


def working_under(folder: Path) -> list[tuple[str, str]]:
    """Processes whose working directory is under ``folder`` (a kernel left behind by a killed run)."""
    out = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd.startswith(str(folder)):
            out.append((entry.name, cwd))
    return out


def test_train_killed_mid_run_keeps_the_finished_phase_and_resume_matches(tmp_path, one_torch_thread):
    """The runs that are not interrupted run in this process (one start-up less each); the two that are
    interrupted run in their own session, so Ctrl-C and kill -9 reach their whole process group."""
    from gaplab import cli

    study = tmp_path / "crash.yaml"
    study.write_text(STUDY)
    out = tmp_path / "outputs"
    final, work = out / "crash" / "p", out / "crash" / ".staging" / "train-p"

    # 1. an uninterrupted run: the finished phase (a later stage's key added, as 03_loss_gap would)
    assert cli.main(["train", str(study), "--phase", "p", "--outputs", str(out), "--quiet"]) == 0
    full = history(final)
    assert full.iter.tolist() == list(range(0, 161, 20))
    metrics = json.loads((final / "metrics.json").read_text())
    (final / "metrics.json").write_text(json.dumps(dict(metrics, analysis={"verdict": "from the first run"})))
    before = snapshot(final)

    def rows():
        return len((work / "history.csv").read_text().splitlines()) - 1 if (work / "history.csv").exists() else 0

    retrain = gaplab("train", str(study), "--phase", "p", "--outputs", str(out), "--quiet")

    # 2. train it again and press Ctrl-C (SIGINT to the process group) after its second eval
    proc = start(retrain, tmp_path / "2.log")
    wait_for(lambda: rows() >= 2 and (work / "ckpt" / "last.pt").exists(), "the retrain evaluated twice", proc=proc)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    assert "--resume" in (tmp_path / "2.log").read_text() and "Traceback" not in (tmp_path / "2.log").read_text()
    assert snapshot(final) == before

    # 3. once more from scratch, and kill -9 the whole process group after its second eval
    proc = start(retrain, tmp_path / "3.log")
    wait_for(lambda: (work / "history.csv").exists() and rows() <= 1, "the retrain started afresh", proc=proc)
    wait_for(lambda: rows() >= 2 and (work / "ckpt" / "last.pt").exists(), "the retrain evaluated twice", proc=proc)
    kill9(proc)
    assert rows() < len(full), "the retrain finished before it could be killed"
    assert snapshot(final) == before  # the finished result is untouched, byte for byte

    # 4. resume the killed run: it continues from its last eval, and its history is the uninterrupted one
    assert cli.main(["train", str(study), "--phase", "p", "--outputs", str(out), "--quiet", "--resume"]) == 0
    pd.testing.assert_frame_equal(history(final), full, check_exact=True)
    assert "analysis" not in json.loads((final / "metrics.json").read_text())  # no keys of the earlier run
    assert snapshot(out / "crash" / "_previous" / "p") == before  # the replaced result is kept, not lost
    assert json.loads((final / "status.json").read_text())["state"] == "trained"
    assert not work.exists()


# --------------------------------------------------------------------------- gaplab run, twice at once
STANDIN = """
import os, pathlib, time
pathlib.Path(STAGE + ".txt").write_text(phase)
if STAGE == "02_train":
    pathlib.Path("history.csv").write_text("iter,train_loss,val_loss\\n0,5.0,5.0\\n")
    pathlib.Path("ckpt").mkdir(exist_ok=True)
    pathlib.Path("ckpt/best.pt").write_bytes(b"weights")
    hold = os.environ.get("STANDIN_HOLD")
    while hold and os.path.exists(hold):  # held here until the test lets go
        time.sleep(0.05)
"""
COMPARE = """
import pathlib
pathlib.Path(study_dir, "report.html").write_text("<p>" + ", ".join(phases) + "</p>")
"""


def standin_notebooks(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stages = ("01_inspect_data", "02_train", "03_loss_gap", "04_samples")
    for stage in stages + ("05_compare",):
        nb = nbformat.v4.new_notebook()
        defaults = (
            'study = "s"\nstudy_dir = "."\nphases = []'
            if stage == "05_compare"
            else 'study = "s"\nphase = "p"\nrun_dir = "."'
        )
        params = nbformat.v4.new_code_cell(defaults)
        params.metadata["tags"] = ["parameters"]
        body = COMPARE if stage == "05_compare" else f"STAGE = {stage!r}\n" + STANDIN
        nb.cells = [params, nbformat.v4.new_code_cell(body)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, folder / f"{stage}.ipynb")
    return folder


def test_two_runs_at_once_and_kill_9_of_the_first(tmp_path):
    study = tmp_path / "crash.yaml"
    study.write_text(STUDY)
    out = tmp_path / "outputs"
    sdir = out / "crash"
    hold = tmp_path / "hold"
    hold.write_text("hold")
    env = dict(
        os.environ,
        GAPLAB_NOTEBOOKS=str(standin_notebooks(tmp_path / "nbs")),
        STANDIN_HOLD=str(hold),
        PYTHONPATH=os.pathsep.join(sys.path),
    )
    cmd = gaplab("run", str(study), "--outputs", str(out))

    first = start(cmd, tmp_path / "first.log", env)
    wait_for(lambda: any(sdir.glob(".staging/**/02_train.txt")), "the first run is in 02_train", proc=first)
    holder = json.loads((sdir / ".gaplab.lock.json").read_text())
    assert holder["pid"] == first.pid

    # a second run stops at once, with one sentence: who holds the study, since when, and --wait
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 2, second.stderr[-3000:]
    assert f"in use by gaplab run {study} (pid {first.pid}" in second.stderr and "--wait" in second.stderr
    assert "Traceback" not in second.stderr

    # a third waits for it; kill -9 of the first's whole process group hands it the study
    third = start(cmd + ["--wait"], tmp_path / "third.log", env)
    wait_for(
        lambda: "waiting for gaplab run" in (tmp_path / "third.log").read_text(), "the third run waits", proc=third
    )
    kill9(first)
    hold.unlink()
    assert third.wait(timeout=300) == 0, (tmp_path / "third.log").read_text()[-3000:]
    log = (tmp_path / "third.log").read_text()
    assert f"pid {first.pid}" in log and "which is gone" in log and "p: done" in log
    st = json.loads((sdir / "p" / "status.json").read_text())
    assert st["state"] == "done" and (sdir / "p" / "04_samples.txt").read_text() == "p"
    assert (sdir / "report.html").read_text() == "<p>p</p>"
    assert not (sdir / ".staging").exists()  # the killed run's staging was cleared, the third's removed
    assert not (sdir / ".gaplab.lock.json").exists()
    time.sleep(1.5)  # a kernel of the killed run notices its parent is gone within a second
    assert not working_under(out), "a process of the killed run is still working under the outputs"
