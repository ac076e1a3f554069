"""From a log's points, as the log has them, to a :class:`~gaplab.logs.base.RunLog`: the one place that
handles a log's shape, so every reader treats it the same way.

A reader hands over :class:`Point` records in the order the log wrote them (train losses and evals,
each at its step or epoch).  :func:`build_run_log` then

- stitches a resumed run (steps that go back: the later values win) with a note, or refuses a log that
  restarts at its very beginning (two runs in one file) with a sentence;
- cuts the run at the first NaN/inf loss (``stopped_at``, and a note naming the step);
- picks the eval set (``val_key``; default ``eval_loss`` or the first) among every eval key;
- puts at each eval the mean of the train losses logged since the previous eval, with their spread
  over the square root of their count as its noise (NaN when there is none; a note says where).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd

from gaplab.errors import DataError
from gaplab.logs.base import HISTORY_COLUMNS, TRAIN_POINT_COLUMNS, RunLog

#: the eval key analysed when the caller names none and the log has it
DEFAULT_VAL_KEYS = ("eval_loss", "val_loss", "Validation Loss")


@dataclass(slots=True)
class Point:
    """One record of a log: a train loss (``train`` set) and/or eval losses (``evals``) at ``step``.

    ``where`` names the record for a message ("line 812", "log_history[40]").  A value that is missing
    in the log is left out; a NaN/inf one is kept (it stops the run there).
    """

    step: float
    where: str
    train: Optional[float] = None
    evals: dict[str, float] = field(default_factory=dict)
    epoch: float = math.nan


@dataclass
class LogShape:
    """What a reader knows besides the points: names, unit, and what to say about the log."""

    path: str
    format: str
    x_unit: str = "step"
    notes: list[str] = field(default_factory=list)
    #: every key the log has (for the "no validation loss" message)
    keys: list[str] = field(default_factory=list)
    checkpoints: dict[int, str] = field(default_factory=dict)
    best_checkpoint: Optional[str] = None
    #: why train is missing, said in the note ("'No log'" for a model-card table)
    train_missing_as: str = ""
    #: a train loss logged twice at one x means a resumed run (not where x is a rounded epoch)
    repeat_is_resume: bool = True


def _stitch(points: list[Point], shape: LogShape) -> list[Point]:
    """Later values win where steps go back, or a train loss is logged again at a step (a resumed run);
    a restart from the log's first step is refused (two runs in one file)."""
    kept: list[Point] = []
    first_step = points[0].step if points else 0.0
    top, last_train = -math.inf, -math.inf
    for point in points:
        again = shape.repeat_is_resume and point.train is not None and point.step == last_train
        if point.step < top or again:
            if point.step <= first_step and point.step < top:
                raise DataError(
                    f"{shape.path}: at {point.where} the {shape.x_unit}s go back from {_num(top)} to "
                    f"{_num(point.step)}, the log's first {shape.x_unit}: two runs in one log? Give each run "
                    "its own file (a resumed run, which goes back to a later checkpoint, is stitched)"
                )
            what = f"go back from {_num(top)} to {_num(point.step)}" if point.step < top else "log a train loss again"
            shape.notes.append(
                f"{shape.x_unit}s {what} at {point.where}: a resumed run; stitched (the values logged after "
                f"the resume replace those from {shape.x_unit} {_num(point.step)} on)"
            )
            kept = [p for p in kept if p.step < point.step]
            top = max((p.step for p in kept), default=-math.inf)
            last_train = max((p.step for p in kept if p.train is not None), default=-math.inf)
        kept.append(point)
        top = max(top, point.step)
        if point.train is not None:
            last_train = point.step
    return kept


def _cut_at_non_finite(points: list[Point], val_key: str, shape: LogShape) -> tuple[list[Point], Optional[int]]:
    for index, point in enumerate(points):
        bad = []
        if point.train is not None and not math.isfinite(point.train):
            bad.append(f"train loss {point.train}")
        if val_key in point.evals and not math.isfinite(point.evals[val_key]):
            bad.append(f"{val_key} {point.evals[val_key]}")
        if bad:
            shape.notes.append(
                f"{' and '.join(bad)} at {shape.x_unit} {_num(point.step)} ({point.where}): the run is read "
                f"up to the {shape.x_unit} before it"
            )
            return points[:index], int(point.step)
    return points, None


def _eval_keys(points: Iterable[Point]) -> list[str]:
    keys: list[str] = []
    for point in points:
        keys.extend(k for k in point.evals if k not in keys)
    return keys


