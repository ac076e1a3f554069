"""One kernel per phase: the four stage notebooks share a kernel, and each still starts as in a fresh one."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbformat
import pytest
from gaplab.pipeline.execute import PhaseJob, execute_phase, kernel_name
from gaplab.pipeline.stages import STAGES

pytestmark = pytest.mark.slow

PARAMS = 'study = "s"\nphase = "p"\nrun_dir = "."\n'


def _notebook(path: Path, *cells: str) -> None:
    nb = nbformat.v4.new_notebook()
    first = nbformat.v4.new_code_cell(PARAMS)
    first.metadata["tags"] = ["parameters"]
    nb.cells = [first] + [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


def _stage_notebooks(folder: Path, fail_at: str = "") -> None:
    """Four notebooks named like the stages: each records its kernel's pid and what it finds in the namespace;
    the first leaves a variable, a warning and a figure behind for the others to (not) find."""
    folder.mkdir()
    for i, stage in enumerate(STAGES):
        record = (
            f"import os, json\n"
            f"seen = sorted(k for k in globals() if k in ('left_behind', 'os_first'))\n"
            f"open('{stage}.json', 'w').write(json.dumps({{'pid': os.getpid(), 'seen': seen}}))"
        )
        # a library function's warning: Python shows it once per place, and a new kernel shows it again
        warn = (
            "import sys, types\n"
            "if 'gaplab_test_warner' not in sys.modules:\n"
            "    m = sys.modules['gaplab_test_warner'] = types.ModuleType('gaplab_test_warner')\n"
            "    exec('import warnings\\ndef warn():\\n    warnings.warn(\"shown once per place\", UserWarning)',"
            " m.__dict__)\n"
            "sys.modules['gaplab_test_warner'].warn()"
        )
        cells = [record, warn]
        if i == 0:
            cells.append("left_behind = 42\nos_first = os")
        if stage == fail_at:
            cells.append("raise RuntimeError('this stage fails')")
        _notebook(folder / f"{stage}.ipynb", *cells)


def _job(tmp_path: Path, notebooks: Path) -> PhaseJob:
    return PhaseJob(
        "s",
        "p",
        {"study": "s", "phase": "p"},
        "fp",
        str(tmp_path / "final"),
        timeout=120,
        kernel=kernel_name(),
        notebooks=str(notebooks),
    )


def _gone(pid: int, wait: float = 20.0) -> bool:
    deadline = time.time() + wait
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_a_phase_runs_its_stages_in_one_kernel_each_starting_clean(tmp_path):
    _stage_notebooks(tmp_path / "nbs")
    work = tmp_path / "work"
    work.mkdir()
    status = execute_phase(_job(tmp_path, tmp_path / "nbs"), str(work))
    assert status.state == "done", status
    run_dir = Path(status.run_dir)
    seen = {stage: json.loads((run_dir / f"{stage}.json").read_text()) for stage in STAGES}
    pids = {s["pid"] for s in seen.values()}
    assert len(pids) == 1, f"each stage ran in its own kernel: {seen}"  # one kernel for the phase
    assert all(s["seen"] == [] for s in seen.values()), seen  # no variable of an earlier notebook
    for stage in STAGES:  # every executed notebook is the record, counting its cells from 1
        nb = nbformat.read(str(run_dir / f"{stage}.ipynb"), as_version=4)
        counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
        assert counts == list(range(1, len(counts) + 1)), (stage, counts)
        shown = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
        assert "shown once per place" in shown, f"{stage}: a warning was not shown again, as a new kernel would"
    assert _gone(pids.pop()), "the phase's kernel is still running after the phase ended"


def test_a_failing_stage_stops_the_phase_and_its_kernel(tmp_path):
    _stage_notebooks(tmp_path / "nbs", fail_at=STAGES[1])
    work = tmp_path / "work"
    work.mkdir()
    status = execute_phase(_job(tmp_path, tmp_path / "nbs"), str(work))
    assert status.state == "failed" and status.stage == STAGES[1]
    assert "this stage fails" in status.error
    run_dir = Path(status.run_dir)
    assert not (run_dir / f"{STAGES[2]}.json").exists()  # later stages did not run
    pid = json.loads((run_dir / f"{STAGES[1]}.json").read_text())["pid"]
    assert _gone(pid), "the failed phase's kernel is still running"
