"""Records that ask the same thing: conflicting answers, and val prompts that train already answers.

Only records with a prompt and an answer side (chat turns, instruction/output, prompt/completion,
question/answer: :class:`gaplab.data.corpus.Document`'s ``prompt`` and ``answer``).  Prompts and answers
are compared normalized (:func:`normalize`: case folded, punctuation dropped, runs of whitespace one
space), so "What is JSON?" and "what is json" are one prompt.

- :func:`conflicting_answers`: prompts given two or more different answers, inside train and across
  train and val (a val answer that differs from train's).  A model trained on both learns neither; a val
  loss on such a record measures a coin toss.
- :func:`prompt_overlap`: val records whose prompt train already answers (with the same answer or
  another): the record-level leakage that n-gram overlap of whole records misses when the answers differ.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Optional

from .check import Report, pct, plural
from .detectors import MAX_EXAMPLES, preview, share_of

CONFLICT_MEANING = (
    "share of distinct prompts (normalized: case, punctuation, whitespace) given two or more different "
    "answers, inside train or across train and val"
)
OVERLAP_MEANING = "share of val records whose prompt (normalized) train already answers, the same or differently"

_SPACE = re.compile(r"\s+")
#: punctuation and symbols (anything not a word character or space), and the underscore
_PUNCT = re.compile(r"[^\w\s]|_")
#: ASCII text: upper case to lower; the four separators str.isspace counts (and bytes.split does not) to spaces
_ASCII_FOLD = bytes.maketrans(
    bytes(range(ord("A"), ord("Z") + 1)) + b"\x1c\x1d\x1e\x1f", bytes(range(ord("a"), ord("z") + 1)) + b"    "
)
#: ASCII text: what :data:`_PUNCT` drops (neither a letter, a digit nor a space)
_ASCII_DROP = bytes(c for c in range(128) if not chr(c).isalnum() and not chr(c).isspace())


def normalize(text: str) -> str:
    """Case folded (after NFKC), punctuation and symbols dropped, whitespace runs one space, stripped.

    ASCII text (most records) is folded by one byte translation, several times faster than the regular
    expressions; the result is the same (a test holds it to :func:`_normalize_regex` on every ASCII
    character)."""
    if text.isascii():
        return b" ".join(text.encode("ascii").translate(_ASCII_FOLD, _ASCII_DROP).split()).decode("ascii")
    return _normalize_regex(text)


def _normalize_regex(text: str) -> str:
    """:func:`normalize` by regular expressions, for any text."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return _SPACE.sub(" ", _PUNCT.sub("", text.casefold())).strip()


class Normalized:
    """The documents' prompts and answers normalized, each distinct text once, for both checks of a report
    (prompts repeat across records; the answer of a val record is read by both)."""

    def __init__(self, documents: Sequence[Any]):
        self.documents = documents
        self._memo: dict[str, str] = {}

    def text(self, raw: str) -> str:
        out = self._memo.get(raw)
        if out is None:
            out = self._memo[raw] = normalize(raw)
        return out

    def prompt(self, i: int) -> str:
        return self.text(self.documents[i].prompt)

    def answer(self, i: int) -> str:
        return self.text(self.documents[i].answer)


def normalized_records(inputs: Any) -> Normalized:
    """The report's :class:`Normalized`, made on first use and kept on ``inputs``
    (:class:`gaplab.datareport.build.ReportInputs`)."""
    cached = getattr(inputs, "_normalized_records", None)
    if cached is None or cached.documents is not inputs.documents:
        cached = Normalized(inputs.documents)
        inputs._normalized_records = cached
    return cached


def _sides(documents: Sequence[Any], doc_split: Sequence[str]) -> tuple[list[int], list[int]]:
    """Indices of the train and val records with both a prompt and an answer (a record cut across the
    split by a tail split counts as train)."""
    train, val = [], []
    for i, (d, s) in enumerate(zip(documents, doc_split)):
        if getattr(d, "prompt", None) is None or getattr(d, "answer", None) is None:
            continue
        if s in ("train", "both"):
            train.append(i)
        elif s == "val":
            val.append(i)
    return train, val


