"""Per-record validators: checks that a single document is what it claims to be.

A validator is a function ``fn(document) -> list[str] | None``:

- a list of problems (empty when the document passes), each a short sentence
  that a person can act on;
- ``None`` when the validator does not apply to this document (for example
  :func:`cart_arithmetic` on a document that is not a shopping cart).  Such
  documents are counted as *skipped*, not as passing.

Every validator sees every document of the phase; one that applies only to some
records must recognise them and return ``None`` for the rest.

A study names validators in ``data.validators`` as ``"module:function"``
(``gaplab.data.validators:cart_arithmetic``); :func:`load_validator` also accepts the
short built-in names ``json_valid``, ``cart_arithmetic`` and ``cart_total_near``.

Seed 002 trained on shopping carts whose totals were random numbers
(subtotal + tax + shipping != total); only a check after training found it.
:func:`cart_arithmetic` is that check, run before training.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

from ..errors import ValidatorError
from .corpus import Document, import_callable

#: A validator: problems for one document, or ``None`` when it does not apply.
Validator = Callable[[Document], Optional[list[str]]]


#: Amounts may differ by at most one cent (plus float rounding noise).
CENT = 0.01


_EPS = 1e-6


#: How many failing documents each validator keeps as examples in the report.
MAX_EXAMPLES = 5


# --------------------------------------------------------------------------- json_valid
def json_valid(document: Document) -> list[str]:
    """The document's text must be JSON.

    Decision: a document is valid if its whole text parses as one JSON value,
    *or* if it is JSON Lines (several non-empty lines, each a JSON value).  The
    problem names the first offending line and the parser's message.
    """
    text = document.text
    if not text.strip():
        return ["empty document (no JSON value)"]
    try:
        json.loads(text)
        return []
    except json.JSONDecodeError as whole_err:
        lines = [(i, line) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]
        if len(lines) < 2:
            return [f"not JSON: {whole_err.msg} at line {whole_err.lineno}, column {whole_err.colno}"]
        for i, line in lines:
            try:
                json.loads(line)
            except json.JSONDecodeError as err:
                return [
                    f"neither one JSON value ({whole_err.msg} at line {whole_err.lineno}) nor JSON Lines: "
                    f"line {i} is not JSON ({err.msg} at column {err.colno})"
                ]
        return []


# --------------------------------------------------------------------------- cart_arithmetic
_QTY_KEYS = ("quantity", "qty")


_PRICE_KEYS = ("price", "unit_price")


_SHIPPING_KEYS = ("shipping_cost", "shipping")


def _parse_object(text: str) -> Optional[dict]:
    """The document as a JSON object: the whole text, else the span from the first ``{`` to the last ``}``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            return None
        try:
            value = json.loads(text[start : end + 1])
        except json.JSONDecodeError:
            return None
    return value if isinstance(value, dict) else None


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().lstrip("$"))
        except ValueError:
            return None
    return None


def _first(record: dict, keys: Sequence[str]) -> tuple[Optional[str], Any]:
    for k in keys:
        if k in record:
            return k, record[k]
    return None, None


def _money(x: float) -> str:
    return f"{x:.2f}"


