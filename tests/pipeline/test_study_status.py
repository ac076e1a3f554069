"""study_status.json as a record, and the cache of 05_compare: its files' hashes and what it read."""

import json

from gaplab.pipeline.runs import PhaseStatus, place_phase
from gaplab.pipeline.study_status import (
    CompareRecord,
    StudyStatus,
    compare_inputs,
    compare_problem,
    study_file_hashes,
)


def _study(tmp_path):
    """A study folder as 05_compare leaves it, with one placed phase, and its recorded status."""
    sdir = tmp_path / "s"
    staged = tmp_path / ".staging" / "p"
    staged.mkdir(parents=True)
    (staged / "metrics.json").write_text('{"best_val_loss": 3.4}')
    place_phase(staged, sdir / "p", "p", {"study": "s", "phase": "p"}, PhaseStatus("p", "done", fingerprint="fp"))
    (sdir / "summary.csv").write_text("phase,state\np,done\n")
    (sdir / "report.html").write_text("<html>p</html>")
    (sdir / "05_compare.ipynb").write_text("{}")
    (sdir / "figures").mkdir()
    (sdir / "figures" / "gap.png").write_bytes(b"\x89PNG a figure")
    results = {"p": PhaseStatus("p", "done", seconds=2.5)}
    inputs = compare_inputs(sdir, "a study", ["p"], results)
    status = StudyStatus("s", "a study", "s.yaml", ["p"], results, CompareRecord(inputs, study_file_hashes(sdir)))
    status.write(sdir)
    return sdir, status


def test_the_file_keeps_its_keys_and_reads_back(tmp_path):
    sdir, status = _study(tmp_path)
    data = json.loads((sdir / "study_status.json").read_text())
    assert set(data) == {"study", "description", "study_file", "phases_order", "phases", "compare"}
    assert data["phases"]["p"] == {"state": "done", "seconds": 2.5, "stage": None, "error": None, "notebook": None}
    assert set(data["compare"]["artifacts"]) == {"summary.csv", "report.html", "05_compare.ipynb", "figures/gap.png"}
    assert StudyStatus.read(sdir) == status
    (sdir / "study_status.json").write_text('{"study": "s", "phas')
    assert StudyStatus.read(sdir) is None


def test_a_cached_phase_counts_as_the_done_one_it_reuses(tmp_path):
    sdir, status = _study(tmp_path)
    cached = {"p": PhaseStatus("p", "cached", seconds=2.5)}
    assert compare_problem(sdir, compare_inputs(sdir, "a study", ["p"], cached)) is None


def test_a_changed_or_missing_study_file_reruns_05_compare(tmp_path):
    sdir, status = _study(tmp_path)
    inputs = status.compare.inputs
    (sdir / "summary.csv").write_text("phase,state\np,done\nq,done\n")
    assert compare_problem(sdir, inputs) == "summary.csv does not match its recorded hash"
    (sdir / "summary.csv").write_text("phase,state\np,done\n")  # as 05_compare wrote it
    assert compare_problem(sdir, inputs) is None
    (sdir / "figures" / "gap.png").unlink()
    assert compare_problem(sdir, inputs) == "figures/gap.png is missing"


def test_other_phases_or_a_changed_phase_rerun_05_compare(tmp_path):
    sdir, status = _study(tmp_path)
    done = {"p": PhaseStatus("p", "done")}
    assert compare_problem(sdir, compare_inputs(sdir, "another description", ["p"], done)) is not None
    assert compare_problem(sdir, compare_inputs(sdir, "a study", ["p", "q"], done)) is not None
    failed = {"p": PhaseStatus("p", "failed", error="ValueError: boom")}
    assert compare_problem(sdir, compare_inputs(sdir, "a study", ["p"], failed)) is not None
    # the phase ran again and was placed with other files: its recorded hashes changed
    place_phase(
        _restaged(sdir), sdir / "p", "p", {"study": "s", "phase": "p"}, PhaseStatus("p", "done", fingerprint="fp")
    )
    assert "changed" in compare_problem(sdir, compare_inputs(sdir, "a study", ["p"], done))


def _restaged(sdir):
    staged = sdir.parent / ".staging" / "p2"
    staged.mkdir(parents=True)
    (staged / "metrics.json").write_text('{"best_val_loss": 3.5}')
    return staged


def test_a_study_status_without_a_compare_record_runs_05_compare(tmp_path):
    sdir, status = _study(tmp_path)
    StudyStatus("s", "a study", "s.yaml", ["p"], status.phases).write(sdir)
    assert "records no earlier 05_compare" in compare_problem(sdir, status.compare.inputs)
    assert "compare" not in json.loads((sdir / "study_status.json").read_text())