def conflicting_answers(
    documents: Sequence[Any], doc_split: Sequence[str], normalized: Optional[Normalized] = None
) -> Optional[dict[str, Any]]:
    """Prompts with two or more different answers; ``None`` when no record has both sides.  ``normalized``:
    the prompts and answers already normalized (or not yet: they are kept there)."""
    norm = normalized if normalized is not None else Normalized(documents)
    train, val = _sides(documents, doc_split)
    if not train and not val:
        return None
    by_prompt: dict[str, dict[str, list[int]]] = defaultdict(lambda: {"train": [], "val": []})
    for side, idx in (("train", train), ("val", val)):
        for i in idx:
            by_prompt[norm.prompt(i)][side].append(i)
    asked_twice = [
        i
        for sides in by_prompt.values()
        if len(sides["train"]) + len(sides["val"]) > 1
        for i in sides["train"] + sides["val"]
    ]
    answers = {i: norm.answer(i) for i in asked_twice}  # only where two answers can differ
    inside = across = conflicting = 0
    examples = []
    for sides in by_prompt.values():
        if len(sides["train"]) + len(sides["val"]) < 2:
            continue
        train_answers = {answers[i] for i in sides["train"]}
        val_answers = {answers[i] for i in sides["val"]}
        in_train = len(train_answers) > 1
        cross = bool(train_answers and val_answers - train_answers)
        inside += in_train
        across += cross
        conflicting += in_train or cross
        if (in_train or cross) and len(examples) < MAX_EXAMPLES:
            examples.append(_conflict_example(documents, sides["train"] + sides["val"], answers))
    return {
        "records": len(train) + len(val),
        "prompts": len(by_prompt),
        "conflicting_prompts": conflicting,
        "inside_train": inside,
        "across_split": across,
        "value": share_of(conflicting, len(by_prompt)),
        "examples": examples,
    }


def _conflict_example(documents: Sequence[Any], members: list[int], answers: dict[int, str]) -> dict[str, Any]:
    distinct: dict[str, int] = {}
    for i in members:
        distinct.setdefault(answers[i], i)
    firsts = list(distinct.values())
    return {
        "prompt": preview(documents[members[0]].prompt, 120),
        "answers": len(distinct),
        "records": len(members),
        "examples": [{"name": documents[i].name, "answer": preview(documents[i].answer, 80)} for i in firsts[:3]],
    }


def prompt_overlap(
    documents: Sequence[Any], doc_split: Sequence[str], normalized: Optional[Normalized] = None
) -> Optional[dict[str, Any]]:
    """Val records whose normalized prompt is a train record's; ``None`` without val records with both sides.
    ``normalized``: as for :func:`conflicting_answers`."""
    norm = normalized if normalized is not None else Normalized(documents)
    train, val = _sides(documents, doc_split)
    if not val:
        return None
    train_by_prompt: dict[str, list[int]] = defaultdict(list)
    for i in train:
        train_by_prompt[norm.prompt(i)].append(i)
    same = differently = 0
    examples = []
    train_answers: dict[str, set[str]] = {}  # each asked prompt's train answers, normalized once
    for v in val:
        key = norm.prompt(v)
        seen = train_by_prompt.get(key)
        if not seen:
            continue
        if key not in train_answers:
            train_answers[key] = {norm.answer(t) for t in seen}
        agrees = norm.answer(v) in train_answers[key]
        same += agrees
        differently += not agrees
        if len(examples) < MAX_EXAMPLES:
            examples.append(
                {
                    "val": documents[v].name,
                    "train": documents[seen[0]].name,
                    "same_answer": agrees,
                    "prompt": preview(documents[v].prompt, 100),
                }
            )
    return {
        "val_records": len(val),
        "records": same + differently,
        "same_answer": same,
        "different_answer": differently,
        "value": share_of(same + differently, len(val)),
        "examples": examples,
    }


# --------------------------------------------------------------------------- the report's sections
def conflicts_section(inputs: Any) -> dict[str, Any]:
    """``report["conflicting_answers"]`` (``value`` ``None``: no record has a prompt and an answer)."""
    return conflicting_answers(inputs.documents, inputs.doc_split, normalized_records(inputs)) or {"value": None}


def overlap_section(inputs: Any) -> dict[str, Any]:
    """``report["val_prompts_in_train"]`` (``value`` ``None``: no val record has a prompt and an answer)."""
    return prompt_overlap(inputs.documents, inputs.doc_split, normalized_records(inputs)) or {"value": None}


def conflicts_detail(report: Report, warn: Optional[float]) -> str:
    d = report["conflicting_answers"]
    text = (
        f"{d['conflicting_prompts']:,} of {d['prompts']:,} {plural(d['prompts'], 'prompt', 'prompts')} "
        f"{plural(d['conflicting_prompts'], 'has', 'have')} two or more different answers "
        f"({d['inside_train']:,} inside train, {d['across_split']:,} across train and val)"
    )
    if d["examples"]:
        e = d["examples"][0]
        answers = " / ".join(repr(x["answer"][:40]) for x in e["examples"][:2])
        text += f"; e.g. {e['prompt'][:60]!r}: {e['answers']} answers, {answers}"
    return text


def overlap_detail(report: Report, warn: Optional[float]) -> str:
    d = report["val_prompts_in_train"]
    text = (
        f"{d['records']:,} of {d['val_records']:,} val records ({pct(d['value'])}) ask a prompt that train "
        f"answers ({d['same_answer']:,} with the same answer, {d['different_answer']:,} differently): the "
        "model has been taught these prompts"
    )
    if d["examples"]:
        e = d["examples"][0]
        text += f", e.g. {e['val']!r} asks {e['prompt'][:60]!r} like {e['train']!r}"
    return text
