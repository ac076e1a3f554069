import json
import math

import numpy as np
import pytest
from gaplab.datareport import boilerplate as boilerplate_mod
from gaplab.datareport import detectors as detectors_mod
from gaplab.datareport import leakage as leakage_mod
from gaplab.datareport.build import build_report
from gaplab.datareport.checks import DEFAULT_CHECKS, DataCheckFailed, evaluate_checks, raise_on_failures
from gaplab.datareport.detectors import length_stats, split_balance, template_skeleton, vocab_usage
from gaplab.datareport.leakage import ngram_leakage
from gaplab.measure.ngram_index import window_hashes
from gaplab.schema import PhaseParams, Threshold


def word(j: int) -> str:
    """A distinct lower-case word per integer (no digits, so numbers never blank it)."""
    letters = ""
    j += 26 * 27
    while j:
        j, r = divmod(j, 26)
        letters += "abcdefghijklmnopqrstuvwxyz"[r]
    return letters


def distinct_doc(i: int, k: int = 8) -> str:
    return " ".join(word(i * k + m) for m in range(k))


# --------------------------------------------------------------------------- skeletons and templates
def test_template_skeleton_rule():
    assert template_skeleton("Alice has 3 boxes.\n\n  How many?") == "Name has 0 boxes. Name many?"
    assert template_skeleton("price 12.50 and 1,000 items, id p3f9") == "price 0 and 0 items, id p3f9"
    # quoted strings are kept (JSON keys would otherwise make every record alike)
    assert template_skeleton('{"id": "x7"}') == '{"id": "x7"}'


def test_templated_30_of_100():
    names_ = ["Alice", "Bruno", "Chen", "Dana", "Emeka", "Farah"]
    templ = [f"Q: {names_[i % 6]} buys {i + 2} apples. A: {names_[i % 6]} pays {3 * i + 1} coins." for i in range(30)]
    texts = templ + [distinct_doc(i) for i in range(70)]
    names = [f"d{i}" for i in range(100)]
    out = detectors_mod.templated(texts, names)
    assert out["documents"] == 30
    assert out["share"] == 0.30
    assert out["families"] == 1
    fam = out["examples"][0]
    assert fam["count"] == 30 and fam["distinct_texts"] == 30
    assert fam["skeleton"] == "Q: Name buys 0 apples. A: Name pays 0 coins."
    assert [e["name"] for e in fam["examples"]] == ["d0", "d1"]


def test_exact_copies_alone_are_not_a_template():
    texts = ["same text here", "same text here", "Bob is 3", "Ann is 4", "Cy is 5", "unique words only"]
    out = detectors_mod.templated(texts, [str(i) for i in range(6)])
    assert out["documents"] == 3  # the Bob/Ann/Cy family; the two copies are exact duplicates, not a template
    assert out["families"] == 1


def test_exact_duplicates_three_of_100():
    texts = [distinct_doc(i) for i in range(97)] + [distinct_doc(5), distinct_doc(5), distinct_doc(40)]
    names = [f"f{i}" for i in range(100)]
    out = detectors_mod.exact_duplicates(texts, names)
    assert out["documents"] == 3
    assert out["share"] == 0.03
    assert out["groups"] == 2
    assert out["examples"][0]["count"] == 3
    assert out["examples"][0]["names"] == ["f5", "f97", "f98"]
    assert out["examples"][1]["names"] == ["f40", "f99"]


def test_empty_documents_are_not_duplicates():
    out = detectors_mod.exact_duplicates(["", "  \n", "a", ""], ["a", "b", "c", "d"])
    assert out["documents"] == 0 and out["empty"] == 3


# --------------------------------------------------------------------------- boilerplate
def test_boilerplate_in_83_of_100():
    sign_off = "I hope this helps! Let me know if you have any other questions."
    texts = [distinct_doc(i) + ("\n" + sign_off if i < 83 else "") for i in range(100)]
    out = boilerplate_mod.boilerplate(texts, [f"d{i}" for i in range(100)])
    assert out["documents"] == 83
    assert out["share"] == 0.83
    assert len(out["phrases"]) == 1
    p = out["phrases"][0]
    assert p["phrase"] == "i hope this helps let me know if you have any other questions"
    assert p["documents"] == 83 and p["example"] == "d0"


