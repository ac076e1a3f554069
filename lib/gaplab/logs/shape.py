"""From a log's points, as the log has them, to a :class:`~gaplab.logs.base.RunLog`: the one place that
handles a log's shape, so every reader treats it the same way.

A reader hands over :class:`Point` records in the order the log wrote them (train losses and evals,
each at its step or epoch).  :func:`build_run_log` then

- stitches a resumed run (steps that go back: the later values win) with a note, or refuses a log that
  restarts at its very beginning (two runs in one file) with a sentence;
- cuts the run at the first NaN/inf loss (``stopped_at``, and a note naming the step);
- picks the eval set (``val_key``; default ``eval_loss`` or the first) among every eval key;
- puts at each eval the mean of the train losses logged since the previous eval, with their scatter
  around a straight line through them over the square root of their count as its noise
  (:func:`interval_levels`; NaN with fewer than 3; a note says where none was logged).
"""

from __future__ import annotations

import math
from collections.abc import Callable
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


@dataclass
class LogArrays:
    """A log's records in the order it wrote them, as arrays (one row per train loss or eval value): what
    :func:`build_from_arrays` reads.  Big logs (a TensorBoard folder, a long console) fill it directly."""

    x: np.ndarray  # the step (or epoch) of each record
    is_eval: np.ndarray  # bool: an eval value (else a train loss)
    value: np.ndarray
    key: np.ndarray  # for an eval value, its index in eval_keys (-1 for a train loss)
    epoch: np.ndarray
    eval_keys: list[str]
    #: where record i is in the file, for a message ("line 812", "log_history[40]")
    where: Callable[[int], str]


class Records:
    """A log's records as lists, filled one by one by a reader (no object per record): ``arrays`` makes
    the :class:`LogArrays`."""

    def __init__(self):
        self.x, self.step, self.is_eval, self.value, self.key_names, self.epoch, self.where = [], [], [], [], [], [], []

    def add(self, x, step, is_eval: bool, value: float, key: str, epoch: float, where) -> None:
        self.x.append(x)
        self.step.append(step)
        self.is_eval.append(is_eval)
        self.value.append(value)
        self.key_names.append(key)
        self.epoch.append(epoch)
        self.where.append(where)

    def arrays(self, where: Callable) -> LogArrays:
        """``where(w)`` says the place of a record from what ``add`` was given as ``where``."""
        eval_keys = list(dict.fromkeys(k for k, e in zip(self.key_names, self.is_eval) if e))
        index = {k: i for i, k in enumerate(eval_keys)}
        key = np.fromiter((index[k] if e else -1 for k, e in zip(self.key_names, self.is_eval)), int, len(self.x))
        places = self.where
        return LogArrays(
            np.asarray(self.x, float),
            np.asarray(self.is_eval, bool),
            np.asarray(self.value, float),
            key,
            np.asarray(self.epoch, float),
            eval_keys,
            lambda i: where(places[i]),
        )


def points_to_arrays(points: list[Point]) -> LogArrays:
    """The records of :class:`Point` s (a train loss first, then each eval value of the point)."""
    eval_keys: dict[str, int] = {}
    x, is_eval, value, key, epoch, owner = [], [], [], [], [], []
    for index, point in enumerate(points):
        if point.train is not None:
            x.append(point.step), is_eval.append(False), value.append(point.train), key.append(-1)
            epoch.append(point.epoch), owner.append(index)
        for name, number in point.evals.items():
            x.append(point.step), is_eval.append(True), value.append(number)
            key.append(eval_keys.setdefault(name, len(eval_keys))), epoch.append(point.epoch), owner.append(index)
    return LogArrays(
        np.asarray(x, float),
        np.asarray(is_eval, bool),
        np.asarray(value, float),
        np.asarray(key, int),
        np.asarray(epoch, float),
        list(eval_keys),
        lambda i: points[owner[i]].where,
    )


