"""GaplabCallback in a real Lightning ``Trainer``: gaplab's own one-layer GPT in a ``LightningModule`` learns a
few KB of stdlib source character by character until it overfits; the callback stops ``fit`` where gaplab's
onset rule confirms the onset, puts the best eval's weights back, and writes files that read back.
A run on enough text is not stopped."""

from __future__ import annotations

import importlib
import json
import sys

import numpy as np
import pytest

from tests.integrations.support import BLOCK, large_split, logged_lines, require, small_split, vocabulary

require("lightning", "lightning")
import lightning.pytorch as pl  # noqa: E402
import torch  # noqa: E402
from gaplab.cli import main as gaplab_main  # noqa: E402
from gaplab.integrations.common import MissingExtraError  # noqa: E402
from gaplab.integrations.lightning import GaplabCallback  # noqa: E402
from gaplab.measure.curves import END_EVALS, detect_onset, judge, level_half_width  # noqa: E402
from gaplab.model.gpt import GPT  # noqa: E402
from gaplab.schema import ModelConfig  # noqa: E402
from gaplab.train.history import load_history  # noqa: E402

MAX_STEPS = 200
EVAL_EVERY = 10


class CharGPT(pl.LightningModule):
    """gaplab's GPT as a LightningModule: the train loss returned, the val loss logged as ``val_loss``."""

    def __init__(self, learning_rate: float = 3e-3):
        super().__init__()
        self.gpt = GPT(ModelConfig(n_layer=1, n_head=2, n_embd=64, block_size=BLOCK), len(vocabulary()))
        self.learning_rate = learning_rate

    def training_step(self, batch, batch_idx):
        inputs, targets = batch
        return self.gpt(inputs, targets)  # the mean cross-entropy (GPT.forward with targets)

    def validation_step(self, batch, batch_idx):
        inputs, targets = batch
        self.log("val_loss", self.gpt(inputs, targets), batch_size=len(inputs))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.learning_rate, weight_decay=0.0)


def _loaders(split, shuffle_seed: int = 0):
    train, val = split
    g = torch.Generator().manual_seed(shuffle_seed)
    return (
        torch.utils.data.DataLoader(train, batch_size=16, shuffle=True, generator=g),
        torch.utils.data.DataLoader(val, batch_size=32),
    )


def _fit(out, split, *, stop: bool, max_steps: int = MAX_STEPS, keep_best_file: bool = False):
    """``(model, callback)`` after ``fit``; ``keep_best_file``: a ModelCheckpoint on val_loss too."""
    torch.set_num_threads(1)
    pl.seed_everything(0, verbose=False)
    model = CharGPT()
    callback = GaplabCallback(out, stop=stop)
    saver = pl.callbacks.ModelCheckpoint(out / "ckpt", monitor="val_loss", mode="min") if keep_best_file else None
    trainer = pl.Trainer(
        max_steps=max_steps,
        val_check_interval=EVAL_EVERY,
        check_val_every_n_epoch=None,
        callbacks=[callback] + ([saver] if saver else []),
        enable_checkpointing=keep_best_file,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=out,
    )
    trainer.fit(model, *_loaders(split))
    return model, callback


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same seeded run twice: to the end with ``stop=False`` (the whole curve), and with ``stop=True``."""
    with logged_lines("lightning.pytorch.utilities.rank_zero") as lines:
        full = _fit(tmp_path_factory.mktemp("full"), small_split(hf=False), stop=False)
        stopped = _fit(tmp_path_factory.mktemp("stopped"), small_split(hf=False), stop=True, keep_best_file=True)
    return {"full": full, "stopped": stopped, "log": lines}


def test_it_stops_at_the_first_eval_where_the_rule_confirms_an_onset(runs):
    (_, full_cb), (_, cb) = runs["full"], runs["stopped"]
    report = cb.report
    assert report.stopped and report.last_iter < MAX_STEPS and report.planned_iter == MAX_STEPS
    assert report.evals_not_run == (MAX_STEPS - report.last_iter) // EVAL_EVERY
    h = load_history(cb.watch.out_dir)
    assert int(h["iter"].iloc[-1]) == report.last_iter == report.confirmed_iter
    assert all(detect_onset(h.iloc[:k])["onset_iter"] is None for k in range(2, len(h)))
    assert detect_onset(h)["onset_iter"] == report.onset_iter
    assert END_EVALS <= report.evals_past_onset
    full = load_history(full_cb.watch.out_dir)
    np.testing.assert_allclose(h["val_loss"], full["val_loss"].iloc[: len(h)], rtol=1e-5)
    assert full_cb.report.confirmed_iter == report.last_iter and not full_cb.report.stopped
    whole = judge(full)
    assert whole["verdict"] in ("overfitting", "memorizing")
    iters = list(full["iter"])
    lag = iters.index(report.last_iter) - iters.index(whole["onset_iter"])
    half = level_half_width(len(full))  # see test_huggingface: the whole run's levels average more evals
    assert -half <= lag <= END_EVALS + half, (whole["onset_iter"], report.last_iter)
    assert whole["final_val"] - report.best_val > 5 * whole["val_noise"]


def test_the_best_evals_weights_are_put_back(runs):
    (_, full_cb), (model, cb) = runs["full"], runs["stopped"]
    _, val = _loaders(small_split(hf=False))
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    kept = trainer.validate(model, val, verbose=False)[0]["val_loss"]
    assert kept == pytest.approx(cb.report.best_val, rel=1e-5)
    assert cb.report.best_val == pytest.approx(load_history(full_cb.watch.out_dir)["val_loss"].min(), rel=1e-5)
    # the trainer's ModelCheckpoint (on val_loss) holds the same eval: the report names both
    assert "restored into the module" in cb.report.checkpoint and f"step={cb.report.best_iter}" in cb.report.checkpoint


def test_the_files_read_back_like_a_gaplab_run(runs, capsys):
    _, cb = runs["stopped"]
    out = cb.watch.out_dir
    analysis = json.loads((out / "analysis.json").read_text())
    assert gaplab_main(["analyze", str(out / "history.csv"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == analysis
    assert json.loads((out / "early_stop.json").read_text())["onset_iter"] == analysis["onset_iter"]
    assert (out / "figures" / "loss_curves.png").stat().st_size > 10_000
    assert list((out / "tensorboard" / "seed-0").glob("events.out.tfevents.*"))
    h = load_history(out)
    assert np.isfinite(h["lr"]).all() and (np.diff(h["epochs"]) > 0).all()
    line = next(m for m in runs["log"] if m.startswith("gaplab: stopped training"))
    assert f"onset at step {cb.report.onset_iter}" in line and f"best eval at step {cb.report.best_iter}" in line


def test_a_run_on_enough_text_is_not_stopped(tmp_path, torch_threads_restored):
    _, cb = _fit(tmp_path, large_split(hf=False), stop=True, max_steps=120)
    assert not cb.report.stopped and cb.report.onset_iter is None and cb.report.last_iter == 120
    assert cb.report.evals_run == 12


def test_without_the_extra_the_import_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "lightning", None)
    monkeypatch.setitem(sys.modules, "lightning.pytorch", None)
    monkeypatch.delitem(sys.modules, "gaplab.integrations.lightning")
    with pytest.raises(MissingExtraError, match=r"pip install 'gaplab\[lightning\]'"):
        importlib.import_module("gaplab.integrations.lightning")
