"""What the trainer callbacks share: the curve they record, gaplab's one onset rule applied to it, the files.

:class:`OnsetWatch` is the trainer-free part of both callbacks.  The trainer hands it every train loss it
logs (:meth:`OnsetWatch.add_train_loss`) and every eval loss (:meth:`OnsetWatch.add_eval`); at each eval it
adds one ``history.csv`` row (:data:`gaplab.train.history.HISTORY_COLUMNS`; what a foreign trainer does not
measure is NaN), rewrites the file, and applies :func:`gaplab.measure.curves.detect_onset` to the curve so
far: the first eval at which the rule finds an onset confirms it, and :attr:`OnsetWatch.should_stop` turns
true.  The row's ``train_loss`` is the mean of the train losses logged since the previous eval and
``train_loss_se`` their standard error (:func:`interval_train_loss`).  At the end of training
:meth:`OnsetWatch.finish` writes ``analysis.json`` (:func:`analysis_record`: what ``gaplab analyze --json``
prints for that ``history.csv``), ``early_stop.json`` (a :class:`StopReport`) and
``figures/loss_curves.png|svg``, and returns the report, whose ``message`` is the line for the run's log.
Each eval's scalars also go to ``tensorboard/seed-<seed>/`` as gaplab's own trainer writes them.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import pandas as pd

from ..files import atomic_write_json, atomic_write_text
from ..measure.curves import END_EVALS, detect_onset
from ..train.history import HISTORY_COLUMNS, REQUIRED_COLUMNS, history_csv
from ..train.tracking import Tracker

PathLike = Union[str, Path]

HISTORY_FILE = "history.csv"
ANALYSIS_FILE = "analysis.json"
STOP_FILE = "early_stop.json"
FIGURES_DIR = "figures"
FIGURE_NAME = "loss_curves"

#: extra name -> the packages it installs (what a missing extra's message names)
EXTRAS = {"huggingface": "transformers and accelerate", "lightning": "lightning"}


class MissingExtraError(ImportError):
    """A callback module imported without its optional packages; the message gives the install command."""

    @classmethod
    def for_extra(cls, extra: str, cause: BaseException) -> MissingExtraError:
        return cls(
            f"gaplab.integrations.{extra} needs the optional packages {EXTRAS[extra]}, which are not installed "
            f"({cause}): install them with pip install 'gaplab[{extra}]'"
        )


class BestCheckpointWarning(UserWarning):
    """The trainer's settings cannot keep the weights of the best eval, or feed the rule a train loss."""


def analysis_record(history_path: PathLike, vocab_size: Optional[int] = None) -> dict:
    """What ``gaplab analyze HISTORY --json`` prints for the ``history.csv`` a callback wrote: the same reader
    and the same analysis (:func:`gaplab.logs.analyze.analyze_path`), not a second copy of them."""
    from ..logs.analyze import analyze_path

    return analyze_path(history_path, vocab_size=vocab_size)[0].to_dict()


def interval_train_loss(losses: Sequence[float]) -> tuple[float, float]:
    """The mean of the train losses logged since the previous eval, and its standard error (nats): the log
    readers' estimate, :func:`gaplab.logs.shape.interval_levels`, on one interval (non-finite losses left
    out).  NaN standard error with fewer than 3 finite losses, and both NaN with none."""
    from ..logs.shape import interval_levels

    x = np.asarray([v for v in losses if math.isfinite(v)], dtype=float)
    mean, se, _ = interval_levels(x, np.zeros(x.size, dtype=np.int64), 1)
    return float(mean[0]), float(se[0])


