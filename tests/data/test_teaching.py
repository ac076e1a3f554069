import collections

import pytest
from gaplab.data.teaching import BOILERPLATE, expected_shares, qa_defects
from gaplab.data.validators import run_validators
from gaplab.datareport import boilerplate as boilerplate_mod
from gaplab.datareport import detectors as detectors_mod
from gaplab.datareport.detectors import exact_duplicates, skeleton_groups


def _recovered(docs):
    texts = [d.text for d in docs]
    names = [d.name for d in docs]
    groups = skeleton_groups(texts)
    return {
        "templated": detectors_mod.templated(texts, names, groups),
        "boilerplate": boilerplate_mod.boilerplate(texts, names, groups=groups),
        "exact": exact_duplicates(texts, names),
        "validators": run_validators(docs, ["cart_arithmetic"])["validators"]["cart_arithmetic"],
    }


def test_default_counts_and_sources():
    docs = qa_defects()
    assert len(docs) == 400
    counts = collections.Counter(d.source for d in docs)
    assert counts == {"qa/templated": 120, "qa/boilerplate": 100, "cart": 120, "key_examples": 20, "qa/plain": 40}
    assert expected_shares()["sources"] == dict(counts)
    # the key examples sort to the end, so a tail split takes them
    assert all(d.source == "key_examples" for d in docs[-20:])
    assert not any(d.source == "key_examples" for d in docs[:-20])
    assert sum(d.text.endswith(BOILERPLATE) for d in docs) == 100
    assert len({d.name for d in docs}) == 400


def test_seeded():
    a, b, c = qa_defects(n=60, seed=3), qa_defects(n=60, seed=3), qa_defects(n=60, seed=4)
    assert [(d.text, d.source, d.name) for d in a] == [(d.text, d.source, d.name) for d in b]
    assert [d.text for d in a] != [d.text for d in c]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {
            "n": 1000,
            "seed": 7,
            "templated_share": 0.2,
            "boilerplate_share": 0.15,
            "broken_total_share": 0.1,
            "tail_source_share": 0.02,
        },
        {
            "n": 250,
            "seed": 1,
            "templated_share": 0.4,
            "boilerplate_share": 0.3,
            "broken_total_share": 0.05,
            "tail_source_share": 0.04,
            "cart_share": 0.2,
        },
    ],
)
def test_detectors_recover_the_planted_shares_exactly(kwargs):
    docs = qa_defects(**kwargs)
    exp = expected_shares(**kwargs)
    got = _recovered(docs)
    assert got["templated"]["share"] == exp["shares"]["templated"]
    assert got["templated"]["families"] == 1
    assert got["boilerplate"]["share"] == exp["shares"]["boilerplate"]
    assert [p["phrase"] for p in got["boilerplate"]["phrases"]] == [
        "i hope this helps let me know if you have any other questions"
    ]
    assert got["exact"]["documents"] == 0
    v = got["validators"]
    assert v["failing"] == exp["counts"]["broken_totals"]
    assert v["checked"] == exp["counts"]["carts"]
    assert v["share"] == pytest.approx(exp["broken_totals_of_carts"])
    # the documents found are exactly the planted ones
    n = len(docs)
    assert (
        got["templated"]["documents"]
        == sum(d.source == "qa/templated" for d in docs)
        == round(kwargs.get("templated_share", 0.3) * n)
    )


def test_broken_carts_are_exactly_the_failing_ones():
    docs = qa_defects(n=100, seed=2)
    failing = run_validators(docs, ["cart_arithmetic"])["validators"]["cart_arithmetic"]["failing"]
    assert failing == round(0.2 * 100)


def test_impossible_shares_are_refused():
    with pytest.raises(ValueError, match="more than n = 100"):
        qa_defects(n=100, templated_share=0.6, boilerplate_share=0.3)
    with pytest.raises(ValueError, match="templated_share = 1.5"):
        qa_defects(templated_share=1.5)
    with pytest.raises(ValueError, match="n = 0"):
        qa_defects(n=0)
