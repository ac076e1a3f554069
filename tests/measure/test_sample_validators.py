"""sample.validators: the data validators run on generated samples, counted right on crafted samples."""

from __future__ import annotations

import json

import pytest
from gaplab.measure.samples import sample_document_text, validate_samples

CART = "gaplab.data.validators:cart_arithmetic"
PROMPT = '{"cart_id": "'


def _cart(total_ok: bool = True) -> str:
    items = [
        {"product_name": "Mug", "quantity": 2, "price": 10.5},
        {"product_name": "Lamp", "quantity": 1, "price": 30.0},
    ]
    cart = {
        "cart_id": "c1",
        "items": items,
        "subtotal": 51.0,
        "tax": 4.08,
        "shipping_cost": 7.5,
        "total": 62.58 if total_ok else 418.2,
    }
    return json.dumps(cart)


def _sample(full: str, checkpoint: str = "best") -> dict:
    """A generated sample as 04_samples writes it: the prompt, the continuation and both together."""
    assert full.startswith(PROMPT)
    return {"prompt": PROMPT, "text": full[len(PROMPT) :], "full_text": full, "checkpoint": checkpoint}


def raises_on_lamps(document):
    if "Lamp" in document.text:
        raise RuntimeError("lamps are not allowed")
    return []


def test_cart_totals_on_crafted_samples_are_counted():
    samples = [
        _sample(_cart()),  # adds up
        _sample(_cart() + "\n\n" + '{"cart_id": "c2", "items'),  # adds up; a second cart begins after the separator
        _sample(_cart(total_ok=False)),  # a decorative total
        _sample(_cart()[:60]),  # cut off: no cart to check
        _sample(PROMPT + 'c9", "note": "no items here"}'),  # JSON, but not a cart: the validator does not apply
        _sample(_cart(total_ok=False) + "\n\n" + _cart()),  # only the first document counts: fails
    ]
    rows, agg = validate_samples(samples, [CART], separator="\n\n")
    assert [r["validators_ok"] for r in rows] == [True, True, False, None, None, False]
    assert [r["validators_checked"] for r in rows] == [True, True, True, False, False, True]
    assert agg["validators_checked_count"] == 4 and agg["validators_pass_count"] == 2
    assert agg["validators_checked_share"] == pytest.approx(4 / 6)
    assert agg["validators_pass_share"] == pytest.approx(2 / 4)
    assert agg["validators_by_name"] == {CART: {"checked": 4, "passing": 2, "pass_share": 0.5}}
    assert "but total is 418.20" in rows[2]["validator_problems"][0]
    assert rows[0]["validator_problems"] == [] and rows[3]["validator_problems"] == []
    assert samples[0].get("validators_ok") is None  # the input rows are not changed


def test_without_a_separator_the_whole_sample_counts():
    joined = _sample(_cart() + "\n\n" + _cart())
    assert sample_document_text(joined, "\n\n") == _cart()
    assert sample_document_text(joined, "") == joined["full_text"]
    # a separator inside the prompt does not end the document; only one the model wrote does
    row = {"prompt": "a\n\nb", "text": " c\n\nd", "full_text": "a\n\nb c\n\nd"}
    assert sample_document_text(row, "\n\n") == "a\n\nb c"
    _, agg = validate_samples([joined], [CART], separator="")
    assert agg["validators_checked_count"] == 0 and agg["validators_pass_share"] is None  # two carts: not one JSON


def test_several_validators_and_one_that_raises():
    samples = [_sample(_cart()), _sample(PROMPT + 'c2", "items": [], "total": 0}'), _sample(PROMPT + "not json at all")]
    rows, agg = validate_samples(samples, ["json_valid", CART, "tests.measure.test_sample_validators:raises_on_lamps"])
    # sample 0: all three apply; the raising validator makes it fail (a bug in a validator never hides a sample)
    assert rows[0]["validators_ok"] is False and any("raised RuntimeError" in p for p in rows[0]["validator_problems"])
    assert rows[1]["validators_ok"] is True  # an empty cart with total 0 adds up; valid JSON; no lamp
    assert rows[2]["validators_ok"] is False  # json_valid applies to any text and fails it
    assert agg["validators_pass_share"] == pytest.approx(1 / 3)
    by = agg["validators_by_name"]
    assert by["json_valid"] == {"checked": 3, "passing": 2, "pass_share": pytest.approx(2 / 3)}
    assert by[CART] == {"checked": 2, "passing": 2, "pass_share": 1.0}
    assert validate_samples([], [CART])[1]["validators_checked_share"] is None


def test_cart_total_near_tells_a_related_total_from_a_decorative_one():
    """A total 3% off fails cart_arithmetic but passes cart_total_near; a random one fails both."""
    near = _cart().replace('"total": 62.58', '"total": 64.4')
    samples = [_sample(_cart()), _sample(near), _sample(_cart(total_ok=False)), _sample(PROMPT + "x")]
    rows, agg = validate_samples(samples, [CART, "cart_total_near"])
    by = agg["validators_by_name"]
    assert by[CART] == {"checked": 3, "passing": 1, "pass_share": pytest.approx(1 / 3)}
    assert by["cart_total_near"] == {"checked": 3, "passing": 2, "pass_share": pytest.approx(2 / 3)}
    assert [r["validators_ok"] for r in rows] == [True, False, False, None]  # a sample passes when all pass
    assert any("not within 5% of subtotal + tax + shipping = 62.58" in p for p in rows[2]["validator_problems"])
    rows, _ = validate_samples(
        [_sample(PROMPT + 'c", "items": [], "subtotal": "n/a", "total": 3}')], ["cart_total_near"]
    )
    assert rows[0]["validator_problems"] == ["'subtotal' is not a number ('n/a')"]
