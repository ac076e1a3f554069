"""The cache trusts no file it has not checked: status.json records the sha256 of a phase's artifacts, and a
phase whose files differ (a truncated checkpoint, a row appended to history.csv, an invalid metrics.json) or
whose status does not read is not reused.  And the study lock: one command per study folder."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from gaplab import cli
from gaplab.errors import CorruptFileError, StudyLocked
from gaplab.files import read_json
from gaplab.pipeline.lock import HOLDER_NAME, study_lock
from gaplab.pipeline.runs import PhaseStatus, artifact_hashes, place_phase, read_status, reuse_problem

HISTORY = "iter,train_loss,val_loss\n0,5.0,5.1\n20,3.0,3.4\n"


def finished_phase(tmp_path, name="p", fingerprint="fp1"):
    """A phase folder placed by :func:`place_phase` as ``gaplab run`` places a finished one."""
    staged = tmp_path / ".staging" / name
    (staged / "ckpt").mkdir(parents=True)
    (staged / "ckpt" / "best.pt").write_bytes(os.urandom(4096))
    (staged / "history.csv").write_text(HISTORY)
    (staged / "metrics.json").write_text(json.dumps({"best_val_loss": 3.4}))
    (staged / "02_train.ipynb").write_text("{}")
    status = PhaseStatus(name, "done", fingerprint=fingerprint, seconds=1.0)
    return place_phase(staged, tmp_path / name, name, {"study": "s", "phase": name}, status)


def test_a_finished_phase_is_reusable_and_its_hashes_recorded(tmp_path):
    pdir = finished_phase(tmp_path)
    status, why = read_status(pdir)
    assert why is None and set(status.artifacts) == {"ckpt/best.pt", "history.csv", "metrics.json", "params.yaml"}
    assert status.artifacts == artifact_hashes(pdir)
    assert reuse_problem(pdir, "fp1") is None
    assert reuse_problem(pdir, "fp2") == "its settings, data or gaplab's code changed"


@pytest.mark.parametrize(
    "damage, why",
    [
        (
            lambda d: (d / "ckpt" / "best.pt").write_bytes((d / "ckpt" / "best.pt").read_bytes()[:1000]),
            "ckpt/best.pt does not match its recorded hash",
        ),
        (
            lambda d: (d / "history.csv").write_text(HISTORY + "garbage,,\n"),
            "history.csv does not match its recorded hash",
        ),
        (
            lambda d: (d / "metrics.json").write_text('{"best_val_loss": 3.'),
            "metrics.json does not match its recorded hash",
        ),
        (lambda d: (d / "ckpt" / "best.pt").unlink(), "ckpt/best.pt is missing"),
    ],
)
def test_a_damaged_artifact_is_not_reused(tmp_path, damage, why):
    pdir = finished_phase(tmp_path)
    damage(pdir)
    assert reuse_problem(pdir, "fp1") == why


@pytest.mark.parametrize("text", ['{"state": "done", "finger', "", "[1, 2]", "\xff\xfe"])
def test_an_unreadable_status_means_not_done(tmp_path, text):
    pdir = finished_phase(tmp_path)
    (pdir / "status.json").write_bytes(text.encode("latin-1"))
    status, why = read_status(pdir)
    assert status is None and str(pdir / "status.json") in why and "treated as not done" in why
    assert reuse_problem(pdir, "fp1") == why


def test_opening_a_notebook_does_not_invalidate_the_phase(tmp_path):
    pdir = finished_phase(tmp_path)
    (pdir / "02_train.ipynb").write_text('{"edited": true}')  # a learner re-ran a cell in JupyterLab
    (pdir / ".ipynb_checkpoints").mkdir()
    (pdir / ".ipynb_checkpoints" / "02_train-checkpoint.ipynb").write_text("{}")
    assert reuse_problem(pdir, "fp1") is None


def test_a_status_from_before_the_hashes_reruns(tmp_path):
    pdir = finished_phase(tmp_path)
    st = json.loads((pdir / "status.json").read_text())
    del st["artifacts"]
    (pdir / "status.json").write_text(json.dumps(st))
    assert "no artifact hashes" in reuse_problem(pdir, "fp1")


def test_read_json_names_the_file(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"a": ')
    with pytest.raises(CorruptFileError, match=r"metrics.json: not valid JSON"):
        read_json(path)


def test_dry_run_with_an_invalid_status_says_why_even_with_force(tmp_path, capsys, root):
    """The issue: an invalid status.json gave a traceback even with --force or --dry-run."""
    study = root / "params" / "ci.yaml"
    out = tmp_path / "outputs"
    (out / "ci" / "small_data").mkdir(parents=True)
    (out / "ci" / "small_data" / "status.json").write_text('{"state": "do')
    assert cli.main(["run", str(study), "--outputs", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert (
        "small_data" in text
        and "would run" in text
        and "does not read as JSON" in text
        and "treated as not done" in text
    )
    assert cli.main(["run", str(study), "--outputs", str(out), "--dry-run", "--force"]) == 0
    assert "would run  fingerprint" in capsys.readouterr().out


# --------------------------------------------------------------------------- the study lock
HOLD = """
import sys, time
from pathlib import Path
from gaplab.pipeline.lock import study_lock
with study_lock(Path(sys.argv[1]), "gaplab run held-by-test"):
    Path(sys.argv[2]).write_text("held")
    time.sleep(120)