@dataclass(frozen=True)
class StopReport:
    """``early_stop.json``: what the callback decided and what stopping saved (steps are optimizer steps).

    ``onset_iter`` is the onset as the rule placed it on the curve when it confirmed it, at
    ``confirmed_iter``, ``evals_past_onset`` evals after it (all None without one); ``stopped`` says
    whether training was stopped there;
    ``best_iter`` / ``best_val`` the eval with the lowest val loss (nats), whose weights ``checkpoint``
    holds (a path, or a sentence where they are kept in memory; None when nothing keeps them);
    ``steps_not_run`` / ``evals_not_run`` what the trainer had planned after the last step
    (None when it planned no end); ``message`` the line written to the run's log.
    """

    stopped: bool
    onset_iter: Optional[int]
    confirmed_iter: Optional[int]
    evals_past_onset: Optional[int]
    best_iter: Optional[int]
    best_val: Optional[float]
    last_iter: int
    planned_iter: Optional[int]
    evals_run: int
    steps_not_run: Optional[int]
    evals_not_run: Optional[int]
    checkpoint: Optional[str]
    message: str


def _finite(x: Any) -> float:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


class OnsetWatch:
    """One training run's curve, eval by eval, with :data:`gaplab.measure.curves.ONSET_RULE` applied after each.

    ``out_dir``: the run's output folder (files go there); ``stop``: whether a confirmed onset asks the
    trainer to stop; ``vocab_size``: passed to the verdict (a best val near ln(V) reads as underfitting);
    ``figure``: draw ``figures/loss_curves`` at the end; ``tensorboard``: write each eval's scalars to
    ``tensorboard/seed-<seed>/`` (:class:`gaplab.train.tracking.Tracker`, as gaplab's trainer does), so
    ``tensorboard --logdir <out_dir>`` (or ``make tensorboard``) shows the run.
    """

    def __init__(
        self,
        out_dir: PathLike,
        *,
        stop: bool = True,
        vocab_size: Optional[int] = None,
        figure: bool = True,
        tensorboard: bool = True,
        seed: int = 0,
    ):
        self.out_dir = Path(out_dir)
        self.stop = stop
        self.vocab_size = vocab_size
        self.figure = figure
        self.tensorboard = tensorboard
        self.seed = seed
        self._tracker: Optional[Tracker] = None
        self.rows: list[dict[str, float]] = []
        self.onset: Optional[dict[str, Any]] = None  # detect_onset's dict at the eval that confirmed an onset
        self.confirmed_iter: Optional[int] = None
        self.best_iter: Optional[int] = None
        self.best_val: Optional[float] = None
        self._pending: list[float] = []
        self._start = time.monotonic()

    @property
    def history_path(self) -> Path:
        return self.out_dir / HISTORY_FILE

    @property
    def should_stop(self) -> bool:
        return self.stop and self.confirmed_iter is not None

    def add_train_loss(self, loss: Any) -> None:
        """A train loss the trainer logged (a step's, or its mean over a few steps)."""
        self._pending.append(_finite(loss))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(HISTORY_COLUMNS))

    def add_eval(self, step: int, val_loss: Any, *, lr: Any = math.nan, epochs: Any = math.nan) -> bool:
        """Record an eval at optimizer step ``step``; rewrite ``history.csv``; apply the rule.

        Returns True when this eval has the lowest val loss so far (the weights to keep).
        """
        train, train_se = interval_train_loss(self._pending)
        self._pending = []
        val = _finite(val_loss)
        row = {column: math.nan for column in HISTORY_COLUMNS}
        row.update(iter=int(step), train_loss=train, val_loss=val, gap=val - train, train_loss_se=train_se)
        row.update(lr=_finite(lr), epochs=_finite(epochs), elapsed_s=time.monotonic() - self._start)
        self.rows.append(row)
        atomic_write_text(self.history_path, history_csv(self.rows))
        if self.tensorboard:
            self._tracker = self._tracker or Tracker(self.out_dir, self.seed)
            self._tracker.log(row)
        is_best = math.isfinite(val) and (self.best_val is None or val < self.best_val)
        if is_best:
            self.best_iter, self.best_val = int(step), val
        if self.confirmed_iter is None:
            self._apply_rule(int(step))
        return is_best

    def _apply_rule(self, step: int) -> None:
        h = self.frame()
        finite = np.isfinite(h[list(REQUIRED_COLUMNS)].to_numpy(dtype=float)).all(axis=1)
        if finite.sum() <= END_EVALS:  # an onset needs END_EVALS evals after it
            return
        onset = detect_onset(h)
        if onset["onset_iter"] is not None:
            self.onset, self.confirmed_iter = onset, step

    def finish(
        self, last_iter: int, planned_iter: Optional[int] = None, checkpoint: Optional[str] = None
    ) -> StopReport:
        """Write ``analysis.json``, ``early_stop.json`` and the figure; return the report (its ``message``
        is the line for the run's log).  ``planned_iter``: the step the trainer would have ended at."""
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None
        h = self.frame()
        has_curve = bool(np.isfinite(h[list(REQUIRED_COLUMNS)].to_numpy(dtype=float)).all(axis=1).any())
        analysis = analysis_record(self.history_path, self.vocab_size) if has_curve else None
        if analysis is not None:
            atomic_write_text(self.out_dir / ANALYSIS_FILE, json.dumps(analysis, indent=2, allow_nan=False) + "\n")
        report = self._report(int(last_iter), planned_iter, checkpoint)
        atomic_write_json(self.out_dir / STOP_FILE, asdict(report))
        if analysis is not None and self.figure:
            from ..report.plots import loss_curves

            marks = dict(analysis, early_stop_iter=report.last_iter if report.stopped else None)
            loss_curves(h, marks, self.out_dir / FIGURES_DIR, name=FIGURE_NAME)
        return report

    def _report(self, last_iter: int, planned_iter: Optional[int], checkpoint: Optional[str]) -> StopReport:
        stopped = self.should_stop
        steps_not_run = evals_not_run = None
        iters = [int(r["iter"]) for r in self.rows]
        if planned_iter is not None and planned_iter > 0:
            steps_not_run = max(0, int(planned_iter) - last_iter)
            spacing = iters[-1] - iters[-2] if len(iters) >= 2 else 0
            evals_not_run = steps_not_run // spacing if spacing > 0 else None
        fields = dict(
            stopped=stopped,
            onset_iter=self.onset["onset_iter"] if self.onset else None,
            confirmed_iter=self.confirmed_iter,
            evals_past_onset=self.onset["evals_after_onset"] if self.onset else None,
            best_iter=self.best_iter,
            best_val=self.best_val,
            last_iter=last_iter,
            planned_iter=int(planned_iter) if planned_iter is not None and planned_iter > 0 else None,
            evals_run=len(self.rows),
            steps_not_run=steps_not_run,
            evals_not_run=evals_not_run,
            checkpoint=checkpoint,
        )
        return StopReport(**fields, message=stop_message(**fields))


