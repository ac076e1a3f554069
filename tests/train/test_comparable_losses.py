"""Losses that compare: bits per byte, the noise of an eval, which val set, the val tokens never seen in train."""

import math

import numpy as np
import pytest
import torch
from gaplab.data.split import prepare_data
from gaplab.model.gpt import GPT
from gaplab.schema import PhaseParams
from gaplab.train.batches import Batches
from gaplab.train.loop import evaluate
from torch.nn import functional as F

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# 'é', 'ö' and '€' are 2, 2 and 3 bytes in UTF-8: bits per byte and bits per character differ
TEXT = "le café brûle, le thé refroidit; ça coûte 3 €. " * 40 + "fin: ö ö ö. " * 30


def _phase(tmp_path, tokenizer="char", **data):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    d = {"source": "text", "path": str(path), "split": "tail", "val_fraction": 0.2, **data}
    return PhaseParams.model_validate(
        {
            "data": d,
            "tokenizer": {"name": tokenizer},
            "model": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16},
            "train": {"max_iters": 10, "eval_iters": 3, "batch_size": 4, "device": "cpu"},
        }
    )


def _eval(prep, params, model):
    b = Batches(
        prep.train,
        prep.val,
        params.model.block_size,
        params.train.batch_size,
        params.train.seed,
        params.train.eval_iters,
    )
    return b, evaluate(
        model, b, torch.device("cpu"), torch.float32, {"train": prep.train_bytes, "val": prep.val_bytes}, prep.val_seen
    )


def _raw_bytes(tok, ids) -> bytes:
    """The exact bytes of a run of tokens (byte-level BPE tokens can hold half a UTF-8 character)."""
    if hasattr(tok, "enc"):
        return tok.enc.decode_bytes(ids)
    return tok.decode(ids).encode("utf-8")


@pytest.mark.parametrize("tokenizer", ["char", "gpt2"])
def test_bits_per_byte_equals_a_hand_computation(tmp_path, tokenizer):
    params = _phase(tmp_path, tokenizer)
    prep = prepare_data(params)
    torch.manual_seed(0)
    model = GPT(params.model, prep.vocab_size)
    b, got = _eval(prep, params, model)
    # by hand: full logits, per-token cross-entropy, and each target token's own UTF-8 bytes from its text
    loss_sum, byte_sum, n = 0.0, 0, 0
    with torch.no_grad():
        for off in b.eval_offsets["val"].tolist():
            x = torch.as_tensor(prep.val[off : off + 16])[None]
            y = torch.as_tensor(prep.val[off + 1 : off + 17])
            logits = model(x)[0]
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            byte_sum += len(_raw_bytes(prep.tokenizer, y.tolist()))
            n += len(y)
    assert got["val"] == pytest.approx(loss_sum / n, rel=1e-5)
    assert got["val_bpb"] == pytest.approx(loss_sum / (math.log(2) * byte_sum), rel=1e-5)
    assert byte_sum > n or tokenizer == "gpt2"  # multi-byte characters: bytes outnumber characters


def test_a_uniform_model_scores_log2_vocab_bits_per_token(tmp_path):
    """With every logit equal, each token costs ln V nats: bits per byte = log2(V) x tokens / bytes."""
    params = _phase(tmp_path)
    prep = prepare_data(params)
    model = GPT(params.model, prep.vocab_size)
    with torch.no_grad():
        model.wte.weight.zero_()
    b, got = _eval(prep, params, model)
    pos = b.eval_offsets["val"].numpy()[:, None] + 1 + np.arange(16)
    tokens, nbytes = pos.size, int(prep.val_bytes[pos].sum())
    assert got["val"] == pytest.approx(math.log(prep.vocab_size), rel=1e-6)
    assert got["val_bpb"] == pytest.approx(math.log2(prep.vocab_size) * tokens / nbytes, rel=1e-6)
    assert got["val_se"] == pytest.approx(0.0, abs=1e-9)  # every window costs the same


