"""A phase with tokenizer bpe, end to end through the stage functions, with validators on its samples."""

from __future__ import annotations

import json

import gaplab.data.tokenizer as tok_mod
import pytest
from gaplab.data.tokenizer import BPE_FILE, BPETokenizer
from gaplab.measure.samples import read_samples
from gaplab.pipeline import stages
from gaplab.report.summary import journey_table

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def _params(run_dir):
    return {
        "study": "t",
        "phase": "bpe",
        "run_dir": str(run_dir),
        "data": {"packages": ["json"], "split": "chunks", "chunk_size": 512, "split_on": "text", "val_fraction": 0.2},
        "tokenizer": {"name": "bpe", "vocab_size": 384},
        "model": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 32},
        "train": {"max_iters": 6, "eval_interval": 3, "eval_iters": 1, "batch_size": 4},
        "sample": {"prompts": ["def ", "{"], "max_new_tokens": 12, "num_samples": 2, "validators": ["json_valid"]},
    }


def test_a_bpe_phase_runs_every_stage_on_the_tokenizer_it_saved(tmp_path, monkeypatch):
    run_dir = tmp_path / "bpe"
    params = _params(run_dir)
    report = stages.inspect_phase(params)
    saved = (run_dir / BPE_FILE).read_text()
    assert report["settings"]["tokenizer"] == "bpe" and report["size"]["vocab"]["vocab_size_original"] == 384

    def no_training(*a, **k):
        raise AssertionError("a later stage retrained the BPE instead of reading tokenizer.json")

    monkeypatch.setattr(tok_mod, "train_bpe", no_training)
    metrics = stages.train(params, progress=False)
    assert metrics["tokenizer"] == "bpe" and metrics["vocab_size"] == 384 and metrics["params"]["embedding"] > 0
    assert metrics["best_val_bpb"] > 0 and metrics["val_bytes"] > metrics["val_tokens"]  # merges: < 1 token a byte
    stages.loss_gap(params)
    rows, aggregates = stages.samples(params)
    assert (run_dir / BPE_FILE).read_text() == saved
    tok = BPETokenizer.from_json(saved)
    for row in rows:  # the samples were decoded with the saved tokenizer
        assert row["text"] == tok.decode(row["token_ids"]) and row["prompt"] in ("def ", "{")
        assert row["validators_checked"] is True and row["validators_ok"] in (True, False)
    agg = aggregates["best"]
    assert agg["validators_checked_count"] == 4
    assert agg["validators_pass_share"] == sum(r["validators_ok"] for r in rows) / 4
    assert [r["validators_ok"] for r in read_samples(run_dir)] == [r["validators_ok"] for r in rows]
    stored = json.loads((run_dir / "metrics.json").read_text())["samples"]["aggregate"]
    assert stored["validators_pass_share"] == agg["validators_pass_share"]
    table = journey_table(tmp_path, ["bpe"])
    assert table.loc[0, "sample_validators_pass_share"] == agg["validators_pass_share"]
    assert table.loc[0, "sample_validators_checked_share"] == 1.0
    assert table.loc[0, "tokenizer"] == "bpe"
    assert (run_dir / "tensorboard" / "seed-1337").is_dir()
