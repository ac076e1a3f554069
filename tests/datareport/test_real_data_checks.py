"""The data checks that must hold on real corpora, on crafted corpora with known answers (issue 15):
near-twins in two spellings, boilerplate against phrases of the language, per-document and exact leakage,
val tokens never seen in train."""

import json

import numpy as np
import pytest
from gaplab.data.corpus import Document
from gaplab.data.teaching import other_edition
from gaplab.datareport.boilerplate import boilerplate
from gaplab.datareport.build import build_report
from gaplab.datareport.checks import evaluate_checks
from gaplab.datareport.detectors import unseen_val_tokens
from gaplab.datareport.leakage import ngram_leakage
from gaplab.datareport.near_duplicates import cross_split_near_duplicates, near_duplicates, normalize_words
from gaplab.schema import PhaseParams

# ----------------------------------------------------------------------------- a crafted genre
VOCAB = (
    "the and of to my lord i you is that in not it with be this your for his me have what he so will "
    "but thou thee all her do shall by are our good sir come now here no are upon love give know heart "
    "night king well more then let him speak make may there must yet such death live them fair say one "
    "great man hand eye see time honour sweet world word true nothing bear stand hear fear never about "
    "mine own how doth hath noble"
).split()


def sentence(rng, k):
    idx = np.minimum(rng.zipf(1.3, k) - 1, len(VOCAB) - 1)
    return " ".join(VOCAB[i] for i in idx)


def genre_doc(rng, words=400):
    lines = []
    while sum(len(x.split()) for x in lines) < words:
        lines.append(sentence(rng, int(rng.integers(5, 12))).capitalize() + rng.choice([".", ",", ";", "!", "?"]))
    return "\n".join(lines)


def test_normalization_folds_spelling_variants():
    assert normalize_words("Heere vpon thy selfe, giue") == normalize_words("here upon thy self; give")
    assert normalize_words("Thee") == normalize_words("thee") == ["th"]
    assert normalize_words("") == []


def test_twins_in_another_spelling_are_found_and_unrelated_documents_are_not_paired():
    rng = np.random.default_rng(0)
    docs = [genre_doc(rng) for _ in range(30)]
    twins = {30 + k: k for k in range(10)}
    texts = docs + [other_edition(docs[k], rng) for k in range(10)]
    names = [f"play{i}" for i in range(30)] + [f"play{k}_folio" for k in range(10)]
    out = near_duplicates(texts, names)
    pairs = {tuple(sorted(p)) for p in out["_pairs"].tolist()}
    assert pairs == {(k, j) for j, k in twins.items()}  # every edition with its original, nothing else
    assert out["documents"] == 20 and out["families"] == 10 and out["share"] == 0.5
    assert all(0.3 <= e["similarity"] < 1 and not e["identical"] for e in out["examples"])
    # the same genre, without the normalization, is too far apart to be called a twin: it is doing work
    raw = [len(set(zip(*[t.lower().split()[i:] for i in range(5)]))) for t in (texts[0], texts[30])]
    shared = set(zip(*[texts[0].lower().split()[i:] for i in range(5)])) & set(
        zip(*[texts[30].lower().split()[i:] for i in range(5)])
    )
    assert len(shared) / (sum(raw) - len(shared)) < 0.3
    # the check: half the documents have a near-twin -> fail at the default thresholds
    report = {"duplicates": {"near": out}, "size": {"documents": len(texts)}}
    row = next(r for r in evaluate_checks(report) if r["name"] == "near_duplicates")
    assert row["status"] == "fail" and "20 of 40 documents have a near-twin" in row["message"]


def test_cross_split_near_twins_are_the_val_documents_whose_twin_is_in_train():
    rng = np.random.default_rng(1)
    docs = [genre_doc(rng, 200) for _ in range(12)]
    texts = docs + [other_edition(docs[0], rng), other_edition(docs[1], rng)]
    names = [f"d{i}" for i in range(14)]
    split = ["train"] * 10 + ["val", "val", "val", "train"]  # d12 (twin of d0) in val; d13 (twin of d1) in train
    out = cross_split_near_duplicates(near_duplicates(texts, names), names, split)
    assert out["val_documents"] == 3 and out["documents"] == 1 and out["share"] == pytest.approx(1 / 3)
    assert out["examples"][0]["val"] == "d12" and out["examples"][0]["train"] == "d0"


# ----------------------------------------------------------------------------- boilerplate
NATURAL = [
    "how now what is the matter",
    "i know not what to say",
    "i am glad to see you here",
    "give me your hand my lord",
    "what is the news from the court",
    "let us go in together now",
]


def _unrelated(k, words=200, seed=0):
    rng = np.random.default_rng(seed)
    vocab = [f"w{j}" for j in range(5000)]
    docs = []
    for _ in range(k):
        docs.append(list(rng.choice(vocab, words)))
    return docs, rng