def test_boilerplate_threshold_and_template_counted_once():
    # a phrase in 9 of 100 documents is below the 10% default; at 10 of 100 it counts
    phrase = "all rights reserved by the acme company"
    for k, expected in ((9, 0), (10, 10)):
        texts = [distinct_doc(i) + (" " + phrase if i < k else "") for i in range(100)]
        assert boilerplate_mod.boilerplate(texts, [str(i) for i in range(100)])["documents"] == expected
    # 50 templated documents share their fixed words, but as one family they are not boilerplate
    texts = [
        f"Q: {n} has {i} cats in the big red barn today"
        for i, n in enumerate(["Alice", "Bruno", "Chen", "Dana", "Emeka"] * 10)
    ] + [distinct_doc(i) for i in range(50)]
    out = boilerplate_mod.boilerplate(texts, [str(i) for i in range(100)])
    assert out["documents"] == 0


# --------------------------------------------------------------------------- lengths
def test_length_stats_known_answers():
    lengths = list(range(1, 101))  # 1..100 tokens
    names = [f"d{i}" for i in range(1, 101)]
    out = length_stats(lengths + [1000], names + ["huge"], block_size=64)
    assert out["min"] == 1 and out["max"] == 1000
    assert out["median"] == 51
    assert out["mean"] == pytest.approx((5050 + 1000) / 101)
    assert out["p95"] == pytest.approx(np.percentile(lengths + [1000], 95))
    # 65..100 and 1000 are longer than 64
    assert out["truncated"] == {"block_size": 64, "documents": 37, "share": 37 / 101}
    # Q1 = 26, Q3 = 76 -> fence = 76 + 3 * 50 = 226: only "huge" is an outlier
    assert out["outliers"]["fence"] == 226
    assert out["outliers"]["examples"] == [{"name": "huge", "tokens": 1000}]
    hist = {b["label"]: b["documents"] for b in out["histogram"]}
    assert hist["1"] == 1 and hist["2–3"] == 2 and hist["64–127"] == 37 and hist["512–1023"] == 1
    assert sum(hist.values()) == 101


# --------------------------------------------------------------------------- split composition
def _composition(rows):
    comp = {"train": {}, "val": {}}
    for source, (td, tt, vd, vt) in rows.items():
        comp["train"][source] = {"documents": td, "tokens": tt}
        comp["val"][source] = {"documents": vd, "tokens": vt}
    return comp


def test_a_source_19_of_20_in_val_is_flagged():
    comp = _composition({"alpaca": (1979, 19790, 1, 10), "key_examples": (1, 100, 19, 1900)})
    out = split_balance(comp)
    key = next(r for r in out["sources"] if r["source"] == "key_examples")
    assert key["val_share"] == 0.95
    assert out["imbalance"]["source"] == "key_examples"
    assert out["imbalance"]["value"] == pytest.approx(0.95 - out["overall_val_share"])
    report = {"split": out}
    row = next(c for c in evaluate_checks(report) if c["name"] == "split_imbalance")
    assert row["status"] == "fail"
    assert "'key_examples': 95.0% of its tokens in val (19 val / 1 train documents)" in row["message"]


def test_split_balance_proportional_sources_and_tiny_sources():
    comp = _composition({"a": (90, 900, 10, 100), "b": (45, 450, 5, 50), "tiny": (0, 0, 1, 30)})
    out = split_balance(comp)
    assert out["overall_val_share"] == pytest.approx(180 / 1530)
    tiny = next(r for r in out["sources"] if r["source"] == "tiny")
    assert tiny["val_share"] == 1.0 and not tiny["scored"]
    assert out["imbalance"]["value"] == pytest.approx(abs(0.1 - 180 / 1530))


# --------------------------------------------------------------------------- leakage
def test_window_hashes_match_equal_windows():
    h = window_hashes(np.array([1, 2, 3, 1, 2, 3, 4]), 3)
    assert h.dtype == np.uint64 and h.size == 5
    assert h[0] == h[3] and len(set(h.tolist())) == 4
    assert window_hashes(np.array([1, 2]), 3).size == 0


def test_planted_leakage_share():
    train = np.arange(1000)
    val = np.concatenate([train[100:200], 5000 + np.arange(100)])  # first half copied from train
    out = ngram_leakage(train, val, n=8)
    # 193 val windows; the 93 that lie inside the copied 100 tokens are in train
    assert out["val_ngrams"] == 193 and out["in_train"] == 93
    assert out["share"] == pytest.approx(93 / 193)
    assert out["longest_span_tokens"] == 100
    assert out["spans"][0] == {"start": 0, "tokens": 100, "train_position": 100}


def test_no_leakage_and_too_short():
    out = ngram_leakage(np.arange(100), np.arange(200, 300), n=4)
    assert out["share"] == 0.0 and out["spans"] == []
    assert ngram_leakage(np.arange(100), np.arange(3), n=8)["share"] is None


