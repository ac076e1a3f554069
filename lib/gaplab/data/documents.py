"""The two records every data source produces: :class:`Document` (one text with its source label, and a
fine-tuning record's prompt and answer sides) and :class:`Corpus` (the documents read, what was skipped,
a fingerprint).  :mod:`gaplab.data.corpus` and :mod:`gaplab.data.records` write them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Document:
    text: str
    source: str  # label used in split composition reports (e.g. "json", "logging", "qa/templated")
    name: str  # file name or record id, for messages and examples
    #: a fine-tuning record's two sides, when its format has roles (chat turns, instruction/output,
    #: prompt/completion, question/answer): what the model is given and what it must answer; ``text`` is both
    prompt: Optional[str] = None
    answer: Optional[str] = None


@dataclass
class Corpus:
    documents: list[Document]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    fingerprint: str = ""
    complete: bool = True  # False when reading stopped early (data.max_tokens reached)
    #: what the record reader guessed (``"jsonl, chat records (messages)"``), empty for other sources
    shape: str = ""

    @property
    def characters(self) -> int:
        return sum(len(d.text) for d in self.documents)


def fingerprint(documents: Iterable[Document]) -> str:
    """sha256 over every document's name, source and text, in order."""
    h = hashlib.sha256()
    parts: list[str] = []
    for d in documents:
        parts += (d.name, d.source, d.text)
        if len(parts) >= 3000:  # a thousand documents per update: the same bytes, far fewer calls
            h.update(("\0".join(parts) + "\0").encode("utf-8", "surrogatepass"))
            parts = []
    if parts:
        h.update(("\0".join(parts) + "\0").encode("utf-8", "surrogatepass"))
    return h.hexdigest()