def stop_message(**f: Any) -> str:
    """The line for the run's log: the onset, the best step, and what stopping saved."""
    best = (
        f"best eval at step {f['best_iter']} (val loss {f['best_val']:.4f} nats)"
        if f["best_iter"] is not None
        else "no finite val loss"
    )
    kept = f"its weights: {f['checkpoint']}" if f["checkpoint"] else "its weights were not kept"
    if f["onset_iter"] is None:
        return f"gaplab: no overfitting onset in {f['evals_run']} evals (last step {f['last_iter']}); {best}; {kept}."
    onset = (
        f"overfitting onset at step {f['onset_iter']}, confirmed by gaplab's onset rule {f['evals_past_onset']} "
        f"evals later, at step {f['confirmed_iter']}"
    )
    if not f["stopped"]:
        return f"gaplab: {onset}; training went on (stop=False) to step {f['last_iter']}; {best}; {kept}."
    of = f" of {f['planned_iter']}" if f["planned_iter"] else ""
    saved = (
        f"stopping saved {f['steps_not_run']} steps and {f['evals_not_run']} evals"
        if f["steps_not_run"] is not None and f["evals_not_run"] is not None
        else "the trainer had planned no end"
    )
    return f"gaplab: stopped training at step {f['last_iter']}{of}: {onset}; {best}; {saved}; {kept}."
