"""The log's own shape, handled at reading time (issue 24, item 2): each quirk in a small log of a real
format, and the issue's two hard cases."""

import json
import math
from pathlib import Path

import pytest
from gaplab.errors import DataError
from gaplab.logs import read_log

FIXTURES = Path(__file__).parent / "fixtures"


def state_file(tmp_path, log_history, **top):
    path = tmp_path / "trainer_state.json"
    path.write_text(json.dumps({"global_step": 0, **top, "log_history": log_history}))
    return path


def test_three_eval_case_keeps_every_eval_and_the_train_fall():
    """Issue 24's first hard case (built equivalent): val up 39% after epoch 1 while train falls 3.4x."""
    run = read_log(FIXTURES / "hf_trainer_state/built_3epoch_val_up39_trainer_state.json")
    h = run.history
    assert len(h) == 3 and h["val_loss"].iloc[-1] / h["val_loss"].iloc[0] == pytest.approx(1.39)
    assert h["train_loss"].iloc[0] / h["train_loss"].iloc[-1] > 3.4
    assert list(h["train_points"]) == [6, 6, 6] and h["train_loss_se"].notna().all()
    assert run.best_checkpoint == "out/checkpoint-156"
    assert any("summary entry" in n for n in run.notes) and 468 in set(h["iter"])  # the eval at 468, not the summary


def test_no_log_rows_are_kept_so_the_best_is_the_logs_best():
    """Issue 24's second hard case (built equivalent): the first 20 evals say 'No log'."""
    run = read_log(FIXTURES / "hf_table/built_20_no_log_README.md")
    h = run.history
    assert len(h) == 23 and h["val_loss"].min() == 5.101 and h["iter"][h["val_loss"].idxmin()] == 104
    assert h["train_loss"][:20].isna().all() and h["train_loss"][20] == 3.912
    assert any("first 20 of 23 evals" in n and "No log" in n for n in run.notes)
    assert list(h["train_points"][20:]) == [1, 0, 0]  # the card repeats 3.912: carried, not new points
    assert any("less often than val" in n for n in run.notes)


def test_several_eval_sets(tmp_path):
    log = [
        {"step": 10, "loss": 2.0},
        {"step": 10, "eval_squad_loss": 1.9},
        {"step": 10, "eval_news_loss": 2.4},
        {"step": 20, "loss": 1.8},
        {"step": 20, "eval_squad_loss": 1.7},
        {"step": 20, "eval_news_loss": 2.5},
    ]
    path = state_file(tmp_path, log)
    run = read_log(path)
    assert run.val_keys == ["eval_squad_loss", "eval_news_loss"] and run.val_key == "eval_squad_loss"
    assert any("2 eval sets" in n and "--val" in n for n in run.notes)
    news = read_log(path, val_key="eval_news_loss")
    assert list(news.history["val_loss"]) == [2.4, 2.5] and list(news.history["train_loss"]) == [2.0, 1.8]
    with pytest.raises(DataError, match="eval_squad_loss, eval_news_loss"):
        read_log(path, val_key="eval_loss")


def test_eval_loss_is_the_default_among_several(tmp_path):
    log = [{"step": 5, "eval_aux_loss": 3.0, "eval_loss": 2.0}, {"step": 10, "eval_aux_loss": 2.9, "eval_loss": 1.9}]
    assert read_log(state_file(tmp_path, log)).val_key == "eval_loss"


def test_resumed_console_is_stitched(tmp_path):
    lines = [
        "{'loss': 2.5, 'learning_rate': 5e-05, 'epoch': 0.5, 'step': 100}",
        "{'eval_loss': 2.4, 'epoch': 0.5, 'step': 100}",
        "{'loss': 2.2, 'learning_rate': 4e-05, 'epoch': 1.0, 'step': 200}",
        "{'eval_loss': 2.3, 'epoch': 1.0, 'step': 200}",
        "{'loss': 2.0, 'learning_rate': 3e-05, 'epoch': 1.5, 'step': 300}",
        "Resuming training from checkpoint-200",
        "{'loss': 2.05, 'learning_rate': 3e-05, 'epoch': 1.5, 'step': 300}",
        "{'eval_loss': 2.25, 'epoch': 1.5, 'step': 300}",
    ]
    path = tmp_path / "console.txt"
    path.write_text("\n".join(lines) + "\n")
    run = read_log(path)
    assert run.x_unit == "step" and list(run.history["iter"]) == [100, 200, 300]
    assert run.history["train_loss"].iloc[-1] == 2.05  # the resumed run's value wins
    assert any("log a train loss again at line 7: a resumed run" in n for n in run.notes)
    assert list(run.train_points["loss"]) == [2.5, 2.2, 2.05]