def choose_val_key(val_keys: list[str], val_key: Optional[str], shape: LogShape) -> str:
    """The eval set to analyse: ``val_key`` if the log has it, else ``eval_loss``/``val_loss``, else the first."""
    if not val_keys:
        have = ", ".join(shape.keys) if shape.keys else "none"
        raise DataError(
            f"{shape.path}: this {shape.format} log has no validation loss (its keys: {have}); gaplab needs "
            "the val loss logged at each eval"
        )
    if val_key is not None:
        if val_key not in val_keys:
            raise DataError(
                f"{shape.path}: --val {val_key!r} is not an eval set of this log; it has {', '.join(val_keys)}"
            )
        return val_key
    chosen = next((k for k in DEFAULT_VAL_KEYS if k in val_keys), val_keys[0])
    if len(val_keys) > 1:
        shape.notes.append(
            f"the log has {len(val_keys)} eval sets ({', '.join(val_keys)}); analysing {chosen!r} (choose with --val)"
        )
    return chosen


def _train_level(losses: list[float]) -> tuple[float, float]:
    if not losses:
        return math.nan, math.nan
    values = np.asarray(losses, dtype=float)
    spread = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) >= 2 else math.nan
    return float(values.mean()), spread


def _history(points: list[Point], val_key: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per eval; with no train loss logged since the previous eval, the last one logged is carried
    (``train_points`` 0 says so), and before the first one the level is NaN."""
    rows, pending, train_rows, last = [], [], [], math.nan
    for point in points:
        if point.train is not None:
            pending.append(point.train)
            train_rows.append((point.step, point.train, point.epoch))
            last = point.train
        if val_key in point.evals:
            if rows and rows[-1][0] == point.step:  # the same eval logged twice (HF's final evaluate()): keep the last
                rows.pop()
            level, spread = _train_level(pending) if pending else (last, math.nan)
            rows.append((point.step, level, point.evals[val_key], spread, len(pending), point.epoch))
            pending = []
    history = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    history["train_points"] = history["train_points"].astype(int)
    return history, pd.DataFrame(train_rows, columns=list(TRAIN_POINT_COLUMNS))


def _train_notes(history: pd.DataFrame, train: pd.DataFrame, shape: LogShape) -> None:
    missing = history["train_loss"].isna().to_numpy()
    n, k = len(history), int(missing.sum())
    why = f" ({shape.train_missing_as})" if shape.train_missing_as else ""
    if n and k == n:
        shape.notes.append(f"train loss was not logged at any of the {n} evals{why}: only val can be judged")
    elif k and missing[:k].all():
        shape.notes.append(f"train loss was not logged at the first {k} of {n} evals{why}")
    elif k:
        shape.notes.append(f"train loss was not logged before {k} of {n} evals{why}")
    carried = int(((history["train_points"] == 0) & ~history["train_loss"].isna()).sum())
    if carried:
        shape.notes.append(
            f"train loss was logged less often than val: at {carried} of {n} evals the train level is the last "
            "train loss logged before it (train_points 0)"
        )
    if len(train) > n - k > 0 and (history["train_points"] > 1).any():
        shape.notes.append(
            f"train loss was logged {len(train)} times and val {n} times: the train level at each eval is the "
            "mean of the train losses logged since the previous eval, their spread its noise"
        )


def build_run_log(points: list[Point], shape: LogShape, val_key: Optional[str] = None) -> RunLog:
    """The :class:`RunLog` of ``points`` (in log order): stitched, cut at NaN/inf, one row per eval."""
    val_keys = _eval_keys(points)
    chosen = choose_val_key(val_keys, val_key, shape)
    points = _stitch(points, shape)
    points, stopped_at = _cut_at_non_finite(points, chosen, shape)
    history, train = _history(points, chosen)
    if history.empty:
        raise DataError(
            f"{shape.path}: no finite {chosen} before {shape.x_unit} {stopped_at}; nothing to analyse"
            if stopped_at is not None
            else f"{shape.path}: {chosen} is never logged with a value; nothing to analyse"
        )
    _train_notes(history, train, shape)
    return RunLog(
        path=shape.path,
        format=shape.format,
        history=history,
        x_unit=shape.x_unit,
        val_key=chosen,
        val_keys=val_keys,
        notes=shape.notes,
        train_points=train if len(train) else None,
        checkpoints=dict(shape.checkpoints),
        best_checkpoint=shape.best_checkpoint,
        stopped_at=stopped_at,
    )


def to_float(value) -> Optional[float]:
    """A logged value as a float: None when missing ("", "NA", "No log", None); NaN/inf kept as such."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if not text or text.lower() in ("na", "n/a", "no log", "none", "null", "-"):
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
