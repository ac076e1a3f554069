"""metrics.json's training keys: one record (TrainMetrics), the documented keys in order, values from the run."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from gaplab.data.split import prepare_data
from gaplab.errors import CorruptFileError
from gaplab.schema import PhaseParams, tokens_per_iter
from gaplab.train.history import load_history
from gaplab.train.inputs import TrainData
from gaplab.train.loop import train_phase
from gaplab.train.metrics import TrainMetrics

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _phase() -> PhaseParams:
    return PhaseParams.model_validate(
        {
            "data": {"packages": ["json"], "max_tokens": 4000},
            "tokenizer": {"name": "char"},
            "model": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16},
            "train": {"max_iters": 12, "eval_interval": 4, "eval_iters": 2, "batch_size": 4, "grad_accum": 2},
        }
    )


def documented_keys(root) -> list[str]:
    """The training keys docs/architecture.md lists for metrics.json, in its order (notes and {subkeys} dropped)."""
    text = (root / "docs" / "architecture.md").read_text()
    listed = re.search(r"Training keys, in the order they are\s+written.*?: `([^`]*)`", text, re.S).group(1)
    listed = re.sub(r"\([^)]*\)|\{[^}]*\}", "", listed)
    return [k.strip() for k in listed.split(",")]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny seeded run on real data (char tokenizer, bits per byte and unseen val tokens measured)."""
    params = _phase()
    prep = prepare_data(params)
    folder = tmp_path_factory.mktemp("run")
    return params, prep, folder, train_phase(params, prep, folder, progress=False)


def test_metrics_json_holds_the_documented_keys_in_order(root, run):
    *_, folder, metrics = run
    raw = json.loads((folder / "metrics.json").read_text())
    assert list(raw) == list(TrainMetrics.keys()) == documented_keys(root)
    assert TrainMetrics.from_dict(raw) == metrics == TrainMetrics.read(folder)  # the record round-trips
    assert json.loads(json.dumps(metrics.to_dict())) == raw


def test_the_values_are_those_of_the_run(run):
    params, prep, folder, m = run
    h = load_history(folder)
    last, best = h.iloc[-1], h.loc[h["val_loss"].idxmin()]
    assert m.iters == m.max_iters == 12 and m.stop_reason == "max_iters" and list(h["iter"]) == [0, 4, 8, 12]
    assert (m.final_train_loss, m.final_val_loss, m.final_gap) == (last.train_loss, last.val_loss, last.gap)
    assert (m.best_val_loss, m.best_iter, m.best_val_bpb) == (best.val_loss, best.iter, best.val_bpb)
    assert m.final_val_perplexity == pytest.approx(math.exp(last.val_loss))
    assert m.final_train_perplexity == pytest.approx(math.exp(last.train_loss))
    assert m.tokens_per_iter == tokens_per_iter(params.train, 16) == 4 * 2 * 16
    assert m.epochs == pytest.approx(12 * 128 / len(prep.train))
    assert (m.train_tokens, m.val_tokens) == (len(prep.train), len(prep.val))
    assert m.tokens_per_param_total == pytest.approx(len(prep.train) / m.params["total"])
    assert m.tokens_per_param_non_emb == pytest.approx(len(prep.train) / m.params["non_embedding"])
    assert (m.train_bytes, m.val_bytes) == (int(prep.train_bytes.sum()), int(prep.val_bytes.sum()))
    assert m.val_unseen_token_share == pytest.approx(1 - np.mean(prep.val_seen))
    assert m.val_unseen_byte_share == prep.val_unseen_byte_share
    assert (m.val_fingerprint, m.val_text_fingerprint) == (prep.val_fingerprint, prep.val_text_fingerprint)
    assert (m.tokenizer, m.vocab_size, m.corpus_fingerprint) == ("char", prep.vocab_size, prep.corpus.fingerprint)
    # train_time_s is rounded to the millisecond and tokens_per_s is not: a short run's ratio lies within that rounding
    assert 12 * 128 / (m.train_time_s + 0.00051) <= m.tokens_per_s <= 12 * 128 / max(m.train_time_s - 0.00051, 1e-9)


def test_train_data_takes_what_training_reads_from_the_prepared_data(run):
    _, prep, *_ = run
    data = TrainData.from_prepared(prep)
    assert data.train is prep.train and data.val_seen is prep.val_seen and data.tokenizer == "char"
    assert TrainData.of(data) is data and data.token_bytes["val"] is prep.val_bytes
    bare = TrainData(train=prep.train, val=prep.val, vocab_size=3, vocab_size_original=3, corpus_fingerprint="x")
    assert bare.token_bytes is None and bare.val_fingerprint is None


def test_later_stages_keys_are_kept_and_ignored(tmp_path, run):
    *_, folder, metrics = run
    raw = json.loads((folder / "metrics.json").read_text())
    (tmp_path / "metrics.json").write_text(json.dumps(dict(raw, analysis={"verdict": "x"})))
    assert TrainMetrics.read(tmp_path) == metrics
    metrics.write(tmp_path)  # merged: a later stage's key survives a rewrite
    assert json.loads((tmp_path / "metrics.json").read_text())["analysis"] == {"verdict": "x"}


def test_a_file_that_does_not_fit_is_named(tmp_path, run):
    *_, metrics = run
    with pytest.raises(CorruptFileError, match=r"metrics.json: no such file; train the phase first"):
        TrainMetrics.read(tmp_path)
    raw = metrics.to_dict()
    del raw["final_gap"], raw["threads"]
    (tmp_path / "metrics.json").write_text(json.dumps(raw))
    with pytest.raises(CorruptFileError, match=r"metrics.json: lacks the training keys final_gap, threads"):
        TrainMetrics.read(tmp_path)
    (tmp_path / "metrics.json").write_text("[1, 2]")
    with pytest.raises(CorruptFileError, match=r"holds list; a JSON object was expected"):
        TrainMetrics.read(tmp_path)


def test_key_access_for_readers_written_against_the_dict(run):
    *_, metrics = run
    assert metrics["best_val_loss"] == metrics.best_val_loss and metrics.get("analysis", 7) == 7
    with pytest.raises(KeyError):
        metrics["analysis"]
    assert TrainMetrics.fields_named("best_val_loss", "final_gap") == ("best_val_loss", "final_gap")
    with pytest.raises(AttributeError, match="TrainMetrics has no field final_gapp"):
        TrainMetrics.fields_named("final_gap", "final_gapp")
