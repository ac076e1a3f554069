"""Stage functions: files in run_dir are the only channel between stages."""

import pytest
from gaplab.datareport.checks import DataCheckFailed
from gaplab.pipeline import stages
from gaplab.pipeline.stages import StageInputMissing, enforce_data_checks, inspect_phase, loss_gap


def _params(run_dir):
    return {
        "study": "t",
        "phase": "p",
        "run_dir": str(run_dir),
        "data": {"packages": ["json"], "max_tokens": 3000, "fail_on": ["validators"], "validators": ["json_valid"]},
        "tokenizer": {"name": "gpt2", "compact": True},
        "model": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16},
        "train": {"max_iters": 4, "eval_interval": 2, "eval_iters": 1},
    }


def test_failed_fail_on_check_stops_training_before_it_starts(tmp_path):
    """json_valid on Python source fails every document; 01 writes the report, 02 refuses to train."""
    params = _params(tmp_path)
    report = inspect_phase(params, enforce=False)
    assert [c["name"] for c in report["checks"] if c["status"] == "fail" and c["in_fail_on"]] == ["validators"]
    assert (tmp_path / "data_report.json").exists()
    with pytest.raises(DataCheckFailed, match="training will not start"):
        enforce_data_checks(report)
    with pytest.raises(DataCheckFailed):
        stages.train(params, progress=False)
    assert not (tmp_path / "history.csv").exists() and not (tmp_path / "ckpt").exists()


def test_later_stage_names_the_missing_input(tmp_path):
    with pytest.raises(StageInputMissing, match="history.csv is missing: run 02_train"):
        loss_gap(_params(tmp_path))


def test_train_stage_writes_its_figure_and_calls_back_at_every_eval(tmp_path):
    """02_train's stage owns every file of its stage, the figure included; a live display is a callback."""
    from gaplab.train.history import load_history

    rows = []
    stages.train(_params(tmp_path), progress=False, on_eval=rows.append)
    figure = tmp_path / "figures" / "training_curves.png"
    assert figure.exists() and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "figures" / "training_curves.svg").exists()
    assert [int(r["iter"]) for r in rows] == [int(i) for i in load_history(tmp_path)["iter"]] == [0, 2, 4]
