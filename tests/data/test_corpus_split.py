"""Corpus sources, tokenizers (offline GPT-2, char, compact) and split strategies."""

import io
import json
import tarfile

import numpy as np
import pytest
from gaplab.data import tokenizer as tk
from gaplab.data.corpus import Document, load_corpus
from gaplab.data.split import prepare_data
from gaplab.data.tokenizer import get_tokenizer, install_ranks_from_sdist, ranks_path
from gaplab.errors import DataError, StudyError, TokenizerError
from gaplab.schema import PhaseParams


def params(**sections):
    base = {"train": {"max_iters": 10, "eval_interval": 5}, "model": {"block_size": 8}}
    for k, v in sections.items():
        base[k] = {**base.get(k, {}), **v}
    return PhaseParams.model_validate(base)


# ----------------------------------------------------------------- corpus
def test_stdlib_corpus_is_deterministic_and_excludes_tests():
    a = load_corpus(params(data={"packages": ["json", "email"]}).data)
    b = load_corpus(params(data={"packages": ["json", "email"]}).data)
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 64
    names = [d.name for d in a.documents]
    assert names[0].startswith("json/") and any(n.startswith("email/") for n in names)
    assert [d.source for d in a.documents].index("email") > 0  # packages in the order given
    assert not any("/test" in n for n in names)
    json_names = [n for n in names if n.startswith("json/")]
    assert json_names == sorted(json_names)


def test_unknown_stdlib_package_suggests(tmp_path):
    with pytest.raises(DataError, match="'jsn'.*did you mean 'json'"):
        load_corpus(params(data={"packages": ["jsn"]}).data)