def cart_arithmetic(document: Document) -> Optional[list[str]]:
    """A JSON shopping cart must add up (seed 002).

    Applies to documents whose text (or the ``{...}`` span inside it) is a JSON
    object with ``items`` and ``total``; every other document is skipped
    (``None``).  Checks, each to within one cent:

    - every item has a numeric ``quantity`` (or ``qty``) and ``price`` (or ``unit_price``);
    - the sum of quantity × price over the items equals ``subtotal``;
    - ``subtotal + tax + shipping_cost (or shipping) - discount == total``
      (``tax``, shipping and ``discount`` count as 0 when absent).
    """
    cart = _parse_object(document.text)
    if cart is None or "items" not in cart or "total" not in cart:
        return None
    items = cart["items"]
    if not isinstance(items, list):
        return [f"'items' is a {type(items).__name__}, expected a list of items"]
    items_sum, problems = _items_sum(items)
    total = _number(cart.get("total"))
    if total is None:
        problems.append(f"'total' is not a number ({cart.get('total')!r})")
    subtotal = _number(cart.get("subtotal")) if "subtotal" in cart else None
    if "subtotal" in cart and subtotal is None:
        problems.append(f"'subtotal' is not a number ({cart.get('subtotal')!r})")
    if items_sum is not None:
        if subtotal is None and "subtotal" not in cart:
            subtotal = items_sum  # no subtotal field: the items' sum stands in for it
        elif subtotal is not None and abs(items_sum - subtotal) > CENT + _EPS:
            problems.append(
                f"items sum to {_money(items_sum)} (quantity × price) but subtotal is "
                f"{_money(subtotal)} (off by {_money(subtotal - items_sum)})"
            )
    extras = _extras(cart, problems)
    if total is not None and subtotal is not None and all(v is not None for v in extras.values()):
        problems.extend(_total_problem(subtotal, extras, total))
    return problems


def _items_sum(items: list) -> tuple[Optional[float], list[str]]:
    """The sum of quantity × price over a cart's items (None when an item lacks either), and the problems."""
    problems: list[str] = []
    items_sum, items_ok = 0.0, True
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"items[{i}] is a {type(item).__name__}, expected an object")
            items_ok = False
            continue
        qty, price = _number(_first(item, _QTY_KEYS)[1]), _number(_first(item, _PRICE_KEYS)[1])
        if qty is None:
            problems.append(f"items[{i}] has no numeric quantity (looked for {', '.join(_QTY_KEYS)})")
        if price is None:
            problems.append(f"items[{i}] has no numeric price (looked for {', '.join(_PRICE_KEYS)})")
        if qty is None or price is None:
            items_ok = False
            continue
        items_sum += qty * price
    return (items_sum if items_ok else None), problems


def _extras(cart: dict, problems: list[str]) -> dict[str, Optional[float]]:
    """Tax, shipping and discount (0 when absent, None when not a number: a problem is added)."""
    extras: dict[str, Optional[float]] = {}
    for label, keys in (("tax", ("tax",)), ("shipping", _SHIPPING_KEYS), ("discount", ("discount",))):
        key, raw = _first(cart, keys)
        if key is None:
            extras[label] = 0.0
            continue
        value = _number(raw)
        if value is None:
            problems.append(f"{key!r} is not a number ({raw!r})")
        extras[label] = value
    return extras


def _total_problem(subtotal: float, extras: dict[str, Optional[float]], total: float) -> list[str]:
    expected = subtotal + extras["tax"] + extras["shipping"] - extras["discount"]
    if abs(expected - total) <= CENT + _EPS:
        return []
    parts = f"subtotal {_money(subtotal)} + tax {_money(extras['tax'])} + shipping {_money(extras['shipping'])}"
    if extras["discount"]:
        parts += f" - discount {_money(extras['discount'])}"
    return [f"{parts} = {_money(expected)} but total is {_money(total)} (off by {_money(total - expected)})"]


#: :func:`cart_total_near`'s tolerance: the total within this share of subtotal + tax + shipping - discount
NEAR_SHARE = 0.05


def cart_total_near(document: Document) -> Optional[list[str]]:
    """A looser cart check, for generated carts: is the total within 5% of subtotal + tax + shipping?

    :func:`cart_arithmetic` asks for every amount to the cent, which a small model almost never writes; this
    asks whether the total follows from the other amounts at all (a model trained on random totals writes
    totals unrelated to them).  Applies to the same documents as :func:`cart_arithmetic` (a JSON object with
    ``items`` and ``total``); the items are not checked.  ``tax``, shipping and ``discount`` count as 0 when
    absent; a missing subtotal or an amount that is not a number is a problem.
    """
    cart = _parse_object(document.text)
    if cart is None or "items" not in cart or "total" not in cart:
        return None
    amounts = {}
    for label, keys in (
        ("total", ("total",)),
        ("subtotal", ("subtotal",)),
        ("tax", ("tax",)),
        ("shipping", _SHIPPING_KEYS),
        ("discount", ("discount",)),
    ):
        key, raw = _first(cart, keys)
        if key is None and label in ("total", "subtotal"):
            return [f"no {label!r} to compare"]
        amounts[label] = 0.0 if key is None else _number(raw)
        if amounts[label] is None:
            return [f"{key!r} is not a number ({raw!r})"]
    expected = amounts["subtotal"] + amounts["tax"] + amounts["shipping"] - amounts["discount"]
    if abs(amounts["total"] - expected) > NEAR_SHARE * abs(expected) + CENT + _EPS:
        return [
            f"total {_money(amounts['total'])} is not within {NEAR_SHARE:.0%} of subtotal + tax + shipping = "
            f"{_money(expected)}"
        ]
    return []