def test_the_standard_error_of_an_eval(tmp_path):
    params = _phase(tmp_path)
    prep = prepare_data(params)
    torch.manual_seed(1)
    model = GPT(params.model, prep.vocab_size)
    b, got = _eval(prep, params, model)
    assert not b.exact["val"]
    means = []
    with torch.no_grad():
        for off in b.eval_offsets["val"].tolist():
            x = torch.as_tensor(prep.val[off : off + 16])[None]
            y = torch.as_tensor(prep.val[off + 1 : off + 17])
            means.append(float(F.cross_entropy(model(x)[0], y)))
    assert got["val_se"] == pytest.approx(np.std(means, ddof=1) / math.sqrt(len(means)), rel=1e-5)
    assert got["val_se"] > 0
    # a split evaluated on every window once has no sampling noise
    small = PhaseParams.model_validate({**params.to_dict(), "data": {**params.to_dict()["data"], "val_fraction": 0.01}})
    prep2 = prepare_data(small)
    b2, got2 = _eval(prep2, small, GPT(small.model, prep2.vocab_size))
    assert b2.exact["val"] and got2["val_se"] == 0.0


def test_val_fingerprints_follow_the_val_set_and_the_vocabulary(tmp_path):
    json_phase = {
        "data": {"source": "stdlib", "packages": ["json"], "split": "chunks", "chunk_size": 64},
        "tokenizer": {"name": "gpt2", "compact": True, "compact_from": "corpus"},
        "model": {"block_size": 32},
    }

    def prep(**data):
        raw = {**json_phase, "data": {**json_phase["data"], **data}}
        return prepare_data(PhaseParams.model_validate(raw))

    small, big = prep(max_train_tokens=2000), prep(max_train_tokens=8000)
    assert len(small.train) < len(big.train)
    assert small.val_fingerprint == big.val_fingerprint  # one val set for a data-size grid
    cut_small, cut_big = prep(max_tokens=4000), prep(max_tokens=12000)
    assert cut_small.val_fingerprint != cut_big.val_fingerprint  # each size its own val set
    assert cut_small.val_text_fingerprint != cut_big.val_text_fingerprint
    # the same val text over another vocabulary: different nats per token, comparable bits per byte
    own = prepare_data(
        PhaseParams.model_validate(
            {
                **json_phase,
                "data": {**json_phase["data"], "max_train_tokens": 2000},
                "tokenizer": {"name": "gpt2", "compact": True},
            }
        )
    )
    assert own.val_fingerprint != small.val_fingerprint and own.val_text_fingerprint == small.val_text_fingerprint


def test_the_share_of_val_tokens_never_seen_in_train(tmp_path):
    # tail split over characters: train "aaaa...bbbb", val "ab" repeated with "x" and "yy" that train never has
    path = tmp_path / "t.txt"
    path.write_text("a" * 60 + "b" * 60 + "abxyyab" * 6, encoding="utf-8")
    params = PhaseParams.model_validate(
        {
            "data": {"source": "text", "path": str(path), "split": "tail", "val_fraction": 42 / 162, "separator": ""},
            "tokenizer": {"name": "char", "compact": True},
            "model": {"block_size": 4},
        }
    )
    prep = prepare_data(params)
    assert prepare_data(params).tokenizer.decode(prep.val[:7]) == "ab\ufffd\ufffd\ufffdab"  # unseen -> one unknown id
    assert prep.val_unseen_token_share == pytest.approx(3 / 7)
    assert prep.val_unseen_byte_share == pytest.approx(3 / 7)  # one byte each
    torch.manual_seed(0)
    model = GPT(params.model, prep.vocab_size)
    b = Batches(prep.train, prep.val, 4, 2, 0, 2)
    got = evaluate(
        model, b, torch.device("cpu"), torch.float32, {"train": prep.train_bytes, "val": prep.val_bytes}, prep.val_seen
    )
    assert math.isfinite(got["val_loss_seen"]) and math.isfinite(got["val_loss_unseen"])
    pos = b.eval_offsets["val"].numpy()[:, None] + 1 + np.arange(4)
    share = 1 - prep.val_seen[pos].mean()
    assert got["val"] == pytest.approx(share * got["val_loss_unseen"] + (1 - share) * got["val_loss_seen"], rel=1e-6)