def _refuse_restart(log: LogArrays, i: int, top: float, shape: LogShape) -> None:
    raise DataError(
        f"{shape.path}: at {log.where(i)} the {shape.x_unit}s go back from {format_x(top)} to {format_x(log.x[i])}, "
        f"the log's first {shape.x_unit}: two runs in one log? Give each run its own file (a resumed run, which "
        "goes back to a later checkpoint, is stitched)"
    )


def _stitch(log: LogArrays, rows: np.ndarray, shape: LogShape) -> np.ndarray:
    """The rows kept when later values win where steps go back, or a train loss is logged again at a step
    (a resumed run); a restart from the log's first step is refused (two runs in one file)."""
    if len(rows) < 2:
        return rows
    x, train = log.x[rows], ~log.is_eval[rows]
    top_before = np.maximum.accumulate(np.concatenate(([-np.inf], x[:-1])))
    train_x = np.where(train, x, -np.inf)
    train_top = np.maximum.accumulate(np.concatenate(([-np.inf], train_x[:-1])))
    again = train & (x <= train_top) if shape.repeat_is_resume else np.zeros(len(x), bool)
    keep = np.ones(len(rows), bool)
    for j in np.flatnonzero((x < top_before) | again):
        earlier = keep[:j]
        top = x[:j][earlier].max(initial=-np.inf)
        last_train = x[:j][earlier & train[:j]].max(initial=-np.inf)
        going_back = x[j] < top
        if not going_back and not (again[j] and x[j] <= last_train):
            continue  # what it went back past was dropped by an earlier resume
        if going_back and x[j] <= x[0]:
            _refuse_restart(log, rows[j], top, shape)
        what = f"go back from {format_x(top)} to {format_x(x[j])}" if going_back else "log a train loss again"
        shape.notes.append(
            f"{shape.x_unit}s {what} at {log.where(rows[j])}: a resumed run; stitched (the values logged after "
            f"the resume replace those from {shape.x_unit} {format_x(x[j])} on)"
        )
        keep[:j] &= x[:j] < x[j]
    return rows[keep]


def _cut_at_non_finite(log: LogArrays, rows: np.ndarray, shape: LogShape, val_key: str):
    bad = np.flatnonzero(~np.isfinite(log.value[rows]))
    if not len(bad):
        return rows, None
    i = rows[bad[0]]
    what = f"{val_key} {log.value[i]}" if log.is_eval[i] else f"train loss {log.value[i]}"
    shape.notes.append(
        f"{what} at {shape.x_unit} {format_x(log.x[i])} ({log.where(i)}): the run is read up to the {shape.x_unit} "
        "before it"
    )
    x = float(log.x[i])
    return rows[: bad[0]], int(x) if x.is_integer() else x


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


