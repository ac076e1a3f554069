"""A seeded Q&A corpus with known, countable defects, for teaching data inspection.

:func:`qa_defects` plants the failures the seed projects found only after
training, each in an exact number of documents, so that ``01_inspect_data`` can
be checked against the truth:

- ``qa/templated``: questions from one template with only the numbers and the
  names swapped (seed 000 found 59% of its questions templated);
- ``qa/boilerplate``: ordinary answers with the same sign-off appended (seed 000
  found boilerplate in 83% of answers);
- ``cart``: JSON shopping carts in the style of seed 002, some of whose totals
  are random numbers (subtotal + tax + shipping != total);
- ``key_examples``: a small source of carefully formatted examples placed at the
  end of the list, so a tail split sends them to validation (seed 001 lost 19 of
  its 20 key examples that way);
- ``qa/plain``: everything else, clean and varied.

Numbers of defective documents are exactly ``round(share * n)`` each;
:func:`expected_shares` returns them.  The corpus loader calls this as
``gaplab.data.teaching:qa_defects`` with ``data.generator_args`` as keyword arguments.
"""

from __future__ import annotations

import json
import random
from typing import Any

from .corpus import Document

BOILERPLATE = "I hope this helps! Let me know if you have any other questions."


_NAMES = [
    "Alice",
    "Bruno",
    "Chen",
    "Dana",
    "Emeka",
    "Farah",
    "Goran",
    "Hana",
    "Ivan",
    "Jun",
    "Kofi",
    "Lena",
    "Mateo",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sven",
    "Tariq",
]


_PRODUCTS = [
    "Desk Lamp",
    "Notebook",
    "Coffee Mug",
    "Backpack",
    "Headphones",
    "Water Bottle",
    "Phone Case",
    "Keyboard",
    "Mouse Pad",
    "Sunglasses",
    "Umbrella",
    "Scarf",
    "Candle",
    "Plant Pot",
    "Teapot",
    "Yoga Mat",
    "Bike Light",
    "Wall Clock",
    "Pillow",
    "Tote Bag",
]


# Plain Q&A: many frames with lowercase slots, so no two documents share a skeleton
# and no fixed phrase recurs in more than a few percent of the corpus.
_ANIMALS = ["otters", "bees", "crows", "goats", "bats", "ants", "owls", "frogs", "seals", "moles", "wolves", "snails"]


_THINGS = ["bread", "glass", "steel", "paper", "rubber", "cotton", "clay", "honey", "salt", "wax", "ice", "sand"]


_PLACES = [
    "deserts",
    "forests",
    "caves",
    "harbours",
    "meadows",
    "marshes",
    "tundra",
    "reefs",
    "valleys",
    "cliffs",
    "islands",
    "swamps",
]


_VERBS = [
    "cools",
    "dries",
    "hardens",
    "stretches",
    "cracks",
    "melts",
    "fades",
    "swells",
    "bends",
    "rusts",
    "shrinks",
    "sinks",
]


_CAUSES = [
    "humidity",
    "sunlight",
    "pressure",
    "friction",
    "salt water",
    "wind",
    "frost",
    "heat",
    "moisture",
    "vibration",
    "oxygen",
    "dust",
]


_TOOLS = [
    "a ladder",
    "a compass",
    "a kettle",
    "a hammer",
    "a sieve",
    "a lantern",
    "a rope",
    "a funnel",
    "a whistle",
    "a spade",
    "a magnet",
    "a bucket",
]


_TASKS = [
    "crossing a river",
    "baking at altitude",
    "mapping a cave",
    "fixing a fence",
    "drying herbs",
    "sorting seeds",
    "reading tides",
    "storing grain",
    "building a raft",
    "tracking deer",
    "melting snow",
    "keeping bees",
]


_FOODS = [
    "lentils",
    "barley",
    "spinach",
    "walnuts",
    "mackerel",
    "turnips",
    "oats",
    "figs",
    "chickpeas",
    "cabbage",
    "sardines",
    "plums",
]


_NUTRIENTS = [
    "iron",
    "fibre",
    "zinc",
    "protein",
    "calcium",
    "potassium",
    "magnesium",
    "folate",
    "iodine",
    "vitamin c",
    "omega fats",
    "copper",
]


