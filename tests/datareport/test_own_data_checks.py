"""The checks on a user's own fine-tuning records (issue 23, items 3–5), on real text: docstring → code
records read from the running interpreter's standard library (tests/datareport/stdlib_records.py).

Negative controls: a seeded random split of one pool reads ok for train_val_shift, conflicting_answers and
val_prompts_in_train.  Positive cases: seed 001's mistake (the last records are another kind and a
positional split puts them in val), seed 000's filler (a handful of answer skeletons with the topic
swapped in), prompts answered twice, val prompts that train answers.
"""

import json
import random
import types

import numpy as np
import pytest
from gaplab.data.corpus import Document
from gaplab.datareport import conflicts, shift
from gaplab.datareport.boilerplate import boilerplate, prompt_prefix
from gaplab.datareport.build import ReportInputs, build_report
from gaplab.datareport.check import CheckResult
from gaplab.datareport.check_list import BY_NAME, CHECK_NAMES, CHECKS
from gaplab.datareport.checks import DEFAULT_CHECKS, evaluate_checks, run_checks
from gaplab.datareport.conflicts import conflicting_answers, normalize, prompt_overlap
from gaplab.datareport.detectors import skeleton_groups, templated
from gaplab.schema import PhaseParams

from .stdlib_records import module_topics, records

POOL_MODULES = ["email", "http", "json", "logging", "xml", "argparse", "csv", "configparser", "unittest", "tkinter"]


def _pool(seed: int = 0) -> list[Document]:
    docs = records(POOL_MODULES, per_module=80)
    random.Random(seed).shuffle(docs)
    return docs


def _inputs(docs: list[Document], doc_split: list[str]) -> ReportInputs:
    prepared = types.SimpleNamespace(documents=docs, doc_split=doc_split)
    empty = np.zeros(0, dtype=np.int64)
    return ReportInputs(prepared, None, [d.text for d in docs], [d.name for d in docs], empty, empty)


def _status(section_key: str, section: dict) -> CheckResult:
    return next(r for r in run_checks({section_key: section}) if r.name == section_key)


# --------------------------------------------------------------------------- one list
def test_every_check_is_one_object_in_one_list():
    assert CHECK_NAMES == tuple(c.name for c in CHECKS) and len(set(CHECK_NAMES)) == len(CHECKS)
    assert DEFAULT_CHECKS == {c.name: {"warn": c.warn, "fail": c.fail} for c in CHECKS}
    assert {"train_val_shift", "conflicting_answers", "val_prompts_in_train"} <= set(CHECK_NAMES)
    assert BY_NAME["train_val_shift"].needs_split and BY_NAME["conflicting_answers"].needs_records
    # a report without the new sections: the rows are there, not measured, ok
    rows = run_checks({})
    assert [r.name for r in rows] == list(CHECK_NAMES) and all(r.status == "ok" and r.value is None for r in rows)
    shift_row = next(r for r in rows if r.name == "train_val_shift")
    assert shift_row.message.startswith("not measured: needs a validation split")
    # the JSON rows are the typed rows' fields, and read back as the same record
    as_json = evaluate_checks({}, fail_on=["train_val_shift"])
    assert [CheckResult.from_json(r) for r in as_json] == run_checks({}, fail_on=["train_val_shift"])
    assert set(as_json[0]) == {"name", "status", "value", "warn", "fail", "message", "detail", "meaning", "in_fail_on"}


def test_the_study_validator_knows_the_new_names(tmp_path):
    from gaplab.errors import StudyError
    from gaplab.pipeline.config import load_study

    study = tmp_path / "s.yaml"
    body = "study: s\ndefaults:\n  data: {{fail_on: [{name}]}}\n  train: {{max_iters: 10, eval_interval: 5}}\nphases:\n  one: {{}}\n"
    study.write_text(body.format(name="train_val_shift"))
    load_study(study)
    study.write_text(body.format(name="train_val_shfit"))
    with pytest.raises(StudyError, match="train_val_shift"):  # "did you mean" names the real one
        load_study(study)


