"""Reading the loss curves: the one verdict, built on the overfitting onset (:mod:`gaplab.measure.onset`).

All losses are mean cross-entropy in nats per token (natural log), as the trainer writes them;
``gap = val_loss - train_loss``.  The functions here read a history (a DataFrame with at least ``iter``,
``train_loss``, ``val_loss``; optional ``val_loss_se``, ``train_loss_se``) or a phase folder's
``history.csv`` and ``metrics.json``; the stages decide what to write.

- :func:`gaplab.measure.onset.find_onset` applies :data:`ONSET_RULE` (:func:`detect_onset`: as a dict);
- :func:`verdict` labels a run underfitting / healthy / overfitting / memorizing with one sentence;
- :func:`analyze_curve` returns both as one :class:`CurveAnalysis` (:func:`judge`: as the dict that
  ``gaplab analyze --json`` prints);
- :func:`analyze_run` is :func:`judge` for a phase folder plus perplexities (``metrics.json['analysis']``);
- :func:`seed_gap_label` is seed 003's gap scale, always labelled as the seed's heuristic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import pandas as pd

from ..files import PathLike, read_json
from ..train.history import load_history
from ..units import finite_or_none, int_or_none, perplexity
from .noise import FEW_EVALS, FEW_EVALS_FLOOR_FRACTION, FEW_EVALS_SOURCE
from .onset import (  # noqa: F401 - the rule and its search, re-exported where readers have always found them
    END_EVALS,
    MIN_GAP_GROWTH,
    ONSET_RULE,
    Z_GAP_GREW,
    OnsetSearch,
    curve_noise,
    detect_onset,
    eval_rows,
    find_onset,
    level_half_width,
)

VERDICTS = ("underfitting", "healthy", "overfitting", "memorizing")

# --------------------------------------------------------------------------- the verdict's numbers
# Val is "still improving" at the end when the mean of the last END_EVALS evals is below the mean of the
# END_EVALS before them by more than this many standard deviations of that difference (one-sided, ~2 %).
Z_IMPROVING = 2.0
# The gap "widened" over the second half of the run when it grew by more than this many standard deviations.
Z_WIDENING = 2.0
# Memorizing: train loss at most 0.5 nats per token (perplexity <= 1.65: the model nearly reproduces its
# training text) while val is at least 1 nat above it (val perplexity 2.7x train's) and an onset was found.
MEMORIZE_TRAIN = 0.5
MEMORIZE_GAP = 1.0
# Underfitting by level: the best val is still at least 85 % of ln(vocab_size), the loss of a uniform guess
# over the vocabulary: the model has learned at most 15 % of the way from knowing nothing.
UNIFORM_FRACTION = 0.85

SEED_HEURISTIC = "seed 003's heuristic"

# seed 003's own gap scale ("The Gap Interpretation", seed 003, 2025): lower bound inclusive.
_SEED_GAP_SCALE = (
    (0.5, "perfect generalization (may be too generic)"),
    (1.0, "excellent balance"),
    (2.0, "mild overfitting"),
    (3.0, "moderate overfitting"),
    (math.inf, "severe overfitting"),
)


# --------------------------------------------------------------------------- the record
@dataclass(frozen=True)
class CurveAnalysis:
    """One history's onset search and verdict: what ``gaplab analyze`` prints and ``metrics.json`` holds.

    ``onset``: the :class:`~gaplab.measure.onset.OnsetSearch` (its fields are documented there);
    ``verdict`` (one of :data:`VERDICTS`) and ``reason`` (one sentence with every number the rule used);
    ``final_train`` (None when the last eval has no train loss), ``final_gap`` and ``n_evals`` (the evals read).
    """

    onset: OnsetSearch
    verdict: str
    reason: str
    final_train: Optional[float]
    final_gap: Optional[float]
    n_evals: int

    def to_dict(self) -> dict[str, Any]:
        """The plain-JSON dict :func:`judge` returns: the onset's keys, then the verdict's five."""
        out = self.onset.to_dict()
        out.update(
            verdict=self.verdict,
            reason=self.reason,
            final_train=self.final_train,
            final_gap=self.final_gap,
            n_evals=self.n_evals,
        )
        return out

    @property
    def thin_evidence(self) -> bool:
        """Too few evals for the curve to measure its own noise (the reason says so)."""
        return self.onset.few_evals

    @property
    def train_logged(self) -> bool:
        """Every eval read has a train loss."""
        return self.onset.train_missing_evals == 0


# --------------------------------------------------------------------------- verdict
@dataclass(frozen=True)
class _Ending:
    """How the run ended: the last ``k`` evals against the ``k`` before them, and the gap's change."""

    k: int
    val_before: float
    val_last: float
    train_before: float  # NaN where train was not logged
    train_last: float
    iter_before: int
    improving: bool
    rising: bool
    train_rising: bool
    train_falling: bool
    widening: bool
    gap_phrase: str
    whole_run: bool = False  # few evals, val lower at every one: "improving" read from the first to the last


