"""Printed logs (a console captured to a file), streamed line by line.

A console log can be hundreds of megabytes of progress bars: it is never read whole.  tqdm redraws a bar
with ``\\r``, so ``\\r`` ends a line as ``\\n`` does (Python's universal newlines).  A reader's ``sniff``
looks at the first megabyte: the first loss line of a console can come after thousands of bar redraws.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from gaplab.logs.base import Reader

#: how much of a printed log ``sniff`` searches for its first loss line
SNIFF_BYTES = 1 << 20


def prefix(path: Path, limit: int = SNIFF_BYTES) -> str:
    """The first ``limit`` bytes of a text file as text ("" for a folder or a binary file)."""
    if not path.is_file():
        return ""
    with open(path, "rb") as fh:
        raw = fh.read(limit)
    if b"\x00" in raw[:4096]:
        return ""
    return raw.decode("utf-8", errors="replace")


def lines(path: Path) -> Iterator[tuple[int, str]]:
    """Each line (``\\n`` or ``\\r`` ended) with its number, streamed."""
    with open(path, encoding="utf-8", errors="replace", newline=None) as fh:
        yield from enumerate(fh, start=1)


class TextLogReader(Reader):
    """A reader of a printed log: the file is its format when ``line_pattern`` matches in its first
    :data:`SNIFF_BYTES` (:func:`prefix`)."""

    line_pattern: re.Pattern[str]

    def sniff(self, path, head):
        return path.is_file() and bool(self.line_pattern.search(prefix(path)))
