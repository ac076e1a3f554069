import json

import pytest
from gaplab.data.corpus import Document
from gaplab.data.validators import cart_arithmetic, json_valid, load_validator, run_validators
from gaplab.errors import ValidatorError


def doc(text, name="d", source="s"):
    return Document(text=text, source=source, name=name)


def cart(total_delta=0.0, subtotal_delta=0.0, **extra):
    items = [
        {"product_id": "p1", "product_name": "Lamp", "quantity": 2, "price": 19.99},
        {"product_id": "p2", "product_name": "Mug", "quantity": 3, "price": 4.5},
    ]
    subtotal = round(2 * 19.99 + 3 * 4.5, 2)  # 53.48
    tax, shipping = 4.28, 7.0
    c = {
        "items": items,
        "subtotal": round(subtotal + subtotal_delta, 2),
        "tax": tax,
        "shipping_cost": shipping,
        "total": round(subtotal + tax + shipping + total_delta, 2),
    }
    c.update(extra)
    return json.dumps(c)


# --------------------------------------------------------------------------- json_valid
def test_json_valid_accepts_one_value_and_json_lines():
    assert json_valid(doc('{"a": 1, "b": [1, 2]}')) == []
    assert json_valid(doc('{"a": 1}\n{"a": 2}\n\n[3]\n')) == []


def test_json_valid_names_the_bad_line():
    problems = json_valid(doc('{"a": 1}\n{"a": 2,}\n'))
    assert len(problems) == 1
    assert "line 2 is not JSON" in problems[0]
    assert json_valid(doc('{"a": ')) and "not JSON" in json_valid(doc('{"a": '))[0]
    assert json_valid(doc("   ")) == ["empty document (no JSON value)"]


# --------------------------------------------------------------------------- cart_arithmetic
def test_cart_that_adds_up_passes():
    assert cart_arithmetic(doc(cart())) == []


def test_broken_total_is_reported_with_the_numbers():
    problems = cart_arithmetic(doc(cart(total_delta=25.0)))
    assert len(problems) == 1
    assert "subtotal 53.48 + tax 4.28 + shipping 7.00 = 64.76 but total is 89.76" in problems[0]
    assert "off by 25.00" in problems[0]


def test_items_not_summing_to_subtotal_is_reported():
    # subtotal off by 10 and total consistent with the wrong subtotal: only the items check fails
    problems = cart_arithmetic(doc(cart(subtotal_delta=10.0, total_delta=10.0)))
    assert problems == ["items sum to 53.48 (quantity × price) but subtotal is 63.48 (off by 10.00)"]


def test_cent_tolerance():
    assert cart_arithmetic(doc(cart(total_delta=0.01))) == []
    assert len(cart_arithmetic(doc(cart(total_delta=0.02)))) == 1
    assert len(cart_arithmetic(doc(cart(total_delta=-0.02)))) == 1


def test_discount_and_alternative_keys():
    c = {
        "items": [{"qty": 1, "unit_price": "10.00"}],
        "subtotal": 10,
        "tax": 1,
        "shipping": 2,
        "discount": 3,
        "total": 10,
    }
    assert cart_arithmetic(doc(json.dumps(c))) == []


def test_non_cart_documents_are_skipped():
    assert cart_arithmetic(doc("Q: what is 2 + 2?\nA: 4")) is None
    assert cart_arithmetic(doc('{"name": "not a cart"}')) is None
    assert cart_arithmetic(doc("[1, 2, 3]")) is None


def test_cart_inside_text_is_found():
    assert cart_arithmetic(doc("Order:\n" + cart() + "\nthanks")) == []
    assert len(cart_arithmetic(doc("Order:\n" + cart(total_delta=1) + "\nthanks"))) == 1


def test_missing_quantity_and_bad_types():
    c = {"items": [{"price": 3.0}], "subtotal": 3.0, "total": 3.0}
    assert cart_arithmetic(doc(json.dumps(c))) == ["items[0] has no numeric quantity (looked for quantity, qty)"]
    c = {"items": "none", "total": 3}
    assert cart_arithmetic(doc(json.dumps(c))) == ["'items' is a str, expected a list of items"]
    c = {"items": [], "subtotal": 0, "total": "free"}
    assert cart_arithmetic(doc(json.dumps(c))) == ["'total' is not a number ('free')"]


# --------------------------------------------------------------------------- loading
def test_load_validator_short_names_specs_and_callables():
    assert load_validator("json_valid") is json_valid
    assert load_validator("cart_arithmetic") is cart_arithmetic
    assert load_validator("gaplab.data.validators:cart_arithmetic") is cart_arithmetic
    fn = lambda d: []  # noqa: E731
    assert load_validator(fn) is fn


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("no_such_module_xyz:check", "module 'no_such_module_xyz' does not import"),
        ("gaplab.data.validators:no_such_fn", "has no attribute 'no_such_fn'"),
        ("gaplab.data.validators:CENT", "is a float, not a function"),
        ("just_a_name", "is not 'module:function'"),
        ("", "is not a validator spec"),
    ],
)
def test_bad_validator_spec_names_spec_and_allowed(spec, fragment):
    with pytest.raises(ValidatorError) as err:
        load_validator(spec)
    msg = str(err.value)
    assert fragment in msg
    assert "allowed:" in msg and "json_valid" in msg and "cart_arithmetic" in msg
    assert isinstance(err.value, ValueError)


# --------------------------------------------------------------------------- run_validators
def test_run_validators_counts_checked_skipped_failing():
    docs = [
        doc(cart(), "c1"),
        doc(cart(total_delta=5), "c2"),
        doc(cart(total_delta=-7), "c3"),
        doc("plain text", "t1"),
        doc('{"a": 1}', "j1"),
    ]
    out = run_validators(docs, ["cart_arithmetic", "json_valid"])
    c = out["validators"]["cart_arithmetic"]
    assert (c["checked"], c["skipped"], c["failing"]) == (3, 2, 2)
    assert c["share"] == pytest.approx(2 / 3)
    assert [e["document"] for e in c["examples"]] == ["c2", "c3"]
    j = out["validators"]["json_valid"]
    assert (j["checked"], j["skipped"], j["failing"]) == (5, 0, 1)
    assert j["examples"][0]["document"] == "t1"
    # per document: c2, c3 (carts) and t1 (not JSON) fail; all five were checked by some validator
    assert (out["documents_checked"], out["documents_failing"]) == (5, 3)
    assert out["share"] == pytest.approx(3 / 5)


def test_a_raising_validator_is_a_problem_not_a_crash():
    def boom(d):
        raise KeyError("price")

    out = run_validators([doc("x", "a")], [boom])
    (res,) = out["validators"].values()
    assert res["failing"] == 1
    assert res["examples"][0]["problems"] == ["validator raised KeyError: 'price'"]


def test_a_validator_returning_the_wrong_type_is_an_error():
    with pytest.raises(ValidatorError, match="must return a list of problem strings"):
        run_validators([doc("x", "a")], [lambda d: "bad"])


def test_no_validators():
    out = run_validators([doc("x")], [])
    assert out == {"validators": {}, "documents_checked": 0, "documents_failing": 0, "share": 0.0}