def test_steps_going_back_mid_log_are_stitched(tmp_path):
    log = [{"step": s, "loss": 3.0 - s / 100} for s in (10, 20, 30, 40)]
    log += [{"step": 20, "eval_loss": 2.9}, {"step": 40, "eval_loss": 2.8}]
    log.sort(key=lambda e: e["step"])
    log += [{"step": 30, "loss": 2.5}, {"step": 40, "loss": 2.4}, {"step": 40, "eval_loss": 2.6}]
    run = read_log(state_file(tmp_path, log))
    assert list(run.history["iter"]) == [20, 40] and run.history["val_loss"].iloc[-1] == 2.6
    assert run.history["train_loss"].iloc[-1] == pytest.approx(2.45)
    assert any("go back from 40 to 30" in n and "stitched" in n for n in run.notes)


def test_two_runs_in_one_file_are_refused():
    with pytest.raises(DataError, match="line 7 the epochs go back from 4 to 0.*two runs in one log"):
        read_log(FIXTURES / "keras_csv/brain_tumor_appended_runs.csv")


def test_resumed_tensorboard_run_later_file_wins():
    run = read_log(FIXTURES / "tensorboard/resumed_run")
    slm = read_log(FIXTURES / "lightning_csv/slm_training_metrics.csv").history
    assert list(run.history["iter"]) == list(slm["iter"])
    assert run.history["val_loss"][2] == pytest.approx(slm["val_loss"][2], abs=1e-6)
    assert run.history["val_loss"][3] == pytest.approx(slm["val_loss"][3] - 0.01, abs=1e-5)  # written after the resume
    assert sum("resumed run" in n for n in run.notes) == 2


def test_nan_cuts_the_run_and_names_the_step(tmp_path):
    path = tmp_path / "metrics.csv"
    rows = ["epoch,step,train_loss,val_loss", "0,49,2.6,", "0,99,2.4,2.5", "0,149,2.2,", "0,199,nan,", "0,199,,2.3"]
    path.write_text("\n".join(rows) + "\n")
    run = read_log(path)
    assert run.stopped_at == 199 and list(run.history["iter"]) == [99]
    assert any("train loss nan at step 199" in n for n in run.notes)


def test_inf_val_in_keras(tmp_path):
    path = tmp_path / "training.log"
    path.write_text("epoch,loss,val_loss\n0,1.0,0.9\n1,0.8,0.85\n2,0.7,inf\n3,0.6,0.8\n")
    run = read_log(path)
    assert run.stopped_at == 2 and len(run.history) == 2 and any("val_loss inf at epoch 2" in n for n in run.notes)


def test_keras_na_is_missing_not_a_divergence(tmp_path):
    path = tmp_path / "training.log"
    path.write_text("epoch,loss,val_loss\n0,1.0,0.9\n1,0.8,0.85\n2,0.7,NA\n")
    run = read_log(path)
    assert run.stopped_at is None and len(run.history) == 2


def test_summary_entry_is_never_a_point(tmp_path):
    log = [
        {"step": 50, "loss": 1.0},
        {"step": 50, "eval_loss": 1.1},
        {"step": 100, "loss": 0.8},
        {"step": 100, "eval_loss": 1.0},
        {"step": 100, "train_loss": 0.9, "train_runtime": 12.0, "total_flos": 1e12},
    ]
    run = read_log(state_file(tmp_path, log))
    assert len(run.train_points) == 2 and 0.9 not in set(run.train_points["loss"])
    assert list(run.history["train_loss"]) == [1.0, 0.8]