def _with_phrases(docs, rng):
    """Each natural phrase inside 4..8 random documents, at a random place away from the ends."""
    for phrase in NATURAL:
        for d in rng.choice(len(docs), int(rng.integers(4, 9)), replace=False):
            at = int(rng.integers(30, len(docs[d]) - 30))
            docs[d][at:at] = phrase.split()
    return docs


def test_natural_phrases_pass_and_an_injected_footer_fails():
    docs, rng = _unrelated(30)
    docs = _with_phrases(docs, rng)
    texts = [" ".join(d) for d in docs]
    names = [f"d{i}" for i in range(30)]
    out = boilerplate(texts, names)
    assert out["documents"] == 0 and out["share"] == 0.0  # the old rule counted every one of these phrases
    assert {p["phrase"] for p in out["natural_phrases"]} <= set(NATURAL) and len(out["natural_phrases"]) == 5
    assert all(p["where"] == "throughout" for p in out["natural_phrases"])
    footer = "this text was transcribed by the volunteers of the example archive"
    texts = [t + ("\n\n" + footer if i < 20 else "") for i, t in enumerate(texts)]
    out = boilerplate(texts, names)
    assert out["documents"] == 20 and out["share"] == pytest.approx(20 / 30)
    assert [p["phrase"] for p in out["phrases"]] == [footer] and out["phrases"][0]["where"] == "end"
    cov = out["coverage"]
    assert cov["mean_in_documents"] == pytest.approx(np.mean([11 / (len(d) + 11) for d in docs[:20]]))
    row = next(
        r for r in evaluate_checks({"boilerplate": out, "size": {"documents": 30}}) if r["name"] == "boilerplate"
    )
    assert row["status"] == "fail" and "at the end" in row["message"]


def test_a_licence_header_and_a_long_repeated_paragraph_are_boilerplate():
    docs, rng = _unrelated(30, seed=3)
    header = "copyright the example foundation all rights reserved see the licence file".split()
    for d in docs[:12]:
        d[0:0] = header
    paragraph = (
        "please note that the views expressed in this section are those of the authors alone and "
        "they do not reflect the official position of any institution mentioned anywhere in this "
        "document or elsewhere in related publications"
    ).split()
    for d in docs[12:18]:
        d[100:100] = paragraph  # in the middle, but a real share (15%) of each document
    out = boilerplate([" ".join(d) for d in docs], [f"d{i}" for i in range(30)])
    where = {p["phrase"].split()[0]: p["where"] for p in out["phrases"]}
    assert where == {"copyright": "start", "please": "throughout"}
    assert out["documents"] == 18


def test_the_teaching_sign_off_is_still_boilerplate():
    from gaplab.data.teaching import BOILERPLATE, qa_defects

    docs = qa_defects(n=200, seed=5)
    out = boilerplate([d.text for d in docs], [d.name for d in docs])
    assert out["share"] == sum(d.text.endswith(BOILERPLATE) for d in docs) / 200
    assert out["phrases"][0]["where"] == "end"


# ----------------------------------------------------------------------------- leakage
def test_exact_longest_span_does_not_join_matches_from_different_places():
    train = np.array([1, 2, 9, 2, 3, 9, 3, 4, 9, 4, 5])
    out = ngram_leakage(train, np.array([1, 2, 3, 4, 5]), n=2)
    assert out["share"] == 1.0  # every val bigram is in train ...
    assert out["longest_span_tokens"] == 2  # ... but no three val tokens are, in that order
    assert out["spans"][0] == {"start": 0, "tokens": 2, "train_position": 0}


def test_exact_longest_span_against_brute_force():
    rng = np.random.default_rng(7)
    for _ in range(60):
        train, val = rng.integers(0, 3, int(rng.integers(5, 60))), rng.integers(0, 3, int(rng.integers(5, 40)))
        n = int(rng.integers(1, 4))
        best = max(
            (
                k
                for i in range(len(val))
                for j in range(len(train))
                for k in [
                    next(
                        (m for m in range(min(len(val) - i, len(train) - j)) if val[i + m] != train[j + m]),
                        min(len(val) - i, len(train) - j),
                    )
                ]
            ),
            default=0,
        )
        assert ngram_leakage(train, val, n)["longest_span_tokens"] == (best if best >= n else 0)


def test_longest_spans_are_exact_where_chained_copies_share_every_ngram():
    """A val stretch whose every 8-gram is in train, but from five places (each piece overlaps the next by 7
    tokens), is one 8-gram run of 206 tokens and no span longer than 50; the true spans are found, each
    at its first place in train."""
    rng = np.random.default_rng(11)
    train = rng.integers(0, 50_000, 20_000)
    val = rng.integers(50_000, 60_000, 3_000)  # ids train never holds
    chain = rng.integers(0, 50_000, 206)
    for k, at in enumerate([1_000, 3_000, 5_000, 7_000]):  # pieces [0:50], [43:93], [86:136], [129:179] ...
        train[at : at + 50] = chain[43 * k : 43 * k + 50]
    train[9_000:9_034] = chain[172:206]
    val[100:306] = chain
    for length, val_at, train_at in [(90, 600, 12_000), (60, 1_200, 14_000), (40, 2_000, 16_000)]:
        val[val_at : val_at + length] = train[train_at : train_at + length]
    train[18_000:18_060] = train[14_000:14_060]  # the 60-token span twice in train: the first is named
    out = ngram_leakage(train, val, n=8)
    assert out["spans"] == [
        {"start": 600, "tokens": 90, "train_position": 12_000},
        {"start": 1_200, "tokens": 60, "train_position": 14_000},
        {"start": 100, "tokens": 50, "train_position": 1_000},
    ]


