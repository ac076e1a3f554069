"""What a user does with the verdict on a log trained elsewhere: :func:`analyze_log` (one eval set of one
run, a :class:`LogAnalysis`), :func:`analyze_path` (every eval set of one log), :func:`analyze_runs` (the
runs of ``gaplab analyze A B …`` or of a folder of runs) and :func:`replicate_spread` (runs that are
replicates: the same evals).

On top of the one verdict (:func:`gaplab.measure.curves.analyze_curve`): the best eval and the last, what
stopping at the best would have given ("X nats lower val, N times the noise"), the checkpoint to keep (the
log's best checkpoint, or the first ``checkpoint-N`` at or after the best) and, for a log that records
epochs, the **staircase**: train loss dropping at an epoch boundary by more than its noise within the epoch
(the model has begun to recall examples it has already seen).  Losses are in nats, as the log has them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from gaplab.errors import DataError
from gaplab.logs.base import READERS, PathLike, RunLog, file_head, read_log
from gaplab.measure.curves import CurveAnalysis, analyze_curve
from gaplab.measure.replicates import aggregate_histories
from gaplab.units import finite_or_none

# A boundary is a stair when train's first losses of the next epoch are below where its trend within the
# epoch was heading by more than this many standard deviations of that comparison.  The deviation is itself
# estimated from an epoch's few train losses, so chance crosses it more often than a normal's 0.13 %: on
# seeded smooth falls with Gaussian noise, 10 train losses an epoch, 26 of 3,000 boundaries (0.9 %;
# tests/logs/test_analyze.py), while a drop of 5 times the noise is found at 96 % of boundaries.
Z_STAIR = 3.0
# How many train losses at the start of the next epoch the comparison averages (fewer if the epoch has fewer).
STAIR_HEAD_POINTS = 3
# An epoch needs this many train losses for its trend and its noise to be measured.
STAIR_MIN_POINTS = 4


@dataclass(frozen=True)
class Stair:
    """One epoch boundary: train's drop below its within-epoch trend, against that trend's noise (nats)."""

    epoch: int  # the epoch that ended
    step: float  # the first train loss of the next epoch
    drop: float  # trend's value there minus the mean of the next epoch's first losses
    noise: float  # the standard deviation of that comparison
    is_stair: bool  # drop > Z_STAIR * noise


@dataclass(frozen=True)
class LogAnalysis:
    """One eval set of one run: the verdict and what to do with it (see the module docstring)."""

    path: str
    format: str
    val_key: str
    x_unit: str
    curve: CurveAnalysis
    history: pd.DataFrame = field(repr=False)  # the eval rows read (RunLog.history), for figures and replicates
    last_iter: int
    keep_checkpoint: Optional[str]
    best_checkpoint: Optional[str] = None  # the log's own choice (HF: by metric_for_best_model)
    stairs: list[Stair] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def unit(self) -> str:
        """What the reason calls the x values (:func:`x_word`)."""
        return x_word(self.format, self.x_unit)

    @property
    def lost_after_best(self) -> float:
        """How much lower val would have been had training stopped at its best eval (nats, >= 0)."""
        return float(self.curve.onset.final_val - self.curve.onset.best_val)

    @property
    def lost_in_noise(self) -> float:
        """:attr:`lost_after_best` in units of one eval's noise."""
        return self.lost_after_best / self.curve.onset.val_noise

    def advice(self) -> str:
        """What to do, in a sentence or two: where to stop, which checkpoint to keep, the staircase."""
        o, unit = self.curve.onset, self.unit
        if o.best_iter == self.last_iter:
            text = f"The best val is the last eval ({o.best_val:.3f} at {unit} {o.best_iter}): nothing to stop earlier."
        else:
            text = (
                f"Best val {o.best_val:.3f} at {unit} {o.best_iter}, last {o.final_val:.3f} at {unit} {self.last_iter}: "
                f"stopping at the best would have given {self.lost_after_best:.3f} nats lower val "
                f"({self.lost_in_noise:.1f} times the noise, ±{o.val_noise:.3f} per eval)."
            )
        if self.keep_checkpoint:
            text += f" {self._checkpoint_sentence()}"
        return text + (f" {staircase_sentence(self.stairs)}" if self.stairs else "")

    def _checkpoint_sentence(self) -> str:
        best, step = self.curve.onset.best_iter, _checkpoint_step(self.keep_checkpoint)
        if step is None or step == best:
            text = f"Keep {self.keep_checkpoint} (the best eval's)."
        elif step > best:
            text = (
                f"The first checkpoint the log names at or after the best is {self.keep_checkpoint}, "
                f"{step - best:g} {self.unit}s after it (save a checkpoint at every eval to keep the best)."
            )
        else:
            text = f"The log's best checkpoint is {self.keep_checkpoint}."
        if self.best_checkpoint and self.best_checkpoint != self.keep_checkpoint:
            text += f" The log's best_model_checkpoint, {self.best_checkpoint}, was chosen by another metric."
        return text

    def to_dict(self) -> dict[str, Any]:
        """The analysis fields (:meth:`CurveAnalysis.to_dict`), then the log's: plain JSON."""
        out = self.curve.to_dict()
        out.update(
            file=self.path,
            format=self.format,
            val_key=self.val_key,
            x_unit=self.x_unit,
            last_iter=self.last_iter,
            lost_after_best=finite_or_none(self.lost_after_best),
            lost_in_noise=finite_or_none(self.lost_in_noise),
            keep_checkpoint=self.keep_checkpoint,
            thin_evidence=self.curve.thin_evidence,
            train_logged=self.curve.train_logged,
            stairs=[vars(s) | {"drop": finite_or_none(s.drop), "noise": finite_or_none(s.noise)} for s in self.stairs],
            advice=self.advice(),
            notes=list(self.notes),
        )
        return out