_PLAIN_FRAMES: list[tuple[tuple[list[str], ...], str, str]] = [
    (
        (_ANIMALS, _PLACES, _CAUSES),
        "Q: How do {0} survive in {1}?",
        "A: In {1}, {0} cope with {2} by changing when they feed and where they rest.",
    ),
    (
        (_THINGS, _VERBS, _CAUSES),
        "Q: Why is it that {0} {1} so quickly?",
        "A: Mostly {2}: it speeds up the change, so {0} {1}; shield it from {2} and it lasts longer.",
    ),
    (
        (_TOOLS, _TASKS, _THINGS),
        "Q: Is {0} useful when {1}?",
        "A: Yes, {0} helps with {1}, although people also improvise with {2}.",
    ),
    (
        (_FOODS, _NUTRIENTS, _ANIMALS),
        "Q: What do {0} give us?",
        "A: They are rich in {1}; curiously, {2} seek out {0} in the wild.",
    ),
    (
        (_PLACES, _CAUSES, _TOOLS),
        "Q: What should hikers expect in {0}?",
        "A: In {0} the main hazard is {1}, so pack {2} and plan short stages.",
    ),
    (
        (_TASKS, _FOODS, _VERBS),
        "Q: Any advice on {0}?",
        "A: Start early, eat {1} for energy, and check nothing {2} before you begin {0}.",
    ),
    (
        (_NUTRIENTS, _ANIMALS, _PLACES),
        "Q: Where do {1} find {0}?",
        "A: Mostly from prey and plants found across {2}; {1} need {0} like we do.",
    ),
    (
        (_CAUSES, _THINGS, _TASKS),
        "Q: Does {0} matter for {1}?",
        "A: Yes: {0} changes how {1} behaves, which matters a lot when {2}.",
    ),
    (
        (_VERBS, _TOOLS, _FOODS),
        "Q: My jar of {2} {0}; can {1} fix it?",
        "A: Probably not; {1} will not stop {2} that {0}, but a cool dark shelf might.",
    ),
    (
        (_ANIMALS, _TASKS, _NUTRIENTS),
        "Q: Could {0} teach us about {1}?",
        "A: Watching {0} has inspired ideas for {1}, and their diet is high in {2}.",
    ),
    (
        (_PLACES, _FOODS, _ANIMALS),
        "Q: What grows or lives in {0}?",
        "A: Wild {1} are rare there, but {0} shelter plenty of {2}.",
    ),
    (
        (_THINGS, _TOOLS, _CAUSES),
        "Q: How is {0} tested with {1}?",
        "A: Technicians load {0} using {1} while exposing it to {2} and note the result.",
    ),
]


_KEY_VERBS = [
    "sort",
    "reverse",
    "dedupe",
    "count",
    "flatten",
    "chunk",
    "rotate",
    "clamp",
    "merge",
    "filter",
    "group",
    "pair",
    "scale",
    "trim",
    "shuffle",
    "sum",
    "rank",
    "split",
    "zip",
    "cap",
]


_KEY_NOUNS = [
    "scores",
    "names",
    "readings",
    "prices",
    "labels",
    "tokens",
    "paths",
    "votes",
    "ages",
    "weights",
    "ids",
    "words",
    "samples",
    "grades",
    "ports",
    "rows",
    "tasks",
    "colours",
    "sizes",
    "dates",
]


def _counts(
    n: int,
    templated_share: float,
    boilerplate_share: float,
    broken_total_share: float,
    tail_source_share: float,
    cart_share: float,
) -> dict[str, int]:
    if n <= 0:
        raise ValueError(f"qa_defects: n = {n!r}; allowed: a positive number of documents")
    for key, value in (
        ("templated_share", templated_share),
        ("boilerplate_share", boilerplate_share),
        ("broken_total_share", broken_total_share),
        ("tail_source_share", tail_source_share),
        ("cart_share", cart_share),
    ):
        if not 0 <= value <= 1:
            raise ValueError(f"qa_defects: {key} = {value!r}; allowed: a share between 0 and 1")
    templated = round(templated_share * n)
    boiler = round(boilerplate_share * n)
    broken = round(broken_total_share * n)
    key = round(tail_source_share * n)
    carts = max(round(cart_share * n), broken)
    plain = n - templated - carts - key - boiler
    if plain < 0:
        raise ValueError(
            f"qa_defects: the shares ask for {templated} templated + {carts} carts + {key} key examples + "
            f"{boiler} boilerplate answers = {templated + carts + key + boiler} documents, more than n = {n}; "
            "allowed: shares that sum to at most 1 (cart_share counts broken and sound carts together)"
        )
    return {
        "templated": templated,
        "boilerplate": boiler,
        "carts": carts,
        "broken_totals": broken,
        "key_examples": key,
        "plain": plain,
        "documents": n,
    }


