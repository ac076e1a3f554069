"""tokenizer: {name: bpe}: trained on the training split only, deterministic, round-trips, clear errors; and
data.split_on: text, which gives every tokenizer the same val text."""

from __future__ import annotations

import json
import subprocess
import sys

import gaplab.data.tokenizer as tok_mod
import numpy as np
import pytest
from gaplab.data.split import prepare_data
from gaplab.data.tokenizer import BPE_FILE, BPE_TRAINING_FILE, BPETokenizer, phase_bpe, train_bpe
from gaplab.errors import StudyError, TokenizerError
from gaplab.pipeline.config import parse_study
from gaplab.pipeline.runs import phase_fingerprint
from gaplab.schema import PhaseParams

#: a word that only the validation documents hold, 60 times: a BPE that saw them would make it one token
MARKER = "zyzzyvaquux"


def _params(tokenizer=None, **data) -> PhaseParams:
    d = {
        "source": "stdlib",
        "packages": ["json"],
        "split": "chunks",
        "chunk_size": 512,
        "split_on": "text",
        "val_fraction": 0.2,
    }
    d.update(data)
    return PhaseParams.model_validate(
        {"data": d, "tokenizer": tokenizer or {"name": "bpe", "vocab_size": 512}, "model": {"block_size": 16}}
    )


def _marker_corpus(tmp_path):
    """Documents as JSON lines: 40 ordinary ones, then 10 whose text repeats MARKER (a tail split puts them in val)."""
    rows = [{"text": f"def handler_{i}(request):\n    return request.get('value_{i % 7}') or {i}\n"} for i in range(40)]
    rows += [{"text": " ".join([MARKER] * 6) + f" end {i}\n"} for i in range(10)]
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"source": "jsonl", "path": str(path), "fields": ["text"], "split": "tail", "val_fraction": 0.3}


def test_bpe_is_trained_on_the_training_split_only(tmp_path, monkeypatch):
    seen = []
    real = tok_mod.train_bpe

    def spy(texts, vocab_size):
        seen.extend(texts)
        return real(texts, vocab_size)

    monkeypatch.setattr(tok_mod, "train_bpe", spy)
    data = _marker_corpus(tmp_path)
    prep = prepare_data(_params({"name": "bpe", "vocab_size": 300}, **data))
    val_text = prep.tokenizer.decode(prep.val.tolist())
    assert val_text.count(MARKER) == 60  # every marker went to validation...
    assert seen and not any(MARKER in t for t in seen)  # ...and the trainer never saw one
    assert "".join(seen) == prep.tokenizer.decode(prep.train.tolist())  # it saw exactly the training text
    vocab = [prep.tokenizer.hf.id_to_token(i) for i in range(prep.vocab_size)]
    assert not any("zyzz" in t for t in vocab)
    # the check can fail: trained on every document, the same BPE makes the marker (almost) one token
    leaky = real([d.text for d in prep.documents], 300)
    assert any("zyzz" in leaky.hf.id_to_token(i) for i in range(leaky.vocab_size))


def test_bpe_training_is_deterministic_across_processes(tmp_path):
    """Same data settings, same tokenizer.json, byte for byte, even in fresh interpreters (hash seeds differ)."""
    code = (
        "import sys; from gaplab.data.split import prepare_data; from gaplab.schema import PhaseParams; "
        "p = PhaseParams.model_validate({'data': {'packages': ['json'], 'split': 'chunks', 'chunk_size': 512, "
        "'split_on': 'text', 'val_fraction': 0.2, 'seed': int(sys.argv[1])}, "
        "'tokenizer': {'name': 'bpe', 'vocab_size': 700}, 'model': {'block_size': 16}}); "
        "sys.stdout.write(prepare_data(p).tokenizer.to_json())"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code, seed],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(i), "PATH": "", "PYTHONPATH": ":".join(sys.path)},
        ).stdout
        for i, seed in enumerate(["1337", "1337", "7"])
    ]
    assert runs[0] == runs[1] and len(json.loads(runs[0])["model"]["vocab"]) == 700
    assert runs[2] != runs[0]  # another data.seed: another training split, other merges


def test_bpe_round_trips_any_text_and_counts_raw_bytes():
    prep = prepare_data(_params({"name": "bpe", "vocab_size": 600}))
    tok = prep.tokenizer
    assert isinstance(tok, BPETokenizer) and tok.vocab_size == 600
    texts = ["héllo wörld ✓ 𝔘 日本語", "\x00\x01 tabs\t\r\n  \n\n    indented", prep.documents[0].text[:2000], ""]
    nbytes = tok.byte_lengths()
    for text in texts:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert int(nbytes[ids].sum()) == len(text.encode("utf-8"))  # raw bytes, also for half a character
    # 日 is three bytes no merge joins here: three tokens of one byte each, none of them a whole character
    ids = tok.encode("日")
    assert len(ids) == 3 and [tok.token_bytes(i) for i in ids] == [b"\xe6", b"\x97", b"\xa5"]
    # the train and val arrays hold exactly the bytes of their text
    assert int(prep.val_bytes.sum()) == len(tok.decode(prep.val.tolist()).encode())


def test_bpe_of_256_is_the_byte_alphabet():
    tok = prepare_data(_params({"name": "bpe", "vocab_size": 256})).tokenizer
    text = "déf x"
    assert tok.vocab_size == 256 and len(tok.encode(text)) == len(text.encode())
    assert sorted(tok.token_bytes(i) for i in range(256)) == [bytes([b]) for b in range(256)]