def example_log() -> Path:
    """A real Hugging Face ``trainer_state.json`` shipped with gaplab (``reference/README.md`` gives its source):
    what ``06_analyze_log.ipynb`` analyses when no log is given."""
    return Path(__file__).resolve().parents[1] / "reference" / "example_trainer_state.json"


#: formats whose x is gaplab's own "iter" (its history.csv, and the iter,train_loss,val_loss CSV that
#: ``gaplab analyze`` has always read): their reasons say "iter", as metrics.json's always have
ITER_FORMATS = ("gaplab_history", "csv")


def x_word(format: str, x_unit: str) -> str:
    """What the reasons and tables call a log's x: ``"iter"`` for gaplab's own layouts, else the log's unit."""
    return "iter" if x_unit == "step" and format in ITER_FORMATS else x_unit


# --------------------------------------------------------------------------- the checkpoint to keep
def checkpoint_to_keep(run: RunLog, best_iter: int) -> Optional[str]:
    """The first checkpoint the log names at or after the best val eval (the log's best checkpoint among them);
    else the log's best checkpoint; None when the log names none."""
    named = dict(run.checkpoints)
    best_step = _checkpoint_step(run.best_checkpoint)
    if best_step is not None:
        named[best_step] = run.best_checkpoint
    later = sorted(step for step in named if step >= best_iter)
    return named[later[0]] if later else run.best_checkpoint


def _checkpoint_step(name: Optional[str]) -> Optional[int]:
    match = re.search(r"checkpoint-(\d+)", name or "")
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------- the staircase
def _epoch_number(epochs: np.ndarray) -> np.ndarray:
    """The epoch each train loss belongs to, 1-based: HF logs epoch 1.0 at the end of the first epoch, so
    (0, 1] is epoch 1; a log counting whole epochs from 0 (0, 1, 2 …) gives 1, 2, 3 …"""
    if np.all(epochs == np.round(epochs)):
        return epochs.astype(int) + 1
    return np.ceil(epochs - 1e-9).astype(int)


def staircase(train_points: Optional[pd.DataFrame]) -> list[Stair]:
    """Each epoch boundary of a log whose train losses carry their epoch: is it a stair?

    Within each epoch of at least :data:`STAIR_MIN_POINTS` train losses, a straight line through them is
    train's trend, and the scatter about it the noise; the first :data:`STAIR_HEAD_POINTS` losses of the
    next epoch are compared with where the line was heading (the comparison's noise counts the head's mean,
    the line's level and the uncertainty of its slope over the extrapolation).  Empty when the log has no epochs, or every
    epoch has too few train losses (a Keras log: one per epoch).
    """
    if train_points is None or train_points.empty or "epoch" not in train_points:
        return []
    finite = np.isfinite(train_points[["step", "loss", "epoch"]].to_numpy(dtype=float)).all(axis=1)
    points = train_points[finite]
    if points.empty:
        return []
    epoch = _epoch_number(points["epoch"].to_numpy(dtype=float))
    step, loss = points["step"].to_numpy(dtype=float), points["loss"].to_numpy(dtype=float)
    stairs = []
    for number in np.unique(epoch)[:-1]:
        inside, after = epoch == number, epoch == number + 1
        if inside.sum() < STAIR_MIN_POINTS or not after.any() or np.ptp(step[inside]) == 0:
            continue  # too few train losses, or all at one step (a console's epoch rounded to 0.00)
        slope, intercept = np.polyfit(step[inside], loss[inside], 1)
        scatter = float(np.std(loss[inside] - (slope * step[inside] + intercept), ddof=2))
        head_steps, head_loss = step[after][:STAIR_HEAD_POINTS], loss[after][:STAIR_HEAD_POINTS]
        # where the line was heading at the head's mean step, and how uncertain that extrapolation is
        at, centre = float(head_steps.mean()), float(step[inside].mean())
        spread = float(((step[inside] - centre) ** 2).sum())
        expected = slope * at + intercept
        noise = scatter * math.sqrt(1 / len(head_loss) + 1 / inside.sum() + (at - centre) ** 2 / spread)
        drop = expected - float(head_loss.mean())
        stairs.append(Stair(int(number), float(head_steps[0]), drop, noise, bool(drop > Z_STAIR * noise)))
    return stairs


