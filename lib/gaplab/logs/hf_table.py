"""The "Training results" table of a Hugging Face model card (``transformers/modelcard.py``,
``parse_log_history``) or of a notebook's Trainer output (``NotebookProgressCallback``, an HTML table):
columns ``Training Loss | Epoch | Step | Validation Loss | ...``, one row per eval.

The card's train column repeats the last train loss logged before each eval, and says ``No log`` until
the first one: a train point is read where the value changes, and ``No log`` is a missing value.  A
second eval set is a column ``<Name> Loss``.  Markdown (``|`` cells), tab-separated text (a notebook's
table copied) and HTML (``<td>`` cells, as an ``.ipynb`` stores it) all read.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path
from typing import Optional

from gaplab.errors import DataError
from gaplab.logs import textlog
from gaplab.logs.base import register
from gaplab.logs.shape import LogShape, Point, build_run_log, to_float

SNIFF = re.compile(r"(?:\||<th>|\t|^)\s*(?:Training Loss|Validation Loss)\s*(?:\||</th>|\t|$)", re.M)
CELL = re.compile(r"<t[hd][^>]*>(.*?)</t[hd]>", re.S)
ROW = re.compile(r"<tr[^>]*>(.*?)</tr>", re.S)


def _markdown_rows(text: str) -> list[tuple[int, list[str]]]:
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line.startswith("|") and not set(line) <= set("|-: "):
            out.append((number, [c.strip() for c in line.strip("|").split("|")]))
        elif "\t" in line:
            out.append((number, [c.strip() for c in line.split("\t")]))
    return out


def _html_rows(text: str) -> list[tuple[int, list[str]]]:
    text = text.replace("\\n", "\n").replace('\\"', '"')
    out = []
    for match in ROW.finditer(text):
        cells = [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in CELL.findall(match.group(1))]
        out.append((text.count("\n", 0, match.start()) + 1, cells))
    return out


def _table(rows: list[tuple[int, list[str]]]) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The first table whose header names a loss, and its data rows (until a row of another width)."""
    for index, (_, cells) in enumerate(rows):
        if any(c.endswith("Loss") for c in cells) and ("Step" in cells or "Epoch" in cells):
            body = []
            for number, row in rows[index + 1 :]:
                if len(row) != len(cells):
                    break
                body.append((number, row))
            return cells, body
    return [], []


def _points(header: list[str], body, shape: LogShape) -> list[Point]:
    x_col = "Step" if "Step" in header else "Epoch"
    shape.x_unit = x_col.lower()
    val_cols = [c for c in header if c.endswith("Loss") and c != "Training Loss"]
    points, last_train, repeats = [], None, 0
    for number, row in body:
        cells = dict(zip(header, row))
        x = to_float(cells.get(x_col))
        if x is None:
            continue
        train: Optional[float] = to_float(cells.get("Training Loss"))
        if train is not None and train == last_train:
            train, repeats = None, repeats + 1  # the card repeats the last train loss: not a new point
        elif train is not None:
            last_train = train
        evals = {c: v for c in val_cols if (v := to_float(cells.get(c))) is not None}
        epoch = to_float(cells.get("Epoch"))
        points.append(Point(x, f"line {number}", train, evals, math.nan if epoch is None else epoch))
    if repeats:
        shape.notes.append(
            f"the table repeats the last train loss logged before each eval ({repeats} repeats): a train point is "
            "read where it changes"
        )
    return points


class HfTableReader(textlog.TextLogReader):
    name = "hf_table"
    describes = "Hugging Face model-card or notebook 'Training results' table"
    line_pattern = SNIFF

    def read(self, path, val_key=None):
        path = Path(path)
        text = textlog.prefix(path, 64 << 20)
        header, body = _table(_markdown_rows(text))
        if not header:
            header, body = _table(_html_rows(text))
        if not header:
            raise DataError(f"{path}: no 'Training results' table (a header with Step or Epoch and a Loss column)")
        shape = LogShape(str(path), self.name, keys=header, train_missing_as="'No log' in the table")
        points = _points(header, body, shape)
        return build_run_log(points, shape, val_key)


register(HfTableReader())