def test_leakage_on_random_ids_with_a_planted_copy():
    # random ids do not repeat 8-grams by chance; only the 993 windows of the copied 1000 tokens leak
    rng = np.random.default_rng(0)
    train = rng.integers(0, 50257, 2_000_000)
    val = np.concatenate([train[:1000], rng.integers(0, 50257, 9000)])
    out = ngram_leakage(train, val, n=8)
    assert out["in_train"] == 993


def test_cross_split_duplicates():
    texts = ["alpha", "beta", "gamma", "alpha", "delta", "beta", ""]
    names = ["t1", "t2", "t3", "v1", "v2", "v3", "v4"]
    split = ["train", "train", "both", "val", "val", "val", "val"]
    out = leakage_mod.cross_split_duplicates(texts, names, split)
    assert out["val_documents"] == 4  # gamma (both), alpha, delta, beta; not the empty one
    assert out["documents"] == 2
    assert out["share"] == 2 / 4
    assert [(e["val"], e["train"]) for e in out["examples"]] == [("v1", "t1"), ("v3", "t2")]


def test_cross_split_duplicates_name_the_first_other_train_copy():
    """A document cut by a tail split ("both") is not its own duplicate, but another train copy counts;
    many train copies of one text cost nothing more than one."""
    texts = ["same"] * 3 + ["same", "same", "solo"] + ["same"] * 5000
    names = ["b0", "t1", "t2", "v0", "v1", "b1"] + [f"t{k}" for k in range(3, 5003)]
    split = ["both", "train", "train", "val", "val", "both"] + ["train"] * 5000
    out = leakage_mod.cross_split_duplicates(texts, names, split)
    pairs = [(e["val"], e["train"]) for e in out["examples"]]
    assert (out["val_documents"], out["documents"]) == (4, 3)
    assert pairs == [("b0", "t1"), ("v0", "b0"), ("v1", "b0")]


# --------------------------------------------------------------------------- vocab and model
def test_vocab_usage_known_numbers():
    out = vocab_usage(np.arange(10), np.arange(5, 15), vocab_size_original=100, vocab_size_model=100, n_embd=8)
    assert out["used_ids"] == 15 and out["used_ids_train"] == 10
    assert out["used_share"] == 0.15
    assert out["unused_rows"] == 90 and out["wasted_embedding_params"] == 720
    assert out["compact_vocab_size"] == 11 and out["compact_saves_params"] == (100 - 11) * 8
    assert "once, not twice" in out["note"]


def test_vocab_usage_seed_003_shape():
    # GPT-2's 50,257 ids, ~971 types used, n_embd 128: ~6.3M parameters of embedding never trained
    train = np.arange(971)
    out = vocab_usage(train, train, 50257, 50257, 128)
    assert out["wasted_embedding_params"] == (50257 - 971) * 128
    assert out["compact_saves_params"] == (50257 - 972) * 128
    assert out["summary"].startswith("the data uses 971 of the tokenizer's 50,257 ids (1.93%)")
    assert "6,308,608 parameters" in out["summary"] and "would keep 972 ids" in out["summary"]
    compact = vocab_usage(train, train, 50257, 972, 128, train_model_ids=np.arange(971))
    assert compact["unused_rows"] == 1 and compact["compact_saves_params"] == 0


def test_model_vs_data_numbers():
    counts = {"total": 3_300_000, "embedding": 3_300_000 - 1_000_000, "non_embedding": 1_000_000}
    out = detectors_mod.model_vs_data(counts, train_tokens=19_350, iters=500, tokens_per_iter=4 * 128)
    assert out["tokens_per_param_non_emb"] == pytest.approx(0.01935)
    assert out["tokens_per_param_total"] == pytest.approx(19_350 / 3_300_000)
    assert out["chinchilla_tokens_per_param"] == 20
    assert out["epochs"] == pytest.approx(500 * 512 / 19_350)
    assert out["kaplan_min_tokens"] == pytest.approx(5e3 * 1e6**0.74)
    assert out["kaplan_min_tokens"] == pytest.approx(1.3771e8, rel=1e-4)
    assert out["meets_kaplan"] is False
    assert "Kaplan et al. 2020" in out["references"]["kaplan"]
    assert "Hoffmann et al. 2022" in out["references"]["chinchilla"]
    assert "make 13.2 epochs" in out["summary"] and "asks for 137,711,435 tokens: not met" in out["summary"]
    # Chinchilla's ~20 is set against tokens per parameter counting every parameter, and the text says so
    assert out["summary"].startswith(
        "19,350 training tokens for 3,300,000 parameters, embeddings included: "
        "0.00586 tokens per parameter, against the ~20"
    )
    big = detectors_mod.model_vs_data({"total": 10, "embedding": 0, "non_embedding": 10}, 10**6, 1, 1)
    assert big["meets_kaplan"] is True