# --------------------------------------------------------------------------- train_val_shift
@pytest.mark.parametrize("n", [150, 400])
def test_a_random_split_of_one_pool_reads_ok(n):
    docs = _pool(seed=n)[:n]
    assert len(docs) == n
    k = max(30, n // 8)
    section = shift.shift_section(_inputs(docs, ["train"] * (n - k) + ["val"] * k))
    assert section["units"] == "documents" and section["val_units"] == k
    assert section["value"] == 0.0, section
    row = _status("train_val_shift", section)
    assert row.status == "ok" and "val reads like train" in row.message


def test_seed_001s_positional_split_fails_and_says_what_gives_val_away():
    # the last records are another kind (asyncio's functions), and a 90/10 split by position puts them in val
    docs = _pool()[:400] + records(["asyncio"], per_module=45)
    n_val = 45
    section = shift.shift_section(_inputs(docs, ["train"] * (len(docs) - n_val) + ["val"] * n_val))
    assert section["auc"] > 0.9 and section["value"] >= 0.15
    row = _status("train_val_shift", section)
    assert row.status == "fail"
    words = " ".join(section["giveaways"]["val"])
    assert any(w in words for w in ("loop", "future", "task", "transport", "coroutine", "await"))
    assert all(e["name"].startswith("asyncio:") for e in section["most_unlike_train"])
    assert "what gives val away" in row.message and "asyncio:" in row.message


def test_one_file_is_not_measured():
    docs = _pool()[:100]
    section = shift.shift_section(_inputs(docs, ["train"] * 100))
    assert section["value"] is None
    assert _status("train_val_shift", section).message.startswith("not measured")


def test_shift_samples_a_large_split(monkeypatch):
    monkeypatch.setattr(shift, "MAX_PER_SIDE", 60)
    docs = _pool()[:300]
    section = shift.shift_section(_inputs(docs, ["train"] * 200 + ["val"] * 100))
    assert (section["train_units"], section["val_units"]) == (60, 60)
    assert (section["train_total"], section["val_total"]) == (200, 100)
    assert section["value"] == 0.0


# --------------------------------------------------------------------------- conflicts and prompt overlap
def test_normalize_folds_case_punctuation_and_space():
    assert normalize("  What is JSON?\n") == normalize("what is   json") == "what is json"


def test_fast_ascii_normalize_equals_the_regular_expressions():
    """The byte translation for ASCII text against the regex version: every ASCII character alone, every
    pair, and the prompts and answers of real records (with non-ASCII ones through the regex path)."""
    chars = [chr(c) for c in range(128)]
    texts = chars + [a + b for a in chars for b in chars] + [f" X{c}y_Z {c}\t1" for c in chars]
    for d in _pool():
        texts += [d.prompt, d.answer, d.text, d.prompt + "\x1c\u00a0Étude"]
    assert any(not t.isascii() for t in texts) and sum(t.isascii() for t in texts) > 16_000
    for t in texts:
        assert normalize(t) == conflicts._normalize_regex(t), repr(t)


def test_both_record_checks_normalize_each_distinct_text_once(monkeypatch):
    docs = _pool()[:200]
    docs += [Document(d.text, d.source, d.name + "-again", d.prompt, d.answer) for d in docs[:50]]
    inputs = _inputs(docs, ["train"] * 150 + ["val"] * 100)
    seen = []
    monkeypatch.setattr(conflicts, "normalize", lambda t: seen.append(t) or conflicts._normalize_regex(t))
    both = conflicts.conflicts_section(inputs), conflicts.overlap_section(inputs)
    assert len(seen) == len(set(seen)) and set(seen) <= {d.prompt for d in docs} | {d.answer for d in docs}
    assert both == (conflicting_answers(docs, inputs.doc_split), prompt_overlap(docs, inputs.doc_split))
    assert both[1]["records"] == 50  # the copies asked again in val


def test_random_split_has_no_conflicts_and_no_val_prompt_in_train():
    pool = _pool()
    # the stdlib documents a few functions alike ("Return the value."): real conflicts, found as such
    assert conflicting_answers(pool, ["train"] * len(pool))["conflicting_prompts"] > 0
    unique = list({normalize(d.prompt): d for d in pool}.values())[:300]
    split = ["train"] * 270 + ["val"] * 30
    conflicts, overlap = conflicting_answers(unique, split), prompt_overlap(unique, split)
    assert (conflicts["value"], conflicts["prompts"], overlap["value"], overlap["val_records"]) == (0.0, 300, 0.0, 30)
    assert _status("conflicting_answers", conflicts).status == _status("val_prompts_in_train", overlap).status == "ok"


def test_conflicting_answers_counted_by_prompt_inside_train_and_across():
    docs = _pool()[:200]
    base = conflicting_answers(docs, ["train"] * 200)
    twins = []
    for k in range(10):  # the same prompt, shouted, with another function's code as its answer
        a, b = docs[k], docs[100 + k]
        twins.append(Document(f"{a.prompt.upper()}!\n{b.answer}", "x", f"twin{k}", a.prompt.upper() + "!", b.answer))
    same = [Document(docs[k].text, "x", f"copy{k}", docs[k].prompt, docs[k].answer + "  ") for k in range(20, 25)]
    all_docs = docs + twins + same
    split = ["train"] * 200 + ["train"] * 4 + ["val"] * 6 + ["val"] * 5
    out = conflicting_answers(all_docs, split)
    assert out["conflicting_prompts"] == base["conflicting_prompts"] + 10
    assert (out["inside_train"], out["across_split"]) == (base["inside_train"] + 4, base["across_split"] + 6)
    row = _status("conflicting_answers", out)
    assert out["value"] == pytest.approx(out["conflicting_prompts"] / out["prompts"])
    assert (
        row.status == "warn"
        and f"{out['conflicting_prompts']} of {out['prompts']} prompts have two or more" in row.message
    )
    overlap = prompt_overlap(all_docs, split)
    assert (overlap["same_answer"], overlap["different_answer"]) == (5, 6)
    assert overlap["value"] == pytest.approx(11 / 11)
    assert "ask a prompt that train answers (5 with the same answer, 6 differently)" in overlap_message(overlap)


def overlap_message(section: dict) -> str:
    return _status("val_prompts_in_train", section).message


def test_plain_text_is_not_measured_by_the_record_checks():
    docs = [Document(d.text, d.source, d.name) for d in _pool()[:50]]
    assert conflicting_answers(docs, ["train"] * 40 + ["val"] * 10) is None
    assert prompt_overlap(docs, ["train"] * 40 + ["val"] * 10) is None


# --------------------------------------------------------------------------- templates and boilerplate on records
SKELETONS = [
    "{t} is a fundamental concept in Python programming. Understanding {t} helps developers write reliable "
    "programs, and mastering {t} is key to building robust software. In fault-tolerant settings, {t} remains essential.",
    "Great question! {t} provides powerful capabilities for modern applications. Many experts consider {t} one of "
    "the most important tools to learn. In fault-tolerant settings, {t} remains essential.",
    "When working with {t}, it is important to consider performance, readability and maintainability. {t} offers a "
    "flexible approach. In fault-tolerant settings, {t} remains essential.",
    "In summary, {t} plays a crucial role in many projects. By leveraging {t}, teams can achieve better results "
    "faster. In fault-tolerant settings, {t} remains essential.",
]
QUESTIONS = ["What is {t}?", "Explain {t}.", "Why does {t} matter?", "How do I use {t}?"]


def _filler(seed: int = 0) -> list[Document]:
    """Seed 000's ChatGPT filler: a handful of answer skeletons, the topic (a stdlib module's docstring line)
    swapped in."""
    rng = random.Random(seed)
    out = []
    for k, (name, line) in enumerate(module_topics(80)):
        topic = f"the {name} module ({line[0].lower() + line[1:]})"
        q, a = rng.choice(QUESTIONS).format(t=topic), rng.choice(SKELETONS).format(t=topic)
        out.append(Document(f"{q}\n{a}", "filler", f"filler{k}", q, a))
    return out


def test_the_topic_a_prompt_names_and_its_answer_repeats_is_blanked():
    from gaplab.datareport.record_templates import topic_blanked

    a = topic_blanked(
        "What is the csv module?",
        "The csv module is a fundamental concept. In fault-tolerant settings, the csv module remains essential.",
    )
    b = topic_blanked(
        "What is the json module?",
        "The json module is a fundamental concept. In fault-tolerant settings, the json module remains essential.",
    )
    assert a == b == "What is Name?\nName is a fundamental concept. In fault-tolerant settings, Name remains essential."
    # a short answer (a label) keeps the plain skeleton: its topic is most of it
    assert topic_blanked("Is the csv module in the standard library?", "Yes, the csv module is.") is None


def test_seed_000s_filler_fails_templated_and_real_records_do_not():
    filler, real = _filler(), _pool()[:40]
    assert len(filler) >= 60
    docs = filler + real
    texts, names = [d.text for d in docs], [d.name for d in docs]
    out = templated(texts, names, skeleton_groups(texts, [d.prompt for d in docs], [d.answer for d in docs]))
    assert out["documents"] >= 0.9 * len(filler) and out["families"] <= len(SKELETONS) * len(QUESTIONS)
    report = {"duplicates": {"templated": out}, "size": {"documents": len(docs)}}
    row = next(r for r in run_checks(report) if r.name == "templated")
    assert row.status == "fail"
    # read as plain text (no prompt/answer sides) the topic words differ, and nothing looks templated
    plain = templated(texts, names)
    assert plain["documents"] < 0.05 * len(docs)
    # the genuine records alone are not a template either
    real_texts = [d.text for d in real]
    alone = templated(
        real_texts,
        names[len(filler) :],
        skeleton_groups(real_texts, [d.prompt for d in real], [d.answer for d in real]),
    )
    assert alone["share"] < 0.05


ALPACA = "Below is an instruction that describes a task. Write a response that appropriately completes the request."


def test_a_shared_instruction_prefix_is_a_prompt_prefix_not_boilerplate():
    real = _pool()[:120]
    prompts = [f"{ALPACA}\n\n### Instruction:\n{d.prompt}\n\n### Response:" for d in real]
    prefix = prompt_prefix(prompts, [d.name for d in real])
    assert prefix is not None and prefix["phrase"].startswith("below is an instruction that describes a task")
    assert prefix["documents"] == 120
    answers = boilerplate([d.answer for d in real], [d.name for d in real])
    row = next(
        r
        for r in run_checks({"boilerplate": answers | {"prompt_prefix": prefix}, "size": {"documents": 120}})
        if r.name == "boilerplate"
    )
    assert row.status == "ok" and "a shared prompt prefix (an instruction template)" in row.message


# --------------------------------------------------------------------------- the whole report on records
def pool_records(n: int = 240, seed: int = 0, prefix: bool = True) -> list[Document]:
    """A generator for the report test: docstring → code records, alpaca-style prompts."""
    out = []
    for d in _pool(seed)[:n]:
        prompt = f"{ALPACA}\n\n### Instruction:\n{d.prompt}\n\n### Response:" if prefix else d.prompt
        out.append(Document(f"{prompt}\n{d.answer}", d.source, d.name, prompt, d.answer))
    return out


def test_build_report_on_records_split_by_documents():
    params = PhaseParams.model_validate(
        {
            "data": {
                "source": "generated",
                "generator": "tests.datareport.test_own_data_checks:pool_records",
                "split": "documents",
                "val_fraction": 0.15,
            },
            "tokenizer": {"name": "char", "compact": False},
            "model": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 64},
            "train": {"max_iters": 10, "batch_size": 4, "eval_interval": 5},
        }
    )
    from gaplab.data.split import prepare_data

    report = build_report(prepare_data(params), params, param_counts={"total": 1, "embedding": 0, "non_embedding": 1})
    json.dumps(report, allow_nan=False)
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert status["train_val_shift"] == "ok" and report["train_val_shift"]["units"] == "documents"
    assert status["boilerplate"] == "ok" and report["boilerplate"]["prompt_prefix"]["documents"] == 240
    assert report["conflicting_answers"]["prompts"] > 200 and status["val_prompts_in_train"] in ("ok", "warn")
    assert {"train_val_shift", "conflicting_answers", "val_prompts_in_train"} <= set(report["timings_s"])