def expected_shares(
    n: int = 400,
    seed: int = 0,
    templated_share: float = 0.3,
    boilerplate_share: float = 0.25,
    broken_total_share: float = 0.2,
    tail_source_share: float = 0.05,
    cart_share: float = 0.3,
) -> dict[str, Any]:
    """What :func:`qa_defects` plants with the same arguments: counts and shares of all ``n`` documents.

    ``broken_totals_of_carts`` is the share the ``cart_arithmetic`` validator
    reports (failing / carts checked).
    """
    c = _counts(n, templated_share, boilerplate_share, broken_total_share, tail_source_share, cart_share)
    return {
        "counts": c,
        "shares": {
            k: c[k] / n for k in ("templated", "boilerplate", "carts", "broken_totals", "key_examples", "plain")
        },
        "broken_totals_of_carts": (c["broken_totals"] / c["carts"]) if c["carts"] else 0.0,
        "sources": {
            "qa/templated": c["templated"],
            "qa/boilerplate": c["boilerplate"],
            "qa/plain": c["plain"],
            "cart": c["carts"],
            "key_examples": c["key_examples"],
        },
    }


def _distinct(rng: random.Random, k: int, make, what: str, limit: int) -> list:
    """``k`` distinct values from ``make(rng)``; an error if the space is too small."""
    if k > limit:
        raise ValueError(
            f"qa_defects: {k} distinct {what} requested but only {limit} exist; allowed: a smaller n or share"
        )
    seen, out = set(), []
    while len(out) < k:
        v = make(rng)
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def _templated_doc(name: str, a: int, b: int) -> str:
    return (
        f"Q: {name} has {a} boxes with {b} pencils in each box. How many pencils does {name} have?\n"
        f"A: {name} has {a} × {b} = {a * b} pencils."
    )


def _plain_docs(rng: random.Random, k: int) -> list[str]:
    per_frame = [len(s[0]) * len(s[1]) * len(s[2]) for s, _, _ in _PLAIN_FRAMES]
    combos = _distinct(
        rng,
        k,
        lambda r: (f := r.randrange(len(_PLAIN_FRAMES)), tuple(r.randrange(len(slot)) for slot in _PLAIN_FRAMES[f][0])),
        "plain questions",
        sum(per_frame),
    )
    out = []
    for f, idx in combos:
        slots, q, a = _PLAIN_FRAMES[f]
        words = [slots[j][i] for j, i in enumerate(idx)]
        out.append(q.format(*words) + "\n" + a.format(*words))
    return out


def _hex(rng: random.Random, prefix: str) -> str:
    return prefix + "".join(rng.choice("0123456789abcdef") for _ in range(12))


def _cart(rng: random.Random, broken: bool) -> str:
    items, subtotal = [], 0.0
    for _ in range(rng.randint(1, 4)):
        qty = rng.randint(1, 5)
        price = round(rng.uniform(2.0, 120.0), 2)
        items.append(
            {"product_id": _hex(rng, "p"), "product_name": rng.choice(_PRODUCTS), "quantity": qty, "price": price}
        )
        subtotal += qty * price
    subtotal = round(subtotal, 2)
    tax = round(subtotal * 0.08, 2)
    shipping = round(rng.uniform(5.0, 50.0), 2)
    total = round(subtotal + tax + shipping, 2)
    if broken:  # seed 002's generator bug: a random total, independent of everything else
        correct = total
        while abs(total - correct) <= 1.0:
            total = round(rng.uniform(20.0, 1500.0), 2)
    cart = {
        "cart_id": _hex(rng, "c"),
        "items": items,
        "subtotal": subtotal,
        "tax": tax,
        "shipping_cost": shipping,
        "total": total,
    }
    return json.dumps(cart)