def interval_levels(values: np.ndarray, group: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per interval between two evals (``group``: each value's interval, nondecreasing, in log order): the
    mean of the train losses logged in it, its standard error, and how many there were.

    The standard error is the scatter of the losses around a straight line through them (a loss that falls
    during the interval is a trend, not noise) over the square root of their count: NaN with fewer than 3
    losses, and the mean NaN with none.  The one estimate of a train level's noise, for the log readers and
    the trainers' callbacks (:func:`gaplab.integrations.common.interval_train_loss`) alike.
    """
    values, group = np.asarray(values, dtype=float), np.asarray(group, dtype=np.int64)
    counts = np.bincount(group, minlength=groups)[:groups]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(group, weights=values, minlength=groups)[:groups] / counts
        starts = np.cumsum(counts) - counts
        n = counts[group].astype(float)
        t = np.arange(len(group)) - starts[group] - (n - 1) / 2  # position in the interval, centred
        dev = values - mean[group]
        ctt = counts * (counts.astype(float) ** 2 - 1) / 12  # sum of t**2 over an interval of n points
        ctx = np.bincount(group, weights=t * dev, minlength=groups)[:groups]
        cxx = np.bincount(group, weights=dev * dev, minlength=groups)[:groups]
        residual = np.maximum(cxx - ctx**2 / ctt, 0.0)
        se = np.where(counts >= 3, np.sqrt(residual / np.maximum(counts - 2, 1) / counts), np.nan)
    return mean, se, counts


def _history(log: LogArrays, rows: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per eval: the mean of the train losses logged since the previous eval and its standard error
    (:func:`interval_levels`); with none, the last one logged is carried (``train_points`` 0), and before the
    first one the level is NaN.  The same eval logged twice in a row (HF's final evaluate()) counts once."""
    evals, trains = rows[log.is_eval[rows]], rows[~log.is_eval[rows]]
    position = np.arange(len(rows))
    eval_pos, train_pos = position[log.is_eval[rows]], position[~log.is_eval[rows]]
    ex = log.x[evals]
    last = np.append(ex[1:] != ex[:-1], True) if len(ex) else np.zeros(0, bool)
    # train losses between two copies of one eval belong to the second copy, which is kept
    evals, eval_pos = evals[last], eval_pos[last]
    n_eval = len(evals)
    group = np.searchsorted(eval_pos, train_pos)
    tv = log.value[trains]
    inside = group < n_eval  # train losses after the last eval belong to none
    mean, se, counts = interval_levels(tv[inside], group[inside], n_eval)
    before = np.searchsorted(train_pos, eval_pos) - 1
    carried = np.where(before >= 0, tv[np.maximum(before, 0)] if len(tv) else np.nan, np.nan)
    level = np.where(counts > 0, mean, carried)
    history = pd.DataFrame(
        {
            "iter": log.x[evals],
            "train_loss": level,
            "val_loss": log.value[evals],
            "train_loss_se": se,
            "train_points": counts.astype(int),
            "epoch": log.epoch[evals],
            "val_loss_se": np.full(len(evals), np.nan),
        },
        columns=list(HISTORY_COLUMNS),
    )
    train = pd.DataFrame(
        {"step": log.x[trains], "loss": tv, "epoch": log.epoch[trains]}, columns=list(TRAIN_POINT_COLUMNS)
    )
    return history, train


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
            "mean of the train losses logged since the previous eval, their scatter around its trend its noise"
        )


def build_run_log(points: list[Point], shape: LogShape, val_key: Optional[str] = None) -> RunLog:
    """The :class:`RunLog` of ``points`` (in log order): stitched, cut at NaN/inf, one row per eval."""
    return build_from_arrays(points_to_arrays(points), shape, val_key)


def build_from_arrays(log: LogArrays, shape: LogShape, val_key: Optional[str] = None) -> RunLog:
    """The :class:`RunLog` of a log's records: the eval set chosen, stitched, cut at NaN/inf, one row per eval."""
    chosen = choose_val_key(log.eval_keys, val_key, shape)
    rows = np.flatnonzero((~log.is_eval | (log.key == log.eval_keys.index(chosen))) & ~np.isnan(log.x))
    rows = _stitch(log, rows, shape)
    rows, stopped_at = _cut_at_non_finite(log, rows, shape, chosen)
    history, train = _history(log, rows)
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
        val_keys=list(log.eval_keys),
        notes=shape.notes,
        train_points=train if len(train) else None,
        checkpoints=dict(shape.checkpoints),
        best_checkpoint=shape.best_checkpoint,
        stopped_at=stopped_at,
    )


def fill_from_log(run: RunLog, column: str, by_x: dict[float, Optional[float]]) -> None:
    """Put the log's own per-eval values (``val_loss_se``, ``train_loss_se``) in ``run.history[column]``,
    matched by x; where the log has none, the column keeps what it had."""
    if not by_x:
        return
    given = [by_x.get(float(x)) for x in run.history["iter"]]
    old = run.history[column].to_numpy()
    run.history[column] = [old[i] if v is None else v for i, v in enumerate(given)]


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


def format_x(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