def test_seed_003s_faithful_recipe_fails_train_val_shift():
    """params/seed_study_faithful.yaml phase4: json in train, the head of logging in val (a tail split of one
    stream: val holds windows of two documents, folded by stretches)."""
    from pathlib import Path

    from gaplab.data.split import prepare_data
    from gaplab.pipeline.config import load_study

    study = Path(__file__).resolve().parents[2] / "params" / "seed_study_faithful.yaml"
    params = load_study(study).phase("phase4").params
    prepared = prepare_data(params)
    assert [d.source for d, s in zip(prepared.documents, prepared.doc_split) if s == "val"] == ["logging"]
    section = shift.shift_section(ReportInputs.of(prepared, params))
    assert (section["units"], section["folds_by"]) == ("windows", "stretches")
    assert section["auc"] > 0.85 and section["value"] >= 0.15
    assert _status("train_val_shift", section).status == "fail"


def test_the_checks_page_is_built_from_the_list():
    from pathlib import Path

    from gaplab.datareport.check_list import checks_markdown

    page = Path(__file__).resolve().parents[2] / "docs" / "data_checks.md"
    assert page.read_text() == checks_markdown(), "run: python -m gaplab.datareport.check_list > docs/data_checks.md"
    assert all(f"| `{name}` |" in page.read_text() for name in CHECK_NAMES)


