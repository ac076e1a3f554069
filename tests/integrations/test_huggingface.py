"""GaplabCallback in a real Hugging Face ``Trainer``: a one-layer GPT-2 built from a config (never downloaded)
learns a few KB of stdlib source character by character until it overfits; the callback stops it where
gaplab's onset rule confirms the onset, the Trainer keeps the best eval's weights, and the files read back.
A run on enough text is not stopped."""

from __future__ import annotations

import importlib
import json
import sys

import numpy as np
import pandas as pd
import pytest

from tests.integrations.support import BLOCK, large_split, logged_lines, require, small_split, vocabulary

require("transformers", "huggingface")
import torch  # noqa: E402
from gaplab.cli import main as gaplab_main  # noqa: E402
from gaplab.integrations.common import BestCheckpointWarning, MissingExtraError  # noqa: E402
from gaplab.integrations.huggingface import GaplabCallback, checkpoint_problems  # noqa: E402
from gaplab.measure.curves import END_EVALS, detect_onset, judge, level_half_width  # noqa: E402
from gaplab.train.history import load_history  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments  # noqa: E402

MAX_STEPS = 200
EVAL_STEPS = 10


def _args(out, max_steps: int, **overrides) -> TrainingArguments:
    settings = dict(
        output_dir=str(out),
        max_steps=max_steps,
        eval_strategy="steps",
        eval_steps=EVAL_STEPS,
        save_strategy="steps",
        save_steps=EVAL_STEPS,
        save_only_model=True,
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        logging_steps=2,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=32,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        report_to="none",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    settings.update(overrides)
    return TrainingArguments(**settings)


def _train(out, split, *, stop: bool, max_steps: int = MAX_STEPS) -> tuple[Trainer, GaplabCallback]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=1,
        n_embd=64,
        n_head=2,
        vocab_size=len(vocabulary()),
        n_positions=BLOCK,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    train, val = split
    callback = GaplabCallback(stop=stop)
    trainer = Trainer(
        model=GPT2LMHeadModel(config),
        args=_args(out, max_steps),
        train_dataset=train,
        eval_dataset=val,
        callbacks=[callback],
    )
    trainer.train()
    return trainer, callback


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same seeded run twice: to the end with ``stop=False`` (the whole curve), and with ``stop=True``."""
    with logged_lines("gaplab.integrations.huggingface") as lines:
        full = _train(tmp_path_factory.mktemp("full"), small_split(hf=True), stop=False)
        stopped = _train(tmp_path_factory.mktemp("stopped"), small_split(hf=True), stop=True)
    return {"full": full, "stopped": stopped, "log": lines}


def test_it_stops_at_the_first_eval_where_the_rule_confirms_an_onset(runs):
    (_, full_cb), (trainer, cb) = runs["full"], runs["stopped"]
    report = cb.report
    assert report.stopped and trainer.state.global_step == report.last_iter < MAX_STEPS
    assert report.steps_not_run == MAX_STEPS - report.last_iter
    assert report.evals_not_run == (MAX_STEPS - report.last_iter) // EVAL_STEPS
    h = load_history(cb.watch.out_dir)
    assert int(h["iter"].iloc[-1]) == report.last_iter == report.confirmed_iter
    # the callback applied the one rule at every eval: no onset on any earlier prefix of the curve it wrote
    assert all(detect_onset(h.iloc[:k])["onset_iter"] is None for k in range(2, len(h)))
    assert detect_onset(h)["onset_iter"] == report.onset_iter
    assert END_EVALS <= report.evals_past_onset == int((h["iter"] > report.onset_iter).sum())
    # the same seeded run without stopping: the stopped curve is its beginning, and it confirms at the same eval
    full = load_history(full_cb.watch.out_dir)
    np.testing.assert_allclose(h["val_loss"], full["val_loss"].iloc[: len(h)], rtol=1e-5)
    assert full_cb.report.confirmed_iter == report.last_iter and not full_cb.report.stopped


def test_the_stop_comes_within_the_rules_evals_of_the_whole_runs_onset(runs):
    (_, full_cb), (_, cb) = runs["full"], runs["stopped"]
    full = load_history(full_cb.watch.out_dir)
    whole = judge(full)
    assert whole["verdict"] in ("overfitting", "memorizing")
    iters = list(full["iter"])
    lag = iters.index(cb.report.last_iter) - iters.index(whole["onset_iter"])
    # the rule confirms an onset END_EVALS evals after it at the earliest; on the whole run its levels average
    # `half` evals on either side, so the whole run may place the onset up to `half` evals from where the
    # shorter curve did
    half = level_half_width(len(full))
    assert -half <= lag <= END_EVALS + half, (whole["onset_iter"], cb.report.last_iter)
    # what running on would have cost: the whole run ends far above the kept best (5 times its eval noise)
    assert whole["final_val"] - cb.report.best_val > 5 * whole["val_noise"]


def test_the_trainer_keeps_the_best_evals_weights(runs):
    (_, full_cb), (trainer, cb) = runs["full"], runs["stopped"]
    kept = trainer.evaluate()["eval_loss"]  # outside train(): not recorded as an eval
    assert kept == pytest.approx(cb.report.best_val, rel=1e-6)
    assert len(load_history(cb.watch.out_dir)) == cb.report.evals_run
    full = load_history(full_cb.watch.out_dir)
    assert cb.report.best_val == pytest.approx(full["val_loss"].min(), rel=1e-5)  # the whole run's best, kept
    assert cb.report.checkpoint.endswith(f"checkpoint-{cb.report.best_iter}")


def test_the_files_read_back_like_a_gaplab_run(runs, capsys):
    _, cb = runs["stopped"]
    out = cb.watch.out_dir
    analysis = json.loads((out / "analysis.json").read_text())
    vocab = len(vocabulary())
    assert gaplab_main(["analyze", str(out / "history.csv"), "--json", "--vocab-size", str(vocab)]) == 0
    assert json.loads(capsys.readouterr().out) == analysis
    judged = json.loads(json.dumps(judge(load_history(out), vocab)))  # the one rule, on the file as written
    assert {key: analysis[key] for key in judged} == judged and analysis["file"] == str(out / "history.csv")
    stop = json.loads((out / "early_stop.json").read_text())
    assert stop["stopped"] and stop["onset_iter"] == analysis["onset_iter"] == cb.report.onset_iter
    assert (out / "figures" / "loss_curves.png").stat().st_size > 10_000
    assert list((out / "tensorboard" / "seed-0").glob("events.out.tfevents.*"))  # make tensorboard shows it
    h = pd.read_csv(out / "history.csv")
    assert (h["train_loss_se"].iloc[1:] > 0).all() and h["val_loss_se"].isna().all()
    line = next(m for m in runs["log"] if m.startswith("gaplab: stopped training"))
    assert f"onset at step {cb.report.onset_iter}" in line and f"best eval at step {cb.report.best_iter}" in line
    assert f"{cb.report.steps_not_run} steps and {cb.report.evals_not_run} evals" in line


def test_a_run_on_enough_text_is_not_stopped(tmp_path, torch_threads_restored):
    trainer, cb = _train(tmp_path, large_split(hf=True), stop=True, max_steps=120)
    assert not cb.report.stopped and cb.report.onset_iter is None
    assert trainer.state.global_step == 120 and cb.report.evals_run == 12
    assert "no overfitting onset in 12 evals" in cb.report.message


def test_it_warns_when_the_arguments_cannot_keep_the_best_checkpoint(tmp_path):
    assert checkpoint_problems(_args(tmp_path, 100)) == []
    args = _args(tmp_path, 100, load_best_model_at_end=False, save_steps=15, logging_steps=20)
    problems = checkpoint_problems(args)
    assert len(problems) == 3, problems
    assert "load_best_model_at_end" in problems[0] and "save_steps=15" in problems[1] and "logging" in problems[2]
    epochs = checkpoint_problems(_args(tmp_path, 100, load_best_model_at_end=False, save_strategy="epoch"))
    assert any("save_strategy 'epoch' differs from eval_strategy 'steps'" in p for p in epochs)
    from transformers import TrainerControl, TrainerState

    with pytest.warns(BestCheckpointWarning) as caught:
        GaplabCallback(tmp_path).on_train_begin(args, TrainerState(), TrainerControl())
    assert [str(w.message) for w in caught] == [f"GaplabCallback: {p}." for p in problems]


def test_without_the_extra_the_import_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # what an interpreter without it sees
    monkeypatch.delitem(sys.modules, "gaplab.integrations.huggingface")
    with pytest.raises(MissingExtraError, match=r"pip install 'gaplab\[huggingface\]'") as caught:
        importlib.import_module("gaplab.integrations.huggingface")
    assert isinstance(caught.value, ImportError) and "\n" not in str(caught.value)