def test_per_document_leakage_names_the_planted_twin():
    rng = np.random.default_rng(2)
    train_docs = [rng.integers(0, 50_000, 300) for _ in range(20)]
    val_docs = [rng.integers(0, 50_000, 300) for _ in range(9)]
    val_docs.insert(4, train_docs[7][20:280].copy())  # a val document that is a train document's middle
    names = [f"t{i}" for i in range(20)] + [f"v{i}" for i in range(10)]
    val = np.concatenate(val_docs)
    owners = np.concatenate([np.full(len(d), 20 + k) for k, d in enumerate(val_docs)])
    out = ngram_leakage(np.concatenate(train_docs), val, n=8, val_owners=owners, names=names)
    docs = out["documents"]
    assert docs["documents"] == 10
    assert [r["name"] for r in docs["leaked_examples"]] == ["v4"]
    assert [r["name"] for r in docs["outlier_examples"]] == ["v4"]
    # its 260 tokens hold 253 8-grams; 7 more windows start in it and run into the next document
    assert docs["top"][0] == {"name": "v4", "val_ngrams": 260, "in_train": 253, "share": pytest.approx(253 / 260)}
    assert out["longest_span_tokens"] == 260 and out["spans"][0]["train_position"] == 7 * 300 + 20


# ----------------------------------------------------------------------------- unseen val tokens
class _Tok:
    table = {1: "a", 2: "b", 3: "c", 4: "é", 5: "€", 6: "d"}

    def decode(self, ids):
        return "".join(self.table[int(i)] for i in ids)


def test_unseen_val_tokens_known_answer():
    train = np.array([1, 2, 3, 1, 2])
    val = np.array([1, 4, 4, 2, 5, 2])  # 4 and 5 never occur in train
    sources = np.array([0, 0, 0, 1, 1, 1])
    out = unseen_val_tokens(train, val, sources, ["poems", "plays"], _Tok())
    assert (out["unseen_tokens"], out["val_tokens"], out["share"]) == (3, 6, 0.5)
    assert (out["unseen_bytes"], out["val_bytes"]) == (2 + 2 + 3, 1 + 2 + 2 + 1 + 3 + 1)
    assert out["byte_share"] == pytest.approx(7 / 10)
    by = {r["source"]: r for r in out["sources"]}
    assert by["poems"]["share"] == pytest.approx(2 / 3) and by["plays"]["share"] == pytest.approx(1 / 3)
    assert by["plays"]["byte_share"] == pytest.approx(3 / 5)
    assert out["examples"][0] == {"id": 4, "count": 2, "text": "é"}
    assert out["distinct_unseen_ids"] == 2


def _poems(n_docs=40):
    rng = np.random.default_rng(4)
    docs = []
    for i in range(n_docs):
        words = " ".join(
            f"{chr(97 + int(c))}{int(j)}" for c, j in zip(rng.integers(0, 26, 60), rng.integers(0, 400, 60))
        )
        docs.append(Document(words, "rare" if i % 10 == 0 else "common", f"p{i}"))
    return docs


def test_unseen_val_tokens_in_the_report_are_the_unknown_ids_of_a_compact_vocabulary(monkeypatch):
    from gaplab.data import split as split_mod

    params = PhaseParams.model_validate(
        {
            "data": {
                "source": "generated",
                "generator": "tests.datareport.test_real_data_checks:_poems",
                "split": "documents",
                "val_fraction": 0.2,
                "seed": 3,
            },
            "tokenizer": {"name": "gpt2", "compact": True, "compact_from": "train"},
            "model": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16},
            "train": {"max_iters": 10, "eval_interval": 5},
        }
    )
    prep = split_mod.prepare_data(params)
    report = build_report(prep, params, param_counts={"total": 10, "embedding": 5, "non_embedding": 5})
    unseen = report["size"]["unseen_val_tokens"]
    unk = prep.tokenizer.vocab_size - 1  # CompactTokenizer: the ids seen in train, then one unknown id
    assert unseen["unseen_tokens"] == int((prep.val == unk).sum()) > 0
    assert unseen["unseen_tokens"] == int((~np.isin(prep.val_base, prep.train_base)).sum())
    assert {r["source"] for r in unseen["sources"]} <= {"rare", "common"}
    row = next(c for c in report["checks"] if c["name"] == "unseen_val_tokens")
    assert "becomes the one unknown id" in row["message"]
    json.dumps(report, allow_nan=False)