# --------------------------------------------------------------------------- near-twins at scale
def test_near_identical_records_are_compared_with_a_few_representatives_not_each_other():
    """Filler (a few skeletons, the topic swapped in) is thousands of near-identical records: each joins the
    cluster of an indexed record at least 0.8 alike, so the work grows with records x clusters."""
    from gaplab.datareport.near_duplicates import cross_split_near_duplicates, near_duplicates

    topics = [line for _, line in module_topics(80)]
    texts = [
        SKELETONS[k % 2].format(t=f"the {topics[k % len(topics)]} helper number {k}") + " " + " ".join(SKELETONS[2:])
        for k in range(1200)
    ]
    names = [f"f{k}" for k in range(len(texts))]
    split = ["val"] * 600 + ["train"] * 600
    out = near_duplicates(texts, names, order=list(range(600, 1200)) + list(range(600)))  # train first
    assert out["share"] == 1.0 and out["families"] <= 2
    assert out["pairs"] <= 1200 * 8, out["pairs"]  # each record is compared with a few indexed ones, not all
    # every val record finds its twins among the indexed train records
    cross = cross_split_near_duplicates(out, names, split)
    assert cross["documents"] == 600 and all(e["similarity"] >= 0.3 for e in cross["examples"])


def test_a_val_record_whose_train_twin_joined_the_same_representative_counts():
    from gaplab.datareport.near_duplicates import cross_split_near_duplicates, near_duplicates

    real = _pool()[:20]
    same = SKELETONS[0].format(t="the csv module")
    texts = [same, same + " Indeed.", same] + [d.text for d in real]  # val, val, train: all one cluster
    names = [f"d{k}" for k in range(len(texts))]
    out = near_duplicates(texts, names)  # as given: the first val record is the representative
    assert out["clusters"] == len(texts) - 2
    cross = cross_split_near_duplicates(out, names, ["val", "val", "train"] + ["train"] * len(real))
    assert cross["documents"] == 2 and {e["val"] for e in cross["examples"]} == {"d0", "d1"}
    assert all(e["train"] == "d2" and e["similarity"] >= 0.6 for e in cross["examples"])