def test_vocab_size_above_what_the_training_text_supports_names_the_limit():
    with pytest.raises(StudyError) as err:
        prepare_data(_params({"name": "bpe", "vocab_size": 50_000}), "big", "study.yaml")
    (problem,) = err.value.problems
    assert (problem.file, problem.phase, problem.key, problem.value) == (
        "study.yaml",
        "big",
        "tokenizer.vocab_size",
        50_000,
    )
    assert "supports at most" in problem.message and "allowed: 256 to" in problem.message
    with pytest.raises(TokenizerError, match="below the byte alphabet"):
        train_bpe(["some text"], 255)


@pytest.mark.parametrize(
    "tokenizer, data, key, says",
    [
        ({"name": "bpe", "vocab_size": 100}, {"split_on": "text"}, "tokenizer.vocab_size", "below the byte alphabet"),
        ({"name": "bpe"}, {"split_on": "text"}, "tokenizer.vocab_size", "needs a vocabulary size"),
        ({"name": "gpt2", "vocab_size": 1024}, {}, "tokenizer.vocab_size", "only applies to tokenizer.name: bpe"),
        ({"name": "bpe", "vocab_size": 1024}, {}, "data.split_on", "set data.split_on: text"),
        ({"name": "char"}, {"split_on": "text", "max_tokens": 1000}, "data.max_tokens", "data.max_train_tokens"),
        ({"name": "bep", "vocab_size": 1024}, {"split_on": "text"}, "tokenizer.name", "did you mean 'bpe'"),
    ],
)
def test_bpe_settings_are_checked_before_anything_runs(tokenizer, data, key, says):
    raw = {
        "study": "s",
        "phases": {"p": {"tokenizer": tokenizer, "data": data, "train": {"max_iters": 10, "eval_interval": 5}}},
    }
    with pytest.raises(StudyError) as err:
        parse_study(raw, "s.yaml")
    problem = next(p for p in err.value.problems if p.key == key)
    assert says in problem.message and problem.phase == "p"


def test_split_on_text_scores_every_tokenizer_on_the_same_val_text():
    tokenizers = [
        {"name": "char"},
        {"name": "bpe", "vocab_size": 256},
        {"name": "bpe", "vocab_size": 800},
        {"name": "gpt2"},
        {"name": "gpt2", "compact": True},
    ]
    for split in ("tail", "documents", "chunks"):
        extra = {"packages": ["json", "email"]} if split == "documents" else {}
        preps = [prepare_data(_params(t, split=split, **extra)) for t in tokenizers]
        assert len({p.val_text_fingerprint for p in preps}) == 1, split
        assert len({p.val_fingerprint for p in preps}) == len(tokenizers)  # nats per token still do not compare
        if split == "documents":
            assert len({tuple(p.doc_split) for p in preps}) == 1
    # the token split (the default) gives each tokenizer its own val text: why split_on: text exists
    by_tokens = [
        prepare_data(_params(t, split="tail", split_on="tokens")) for t in ({"name": "char"}, {"name": "gpt2"})
    ]
    assert by_tokens[0].val_text_fingerprint != by_tokens[1].val_text_fingerprint


def test_split_on_text_cuts_characters_like_the_token_split_cuts_tokens():
    prep = prepare_data(_params({"name": "char"}, split="tail", val_fraction=0.1))
    text = "".join(d.text + "\n\n" for d in prep.documents)
    n_val = round(len(text) * 0.1)
    assert prep.tokenizer.decode(prep.val.tolist()) == text[-n_val:]
    assert prep.tokenizer.decode(prep.train.tolist()) == text[:-n_val]
    assert sum(len(t) for t in prep.doc_tokens) == sum(len(d.text) for d in prep.documents)


def test_phase_folder_keeps_the_bpe_and_later_stages_reuse_it(tmp_path, monkeypatch):
    p = _params({"name": "bpe", "vocab_size": 400})
    first = prepare_data(p, tokenizer_dir=tmp_path)
    saved = (tmp_path / BPE_FILE).read_text()
    info = json.loads((tmp_path / BPE_TRAINING_FILE).read_text())
    assert saved == first.tokenizer.to_json() and info["vocab_size"] == 400 and info["merges"] == 144

    def no_training(*a, **k):
        raise AssertionError("retrained although tokenizer.json was there")

    monkeypatch.setattr(tok_mod, "train_bpe", no_training)
    again = prepare_data(p, tokenizer_dir=tmp_path, reuse_tokenizer=True)
    assert again.tokenizer.to_json() == saved and np.array_equal(again.val, first.val)
    # other settings (another split) do not match the saved tokenizer: a reader refuses it...
    other = _params({"name": "bpe", "vocab_size": 400}, seed=7)
    with pytest.raises(TokenizerError, match="trained on other text or with another vocab_size"):
        prepare_data(other, tokenizer_dir=tmp_path, reuse_tokenizer=True)
    with pytest.raises(TokenizerError, match="is missing"):
        phase_bpe(["text"], 300, tmp_path / "empty", reuse_only=True)
    # ...and a fresh 01/02 trains and saves the new one
    monkeypatch.undo()
    prepare_data(other, tokenizer_dir=tmp_path)
    assert (tmp_path / BPE_FILE).read_text() != saved


def test_phase_fingerprint_covers_the_bpe():
    """The BPE is a function of the resolved params and the corpus, both in the phase fingerprint."""
    a, b = _params({"name": "bpe", "vocab_size": 400}), _params({"name": "bpe", "vocab_size": 401})

    def fp(p):
        return phase_fingerprint({"study": "s", "phase": "p", **p.to_dict()}, "corpus-fp")

    assert fp(a) != fp(b) and fp(a) == fp(_params({"name": "bpe", "vocab_size": 400}))
    assert prepare_data(a).tokenizer.to_json() == prepare_data(a).tokenizer.to_json()