def _key_doc(verb: str, noun: str, k: int) -> str:
    fn = f"{verb}_{noun}"
    return (
        f"### Task\nWrite a function to {verb} the {noun} (case {k}).\n"
        f"### Solution\n```python\ndef {fn}({noun}):\n"
        f'    """{verb} {noun}.\n\n    Args:\n        {noun}: list of {noun}.\n\n'
        f'    Returns:\n        {noun} after {verb}.\n    """\n'
        f"    return {verb}_impl({noun})\n```\n"
        f"### Usage\n{fn}(my_{noun})\n"
        f"### Sanity test\nassert {fn}([]) == []\n"
    )


def qa_defects(
    n: int = 400,
    seed: int = 0,
    templated_share: float = 0.3,
    boilerplate_share: float = 0.25,
    broken_total_share: float = 0.2,
    tail_source_share: float = 0.05,
    cart_share: float = 0.3,
) -> list[Document]:
    """A seeded corpus of ``n`` documents with known defects (see the module docstring).

    Exactly ``round(share * n)`` documents carry each defect: templated questions
    (``qa/templated``), a boilerplate sign-off (``qa/boilerplate``), broken cart
    totals (among ``round(cart_share * n)`` ``cart`` records) and key examples
    (``key_examples``, always last).  The other documents are ``qa/plain``.
    Same arguments, same documents.
    """
    c = _counts(n, templated_share, boilerplate_share, broken_total_share, tail_source_share, cart_share)
    rng = random.Random(seed)
    docs: list[tuple[str, str]] = []  # (source, text)

    templ = _distinct(
        rng,
        c["templated"],
        lambda r: (r.choice(_NAMES), r.randint(2, 99), r.randint(2, 99)),
        "templated questions",
        len(_NAMES) * 98 * 98,
    )
    docs += [("qa/templated", _templated_doc(*t)) for t in templ]

    plain = _plain_docs(rng, c["plain"] + c["boilerplate"])
    docs += [("qa/boilerplate", text + "\n" + BOILERPLATE) for text in plain[: c["boilerplate"]]]
    docs += [("qa/plain", text) for text in plain[c["boilerplate"] :]]

    broken = [True] * c["broken_totals"] + [False] * (c["carts"] - c["broken_totals"])
    rng.shuffle(broken)
    docs += [("cart", _cart(rng, b)) for b in broken]

    rng.shuffle(docs)
    keys = _distinct(
        rng,
        c["key_examples"],
        lambda r: (r.choice(_KEY_VERBS), r.choice(_KEY_NOUNS)),
        "key examples",
        len(_KEY_VERBS) * len(_KEY_NOUNS),
    )
    out = [
        Document(text=text, source=source, name=f"{source.split('/')[0]}-{i:04d}")
        for i, (source, text) in enumerate(docs)
    ]
    out += [
        Document(text=_key_doc(v, noun, i + 1), source="key_examples", name=f"key-{i + 1:02d}")
        for i, (v, noun) in enumerate(keys)
    ]
    return out


def other_edition(text: str, rng) -> str:
    """The same text as another edition would print it: u/v and i/y swapped, a final e added, vowels doubled,
    punctuation and line breaks moved, a few words dropped (the differences between a play's modern and folio
    texts).  ``rng`` is a ``numpy.random.Generator``; for crafted near-twin corpora with a known answer
    (tests, ``benchmarks/bench_dedup.py``)."""
    out = []
    for w in text.replace("\n", " ").split():
        core, tail = w.rstrip(".,;!?"), w[len(w.rstrip(".,;!?")) :]
        if rng.random() < 0.05:
            continue  # a word the other edition does not have
        if "u" in core and rng.random() < 0.5:
            core = core.replace("u", "v", 1)
        if core.endswith(("d", "n", "r", "t")) and rng.random() < 0.3:
            core += "e"
        if "e" in core and rng.random() < 0.2:
            core = core.replace("e", "ee", 1)
        if "i" in core[1:] and rng.random() < 0.3:
            core = core[0] + core[1:].replace("i", "y", 1)
        out.append(core + (rng.choice(["", ",", ":"]) if not tail else rng.choice([tail, "", ";"])))
    lines, cur = [], []
    for w in out:
        cur.append(w)
        if rng.random() < 0.12:
            lines.append("  " + " ".join(cur))
            cur = []
    return "\n".join(lines + [" ".join(cur)])