# --------------------------------------------------------------------------- loading
BUILTINS: dict[str, Validator] = {
    "json_valid": json_valid,
    "cart_arithmetic": cart_arithmetic,
    "cart_total_near": cart_total_near,
}


def _allowed() -> str:
    names = ", ".join(BUILTINS)
    full = ", ".join(f"gaplab.data.validators:{n}" for n in BUILTINS)
    return (
        f"allowed: a built-in name ({names}; or {full}) or 'package.module:function' of an importable function "
        "(never the standard library's)"
    )


def load_validator(spec: Union[str, Callable]) -> Validator:
    """A validator from a spec: a built-in short name, ``"module:function"``, or a callable."""
    if callable(spec):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ValidatorError(f"data.validators: {spec!r} is not a validator spec; {_allowed()}")
    spec = spec.strip()
    if spec in BUILTINS:
        return BUILTINS[spec]
    return import_callable(spec, "data.validators", ValidatorError, _allowed())


def _name_of(spec: Union[str, Callable]) -> str:
    if isinstance(spec, str):
        return spec.strip()
    return f"{getattr(spec, '__module__', '?')}:{getattr(spec, '__qualname__', repr(spec))}"


def run_validators(documents: Sequence[Document], specs: Sequence[Union[str, Callable]]) -> dict[str, Any]:
    """Run every validator over every document.

    Returns ``{"validators": {spec: {checked, skipped, failing, share, examples}},
    "documents_checked", "documents_failing", "share"}``.  ``share`` is failing /
    checked (a skipped document is not checked); the top-level numbers count a
    document once even when several validators fail it.  A validator that
    raises is reported as a problem for that document (``validator raised
    ...``) instead of stopping the inspection.
    """
    fns = [(_name_of(s), load_validator(s)) for s in specs]
    checked_any = [False] * len(documents)
    failing_any = [False] * len(documents)
    results: dict[str, Any] = {}
    for name, fn in fns:
        checked = skipped = failing = 0
        examples: list[dict[str, Any]] = []
        for i, doc in enumerate(documents):
            try:
                problems = fn(doc)
            except Exception as exc:  # a bug in a user validator must not hide the other results
                problems = [f"validator raised {type(exc).__name__}: {exc}"]
            if problems is None:
                skipped += 1
                continue
            if not isinstance(problems, (list, tuple)) or not all(isinstance(p, str) for p in problems):
                raise ValidatorError(
                    f"data.validators: {name!r} returned {type(problems).__name__} for "
                    f"{doc.name!r}; a validator must return a list of problem strings "
                    "(empty when the document passes) or None when it does not apply"
                )
            checked += 1
            checked_any[i] = True
            if problems:
                failing += 1
                failing_any[i] = True
                if len(examples) < MAX_EXAMPLES:
                    examples.append({"document": doc.name, "source": doc.source, "problems": list(problems)})
        results[name] = {
            "checked": checked,
            "skipped": skipped,
            "failing": failing,
            "share": (failing / checked) if checked else 0.0,
            "examples": examples,
        }
    n_checked = sum(checked_any)
    n_failing = sum(failing_any)
    return {
        "validators": results,
        "documents_checked": n_checked,
        "documents_failing": n_failing,
        "share": (n_failing / n_checked) if n_checked else 0.0,
    }
