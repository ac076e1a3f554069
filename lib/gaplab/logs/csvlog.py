"""CSV logs, streamed row by row: the header as a reader's ``sniff`` sees it, and the rows as points.

Lightning's ``CSVLogger``, Keras's ``CSVLogger``, a W&B history export, gaplab's ``history.csv`` and any
CSV with a step/iter/epoch column and loss columns under their usual names share this: an empty cell
(Lightning's sparse rows, Keras's ``NA``) is a value not logged; ``nan``/``inf`` is a value that diverged.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

from gaplab.errors import DataError
from gaplab.logs.shape import Point, to_float

DELIMITERS = (",", "\t", ";")


def header_of(head: str) -> tuple[list[str], str]:
    """The first line's column names and delimiter ([] when it does not look like a CSV header)."""
    line = head.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r")
    if not line or "{" in line or "\x00" in line:
        return [], ","
    delimiter = max(DELIMITERS, key=line.count)
    if line.count(delimiter) == 0:
        return [], ","
    names = next(csv.reader([line], delimiter=delimiter))
    return [n.strip() for n in names], delimiter


def rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Each data row as (line number, column -> text), streamed."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
        columns, delimiter = header_of(first)
        if not columns:
            raise DataError(f"{path}: line 1 is not a CSV header ({first[:60]!r})")
        reader = csv.reader(fh, delimiter=delimiter)
        for number, cells in enumerate(reader, start=2):
            if cells:
                yield number, dict(zip(columns, (c.strip() for c in cells)))


def csv_points(
    path: Path,
    x_key: str,
    train_key: Optional[str],
    val_keys: list[str],
    epoch_key: Optional[str] = None,
) -> list[Point]:
    """One point per row that has an x and a train or val value (rows with neither are skipped)."""
    points = []
    for number, row in rows(path):
        x = to_float(row.get(x_key))
        if x is None or not math.isfinite(x):
            continue
        train = to_float(row.get(train_key)) if train_key else None
        evals = {k: v for k in val_keys if (v := to_float(row.get(k))) is not None}
        if train is None and not evals:
            continue
        epoch = to_float(row.get(epoch_key)) if epoch_key else None
        points.append(Point(x, f"line {number}", train, evals, math.nan if epoch is None else epoch))
    return points


def file_columns(path: Path) -> list[str]:
    """The column names on the first line of ``path``."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return header_of(fh.readline())[0]


def column_by_x(path: Path, x_key: str, column: str) -> dict[float, Optional[float]]:
    """x -> the value of ``column`` in the rows that have one (a second pass over the file; the last wins)."""
    out: dict[float, Optional[float]] = {}
    for _, row in rows(path):
        x, value = to_float(row.get(x_key)), to_float(row.get(column))
        if x is not None and value is not None:
            out[x] = value
    return out


def se_columns(columns: list[str], val_key: str) -> dict[str, str]:
    """The log's own standard-error columns: history column -> the CSV's column."""
    found = {}
    for history_column, candidates in (
        ("val_loss_se", (f"{val_key}_se", "val_loss_se")),
        ("train_loss_se", ("train_loss_se",)),
    ):
        match = next((c for c in candidates if c in columns), None)
        if match:
            found[history_column] = match
    return found
