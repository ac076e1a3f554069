"""The overfitting onset: one rule (:data:`ONSET_RULE`), its numbers, and the search that applies it.

All losses are mean cross-entropy in nats per token; ``gap = val_loss - train_loss``.  :func:`find_onset`
reads a history (a DataFrame with ``iter``, ``train_loss``, ``val_loss``; optional ``val_loss_se``,
``train_loss_se``) and returns an :class:`OnsetSearch`; :func:`detect_onset` is the same as the plain-JSON
dict that ``metrics.json['analysis']`` and ``gaplab analyze --json`` hold.  The verdict built on it is in
:mod:`gaplab.measure.curves`; how noisy a curve is comes from :mod:`gaplab.measure.noise`.

The log's own shape is read honestly: an eval whose train loss was not logged (NaN: a model card's "No log",
a trainer that logs train less often than it evaluates) keeps its val loss, and where train is unknown the
rule reads val alone (val rising well beyond its noise after its level); a curve of at most
:data:`~gaplab.measure.noise.FEW_EVALS` evals uses that module's stated noise floor and calls an onset only
where val itself rose beyond it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

import numpy as np
import pandas as pd

from ..train.history import numeric_history
from ..units import finite_or_none, int_or_none
from .noise import FEW_EVALS, NOISE_FLOOR_FRACTION, Noise, estimate_noise, few_evals_noise

# --------------------------------------------------------------------------- the rule's numbers
# "Sustained": an onset needs at least this many evals after it, and "the end of the run" is the mean of
# the last this-many evals.  Three is the fewest that make a stretch rather than a blip (one bad eval, or
# one bad eval and its neighbour), and averaging three cuts one eval's noise by sqrt(3).
END_EVALS = 3
# ... except on a curve of at most FEW_EVALS evals (3 epochs of a fine-tune), where an onset needs this many
# evals after it, the end is their mean, a level is the eval itself and "comes back" is one eval: so few
# evals cannot average away anything, and the stated noise floor (gaplab.measure.noise) stands in for that.
FEW_END_EVALS = 2
# The level of val (and train) at an eval is the mean of the evals within this fraction of the run on either
# side of it (at least its two neighbours; 2 on each side in a 21-eval run).  The single lowest of ~20 noisy
# evals is low by about 1.9 standard deviations by luck alone; compared with it, later evals look like a
# rise on a flat curve (the old detector's 178/200 false onsets).  A mean of 5 has a fifth of the variance;
# a window that grows with the run keeps long logs (hundreds of evals) as steady as short ones, and a tenth
# of the run keeps the onset near the turn: it places seeded U-shaped minima within two evals 98.7 % of the
# time, where 3 evals manage 96.3 %.  The price: at a lopsided minimum (a steep fall, then a slow rise) a
# mean is lowest on the slow side, so the onset can come an eval or two after the lowest eval.
LEVEL_HALF_FRACTION = 0.1
# "Comes back below the level" is judged on means of as many consecutive evals as a level averages (all the
# evals left, if fewer), so that one lucky eval (seed 003 phase 1's 6.06 between 6.83 and 6.65) is not a
# recovery, levels are compared with levels of the same noise, and a long log's thousands of short windows
# (one of which is low by luck) do not hide its onset.
# ... and needs to be lower than the level by more than this many standard deviations of that comparison:
# about 2.3 % of pure-noise comparisons cross it by chance, so a real recovery (val improving again, as in
# seed 003 phase 4 from its 1,000-1,400 plateau down to 4.04) is seen, and noise rarely hides an onset.
Z_COMEBACK = 2.0
# Train loss must have fallen from the level at the onset to the end by more than this many standard
# deviations: "train keeps falling" as a measured fact, not a blip (one-sided, ~2 % by chance).
Z_TRAIN_FELL = 2.0
# The gap must have grown from the onset to the end by more than this many standard deviations of that
# change.  Four, not two: a run whose val is still improving, but slowly enough that the comeback test
# (above) cannot see it, still has val keeping up with part of train's fall; only a gap growing far beyond
# what the allowed val improvement and the noise explain is "val stopped improving while train kept
# falling".  With ~15 candidate evals in a 20-eval run, 4 keeps the chance of a pure-noise onset near zero.
# Where train was not logged, val itself must have risen from its level by as much (the gap's growth if
# train had stayed flat: a stricter test than the gap's, since a falling train only widens the gap).
Z_GAP_GREW = 4.0
# ... and by at least this fraction of val's level at the onset (5 %: 0.15 nats at a loss of 3).  Where the
# noise is tiny (a smooth curve, a large eval set) a widening of 1-3 % of the loss can be measurable; it is
# still too small to call overfitting: a flat val with train creeping down 3 % over the run stays below it.
MIN_GAP_GROWTH = 0.05
# Where val is read alone (train not logged), its rise must be at least this fraction of its level (2 %: 0.06
# nats at a loss of 3).  Lower than the gap's 5 %: that margin is for a gap that a train loss creeping down can
# widen while val stays flat; a val that itself rises is the harm the rule looks for.  The fraction keeps a
# smooth, nearly noise-free curve's slight drift from reading as an onset.  (issue 24's model card: val rose
# from a level of 5.15 around its best, 5.101 at step 104, to 5.37, 4.4 % and 20 times its noise, with no
# train loss logged there.)  On a few-evals curve the stated noise floor decides (4 x 3.3 % is far above it).
MIN_VAL_RISE = 0.02

ONSET_RULE = (
    "gaplab calls an eval the overfitting onset when, from that eval to the end of the run (at least "
    f"{END_EVALS} more evals), validation loss never comes back below its level there by more than the noise, "
    "while train loss keeps falling and the gap (val minus train) grows by far more than the noise: val has "
    "stopped improving, whether it then rises or only stays flat, while the model keeps fitting its training "
    "text. The level at an eval is the mean of the evals within a tenth of the run on either side of it (at "
    'least its two neighbours), not the single lowest eval, which is low partly by luck. "Comes back below" '
    "means as many evals in a row as a level averages (or all those left) whose mean is lower than the level by "
    f"more than {Z_COMEBACK:g} "
    f'standard deviations of that comparison; train "keeps falling" when the mean of its last {END_EVALS} '
    f'evals is below its level at the onset by more than {Z_TRAIN_FELL:g} standard deviations; the gap "grows '
    f'by far more than the noise" when its change, from its level at the onset to the mean of the last '
    f"{END_EVALS} evals, exceeds {Z_GAP_GREW:g} standard deviations and {MIN_GAP_GROWTH:.0%} of val's level "
    "there (where train was above val at the onset, only the gap's rise above zero counts, or val itself rising "
    "as much). The noise is one eval's standard deviation in nats: the larger of the standard error the trainer "
    "recorded for each eval (val_loss_se, train_loss_se) and the curve's own scatter from eval to eval (the robust spread of its second "
    f"differences), and never below {NOISE_FLOOR_FRACTION:.1%} of the loss. Of the evals that qualify, the "
    "onset is the one with the lowest level. So a single high or low eval, a dip followed by recovery, and a "
    "val that keeps visibly improving while the gap widens are not onsets."
)

#: ``train_noise_source`` when no eval has a train loss
TRAIN_NOT_LOGGED = "not logged"


# --------------------------------------------------------------------------- the evals the rule reads
def eval_rows(history: pd.DataFrame) -> pd.DataFrame:
    """The eval rows with a finite val loss, sorted by iter; a train loss that was not logged stays NaN.

    A row whose train loss is infinite (a diverged step) is left out, as is one without a finite val loss.
    A history whose train is finite wherever val is (every gaplab run) gives the rows ``finite_history`` gives.
    """
    rows = numeric_history(history)
    train = rows["train_loss"].to_numpy(dtype=float)
    rows = rows[np.isfinite(rows["val_loss"]) & (np.isfinite(train) | np.isnan(train))]
    if rows.empty:
        raise ValueError("history has no rows with a finite val_loss")
    return rows.sort_values("iter", kind="stable").reset_index(drop=True)


def _column(rows: pd.DataFrame, name: str) -> Optional[np.ndarray]:
    if name not in rows.columns:
        return None
    return pd.to_numeric(rows[name], errors="coerce").to_numpy(dtype=float)


def curve_noise(
    history: pd.DataFrame, *, val_noise: Optional[float] = None, train_noise: Optional[float] = None
) -> tuple[Noise, Optional[Noise]]:
    """The noise of the val and train curves of a history (train: None when no eval logged it)."""
    return _curve_noise(eval_rows(history), val_noise, train_noise)


def _curve_noise(rows: pd.DataFrame, val_noise, train_noise) -> tuple[Noise, Optional[Noise]]:
    estimate = few_evals_noise if len(rows) <= FEW_EVALS else estimate_noise
    val = rows["val_loss"].to_numpy(dtype=float)
    val_se = _column(rows, "val_loss_se")
    noise_val = estimate(val, val_se, given=val_noise, se_name="val_loss_se")
    train = rows["train_loss"].to_numpy(dtype=float)
    logged = np.isfinite(train)
    if not logged.any():
        return noise_val, None
    train_se = _column(rows, "train_loss_se")
    noise_train = estimate(
        train[logged], None if train_se is None else train_se[logged], given=train_noise, se_name="train_loss_se"
    )
    return noise_val, noise_train


# --------------------------------------------------------------------------- levels and windows
def level_half_width(n: int) -> int:
    """How many evals on either side of an eval its level averages, in a run of ``n`` evals (0 with few evals)."""
    if n <= FEW_EVALS:
        return 0
    return max(1, int(round(LEVEL_HALF_FRACTION * (n - 1))))


def comeback_evals(n: int) -> int:
    """How many consecutive evals a "comes back below" mean averages, in a run of ``n`` evals."""
    return 2 * level_half_width(n) + 1


def end_evals(n: int) -> int:
    """How many evals "the end of the run" averages, and the fewest an onset needs after it."""
    return FEW_END_EVALS if n <= FEW_EVALS else END_EVALS


def _levels(x: np.ndarray, half: int) -> np.ndarray:
    """The level of each eval: the mean of the evals within ``half`` of it (fewer at the ends)."""
    cumulative = np.concatenate([[0.0], np.cumsum(x)])
    index = np.arange(len(x))
    lo, hi = np.maximum(0, index - half), np.minimum(len(x), index + half + 1)
    return (cumulative[hi] - cumulative[lo]) / (hi - lo)


def _levels_where_logged(x: np.ndarray, half: int) -> np.ndarray:
    """:func:`_levels` of a curve with gaps (NaN): the mean of the logged evals in each window, NaN if none."""
    if np.isfinite(x).all():
        return _levels(x, half)
    logged = np.isfinite(x)
    sums = _levels(np.where(logged, x, 0.0), half)
    share = _levels(logged.astype(float), half)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(share > 0, sums / share, np.nan)


def _window_counts(n: int, half: int) -> np.ndarray:
    index = np.arange(n)
    return np.minimum(n, index + half + 1) - np.maximum(0, index - half)


def _mean_where_logged(x: np.ndarray) -> float:
    """The mean of a stretch of a curve; of its logged evals when some are missing (NaN when none are)."""
    if np.isfinite(x).all():
        return float(x.mean())
    return float(np.nanmean(x)) if np.isfinite(x).any() else math.nan


# --------------------------------------------------------------------------- the record
def _shape(default: Any = None) -> Any:
    """A field about the log's shape that the reason uses; not in :meth:`OnsetSearch.to_dict` (whose keys are
    those ``metrics.json['analysis']`` has always had)."""
    return field(default=default, metadata={"in_dict": False})


@dataclass(frozen=True)
class OnsetSearch:
    """What :func:`find_onset` found, losses in nats.  The onset fields are None without an onset.

    About the onset: ``onset_iter``, ``onset_val`` and ``onset_train`` (the losses at that eval),
    ``onset_level`` and ``onset_train_level`` (their levels there), ``onset_level_evals`` (how many evals the
    level averages), ``comeback_margin`` and ``comeback_evals`` (the "comes back below" test: how far below
    the level, over how many evals in a row), ``evals_after_onset``, ``worst_val_after_onset`` /
    ``worst_iter_after_onset``, ``gap_at_onset`` (val level minus train level there), ``val_end``,
    ``train_end``, ``gap_end`` (means of the last :func:`end_evals` evals).  About the run: ``best_iter`` /
    ``best_val`` (the lowest single val eval), ``train_at_best``, ``final_val``, ``val_lost_after_best``
    (``final_val - best_val``), ``worst_val_after_best`` / ``worst_iter_after_best`` (None when the best is
    the last eval).  The noise used: ``val_noise`` (nats per eval), ``val_noise_source`` (``"val_loss_se"``,
    ``"given"``, ``"scatter"``, ``"floor"`` or ``"few_evals_floor"``), ``val_noise_se``,
    ``val_noise_scatter``, and the same for ``train_`` (``train_noise`` None and its source
    :data:`TRAIN_NOT_LOGGED` when no eval has a train loss).  ``candidate_iters``: every eval that qualified.
    The log's shape (not in the dict): ``n_evals``, ``train_logged_evals``, ``end_evals``.
    """

    onset_iter: Optional[int]
    onset_val: Optional[float]
    onset_train: Optional[float]
    onset_level: Optional[float]
    onset_train_level: Optional[float]
    onset_level_evals: Optional[int]
    comeback_margin: Optional[float]
    comeback_evals: Optional[int]
    evals_after_onset: Optional[int]
    worst_val_after_onset: Optional[float]
    worst_iter_after_onset: Optional[int]
    gap_at_onset: Optional[float]
    val_end: Optional[float]
    train_end: Optional[float]
    gap_end: Optional[float]
    best_iter: Optional[int]
    best_val: Optional[float]
    train_at_best: Optional[float]
    final_val: Optional[float]
    val_lost_after_best: Optional[float]
    worst_val_after_best: Optional[float]
    worst_iter_after_best: Optional[int]
    val_noise: float
    val_noise_source: str
    val_noise_se: Optional[float]
    val_noise_scatter: Optional[float]
    train_noise: Optional[float]
    train_noise_source: str
    train_noise_se: Optional[float]
    train_noise_scatter: Optional[float]
    candidate_iters: list[int]
    n_evals: int = _shape(0)
    train_logged_evals: int = _shape(0)
    end_evals: int = _shape(END_EVALS)

    def to_dict(self) -> dict[str, Any]:
        """The plain-JSON dict (:func:`detect_onset`'s), in the order its keys have always had."""
        values = asdict(self)
        return {f.name: values[f.name] for f in fields(self) if f.metadata.get("in_dict", True)}

    @classmethod
    def from_dict(cls, values: dict[str, Any], rows: pd.DataFrame) -> OnsetSearch:
        """The record of a :func:`detect_onset` dict, with the shape facts read from its history's ``rows``."""
        keys = {f.name for f in fields(cls) if f.metadata.get("in_dict", True)}
        train = rows["train_loss"].to_numpy(dtype=float)
        shape = {"n_evals": len(rows), "train_logged_evals": int(np.isfinite(train).sum())}
        return cls(**{k: values.get(k) for k in keys}, **shape, end_evals=end_evals(len(rows)))

    @property
    def few_evals(self) -> bool:
        """Too few evals for the curve to measure its own noise: the evidence is thin."""
        return self.n_evals <= FEW_EVALS

    @property
    def train_missing_evals(self) -> int:
        return self.n_evals - self.train_logged_evals

    @property
    def read_val_alone(self) -> bool:
        """The onset was found without a train level there (train not logged at the onset or the end)."""
        return self.onset_iter is not None and (self.onset_train_level is None or self.train_end is None)


# --------------------------------------------------------------------------- the search
def _grew(growth, sigma_val: float, sigma_train: float, end_noise, val_level):
    """The gap "grows by far more than the noise": beyond :data:`Z_GAP_GREW` standard deviations of the change
    and by at least :data:`MIN_GAP_GROWTH` of val's level."""
    return (growth > Z_GAP_GREW * math.hypot(sigma_val, sigma_train) * end_noise) & (
        growth >= MIN_GAP_GROWTH * val_level
    )


@dataclass(frozen=True)
class _Candidates:
    """The rule's tests at every eval that may be an onset (``index``: those with enough evals after them)."""

    index: np.ndarray  # eval positions of the candidates
    val_level: np.ndarray  # val's level at every eval
    train_level: np.ndarray  # train's level at every eval (NaN where no train was logged in the window)
    level_evals: np.ndarray  # how many evals each level averages
    margin: np.ndarray  # per candidate: how far below the level "comes back" must reach
    comeback_size: np.ndarray  # per candidate: how many evals in a row that mean averages
    qualifies: np.ndarray  # per candidate: every test passed
    end_val: float
    end_train: float


def _candidate_tests(val: np.ndarray, train: np.ndarray, sigma_val: float, sigma_train: float) -> _Candidates:
    """Apply :data:`ONSET_RULE` at every candidate eval; ``sigma_train`` is NaN when train was not logged."""
    n = len(val)
    few, end = n <= FEW_EVALS, end_evals(n)
    half = level_half_width(n)
    # levels: the mean of each eval's window (2*half + 1 evals, fewer at the ends), of val and of train
    val_level, train_level = _levels(val, half), _levels_where_logged(train, half)
    level_evals = _window_counts(n, half)
    # the end of the run: the means of the last `end` evals
    end_val, end_train = float(val[-end:].mean()), _mean_where_logged(train[-end:])
    # candidates: every eval with at least `end` evals after it
    index = np.arange(n - end)
    # "comes back": the lowest mean of `width` consecutive evals wholly after the candidate (all the evals left
    # when fewer remain) against the candidate's level
    width = comeback_evals(n)
    cumulative = np.concatenate([[0.0], np.cumsum(val)])
    window_means = (cumulative[width:] - cumulative[:-width]) / width  # window_means[j] = mean of val[j : j + width]
    lowest_window_from = np.concatenate([np.minimum.accumulate(window_means[::-1])[::-1], [np.inf] * width])
    evals_after = n - 1 - index
    comeback_size = np.minimum(width, evals_after)
    mean_of_rest = (cumulative[n] - cumulative[index + 1]) / np.maximum(evals_after, 1)
    lowest_after = np.where(evals_after >= width, lowest_window_from[index + 1], mean_of_rest)
    margin = Z_COMEBACK * sigma_val * np.sqrt(1 / comeback_size + 1 / level_evals[index])
    came_back = val_level[index] - lowest_after > margin
    # the noise of a change from a level to the end mean, per unit of one eval's noise
    end_noise = np.sqrt(1 / end + 1 / level_evals[index])
    # train "keeps falling": its end mean below its level at the candidate by more than the noise
    with np.errstate(invalid="ignore"):
        train_fell = train_level[index] - end_train > Z_TRAIN_FELL * sigma_train * end_noise
        # the gap grew far beyond the noise, and by a fair share of the loss: val pulling away above train
        gap_at = val_level[index] - train_level[index]
        gap_grew = _grew((end_val - end_train) - gap_at, sigma_val, sigma_train, end_noise, val_level[index])
        # a negative gap (train above val, as an epoch's mean train loss lags the weights) closing towards zero
        # is not val pulling away: there only its rise above zero counts, or val itself rising (a real Keras
        # MNIST log: val flat at 0.031-0.037 while train fell from 0.073 to 0.043 above it, then val fell to 0.009)
        above_zero = _grew(
            (end_val - end_train) - np.maximum(gap_at, 0.0), sigma_val, sigma_train, end_noise, val_level[index]
        )
    # val itself rose as much: the test where train is unknown, and (thin evidence) on every few-evals curve
    val_rise = end_val - val_level[index]
    val_rose = (val_rise > Z_GAP_GREW * sigma_val * end_noise) & (val_rise >= MIN_VAL_RISE * val_level[index])
    pulled_away = np.where(gap_at < 0, above_zero | val_rose, gap_grew)
    train_known = np.isfinite(train_level[index]) & math.isfinite(end_train)
    qualifies = ~came_back & np.where(train_known, train_fell & pulled_away, val_rose)
    if few:
        qualifies &= val_rose
    return _Candidates(index, val_level, train_level, level_evals, margin, comeback_size, qualifies, end_val, end_train)


def _run_facts(iters: np.ndarray, val: np.ndarray, train: np.ndarray) -> dict[str, Any]:
    """The best (lowest single) val eval, the last, and the worst after the best."""
    best = int(np.argmin(val))  # first occurrence of the lowest val loss
    after = val[best + 1 :]
    worst = best + 1 + int(np.argmax(after)) if after.size else None
    return {
        "best_iter": int_or_none(iters[best]),
        "best_val": finite_or_none(val[best]),
        "train_at_best": finite_or_none(train[best]),
        "final_val": finite_or_none(val[-1]),
        "val_lost_after_best": finite_or_none(val[-1] - val[best]),
        "worst_val_after_best": finite_or_none(val[worst]) if worst is not None else None,
        "worst_iter_after_best": int_or_none(iters[worst]) if worst is not None else None,
    }


_ONSET_FIELDS = (
    "onset_iter",
    "onset_val",
    "onset_train",
    "onset_level",
    "onset_train_level",
    "onset_level_evals",
    "comeback_margin",
    "comeback_evals",
    "evals_after_onset",
    "worst_val_after_onset",
    "worst_iter_after_onset",
    "gap_at_onset",
    "val_end",
    "train_end",
    "gap_end",
)


def _onset_facts(iters: np.ndarray, val: np.ndarray, train: np.ndarray, found: _Candidates) -> dict[str, Any]:
    """The onset's fields: of the qualifying evals, the one with the lowest level (first on a tie)."""
    qualified = found.index[found.qualifies]
    if qualified.size == 0:
        return dict.fromkeys(_ONSET_FIELDS)
    onset = int(qualified[np.argmin(found.val_level[qualified])])  # candidates are evals 0, 1, ...: one index
    worst = onset + 1 + int(np.argmax(val[onset + 1 :]))
    val_level, train_level = found.val_level[onset], found.train_level[onset]
    return {
        "onset_iter": int_or_none(iters[onset]),
        "onset_val": finite_or_none(val[onset]),
        "onset_train": finite_or_none(train[onset]),
        "onset_level": finite_or_none(val_level),
        "onset_train_level": finite_or_none(train_level),
        "onset_level_evals": int(found.level_evals[onset]),
        "comeback_margin": finite_or_none(found.margin[onset]),
        "comeback_evals": int(found.comeback_size[onset]),
        "evals_after_onset": int(len(val) - 1 - onset),
        "worst_val_after_onset": finite_or_none(val[worst]),
        "worst_iter_after_onset": int_or_none(iters[worst]),
        "gap_at_onset": finite_or_none(val_level - train_level),
        "val_end": finite_or_none(found.end_val),
        "train_end": finite_or_none(found.end_train),
        "gap_end": finite_or_none(found.end_val - found.end_train),
    }


def _noise_fields(prefix: str, noise: Optional[Noise]) -> dict[str, Any]:
    if noise is None:
        return {f"{prefix}_noise": None, f"{prefix}_noise_source": TRAIN_NOT_LOGGED}
    return noise.as_dict(prefix)


def find_onset(
    history: pd.DataFrame, *, val_noise: Optional[float] = None, train_noise: Optional[float] = None
) -> OnsetSearch:
    """Apply :data:`ONSET_RULE` to a history (its :func:`eval_rows`).

    ``val_noise`` / ``train_noise``: a noise (nats per eval) measured elsewhere, e.g. the spread of
    replicate runs; it replaces the ``*_se`` columns (the curve's scatter and the floor still apply).
    """
    rows = eval_rows(history)
    noise_val, noise_train = _curve_noise(rows, val_noise, train_noise)
    iters = rows["iter"].to_numpy()
    val, train = rows["val_loss"].to_numpy(dtype=float), rows["train_loss"].to_numpy(dtype=float)
    sigma_train = noise_train.sigma if noise_train is not None else math.nan
    found = _candidate_tests(val, train, noise_val.sigma, sigma_train)
    return OnsetSearch(
        **_onset_facts(iters, val, train, found),
        **_run_facts(iters, val, train),
        **_noise_fields("val", noise_val),
        **{"train_noise_se": None, "train_noise_scatter": None, **_noise_fields("train", noise_train)},
        candidate_iters=[int(iters[i]) for i in found.index[found.qualifies]],
        n_evals=len(rows),
        train_logged_evals=int(np.isfinite(train).sum()),
        end_evals=end_evals(len(rows)),
    )


def detect_onset(
    history: pd.DataFrame, *, val_noise: Optional[float] = None, train_noise: Optional[float] = None
) -> dict[str, Any]:
    """:func:`find_onset` as the plain-JSON dict :meth:`OnsetSearch.to_dict` gives (its keys are documented
    on :class:`OnsetSearch`)."""
    return find_onset(history, val_noise=val_noise, train_noise=train_noise).to_dict()