# --------------------------------------------------------------------------- checks
def _report(**values):
    """A minimal report with the given check values."""
    v = {
        "exact_duplicates": 0.0,
        "templated": 0.0,
        "boilerplate": 0.0,
        "split_imbalance": 0.0,
        "leakage": 0.0,
        "cross_split_duplicates": 0.0,
        "truncated": 0.0,
        "validators": None,
        **values,
    }
    return {
        "size": {"documents": 100},
        "duplicates": {
            "exact": {"share": v["exact_duplicates"], "documents": 0, "examples": []},
            "templated": {"share": v["templated"], "documents": 0, "families": 0, "examples": []},
        },
        "boilerplate": {"share": v["boilerplate"], "documents": 0, "ngram": 6, "min_documents": 10, "phrases": []},
        "split": {
            "imbalance": {"value": v["split_imbalance"], "source": None},
            "sources": [],
            "overall_val_share": 0.1,
        },
        "leakage": {
            "ngram": {"share": v["leakage"], "in_train": 0, "val_ngrams": 0, "n": 8},
            "cross_split_duplicates": {
                "share": v["cross_split_duplicates"],
                "documents": 0,
                "val_documents": 10,
                "examples": [],
            },
        },
        "lengths": {"documents": 100, "truncated": {"share": v["truncated"], "documents": 0, "block_size": 64}},
        "validators": (
            {"validators": {}, "documents_checked": 0, "documents_failing": 0, "share": 0.0}
            if v["validators"] is None
            else {
                "validators": {"cart_arithmetic": {"checked": 10, "failing": 3, "examples": []}},
                "documents_checked": 10,
                "documents_failing": 3,
                "share": v["validators"],
            }
        ),
    }


def _status(rows):
    return {r["name"]: r["status"] for r in rows}


def test_every_check_has_a_default_and_a_row():
    from gaplab.datareport.check_list import CHECK_NAMES

    assert set(DEFAULT_CHECKS) == set(CHECK_NAMES)
    rows = evaluate_checks(_report())
    assert [r["name"] for r in rows] == list(CHECK_NAMES)
    assert all(r["status"] == "ok" for r in rows)
    assert set(rows[0]) >= {"name", "status", "value", "warn", "fail", "message"}


def test_statuses_at_the_thresholds():
    # templated defaults: warn 0.05, fail 0.25 ("at or above")
    assert _status(evaluate_checks(_report(templated=0.049)))["templated"] == "ok"
    assert _status(evaluate_checks(_report(templated=0.05)))["templated"] == "warn"
    assert _status(evaluate_checks(_report(templated=0.25)))["templated"] == "fail"
    # warn: 0 means any positive value warns; a measured 0 stays ok
    assert _status(evaluate_checks(_report(cross_split_duplicates=0.001)))["cross_split_duplicates"] == "warn"
    assert _status(evaluate_checks(_report(cross_split_duplicates=0.0)))["cross_split_duplicates"] == "ok"
    # no validators configured: not measured, ok
    row = next(r for r in evaluate_checks(_report()) if r["name"] == "validators")
    assert row["value"] is None and row["status"] == "ok" and "no validators configured" in row["message"]
    assert _status(evaluate_checks(_report(validators=0.3)))["validators"] == "fail"


def test_study_overrides_merge_key_by_key():
    # a Threshold with only warn set keeps the default fail
    rows = evaluate_checks(_report(templated=0.2), {"templated": Threshold(warn=0.3)})
    row = next(r for r in rows if r["name"] == "templated")
    assert (row["warn"], row["fail"], row["status"]) == (0.3, 0.25, "ok")
    rows = evaluate_checks(_report(templated=0.3), {"templated": {"fail": None}})
    assert _status(rows)["templated"] == "warn"
    rows = evaluate_checks(_report(leakage=0.2), {"leakage": {"warn": 0.1, "fail": 0.15}})
    assert _status(rows)["leakage"] == "fail"
    with pytest.raises(ValueError, match="unknown check"):
        evaluate_checks(_report(), {"templates": {"warn": 0.1}})
    with pytest.raises(ValueError, match="data.fail_on"):
        evaluate_checks(_report(), fail_on=["nope"])


