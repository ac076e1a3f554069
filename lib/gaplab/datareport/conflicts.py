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


def normalize(text: str) -> str:
    """Case folded (after NFKC), punctuation and symbols dropped, whitespace runs one space, stripped."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return _SPACE.sub(" ", _PUNCT.sub("", text.casefold())).strip()


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


def conflicting_answers(documents: Sequence[Any], doc_split: Sequence[str]) -> Optional[dict[str, Any]]:
    """Prompts with two or more different answers; ``None`` when no record has both sides."""
    train, val = _sides(documents, doc_split)
    if not train and not val:
        return None
    by_prompt: dict[str, dict[str, list[int]]] = defaultdict(lambda: {"train": [], "val": []})
    for side, idx in (("train", train), ("val", val)):
        for i in idx:
            by_prompt[normalize(documents[i].prompt)][side].append(i)
    asked_twice = [
        i
        for sides in by_prompt.values()
        if len(sides["train"]) + len(sides["val"]) > 1
        for i in sides["train"] + sides["val"]
    ]
    answers = {i: normalize(documents[i].answer) for i in asked_twice}  # only where two answers can differ
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


def prompt_overlap(documents: Sequence[Any], doc_split: Sequence[str]) -> Optional[dict[str, Any]]:
    """Val records whose normalized prompt is a train record's; ``None`` without val records with both sides."""
    train, val = _sides(documents, doc_split)
    if not val:
        return None
    train_by_prompt: dict[str, list[int]] = defaultdict(list)
    for i in train:
        train_by_prompt[normalize(documents[i].prompt)].append(i)
    same = differently = 0
    examples = []
    train_answers: dict[str, set[str]] = {}  # each asked prompt's train answers, normalized once
    for v in val:
        key = normalize(documents[v].prompt)
        seen = train_by_prompt.get(key)
        if not seen:
            continue
        if key not in train_answers:
            train_answers[key] = {normalize(documents[t].answer) for t in seen}
        agrees = normalize(documents[v].answer) in train_answers[key]
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
    return conflicting_answers(inputs.documents, inputs.doc_split) or {"value": None}


def overlap_section(inputs: Any) -> dict[str, Any]:
    """``report["val_prompts_in_train"]`` (``value`` ``None``: no val record has a prompt and an answer)."""
    return prompt_overlap(inputs.documents, inputs.doc_split) or {"value": None}


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