def staircase_sentence(stairs: Sequence[Stair]) -> str:
    """The staircase in one sentence."""
    found = [s for s in stairs if s.is_stair]
    if not found:
        where = (
            "at the one epoch boundary train loss did not"
            if len(stairs) == 1
            else (f"at none of the {len(stairs)} epoch boundaries did train loss")
        )
        return f"No staircase: {where} drop by more than its noise within the epoch."
    top = max(found, key=lambda s: s.drop / s.noise if s.noise > 0 else math.inf)
    ratio = f"{top.drop / top.noise:.0f} times" if top.noise > 0 else "far beyond"
    return (
        f"Staircase: train loss dropped at {len(found)} of {len(stairs)} epoch boundaries by more than its noise "
        f"within the epoch (the largest after epoch {top.epoch}: {top.drop:.3f} nats, {ratio} the noise): the "
        "model has begun to recall examples it has already seen."
    )


# --------------------------------------------------------------------------- one log, several runs
def analyze_log(run: RunLog, vocab_size: Optional[int] = None) -> LogAnalysis:
    """The verdict of one :class:`RunLog` (its chosen eval set) and what to do with it."""
    if run.history.empty:
        raise DataError(f"{run.path}: the {run.val_key} curve has no eval to judge")
    curve = analyze_curve(run.history, vocab_size, unit=x_word(run.format, run.x_unit))
    return LogAnalysis(
        path=run.path,
        format=run.format,
        val_key=run.val_key,
        x_unit=run.x_unit,
        curve=curve,
        history=run.history,
        last_iter=int(run.history["iter"].iloc[-1]),
        keep_checkpoint=checkpoint_to_keep(run, curve.onset.best_iter),
        best_checkpoint=run.best_checkpoint,
        stairs=staircase(run.train_points),
        notes=list(run.notes),
    )


def analyze_path(
    path: PathLike, format: Optional[str] = None, val_key: Optional[str] = None, vocab_size: Optional[int] = None
) -> list[LogAnalysis]:
    """Every eval set of one log (only ``val_key`` when given), each judged on its own."""
    run = read_log(path, format, val_key)
    keys = [run.val_key] if val_key is not None else list(run.val_keys or [run.val_key])
    runs = [run] + [read_log(path, format, key) for key in keys if key != run.val_key]
    return [analyze_log(r, vocab_size) for r in runs]


def run_paths(paths: Sequence[PathLike], format: Optional[str] = None) -> list[Path]:
    """The logs named: a file, or a folder a reader recognises (a run folder, a TensorBoard folder), is one
    run; a folder none recognises is a folder of runs (each entry a reader recognises, in name order).  Judged
    by content (each reader's sniff), without reading the logs; a folder with nothing gaplab reads is said in
    one sentence (:func:`~gaplab.logs.base.read_log`'s)."""
    out: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir() or _recognised(path, format):
            out.append(path)
            continue
        inside = [p for p in sorted(path.iterdir()) if not p.name.startswith(".") and _recognised(p, format)]
        if not inside:
            read_log(path, format)  # raises the sentence that says what the folder holds
        out.extend(inside)
    return out


def _recognised(path: Path, format: Optional[str]) -> bool:
    readers = [READERS[format]] if format in READERS else list(READERS.values())
    head = file_head(path)
    return any(r.sniff(path, head) for r in readers if r.reads_folders or not path.is_dir())