def test_raise_on_failures_names_check_value_threshold():
    report = _report(validators=0.6667, templated=0.3)
    report["checks"] = evaluate_checks(report, fail_on=["validators"])
    report["fail_on"] = ["validators"]
    with pytest.raises(DataCheckFailed) as err:
        raise_on_failures(report)
    msg = str(err.value)
    assert "validators: measured 0.6667 ≥ fail threshold 0.01" in msg
    assert "training will not start" in msg
    assert "templated" not in msg.split("\n", 1)[1].split("Fix")[0]  # templated failed but is not in fail_on
    assert [c["name"] for c in err.value.failed] == ["validators"]
    report["fail_on"] = ["templated", "validators"]
    with pytest.raises(DataCheckFailed, match="2 data checks"):
        raise_on_failures(report)
    report["fail_on"] = ["leakage"]
    raise_on_failures(report)  # leakage did not fail: nothing raised


# --------------------------------------------------------------------------- the whole report
def _teaching_phase(**data):
    return PhaseParams.model_validate(
        {
            "data": {
                "source": "generated",
                "generator": "gaplab.data.teaching:qa_defects",
                "generator_args": {"n": 200, "seed": 0},
                "split": "tail",
                "val_fraction": 0.1,
                "validators": ["gaplab.data.validators:cart_arithmetic"],
                **data,
            },
            "tokenizer": {"name": "char", "compact": False},
            "model": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 64},
            "train": {"max_iters": 100, "batch_size": 4, "eval_interval": 50},
        }
    )


COUNTS = {"total": 20_000, "embedding": 5_000, "non_embedding": 15_000}


def test_build_report_on_the_teaching_corpus():
    from gaplab.data.split import prepare_data

    params = _teaching_phase(fail_on=["validators"])
    prep = prepare_data(params)
    report = build_report(prep, params, param_counts=COUNTS)
    json.dumps(report, allow_nan=False)  # plain JSON, no numpy types
    assert report["size"]["documents"] == 200
    assert report["duplicates"]["templated"]["share"] == 0.30
    assert report["boilerplate"]["share"] == 0.25
    assert report["duplicates"]["exact"]["documents"] == 0
    v = report["validators"]["validators"]["gaplab.data.validators:cart_arithmetic"]
    assert (v["checked"], v["failing"], v["skipped"]) == (60, 40, 140)
    # the key examples sit at the end: the tail split puts them all in val
    key = next(r for r in report["split"]["sources"] if r["source"] == "key_examples")
    assert key["train_documents"] == 0 and key["val_documents"] == 10
    assert report["split"]["imbalance"]["source"] == "key_examples"
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert status["templated"] == "fail" and status["boilerplate"] == "warn"
    assert status["split_imbalance"] == "fail" and status["validators"] == "fail"
    assert report["failed"] == ["validators"]
    # model against data: epochs from the configured iterations
    mvd = report["model_vs_data"]
    assert mvd["epochs"] == pytest.approx(100 * 4 * 64 / report["size"]["train_tokens"])
    assert mvd["tokens_per_param_non_emb"] == pytest.approx(report["size"]["train_tokens"] / 15_000)
    # vocabulary: the char tokenizer's vocabulary is the corpus's characters plus one unknown id
    vocab = report["size"]["vocab"]
    assert vocab["vocab_size_original"] == vocab["used_ids"] + 1
    assert vocab["wasted_embedding_params"] == vocab["unused_rows"] * 16
    with pytest.raises(DataCheckFailed, match="validators"):
        raise_on_failures(report)


def test_document_split_balances_the_key_examples():
    from gaplab.data.split import prepare_data

    params = _teaching_phase(split="documents")
    report = build_report(prepare_data(params), params, param_counts=COUNTS)
    assert report["split"]["imbalance"]["value"] < 0.5
    assert {c["name"]: c["status"] for c in report["checks"]}["split_imbalance"] == "ok"
    assert report["failed"] == []
    # leakage is measured on the original ids: a templated family spread over both splits leaks
    assert report["leakage"]["ngram"]["share"] > 0
    assert math.isfinite(report["leakage"]["ngram"]["share"])


def test_build_report_counts_parameters_with_the_model_module():
    from gaplab.data.split import prepare_data
    from gaplab.model.gpt import count_params

    params = _teaching_phase(generator_args={"n": 60, "seed": 1})
    prep = prepare_data(params)
    report = build_report(prep, params)
    assert report["model_vs_data"]["params"] == count_params(params.model, prep.vocab_size)
