"""What a user does with the verdict on a log trained elsewhere (gaplab.logs.analyze): the best and the last,
what stopping at the best would have saved, the checkpoint to keep, the staircase, eval sets, replicates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gaplab.logs.analyze import (
    analysis_table,
    analyze_log,
    analyze_path,
    analyze_runs,
    checkpoint_to_keep,
    example_log,
    replicate_spread,
    run_paths,
    staircase,
)
from gaplab.logs.base import RunLog

FIXTURES = Path(__file__).parent / "fixtures"
THREE_EPOCHS = FIXTURES / "hf_trainer_state" / "built_3epoch_val_up39_trainer_state.json"


def run_log(iters, train, val, *, checkpoints=None, best=None, points=None, x_unit="step") -> RunLog:
    history = pd.DataFrame({"iter": iters, "train_loss": train, "val_loss": val})
    return RunLog(
        path="run/trainer_state.json",
        format="hf_trainer_state",
        history=history,
        x_unit=x_unit,
        val_key="eval_loss",
        val_keys=["eval_loss"],
        notes=[],
        train_points=points,
        checkpoints=checkpoints or {},
        best_checkpoint=best,
    )


def test_three_epoch_fine_tune_says_where_to_stop_and_what_to_keep():
    (a,) = analyze_path(THREE_EPOCHS)
    assert a.curve.verdict == "overfitting" and a.curve.onset.best_iter == 156 and a.last_iter == 468
    assert a.lost_after_best == pytest.approx(0.417 - 0.300)
    assert a.lost_in_noise == pytest.approx(a.lost_after_best / a.curve.onset.val_noise)
    advice = a.advice()
    assert "stopping at the best would have given 0.117 nats lower val" in advice
    assert f"({a.lost_in_noise:.1f} times the noise" in advice and "Keep out/checkpoint-156" in advice
    d = a.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False))["keep_checkpoint"] == "out/checkpoint-156"
    assert d["thin_evidence"] is True and d["verdict"] == "overfitting" and d["file"] == str(THREE_EPOCHS)


def test_the_checkpoint_to_keep_is_the_first_at_or_after_the_best():
    run = run_log([100, 200, 300], [1, 1, 1], [1, 1, 1], checkpoints={100: "c-100", 250: "c-250", 300: "c-300"})
    assert checkpoint_to_keep(run, 200) == "c-250" and checkpoint_to_keep(run, 100) == "c-100"
    assert checkpoint_to_keep(run, 400) is None
    run.best_checkpoint = "out/checkpoint-200"  # the log's own choice counts among them
    assert checkpoint_to_keep(run, 200) == "out/checkpoint-200"
    assert checkpoint_to_keep(run, 290) == "c-300"


def test_a_best_checkpoint_chosen_by_another_metric_is_said():
    it = np.arange(1, 11) * 100
    val = np.array([3.0, 2.6, 2.4, 2.35, 2.4, 2.5, 2.6, 2.7, 2.8, 2.9])
    run = run_log(it, np.linspace(3.0, 1.0, 10), val, checkpoints={400: "o/checkpoint-400"}, best="o/checkpoint-900")
    a = analyze_log(run)
    assert a.keep_checkpoint == "o/checkpoint-400"
    assert "best_model_checkpoint, o/checkpoint-900, was chosen by another metric" in a.advice()


def _points(drop_at_boundary: float, rng, epochs: int = 4, per_epoch: int = 10, noise: float = 0.01):
    """Train losses logged 10 times an epoch (HF's epoch fractions), falling slowly within each epoch and by
    ``drop_at_boundary`` more at each new epoch; Gaussian noise of ``noise`` nats."""
    step = np.arange(1, epochs * per_epoch + 1)
    epoch = step / per_epoch
    level = 2.0 - 0.004 * step - drop_at_boundary * np.floor((step - 1) / per_epoch)
    return pd.DataFrame({"step": step, "loss": level + noise * rng.standard_normal(len(step)), "epoch": epoch})


def test_staircase_is_found_where_train_drops_at_each_epoch_boundary():
    rng = np.random.default_rng(0)
    stairs = staircase(_points(0.15, rng))
    assert [s.epoch for s in stairs] == [1, 2, 3] and all(s.is_stair for s in stairs)
    assert all(s.drop == pytest.approx(0.15, abs=0.04) for s in stairs)


def test_no_staircase_on_a_smooth_fall_with_noise():
    rng = np.random.default_rng(1)
    found = sum(s.is_stair for _ in range(500) for s in staircase(_points(0.0, rng)))
    assert found / 1500 <= 0.02  # Z = 3 on a scatter from 10 points: false stairs stay rare (0.9 % measured)
    rng = np.random.default_rng(2)
    found = sum(s.is_stair for _ in range(100) for s in staircase(_points(0.05, rng)))
    assert found / 300 >= 0.9  # a drop of 5 times the noise is seen


def test_no_staircase_without_epochs_or_with_one_train_loss_an_epoch():
    assert staircase(None) == []
    keras = pd.DataFrame({"step": [0, 1, 2], "loss": [1.0, 0.5, 0.3], "epoch": [0.0, 1.0, 2.0]})
    assert staircase(keras) == []


def test_each_eval_set_is_analysed(tmp_path):
    history = []
    for step in range(100, 1100, 100):
        history.append({"step": step, "epoch": step / 1000, "loss": 3.0 - step / 1000})
        history.append({"step": step, "epoch": step / 1000, "eval_code_loss": 2.5 + abs(step - 400) / 1000})
        history.append({"step": step, "epoch": step / 1000, "eval_prose_loss": 2.9 - step / 2000})
    state = {"log_history": history, "global_step": 1000, "epoch": 1.0, "best_model_checkpoint": None}
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps(state))
    analyses = analyze_path(path)
    assert sorted(a.val_key for a in analyses) == ["eval_code_loss", "eval_prose_loss"]
    verdicts = {a.val_key: a.curve.verdict for a in analyses}
    assert verdicts["eval_code_loss"] == "overfitting" and verdicts["eval_prose_loss"] != "overfitting"
    (only,) = analyze_path(path, val_key="eval_prose_loss")
    assert only.val_key == "eval_prose_loss"
    assert "eval_code_loss" in analysis_table(analyses)


def _write_csv(path: Path, rng, rise: float) -> Path:
    it = np.arange(0, 2100, 100)
    val = 3.0 - 0.8 * np.minimum(it, 1000) / 1000 + rise * np.maximum(it - 1000, 0) / 1000
    train = 3.0 - 1.5 * it / 2000
    frame = pd.DataFrame(
        {"step": it, "train_loss": train, "val_loss": val * (1 + 0.005 * rng.standard_normal(len(it)))}
    )
    frame.to_csv(path, index=False)
    return path


def test_a_folder_of_replicates_gives_each_run_and_their_spread(tmp_path):
    rng = np.random.default_rng(2)
    runs = tmp_path / "runs"
    runs.mkdir()
    for seed in range(3):
        _write_csv(runs / f"seed{seed}.csv", rng, rise=0.3)
    (runs / "notes.txt").write_text("not a log\n")
    assert [p.name for p in run_paths([runs])] == ["seed0.csv", "seed1.csv", "seed2.csv"]
    analyses = analyze_runs([runs])
    assert [a.curve.verdict for a in analyses] == ["overfitting"] * 3
    spread = replicate_spread(analyses)
    assert spread is not None and spread.n == 3 and spread.onsets == 3
    best = [a.curve.onset.best_val for a in analyses]
    assert spread.best_val_mean == pytest.approx(np.mean(best)) and spread.best_val_std == pytest.approx(
        np.std(best, ddof=1)
    )
    assert spread.mean_curve.verdict == "overfitting" and spread.mean_curve.onset.val_noise_se is not None
    assert "3 replicates" in spread.sentence()


def test_runs_with_other_evals_are_not_replicates(tmp_path):
    rng = np.random.default_rng(3)
    a = analyze_runs([_write_csv(tmp_path / "a.csv", rng, 0.3), THREE_EPOCHS])
    assert len(a) == 2 and replicate_spread(a) is None


def test_the_example_log_ships_with_the_package(root):
    import tomllib

    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["gaplab"]
    example = example_log()
    assert example.exists() and any(example.relative_to(example.parents[1]).match(p) for p in patterns)
    (a,) = analyze_runs(example)  # one path alone is one run
    assert a.curve.verdict == "overfitting" and a.format == "hf_trainer_state"