def test_files_source_skips_binary_and_undecodable(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("hello")
    (tmp_path / "b.txt").write_bytes(b"\x00\x01binary")
    (tmp_path / "c.txt").write_bytes(b"caf\xe9")
    c = load_corpus(params(data={"source": "files", "path": str(tmp_path), "glob": "**/*.txt"}).data)
    assert [d.text for d in c.documents] == ["hello"]
    assert c.documents[0].source == "a"
    assert sorted(r.split(" ")[0] for _, r in c.skipped) == ["binary", "not"]


def test_glob_matching_nothing(tmp_path):
    with pytest.raises(DataError, match=r"data.glob: '\*\.md' matches no files under"):
        load_corpus(params(data={"source": "files", "path": str(tmp_path), "glob": "*.md"}).data)


def test_jsonl_template_labels_and_errors(tmp_path):
    f = tmp_path / "qa.jsonl"
    f.write_text(
        json.dumps({"q": "2+2?", "a": "4", "kind": "math"})
        + "\n\n"
        + json.dumps({"q": "hi", "a": "yo", "kind": "chat"})
        + "\n"
    )
    d = params(
        data={
            "source": "jsonl",
            "path": str(f),
            "fields": ["q", "a"],
            "template": "Q: {q}\nA: {a}",
            "label_field": "kind",
        }
    ).data
    c = load_corpus(d)
    assert [x.text for x in c.documents] == ["Q: 2+2?\nA: 4", "Q: hi\nA: yo"]
    assert [x.source for x in c.documents] == ["math", "chat"]
    f.write_text('{"q": "x", "a": "y"}\n{"q": broken\n')
    with pytest.raises(DataError, match=r"qa.jsonl:2: line is not JSON"):
        load_corpus(d.model_copy(update={"label_field": None}))
    f.write_text('{"q": "x"}\n')
    with pytest.raises(DataError, match=r"qa.jsonl:1: missing field 'a'"):
        load_corpus(d.model_copy(update={"label_field": None}))


def test_csv_source(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("question,answer\nwhat,that\nwho,me\n")
    c = load_corpus(params(data={"source": "csv", "path": str(f), "fields": ["question", "answer"]}).data)
    assert [x.text for x in c.documents] == ["what\nthat", "who\nme"]
    with pytest.raises(DataError, match=r"t.csv:2: missing field 'nope'"):
        load_corpus(params(data={"source": "csv", "path": str(f), "fields": ["nope"]}).data)


def test_empty_corpus(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"\x00")
    with pytest.raises(DataError, match="is empty"):
        load_corpus(params(data={"source": "files", "path": str(tmp_path), "glob": "*.txt"}).data)


def test_corpus_fingerprint_is_the_sha256_of_every_name_source_and_text_in_order():
    """Hashed a thousand documents at a time, it is still sha256 over name, source, text, each ended by a NUL
    byte (texts with NUL bytes and lone surrogates included), and it changes when the order does."""
    import hashlib

    from gaplab.data.documents import fingerprint

    docs = load_corpus(params(data={"packages": ["json", "email"]}).data).documents
    docs = (docs * (2600 // len(docs) + 1))[:2600] + [Document("a\0b \ud800", "s", "n"), Document("", "", "")]
    h = hashlib.sha256()
    for d in docs:
        for part in (d.name, d.source, d.text):
            h.update(part.encode("utf-8", "surrogatepass") + b"\0")
    assert fingerprint(docs) == h.hexdigest()
    assert fingerprint(docs[:1000]) != fingerprint(docs[1:1001]) and fingerprint([]) == hashlib.sha256().hexdigest()


def test_generated_source_bad_import():
    with pytest.raises(DataError, match="data.generator: 'gaplab.nope:f': module 'gaplab.nope' does not import"):
        load_corpus(params(data={"source": "generated", "generator": "gaplab.nope:f"}).data)


# ----------------------------------------------------------------- tokenizers
def test_gpt2_offline_matches_known_ids():
    tok = get_tokenizer("gpt2")
    assert tok.vocab_size == 50257
    assert tok.encode("Hello world") == [15496, 995]  # GPT-2's ids
    text = "import json\n\ndef get_x():\n    return {'a': 1}\n"
    assert tok.decode(tok.encode(text)) == text


def test_gpt2_encode_arrays_equal_encode_batch_on_real_text(monkeypatch):
    """The numpy path (chunks on threads, tiktoken's buffers) gives encode_batch's ids for every text, in
    order: stdlib source, a special token's text (plain text here), a lone surrogate, the empty text."""
    tok = get_tokenizer("gpt2")
    texts = [d.text[:3000] for d in load_corpus(params(data={"packages": ["json", "email"]}).data).documents]
    texts += ["a <|endoftext|> b", "x \ud800 y", "", "héllo wörld ✓"]
    monkeypatch.setattr(tk, "_ENCODE_CHUNK", 7)  # many chunks, a short last one
    arrays = tok.encode_arrays(texts)
    assert len(arrays) == len(texts) > 30
    for ids, expected in zip(arrays, tok.encode_batch(texts)):
        assert ids.dtype == np.int64 and ids.tolist() == expected


def test_missing_ranks_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tk, "_GPT2", None)
    with pytest.raises(TokenizerError, match="gaplab tokenizer fetch"):
        get_tokenizer("gpt2")


def _sdist(tmp_path, payload: bytes):
    path = tmp_path / "openai-whisper-0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("openai-whisper-0/whisper/assets/gpt2.tiktoken")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return path


def test_install_ranks_verifies_hash(tmp_path):
    with pytest.raises(TokenizerError, match="refusing"):
        install_ranks_from_sdist(_sdist(tmp_path, b"not the ranks"), tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    real = ranks_path().read_bytes()
    out = install_ranks_from_sdist(_sdist(tmp_path, real), tmp_path / "cache")
    assert out.name == "0ea1e91bbb3a60f729a8dc8f777fd2fc07cd8df4"  # sha1 of tiktoken's r50k_base URL
    assert out.read_bytes() == real


def test_char_tokenizer_round_trip_and_unknown():
    tok = get_tokenizer("char", ["abc", "cab!"])
    assert tok.vocab_size == 5  # a b c ! + unknown
    assert tok.decode(tok.encode("cab!")) == "cab!"
    assert tok.decode(tok.encode("z")) == "\ufffd"


def test_compact_vocabulary_shrinks_and_round_trips():
    p = params(data={"packages": ["json"], "max_tokens": 3000}, tokenizer={"compact": True})
    prep = prepare_data(p)
    used = len(np.unique(prep.train_base))
    assert prep.vocab_size == used + 1 and prep.vocab_size_original == 50257
    assert prep.train.max() < prep.vocab_size
    text = prep.base_tokenizer.decode(prep.train_base[:200])
    assert prep.tokenizer.decode(prep.tokenizer.encode(text)) == text
    assert np.array_equal(prep.tokenizer.encode(text), prep.train[: len(prep.tokenizer.encode(text))])


def test_compact_from_corpus_gives_every_data_size_the_same_vocabulary():
    def prep(max_tokens, source):
        return prepare_data(
            params(
                data={"packages": ["json"], "max_tokens": max_tokens},
                tokenizer={"compact": True, "compact_from": source},
            )
        )

    small, large = prep(2000, "corpus"), prep(8000, "corpus")
    assert small.vocab_size == large.vocab_size > len(np.unique(large.train_base)) + 1
    assert np.array_equal(small.tokenizer.kept, large.tokenizer.kept)
    # val tokens never seen in training keep their own ids instead of collapsing into the unknown id
    unseen = ~np.isin(small.val_base, small.train_base)
    assert unseen.any() and (small.val[unseen] != small.tokenizer.unk).all()
    assert prep(2000, "train").vocab_size < small.vocab_size  # the default keeps only the train split's ids


# ----------------------------------------------------------------- split
def test_max_tokens_and_tail_split():
    prep = prepare_data(params(data={"packages": ["json"], "max_tokens": 1000}))
    assert (len(prep.train), len(prep.val)) == (900, 100)  # the seed's 900/100
    assert prep.doc_split[-1] in ("val", "both")


def _docs_params(split, **extra):
    return params(
        data={
            "source": "generated",
            "generator": "tests.data.test_corpus_split:_labelled",
            "split": split,
            "val_fraction": 0.2,
            **extra,
        },
        tokenizer={"name": "char"},
        model={"block_size": 4},
    )


def _labelled():
    docs = [Document("a" * 50, "common", f"c{i}") for i in range(18)]
    return docs + [Document("b" * 50, "key", f"k{i}") for i in range(2)]


def test_tail_split_puts_trailing_source_in_val():
    prep = prepare_data(_docs_params("tail", separator=""))
    comp = prep.composition
    assert comp["val"]["key"] == {"tokens": 100, "documents": 2}
    assert comp["train"]["key"]["tokens"] == 0
    assert comp["val_share_by_source"]["key"] == 1.0


def test_documents_split_is_seeded_and_whole():
    a = prepare_data(_docs_params("documents", separator=""))
    b = prepare_data(_docs_params("documents", separator=""))
    assert np.array_equal(a.val, b.val)
    assert set(a.doc_split) <= {"train", "val"}  # whole documents
    assert len(a.val) == 200  # 4 documents of 50 characters = 20%
    c = prepare_data(_docs_params("documents", separator="", seed=7))
    assert a.doc_split != c.doc_split


def _two_uneven():
    return [Document("short text here", "a", "small"), Document("x" * 200, "a", "big")]


def test_documents_split_never_puts_every_document_in_val():
    """Two documents, the small one under val's share: whichever the shuffle draws first, the other stays in
    train (it used to take both when the small one came first, and the phase failed with an empty train)."""
    splits = set()
    for seed in range(12):
        prep = prepare_data(
            params(
                data={
                    "source": "generated",
                    "generator": "tests.data.test_corpus_split:_two_uneven",
                    "split": "documents",
                    "val_fraction": 0.2,
                    "seed": seed,
                },
                tokenizer={"name": "char"},
                model={"block_size": 4},
            )
        )
        assert sorted(prep.doc_split) == ["train", "val"] and len(prep.train) > 0 and len(prep.val) > 0
        splits.add(tuple(prep.doc_split))
    assert splits == {("train", "val"), ("val", "train")}  # both orders were drawn


def test_chunks_split():
    prep = prepare_data(_docs_params("chunks", separator="", chunk_size=10))
    assert len(prep.val) == 200 and len(prep.train) == 800


def test_split_too_small_for_block(tmp_path):
    with pytest.raises(StudyError, match="needs at least block_size"):
        prepare_data(params(data={"packages": ["json"], "max_tokens": 50}, model={"block_size": 8}))


def test_max_train_tokens_keeps_one_val_set_and_nested_spread_out_train_subsets():
    def prep(n):
        return prepare_data(
            params(data={"packages": ["json", "email"], "split": "chunks", "chunk_size": 64, "max_train_tokens": n})
        )

    small, large, full = (
        prep(2000),
        prep(6000),
        prepare_data(params(data={"packages": ["json", "email"], "split": "chunks", "chunk_size": 64})),
    )
    assert len(small.train) == 2000 and len(large.train) == 6000
    assert np.array_equal(small.val, large.val) and np.array_equal(small.val, full.val)  # the same val set
    # nested: the small training subset is part of the large one
    from gaplab.data.split import _train_subset

    val_mask = np.zeros(20000, dtype=bool)
    val_mask[::10] = True
    cfg = params(data={"split": "chunks", "chunk_size": 64, "max_train_tokens": 2000}).data
    keep_small = _train_subset(cfg, val_mask)
    keep_large = _train_subset(cfg.model_copy(update={"max_train_tokens": 6000}), val_mask)
    assert keep_small.sum() == 2000 and keep_large.sum() == 6000
    assert not (keep_small & val_mask).any() and (keep_large[keep_small]).all()
    # spread over the corpus, not its first documents: both packages are in a small train set
    assert {s for s, v in small.composition["train"].items() if v["tokens"]} == {"email", "json"}
    assert "unused" in small.doc_split
    assert prep(10**9).train.shape == full.train.shape  # more than there is: everything