def _mean(x: np.ndarray) -> float:
    """The mean of a stretch of a curve (of its logged evals when some are missing; NaN when none are)."""
    return float(x.mean()) if np.isfinite(x).all() else (float(np.nanmean(x)) if np.isfinite(x).any() else math.nan)


def _ending(rows: pd.DataFrame, sigma_val: float, sigma_train: float, unit: str) -> _Ending:
    """Is val still falling or rising at the end, is train rising, and did the gap widen?"""
    val, train = rows["val_loss"].to_numpy(dtype=float), rows["train_loss"].to_numpy(dtype=float)
    iters, n = rows["iter"].to_numpy(), len(rows)
    k = max(1, min(END_EVALS, n // 2))  # the last k evals against the k before them
    last, before = float(val[-k:].mean()), float(val[-2 * k : -k].mean())
    train_last, train_before = _mean(train[-k:]), _mean(train[-2 * k : -k])
    z = math.sqrt(2 / k)
    # few evals, each lower than the one before, and the first to the last beyond the noise: still improving,
    # though the last step alone may be within the (stated, generous) floor of a curve this short
    whole_run = bool(
        n <= FEW_EVALS and (np.diff(val) < 0).all() and val[0] - val[-1] > Z_IMPROVING * sigma_val * math.sqrt(2)
    )
    with np.errstate(invalid="ignore"):
        return _Ending(
            k=k,
            val_before=float(val[0]) if whole_run else before,
            val_last=last,
            train_before=train_before,
            train_last=train_last,
            iter_before=int(iters[0 if whole_run else -2 * k]),
            whole_run=whole_run,
            improving=whole_run or bool(before - last > Z_IMPROVING * sigma_val * z),
            rising=bool(last - before > Z_IMPROVING * sigma_val * z),
            train_rising=bool(train_last - train_before > Z_IMPROVING * sigma_train * z),
            train_falling=bool(train_before - train_last > Z_IMPROVING * sigma_train * z),
            **_gap_change(val - train, iters, k, sigma_val, sigma_train, unit),
        )


def _gap_change(
    gap: np.ndarray, iters: np.ndarray, k: int, sigma_val: float, sigma_train: float, unit: str
) -> dict[str, Any]:
    """Did the gap widen from the middle of the run to its last ``k`` evals?  (The phrase says how it went.)"""
    n = len(gap)
    mid = (n - 1) // 2
    half = level_half_width(n)
    lo, hi = max(0, mid - half), min(n, mid + half + 1)
    gap_mid, gap_last = _mean(gap[lo:hi]), _mean(gap[-k:])
    if not (math.isfinite(gap_last) and math.isfinite(gap_mid)):
        return {"widening": False, "gap_phrase": "the gap cannot be read (no train loss in the middle or at the end)"}
    # a widening gap is val pulling away above train: a negative gap (train above val, e.g. a train loss
    # averaged over an epoch while the model improved) shrinking towards zero is not one
    change_limit = Z_WIDENING * math.hypot(sigma_val, sigma_train) * math.sqrt(1 / k + 1 / (hi - lo))
    above_limit = Z_WIDENING * math.hypot(sigma_val, sigma_train) / math.sqrt(k)
    widening = gap_last - gap_mid > change_limit and gap_last > above_limit
    where = "at the last eval" if k == 1 else f"over the last {k} evals"
    span = f"from {gap_mid:.3f} around {unit} {int(iters[mid])} to {gap_last:.3f} {where}"
    if widening:
        phrase = f"the gap is widening, {span}"
    elif gap_last <= above_limit:
        phrase = f"val is not above train by more than the noise (the gap went {span})"
    elif gap_last - gap_mid < -change_limit:
        phrase = f"the gap narrowed, {span}"
    else:
        phrase = f"the gap stayed within the noise, {span}"
    return {"widening": bool(widening), "gap_phrase": phrase}


def _evals(count: int) -> str:
    return "1 eval" if count == 1 else f"{count} evals"


def _stopped_sentence(o: OnsetSearch, final_val: float, unit: str) -> str:
    """The onset as a clause, with the numbers the search used (levels, margin, end means)."""
    if o.onset_level_evals == 1:  # few evals: a level is the eval itself
        level = f"it was {o.onset_level:.3f} nats there (one eval: too few evals to average)"
        comeback = "none"
    else:
        level = (
            f"its level there is {o.onset_level:.3f} nats (the mean of the {o.onset_level_evals} evals around it; "
            f"that eval alone {o.onset_val:.3f})"
        )
        comeback = f"no {o.comeback_evals} in a row"
    text = (
        f"val loss stopped improving at {unit} {o.onset_iter}: {level}, and in the {_evals(o.evals_after_onset)} "
        f"after it {comeback} came back below that level by more than {o.comeback_margin:.3f} nats (noise "
        f"±{o.val_noise:.3f} nats per eval); it ended at {final_val:.3f}"
    )
    if o.worst_val_after_onset is not None and o.worst_val_after_onset > final_val:
        text += f" (worst {o.worst_val_after_onset:.3f} at {unit} {o.worst_iter_after_onset})"
    if o.best_iter is not None and o.best_iter != o.onset_iter:
        text += f", and its single lowest eval, {o.best_val:.3f} at {unit} {o.best_iter}, " + (
            "did not last" if o.best_iter > o.onset_iter else "came before it"
        )
    if o.read_val_alone:
        rise = o.val_end - o.onset_level
        return (
            f"{text}; over the last {_evals(o.end_evals)} val averaged {rise:.3f} nats above that level "
            f"({rise / o.val_noise:.1f} times the noise), with no train loss logged at the onset to compare"
        )
    return (
        f"{text}, while train loss kept falling, from {o.onset_train_level:.3f} around the onset to "
        f"{o.train_end:.3f} over the last {o.end_evals} evals, and the gap grew from {o.gap_at_onset:.3f} to "
        f"{o.gap_end:.3f} nats"
    )


def _shape_notes(o: OnsetSearch) -> list[str]:
    """Clauses about the log's shape the verdict had to work with (none for a complete log of 6+ evals)."""
    notes = []
    if o.train_missing_evals == o.n_evals:
        notes.append("train loss was not logged at any eval, so the rule read val alone and the gap is unknown")
    elif o.train_missing_evals:
        notes.append(
            f"train loss was not logged at {o.train_missing_evals} of {o.n_evals} evals; where it was missing, "
            "the rule read val alone (an onset there is val rising well beyond its noise)"
        )
    if o.few_evals:
        floor = (
            f"{FEW_EVALS_FLOOR_FRACTION:.1%} of the loss, the eval-to-eval scatter real logged curves show"
            if o.val_noise_source == FEW_EVALS_SOURCE
            else f"the recorded {o.val_noise_source}, above the {FEW_EVALS_FLOOR_FRACTION:.1%} floor"
        )
        notes.append(
            f"the evidence is thin: {_evals(o.n_evals)} are too few for the curve to measure its own noise, so "
            f"gaplab took ±{o.val_noise:.3f} nats per eval ({floor}) and calls an onset only where val itself "
            "rose beyond it"
        )
    return notes


def _onset_verdict(o: OnsetSearch, final_train: float, final_val: float, unit: str) -> tuple[str, str]:
    """Memorizing or overfitting, for a run with an onset."""
    stopped = _stopped_sentence(o, final_val, unit)
    final_gap = final_val - final_train
    if final_train <= MEMORIZE_TRAIN and final_gap >= MEMORIZE_GAP:  # False when train was not logged (NaN)
        return "memorizing", (
            f"Train loss fell to {final_train:.3f} nats (perplexity {math.exp(final_train):.2f}), {final_gap:.2f} "
            f"nats below val, and {stopped}: the model is reproducing its training text rather than learning what "
            f"transfers to new text."
        )
    return "overfitting", f"{stopped[0].upper()}{stopped[1:]}."


def _no_onset_verdict(rows: pd.DataFrame, o: OnsetSearch, vocab_size: Optional[int], unit: str) -> tuple[str, str]:
    """Underfitting or healthy, for a run without an onset: by level, then by how the run ended."""
    sigma_train = o.train_noise if o.train_noise is not None else math.nan
    r = _ending(rows, o.val_noise, sigma_train, unit)
    noise = f"±{o.val_noise:.3f} nats per eval"
    uniform = math.log(vocab_size) if vocab_size and vocab_size > 1 else None
    if uniform is not None and o.best_val >= UNIFORM_FRACTION * uniform:
        return "underfitting", (
            f"Best val loss {o.best_val:.3f} is still at least {UNIFORM_FRACTION:.0%} of {uniform:.3f} = "
            f"ln({vocab_size}), the loss of a uniform guess over the vocabulary: the model has learned little so far."
        )
    means = "single evals" if r.k == 1 else f"means of {r.k} evals"
    if r.whole_run:
        means = f"its first and last evals, lower at every one of its {o.n_evals}"
    end = f"from {r.val_before:.3f} to {r.val_last:.3f} ({means}, from {unit} {r.iter_before}; noise {noise})"
    train_known = math.isfinite(r.train_before) and math.isfinite(r.train_last)
    train = f"train went from {r.train_before:.3f} to {r.train_last:.3f}" if train_known else "train was not logged"
    gap = r.gap_phrase
    if r.rising and r.train_rising:
        return "underfitting", (
            f"No overfitting onset: val loss rose at the end, {end}, but so did train loss ({train}): the model is "
            f"getting worse at its own training text too, so training became unstable (often a learning rate "
            f"too high); this is not overfitting."
        )
    if r.rising and not train_known:
        return "healthy", (
            f"No overfitting onset: val loss rose at the end, {end}, but not beyond the noise for long enough to "
            f"be an onset, and train loss was not logged there: watch the next evals."
        )
    if r.rising and r.train_falling:
        return "healthy", (
            f"No overfitting onset yet: val loss rose at the end, {end}, while train loss kept falling ({train}), "
            f"and {gap}: the overfitting pattern, but too short or too small a rise to call an onset (one needs "
            f"{_evals(o.end_evals)} after it that never come back); watch the next evals."
        )
    if r.rising:
        return "healthy", (
            f"No overfitting onset: val loss rose at the end, {end}, while train loss did not keep falling "
            f"({train}), and {gap}: not the overfitting pattern, but watch the next evals."
        )
    if r.improving and not r.widening:
        return "underfitting", (
            f"No overfitting onset, and val loss was still falling at the end, {end}, while {gap}: both losses "
            f"are still falling together, so more training, or a larger model, would likely still help."
        )
    if r.improving:
        return "healthy", (
            f"No overfitting onset: val loss was still falling at the end, {end}, but {gap}: train loss is "
            f"improving faster than val loss, so watch for val to stop improving."
        )
    return "healthy", (
        f"No overfitting onset: val loss has levelled off (best {o.best_val:.3f} at {unit} {o.best_iter}, final "
        f"{o.final_val:.3f}; its last evals are within the noise, {noise}, of the ones before), and {gap}."
    )


def verdict(
    history: pd.DataFrame,
    vocab_size: Optional[int] = None,
    *,
    onset: Union[OnsetSearch, dict[str, Any], None] = None,
    unit: str = "iter",
) -> tuple[str, str]:
    """Label a run ``underfitting``, ``healthy``, ``overfitting`` or ``memorizing``, with a one-sentence reason.

    Losses in nats; the first rule that holds wins:

    1. **memorizing** — an onset (:data:`ONSET_RULE`) and the final train loss is at most
       :data:`MEMORIZE_TRAIN` with the final gap at least :data:`MEMORIZE_GAP`;
    2. **overfitting** — an onset: val stopped improving while train kept falling (or, where train was not
       logged, val rose well beyond its noise);
    3. **underfitting** — the best val is still at least :data:`UNIFORM_FRACTION` of ``ln(vocab_size)``
       (the loss of a uniform guess; when ``vocab_size`` is given), or val was still improving at the end
       (its last evals below the ones before by more than the noise) and the gap was not widening:
       both losses still falling together, more training would likely help;
    4. **healthy** — otherwise: val levelled off without an onset, or val is still improving while the gap
       widens (the reason says so: the run is spending more of its progress on its training text).

    ``onset``: the :func:`find_onset` record (or :func:`detect_onset` dict) for this history, if already
    computed.  ``unit``: what the x values are called in the reason (``"iter"``; a log's ``"step"`` or
    ``"epoch"``).  Every number the rule used is in the reason, in nats; a log with missing train losses or at
    most :data:`~gaplab.measure.noise.FEW_EVALS` evals gets a sentence saying what that means.
    """
    rows = eval_rows(history)
    if len(rows) < 2:
        raise ValueError(f"history has {len(rows)} eval row(s); need at least 2 to judge a trend")
    if onset is None:
        o = find_onset(rows)
    else:
        o = onset if isinstance(onset, OnsetSearch) else OnsetSearch.from_dict(onset, rows)
    final_train, final_val = float(rows["train_loss"].iloc[-1]), float(rows["val_loss"].iloc[-1])
    if o.onset_iter is not None:
        label, reason = _onset_verdict(o, final_train, final_val, unit)
    else:
        label, reason = _no_onset_verdict(rows, o, vocab_size, unit)
    notes = _shape_notes(o)
    return label, (f"{reason[:-1]}; {'; '.join(notes)}." if notes else reason)  # still one sentence


def analyze_curve(
    history: pd.DataFrame,
    vocab_size: Optional[int] = None,
    *,
    val_noise: Optional[float] = None,
    train_noise: Optional[float] = None,
    unit: str = "iter",
) -> CurveAnalysis:
    """The onset and the verdict of one history (its :func:`eval_rows`); one eval gives ``underfitting``
    ("no trend to judge yet").  ``unit``: what the reason calls the x values (a log's ``"step"``, ``"epoch"``)."""
    rows = eval_rows(history)
    o = find_onset(rows, val_noise=val_noise, train_noise=train_noise)
    if len(rows) >= 2:
        label, reason = verdict(rows, vocab_size, onset=o, unit=unit)
    else:
        label, reason = "underfitting", f"Only one eval ({unit} {int(rows['iter'].iloc[0])}): no trend to judge yet."
    final_train = float(rows["train_loss"].iloc[-1])
    return CurveAnalysis(
        onset=o,
        verdict=label,
        reason=reason,
        final_train=finite_or_none(final_train),
        final_gap=finite_or_none(float(rows["val_loss"].iloc[-1]) - final_train),
        n_evals=int(len(rows)),
    )


def judge(
    history: pd.DataFrame,
    vocab_size: Optional[int] = None,
    *,
    val_noise: Optional[float] = None,
    train_noise: Optional[float] = None,
) -> dict[str, Any]:
    """:func:`analyze_curve` as a plain-JSON dict: :func:`detect_onset`'s keys plus ``verdict``, ``reason``,
    ``final_train``, ``final_gap`` and ``n_evals`` (:meth:`CurveAnalysis.to_dict`)."""
    return analyze_curve(history, vocab_size, val_noise=val_noise, train_noise=train_noise).to_dict()


def seed_gap_label(gap: Optional[float]) -> str:
    """Seed 003's own gap scale, always labelled as its heuristic (not a rule).

    Seed 003 ("The Gap Interpretation"): < 0.5 perfect generalization (may be
    too generic), 0.5-1 excellent balance, 1-2 mild overfitting, 2-3 moderate
    overfitting, > 3 severe overfitting.  Each band includes its lower bound.
    """
    v = finite_or_none(gap)
    if v is None:
        return f"{SEED_HEURISTIC}: n/a (no gap)"
    for upper, label in _SEED_GAP_SCALE:
        if v < upper:
            return f"{SEED_HEURISTIC}: {label}"
    return f"{SEED_HEURISTIC}: {_SEED_GAP_SCALE[-1][1]}"  # pragma: no cover - inf is never < inf


# --------------------------------------------------------------------------- per phase
def is_early_stop(stop_reason: Optional[str]) -> bool:
    return isinstance(stop_reason, str) and stop_reason.replace("-", "_").lower().startswith("early_stop")


def analyze_run(run_dir: PathLike) -> dict[str, Any]:
    """The dict stored under ``metrics.json['analysis']`` for one phase (writes nothing).

    Reads ``history.csv`` and, if present, ``metrics.json`` (for ``vocab_size`` and ``stop_reason``).
    Keys: everything :func:`judge` returns, ``gap_at_best``, ``best_train`` (lowest train loss),
    perplexities ``exp(loss)`` (``best_val_perplexity``, ``final_val_perplexity``,
    ``best_train_perplexity``, ``final_train_perplexity``), ``uniform_loss`` (= ln(vocab_size)),
    ``seed_gap_label`` (seed 003's heuristic on the final gap), ``early_stop_iter`` (the last eval when
    training stopped early, else None), ``stop_reason``, ``dropped_non_finite_evals``.
    """
    run_dir = Path(run_dir)
    history = load_history(run_dir)
    metrics = read_json(run_dir / "metrics.json", {}) or {}
    h = eval_rows(history)
    vocab = int_or_none(metrics.get("vocab_size"))
    out = judge(h, vocab)
    best_train = float(h["train_loss"].min())
    stop_reason = metrics.get("stop_reason")
    out.update(
        {
            "gap_at_best": finite_or_none(out["best_val"] - out["train_at_best"]),
            "best_train": finite_or_none(best_train),
            "best_val_perplexity": perplexity(out["best_val"]),
            "final_val_perplexity": perplexity(out["final_val"]),
            "best_train_perplexity": perplexity(best_train),
            "final_train_perplexity": perplexity(out["final_train"]),
            "uniform_loss": finite_or_none(math.log(vocab)) if vocab and vocab > 1 else None,
            "seed_gap_label": seed_gap_label(out["final_gap"]),
            "early_stop_iter": int_or_none(h["iter"].iloc[-1]) if is_early_stop(stop_reason) else None,
            "stop_reason": stop_reason,
            "dropped_non_finite_evals": int(len(history) - len(h)),
        }
    )
    return out