"""


def _holder(tmp_path, sdir):
    flag = tmp_path / "held"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(sdir), str(flag)], env=env, start_new_session=True)
    deadline = time.time() + 60
    while not flag.exists() and time.time() < deadline:
        time.sleep(0.05)
    assert flag.exists(), "the holder never took the lock"
    return proc


def test_a_held_lock_stops_a_second_command_with_one_sentence(tmp_path, capsys, root):
    sdir = tmp_path / "outputs" / "ci"
    proc = _holder(tmp_path, sdir)
    try:
        with pytest.raises(StudyLocked) as exc:
            with study_lock(sdir, "gaplab run second"):
                pass
        msg = str(exc.value)
        assert str(sdir) in msg and f"pid {proc.pid}" in msg and "gaplab run held-by-test" in msg
        assert "since" in msg and "--wait" in msg
        # through the command line: exit 2, before anything is written
        assert cli.main(["run", str(root / "params" / "ci.yaml"), "--outputs", str(tmp_path / "outputs")]) == 2
        err = capsys.readouterr().err
        assert f"pid {proc.pid}" in err and "--wait" in err and "Traceback" not in err
        assert sorted(p.name for p in sdir.iterdir()) == [".gaplab.lock", HOLDER_NAME]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_a_lock_left_by_a_killed_holder_is_taken_over(tmp_path):
    sdir = tmp_path / "outputs" / "ci"
    proc = _holder(tmp_path, sdir)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9: no chance to release anything
    proc.wait()
    said = []
    with study_lock(sdir, "gaplab run next", say=said.append):
        held = json.loads((sdir / HOLDER_NAME).read_text())
        assert held["pid"] == os.getpid() and held["command"] == "gaplab run next"
    assert len(said) == 1 and f"pid {proc.pid}" in said[0] and "which is gone" in said[0]
    assert not (sdir / HOLDER_NAME).exists()  # a clean release leaves no holder record


def test_wait_waits_for_the_holder(tmp_path):
    sdir = tmp_path / "outputs" / "ci"
    proc = _holder(tmp_path, sdir)
    said = []
    try:
        import threading

        threading.Timer(1.0, lambda: os.killpg(proc.pid, signal.SIGTERM)).start()
        with study_lock(sdir, "gaplab run waiting", wait=True, say=said.append):
            assert proc.poll() is not None  # we got in only after the holder was gone
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert said and said[0].startswith("waiting for gaplab run held-by-test")