def test_train_logged_less_often_than_eval_is_carried(tmp_path):
    log = [{"step": 100, "eval_loss": 3.0}, {"step": 200, "eval_loss": 2.8}, {"step": 250, "loss": 2.7}]
    log += [{"step": 300, "eval_loss": 2.7}, {"step": 400, "eval_loss": 2.65}]
    run = read_log(state_file(tmp_path, log))
    h = run.history
    assert math.isnan(h["train_loss"][0]) and h["train_loss"][2] == 2.7 and h["train_loss"][3] == 2.7
    assert list(h["train_points"]) == [0, 0, 1, 0] and any("first 2 of 4 evals" in n for n in run.notes)


def test_duplicate_final_evaluate_keeps_one_row(tmp_path):
    log = [{"step": 10, "loss": 1.0}, {"step": 10, "eval_loss": 0.9}, {"step": 10, "eval_loss": 0.9}]
    assert len(read_log(state_file(tmp_path, log)).history) == 1


def _copy_events(src, dst):
    dst.mkdir(parents=True)
    for file in src.glob("events*"):
        (dst / file.name).write_bytes(file.read_bytes())


def test_a_run_resumed_into_a_new_folder_is_stitched(tmp_path):
    resumed = FIXTURES / "tensorboard/resumed_run"
    first, second = sorted(resumed.glob("events*"))
    (tmp_path / "version_0").mkdir()
    (tmp_path / "version_1").mkdir()
    (tmp_path / "version_0" / first.name).write_bytes(first.read_bytes())
    (tmp_path / "version_1" / second.name).write_bytes(second.read_bytes())
    run = read_log(tmp_path)
    assert run.val_key == "val/loss" and len(run.history) == 10
    assert any("version_1" in n and "resumed run" in n for n in run.notes)
    assert list(run.history["val_loss"]) == pytest.approx(list(read_log(resumed).history["val_loss"]))


def test_separate_runs_in_one_folder_are_refused(tmp_path):
    src = FIXTURES / "tensorboard/slm_curve_pytorch"
    _copy_events(src, tmp_path / "seed-1")
    _copy_events(src, tmp_path / "seed-2")
    with pytest.raises(DataError, match=r"holds 2 runs that start at the same step \(seed-1 \(from step 286\), seed-2"):
        read_log(tmp_path)
    assert read_log(tmp_path / "seed-2").val_key == "val/loss"


def test_the_train_level_between_evals_has_the_callbacks_noise_estimate(tmp_path):
    """A trainer_state with 10 train losses between evals, falling with seeded Gaussian noise (0.05 nats, as
    small fine-tunes log): each eval's train_loss_se is the scatter around the interval's trend over sqrt(10)
    (the callbacks' interval_train_loss, the one estimate), not the plain spread, which counts the fall."""
    import numpy as np
    from gaplab.integrations.common import interval_train_loss

    rng = np.random.default_rng(3)
    history, intervals = [], []
    for e in range(40):
        steps = np.arange(e * 10 + 1, e * 10 + 11)
        losses = 3.0 - 0.01 * steps + 0.05 * rng.standard_normal(10)
        intervals.append(losses)
        history += [{"loss": float(v), "step": int(s), "epoch": s / 100} for s, v in zip(steps, losses)]
        history.append({"eval_loss": 2.5 + 0.001 * e, "step": int(steps[-1]), "epoch": steps[-1] / 100})
    h = read_log(state_file(tmp_path, history)).history
    assert list(h["train_points"]) == [10] * 40
    for e, losses in enumerate(intervals):
        mean, se = interval_train_loss(list(losses))
        assert h["train_loss"][e] == pytest.approx(mean) and h["train_loss_se"][e] == pytest.approx(se)
    assert np.mean(h["train_loss_se"]) == pytest.approx(0.05 / math.sqrt(10), rel=0.1)
    # the plain spread counts the fall too: a line of slope 0.01 over 10 steps has variance 0.01**2 * 10 * 11 / 12
    plain = np.mean([np.std(v, ddof=1) / math.sqrt(10) for v in intervals])
    inflated = math.sqrt(0.05**2 + 0.01**2 * 10 * 11 / 12) / 0.05
    assert plain / np.mean(h["train_loss_se"]) == pytest.approx(inflated, rel=0.05) and inflated > 1.15