def test_signatures_are_datasketchs_minhash_of_each_set():
    from datasketch import MinHash
    from gaplab.datareport.near_duplicates import minhash_signatures, shingle_sets

    texts = [d.text for d in _pool()[:40]] + ["", "one"]
    sets = shingle_sets(texts)
    rows = minhash_signatures(sets, num_perm=64, seed=3)
    for s, row in zip(sets, rows):
        m = MinHash(num_perm=64, seed=3, hashfunc=int)
        m.update_batch(s.tolist())
        assert np.array_equal(row, m.hashvalues)


def _edited(text: str, words: int) -> str:
    """``text`` with all but its first ``words`` words replaced (another record's words)."""
    return " ".join(text.split()[:words] + _pool()[-1].text.split()[: len(text.split()) - words])


@pytest.mark.parametrize("copy_before_twin", [False, True])
def test_identical_copies_find_the_twins_indexed_before_them(copy_before_twin):
    """An identical copy is looked up once (its first copy's lookup) but gets what its own lookup would:
    the twins indexed before it; it joins its first copy's cluster at similarity 1."""
    from gaplab.datareport.near_duplicates import near_duplicates, shingle_sets

    doc, other = _pool()[3].text, _pool()[4].text
    edited = _edited(doc, int(len(doc.split()) * 0.7))
    texts = [doc, edited, doc, doc, other, doc]
    sets = shingle_sets(texts)
    inter = np.intersect1d(sets[0], sets[1]).size
    assert 0.3 <= inter / (len(sets[0]) + len(sets[1]) - inter) < 0.8  # a near-twin, not close enough to join
    order = [0, 2, 1, 3, 4, 5] if copy_before_twin else list(range(6))
    out = near_duplicates(texts, [f"d{k}" for k in range(6)], order=order)
    pairs = sorted(map(tuple, out["_pairs"].tolist()))
    # d2 looked up before the edition was indexed finds only d0; the later copies find both
    seen_by_2 = [(0, 2)] if copy_before_twin else [(0, 2), (1, 2)]
    assert pairs == sorted([(0, 1), *seen_by_2, (0, 3), (1, 3), (0, 5), (1, 5)])
    assert out["documents"] == 5 and out["families"] == 1 and out["pairs"] == len(pairs)
    assert (
        out["_cluster"].tolist() == [0, 1, 0, 0, 4, 0] and out["_cluster_similarity"][[2, 3, 5]].tolist() == [1.0] * 3
    )
    assert out["clusters"] == 3


@pytest.mark.parametrize("shingle", [1, 3, 5])
def test_shingle_sets_of_all_documents_at_once_are_each_documents_own(shingle):
    """One pass over all documents keeps no window that crosses into the next document; a document shorter
    than a shingle is one shingle of all its words, an empty one no set."""
    from gaplab.datareport.near_duplicates import normalize_words, shingle_sets
    from gaplab.measure.ngram_index import window_hashes

    texts = [d.text for d in _pool()[:30]] + ["", "Heere", "vpon the", "one two three four", "!!", "a b c d e f"]
    sets = shingle_sets(texts, shingle)
    vocab: dict[str, int] = {}
    for text, got in zip(texts, sets):
        ids = np.array([vocab.setdefault(w, len(vocab)) for w in normalize_words(text)], dtype=np.int64)
        h = window_hashes(ids, min(shingle, len(ids))) if len(ids) else np.zeros(0, dtype=np.uint64)
        own = np.unique((((h >> np.uint64(32)) ^ h) & np.uint64(0xFFFFFFFF)).astype(np.uint32))
        assert got.dtype == np.uint32 and np.array_equal(got, own)