def analyze_runs(
    paths: Sequence[PathLike],
    format: Optional[str] = None,
    val_key: Optional[str] = None,
    vocab_size: Optional[int] = None,
    skipped: Optional[list[str]] = None,
) -> list[LogAnalysis]:
    """Every run of ``paths`` (see :func:`run_paths`; one path alone is one too), every eval set of each.

    A log named itself that cannot be read raises its sentence; one found inside a folder of runs is left
    out, its sentence appended to ``skipped`` (when given; else it raises too), so one bad run does not hide
    the others."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    named = {Path(p) for p in paths}
    out: list[LogAnalysis] = []
    for path in run_paths(paths, format):
        try:
            out.extend(analyze_path(path, format, val_key, vocab_size))
        except DataError as err:
            if path in named or skipped is None:
                raise
            skipped.append(str(err))
    if not out and skipped:
        raise DataError(skipped[0])
    return out


# --------------------------------------------------------------------------- replicates
@dataclass(frozen=True)
class ReplicateSpread:
    """Runs with the same evals, read as replicates: each number's mean and spread, and the mean curve's verdict
    (its noise the replicates' spread, as a study's replicates are read)."""

    n: int
    best_val_mean: float
    best_val_std: float
    final_val_mean: float
    final_val_std: float
    onsets: int
    verdicts: list[str]
    mean_curve: CurveAnalysis

    def sentence(self) -> str:
        o = self.mean_curve.onset
        onset = f"onset at {o.onset_iter}" if o.onset_iter is not None else "no onset"
        return (
            f"{self.n} replicates (the same {self.mean_curve.n_evals} evals): best val {self.best_val_mean:.3f} "
            f"± {self.best_val_std:.3f}, final {self.final_val_mean:.3f} ± {self.final_val_std:.3f} (mean ± "
            f"standard deviation); {self.onsets} of {self.n} have an onset; their mean curve reads "
            f"{self.mean_curve.verdict} ({onset}, noise ±{o.val_noise:.3f} per eval from their spread)."
        )


def replicate_spread(analyses: Sequence[LogAnalysis]) -> Optional[ReplicateSpread]:
    """The spread of runs that are replicates (two or more, one eval set, the same eval steps), else None."""
    if len(analyses) < 2 or len({a.val_key for a in analyses}) != 1:
        return None
    if len({tuple(a.history["iter"]) for a in analyses}) != 1:
        return None
    mean = aggregate_histories([a.history[["iter", "train_loss", "val_loss"]] for a in analyses])
    best = np.array([a.curve.onset.best_val for a in analyses])
    final = np.array([a.curve.onset.final_val for a in analyses])
    return ReplicateSpread(
        n=len(analyses),
        best_val_mean=float(best.mean()),
        best_val_std=float(best.std(ddof=1)),
        final_val_mean=float(final.mean()),
        final_val_std=float(final.std(ddof=1)),
        onsets=sum(a.curve.onset.onset_iter is not None for a in analyses),
        verdicts=[a.curve.verdict for a in analyses],
        mean_curve=analyze_curve(mean),
    )


# --------------------------------------------------------------------------- as text
def run_label(a: LogAnalysis) -> str:
    """A run's name in a table: its file or folder name, and the eval set when it is not the usual one."""
    name = Path(a.path).name or a.path
    return name if a.val_key in ("val_loss", "eval_loss") else f"{name} [{a.val_key}]"


def analysis_block(a: LogAnalysis) -> str:
    """One run, one fact a line: what ``gaplab analyze LOG`` prints."""
    o, unit = a.curve.onset, a.unit
    onset = (
        f"{unit} {o.onset_iter} (val {o.onset_val:.3f} nats there, level {o.onset_level:.3f})"
        if (o.onset_iter is not None)
        else "none"
    )
    train = f"train ±{o.train_noise:.3f} ({o.train_noise_source})" if o.train_noise is not None else "train not logged"
    lines = [
        f"{a.path}: {a.curve.n_evals} evals ({a.format}, {a.val_key})",
        f"verdict: {a.curve.verdict}",
        f"onset: {onset}",
        f"best val: {o.best_val:.3f} nats at {unit} {o.best_iter}",
        f"noise: val ±{o.val_noise:.3f} nats per eval ({o.val_noise_source}), {train}",
        f"reason: {a.curve.reason}",
        f"what to do: {a.advice()}",
    ]
    return "\n".join(lines + [f"note: {n}" for n in a.notes])


def analysis_table(analyses: Sequence[LogAnalysis]) -> str:
    """Several runs, one row each: verdict, onset, best, last, what stopping at the best would have saved."""
    rows = [("run", "evals", "verdict", "onset", "best val (at)", "last val (at)", "lost after best", "noise")]
    for a in analyses:
        o = a.curve.onset
        rows.append(
            (
                run_label(a),
                str(a.curve.n_evals) + ("*" if a.curve.thin_evidence else ""),
                a.curve.verdict,
                "-" if o.onset_iter is None else f"{a.unit} {o.onset_iter}",
                f"{o.best_val:.3f} ({a.unit} {o.best_iter})",
                f"{o.final_val:.3f} ({a.unit} {a.last_iter})",
                f"{a.lost_after_best:.3f} ({a.lost_in_noise:.1f}x)",
                f"±{o.val_noise:.3f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if any(a.curve.thin_evidence for a in analyses):
        lines.append("* too few evals for the curve to measure its own noise: the evidence is thin")
    return "\n".join(lines)
