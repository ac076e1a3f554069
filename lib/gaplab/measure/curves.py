"""Reading the loss curves: the overfitting onset (one rule, :data:`ONSET_RULE`) and the one verdict.

All losses are mean cross-entropy in nats per token (natural log), as the trainer writes them;
``gap = val_loss - train_loss``.  The functions here read a history (a DataFrame with at least ``iter``,
``train_loss``, ``val_loss``; optional ``val_loss_se``, ``train_loss_se``) or a phase folder's
``history.csv`` and ``metrics.json``; the stages decide what to write.  How noisy a curve is comes
from :mod:`gaplab.measure.noise`.

- :func:`detect_onset` applies :data:`ONSET_RULE`;
- :func:`verdict` labels a run underfitting / healthy / overfitting / memorizing with one sentence;
- :func:`judge` returns both in one dict (what ``gaplab analyze`` prints);
- :func:`analyze_run` is :func:`judge` for a phase folder plus perplexities (``metrics.json['analysis']``);
- :func:`seed_gap_label` is seed 003's gap scale, always labelled as the seed's heuristic.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from ..files import PathLike, read_json
from ..train.history import finite_history, load_history
from .noise import NOISE_FLOOR_FRACTION, Noise, estimate_noise
from .units import finite_or_none, int_or_none, perplexity

VERDICTS = ("underfitting", "healthy", "overfitting", "memorizing")

# --------------------------------------------------------------------------- the rule's numbers
# "Sustained": an onset needs at least this many evals after it, and "the end of the run" is the mean of
# the last this-many evals.  Three is the fewest that make a stretch rather than a blip (one bad eval, or
# one bad eval and its neighbour), and averaging three cuts one eval's noise by sqrt(3).
END_EVALS = 3
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
Z_GAP_GREW = 4.0
# ... and by at least this fraction of val's level at the onset (5 %: 0.15 nats at a loss of 3).  Where the
# noise is tiny (a smooth curve, a large eval set) a widening of 1-3 % of the loss can be measurable; it is
# still too small to call overfitting: a flat val with train creeping down 3 % over the run stays below it.
MIN_GAP_GROWTH = 0.05

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
    "there. The noise is one eval's standard deviation in nats: the larger of the standard error the trainer "
    "recorded for each eval (val_loss_se, train_loss_se) and the curve's own scatter from eval to eval (the robust spread of its second "
    f"differences), and never below {NOISE_FLOOR_FRACTION:.1%} of the loss. Of the evals that qualify, the "
    "onset is the one with the lowest level. So a single high or low eval, a dip followed by recovery, and a "
    "val that keeps visibly improving while the gap widens are not onsets."
)

SEED_HEURISTIC = "seed 003's heuristic"

# seed 003's own gap scale ("The Gap Interpretation", seed 003, 2025): lower bound inclusive.
_SEED_GAP_SCALE = (
    (0.5, "perfect generalization (may be too generic)"),
    (1.0, "excellent balance"),
    (2.0, "mild overfitting"),
    (3.0, "moderate overfitting"),
    (math.inf, "severe overfitting"),
)


# --------------------------------------------------------------------------- noise
def _column(h: pd.DataFrame, name: str) -> Optional[np.ndarray]:
    if name not in h.columns:
        return None
    return pd.to_numeric(h[name], errors="coerce").to_numpy(dtype=float)


def curve_noise(
    history: pd.DataFrame, *, val_noise: Optional[float] = None, train_noise: Optional[float] = None
) -> tuple[Noise, Noise]:
    """The noise of the val and train curves of a history (its finite rows), see :mod:`gaplab.measure.noise`."""
    return _curve_noise(finite_history(history), val_noise, train_noise)


def _curve_noise(h: pd.DataFrame, val_noise: Optional[float], train_noise: Optional[float]) -> tuple[Noise, Noise]:
    nv = estimate_noise(
        h["val_loss"].to_numpy(dtype=float), _column(h, "val_loss_se"), given=val_noise, se_name="val_loss_se"
    )
    nt = estimate_noise(
        h["train_loss"].to_numpy(dtype=float), _column(h, "train_loss_se"), given=train_noise, se_name="train_loss_se"
    )
    return nv, nt


def level_half_width(n: int) -> int:
    """How many evals on either side of an eval its level averages, in a run of ``n`` evals."""
    return max(1, int(round(LEVEL_HALF_FRACTION * (n - 1))))


def _levels(x: np.ndarray) -> np.ndarray:
    """The level of each eval: the mean of the evals within :func:`level_half_width` of it (fewer at the ends)."""
    half = level_half_width(len(x))
    c = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(len(x))
    lo, hi = np.maximum(0, idx - half), np.minimum(len(x), idx + half + 1)
    return (c[hi] - c[lo]) / (hi - lo)


def comeback_evals(n: int) -> int:
    """How many consecutive evals a "comes back below" mean averages, in a run of ``n`` evals."""
    return 2 * level_half_width(n) + 1


def _window_counts(n: int) -> np.ndarray:
    half = level_half_width(n)
    idx = np.arange(n)
    return np.minimum(n, idx + half + 1) - np.maximum(0, idx - half)


# --------------------------------------------------------------------------- onset
def detect_onset(
    history: pd.DataFrame, *, val_noise: Optional[float] = None, train_noise: Optional[float] = None
) -> dict[str, Any]:
    """Apply :data:`ONSET_RULE` to a history; rows with a non-finite loss are ignored.

    ``val_noise`` / ``train_noise``: a noise (nats per eval) measured elsewhere, e.g. the spread of
    replicate runs; it replaces the ``*_se`` columns (the curve's scatter and the floor still apply).

    Returns a plain-JSON dict (losses in nats).  About the onset, all None without one: ``onset_iter``,
    ``onset_val`` and ``onset_train`` (the losses at that eval), ``onset_level`` and ``onset_train_level``
    (their levels there), ``onset_level_evals`` (how many evals the level averages), ``comeback_margin``
    and ``comeback_evals`` (the "comes back below" test: how far below the level, over how many evals in a
    row), ``evals_after_onset``, ``worst_val_after_onset`` / ``worst_iter_after_onset``, ``gap_at_onset``
    (val level minus train level there), ``val_end``, ``train_end``, ``gap_end`` (means of the last
    :data:`END_EVALS` evals).  About the run: ``best_iter`` / ``best_val`` (the lowest single val eval),
    ``train_at_best``, ``final_val``, ``val_lost_after_best`` (``final_val - best_val``),
    ``worst_val_after_best`` / ``worst_iter_after_best`` (None when the best is the last eval).  The noise
    used: ``val_noise`` (nats per eval), ``val_noise_source`` (``"val_loss_se"``, ``"given"``,
    ``"scatter"`` or ``"floor"``), ``val_noise_se``, ``val_noise_scatter``, and the same for ``train_``.
    ``candidate_iters``: every eval that qualified (the onset is the one with the lowest level).
    """
    h = finite_history(history)
    it = h["iter"].to_numpy()
    tr = h["train_loss"].to_numpy(dtype=float)
    va = h["val_loss"].to_numpy(dtype=float)
    n = len(h)
    nv, nt = _curve_noise(h, val_noise, train_noise)
    sv, st = nv.sigma, nt.sigma

    b = int(np.argmin(va))  # first occurrence of the lowest val loss
    after = va[b + 1 :]
    worst = b + 1 + int(np.argmax(after)) if after.size else None
    out: dict[str, Any] = {
        "onset_iter": None,
        "onset_val": None,
        "onset_train": None,
        "onset_level": None,
        "onset_train_level": None,
        "onset_level_evals": None,
        "comeback_margin": None,
        "comeback_evals": None,
        "evals_after_onset": None,
        "worst_val_after_onset": None,
        "worst_iter_after_onset": None,
        "gap_at_onset": None,
        "val_end": None,
        "train_end": None,
        "gap_end": None,
        "best_iter": int_or_none(it[b]),
        "best_val": finite_or_none(va[b]),
        "train_at_best": finite_or_none(tr[b]),
        "final_val": finite_or_none(va[-1]),
        "val_lost_after_best": finite_or_none(va[-1] - va[b]),
        "worst_val_after_best": finite_or_none(va[worst]) if worst is not None else None,
        "worst_iter_after_best": int_or_none(it[worst]) if worst is not None else None,
    }
    out.update(nv.as_dict("val"))
    out.update(nt.as_dict("train"))
    out["candidate_iters"] = []
    last_candidate = n - 1 - END_EVALS  # an onset needs END_EVALS evals after it
    if last_candidate < 0:
        return out

    lv, lt, m = _levels(va), _levels(tr), _window_counts(n)
    end_v, end_t = float(va[-END_EVALS:].mean()), float(tr[-END_EVALS:].mean())
    cand = np.arange(last_candidate + 1)
    # "comes back": the mean of w consecutive evals wholly after the candidate (w = a full level window, or
    # all the evals left when fewer remain) below its level by more than the margin
    w = comeback_evals(n)
    c = np.concatenate([[0.0], np.cumsum(va)])
    run = (c[w:] - c[:-w]) / w  # run[j] = mean of va[j : j + w]
    suffix_min = np.concatenate([np.minimum.accumulate(run[::-1])[::-1], [np.inf] * w])
    tail = n - 1 - cand  # evals after each candidate
    size = np.minimum(w, tail)
    lowest_after = np.where(tail >= w, suffix_min[cand + 1], (c[n] - c[cand + 1]) / np.maximum(tail, 1))
    margin = Z_COMEBACK * sv * np.sqrt(1 / size + 1 / m[cand])
    came_back = lv[cand] - lowest_after > margin
    end_noise = np.sqrt(1 / END_EVALS + 1 / m[cand])
    train_fell = lt[cand] - end_t > Z_TRAIN_FELL * st * end_noise
    growth = (end_v - end_t) - (lv[cand] - lt[cand])
    gap_grew = (growth > Z_GAP_GREW * math.hypot(sv, st) * end_noise) & (growth >= MIN_GAP_GROWTH * lv[cand])
    ok = cand[~came_back & train_fell & gap_grew]
    out["candidate_iters"] = [int(it[i]) for i in ok]
    if ok.size == 0:
        return out
    o = int(ok[np.argmin(lv[ok])])  # the lowest level among those that qualify (first on a tie)
    rest = va[o + 1 :]
    wo = o + 1 + int(np.argmax(rest))
    out.update(
        {
            "onset_iter": int_or_none(it[o]),
            "onset_val": finite_or_none(va[o]),
            "onset_train": finite_or_none(tr[o]),
            "onset_level": finite_or_none(lv[o]),
            "onset_train_level": finite_or_none(lt[o]),
            "onset_level_evals": int(m[o]),
            "comeback_margin": finite_or_none(margin[o]),
            "comeback_evals": int(size[o]),
            "evals_after_onset": int(n - 1 - o),
            "worst_val_after_onset": finite_or_none(va[wo]),
            "worst_iter_after_onset": int_or_none(it[wo]),
            "gap_at_onset": finite_or_none(lv[o] - lt[o]),
            "val_end": finite_or_none(end_v),
            "train_end": finite_or_none(end_t),
            "gap_end": finite_or_none(end_v - end_t),
        }
    )
    return out


# --------------------------------------------------------------------------- verdict
def _recent(h: pd.DataFrame, sv: float, st: float) -> dict[str, Any]:
    """How the run ended: is val still falling or rising, is train rising, and did the gap widen?"""
    va = h["val_loss"].to_numpy(dtype=float)
    tr = h["train_loss"].to_numpy(dtype=float)
    it = h["iter"].to_numpy()
    n = len(h)
    k = max(1, min(END_EVALS, n // 2))  # the last k evals against the k before them
    last, before = float(va[-k:].mean()), float(va[-2 * k : -k].mean())
    t_last, t_before = float(tr[-k:].mean()), float(tr[-2 * k : -k].mean())
    z = math.sqrt(2 / k)
    gap = va - tr
    mid = (n - 1) // 2
    half = level_half_width(n)
    lo, hi = max(0, mid - half), min(n, mid + half + 1)
    gap_mid, gap_last = float(gap[lo:hi].mean()), float(gap[-k:].mean())
    # a widening gap is val pulling away above train: a negative gap (train above val, e.g. a train loss
    # averaged over an epoch while the model improved) shrinking towards zero is not one
    change_limit = Z_WIDENING * math.hypot(sv, st) * math.sqrt(1 / k + 1 / (hi - lo))
    above_limit = Z_WIDENING * math.hypot(sv, st) / math.sqrt(k)
    widening = gap_last - gap_mid > change_limit and gap_last > above_limit
    where = "at the last eval" if k == 1 else f"over the last {k} evals"
    span = f"from {gap_mid:.3f} around iter {int(it[mid])} to {gap_last:.3f} {where}"
    if widening:
        phrase = f"the gap is widening, {span}"
    elif gap_last <= above_limit:
        phrase = f"val is not above train by more than the noise (the gap went {span})"
    elif gap_last - gap_mid < -change_limit:
        phrase = f"the gap narrowed, {span}"
    else:
        phrase = f"the gap stayed within the noise, {span}"
    return {
        "k": k,
        "val_before": before,
        "val_last": last,
        "train_before": t_before,
        "train_last": t_last,
        "iter_before": int(it[-2 * k]),
        "improving": before - last > Z_IMPROVING * sv * z,
        "rising": last - before > Z_IMPROVING * sv * z,
        "train_rising": t_last - t_before > Z_IMPROVING * st * z,
        "widening": bool(widening),
        "gap_phrase": phrase,
    }


def _evals(count: int) -> str:
    return "1 eval" if count == 1 else f"{count} evals"


def _stopped_sentence(o: dict[str, Any], final_val: float) -> str:
    """The onset as a clause, with the numbers :func:`detect_onset` used (levels, margin, end means)."""
    oi, k = o["onset_iter"], END_EVALS
    text = (
        f"val loss stopped improving at iter {oi}: its level there is {o['onset_level']:.3f} nats (the mean "
        f"of the {o['onset_level_evals']} evals around it; that eval alone {o['onset_val']:.3f}), and in the "
        f"{_evals(o['evals_after_onset'])} after it no {o['comeback_evals']} in a row came back below that level by "
        f"more than {o['comeback_margin']:.3f} nats (noise ±{o['val_noise']:.3f} nats per eval); it ended at "
        f"{final_val:.3f}"
    )
    if o["worst_val_after_onset"] is not None and o["worst_val_after_onset"] > final_val:
        text += f" (worst {o['worst_val_after_onset']:.3f} at iter {o['worst_iter_after_onset']})"
    if o["best_iter"] is not None and o["best_iter"] != oi:
        text += f", and its single lowest eval, {o['best_val']:.3f} at iter {o['best_iter']}, " + (
            "did not last" if o["best_iter"] > oi else "came before it"
        )
    return (
        f"{text}, while train loss kept falling, from {o['onset_train_level']:.3f} around the onset to "
        f"{o['train_end']:.3f} over the last {k} evals, and the gap grew from {o['gap_at_onset']:.3f} to "
        f"{o['gap_end']:.3f} nats"
    )


def verdict(
    history: pd.DataFrame, vocab_size: Optional[int] = None, *, onset: Optional[dict[str, Any]] = None
) -> tuple[str, str]:
    """Label a run ``underfitting``, ``healthy``, ``overfitting`` or ``memorizing``, with a one-sentence reason.

    Losses in nats; the first rule that holds wins:

    1. **memorizing** — an onset (:data:`ONSET_RULE`) and the final train loss is at most
       :data:`MEMORIZE_TRAIN` with the final gap at least :data:`MEMORIZE_GAP`;
    2. **overfitting** — an onset: val stopped improving while train kept falling;
    3. **underfitting** — the best val is still at least :data:`UNIFORM_FRACTION` of ``ln(vocab_size)``
       (the loss of a uniform guess; when ``vocab_size`` is given), or val was still improving at the end
       (its last evals below the ones before by more than the noise) and the gap was not widening:
       both losses still falling together, more training would likely help;
    4. **healthy** — otherwise: val levelled off without an onset, or val is still improving while the gap
       widens (the reason says so: the run is spending more of its progress on its training text).

    ``onset``: :func:`detect_onset`'s dict for this history, if already computed.  Every number the rule
    used is in the reason, in nats.
    """
    h = finite_history(history)
    n = len(h)
    if n < 2:
        raise ValueError(f"history has {n} eval row(s); need at least 2 to judge a trend")
    o = onset if onset is not None else detect_onset(h)
    tr = h["train_loss"].to_numpy(dtype=float)
    va = h["val_loss"].to_numpy(dtype=float)
    ft, fv = float(tr[-1]), float(va[-1])
    fg = fv - ft
    bv, bi = o["best_val"], o["best_iter"]
    sv, st = float(o["val_noise"]), float(o["train_noise"])
    noise = f"±{sv:.3f} nats per eval"

    if o["onset_iter"] is not None:
        stopped = _stopped_sentence(o, fv)
        if ft <= MEMORIZE_TRAIN and fg >= MEMORIZE_GAP:
            return "memorizing", (
                f"Train loss fell to {ft:.3f} nats (perplexity {math.exp(ft):.2f}), {fg:.2f} nats below val, and "
                f"{stopped}: the model is reproducing its training text rather than learning what transfers to "
                f"new text."
            )
        return "overfitting", f"{stopped[0].upper()}{stopped[1:]}."

    r = _recent(h, sv, st)
    uniform = math.log(vocab_size) if vocab_size and vocab_size > 1 else None
    if uniform is not None and bv >= UNIFORM_FRACTION * uniform:
        return "underfitting", (
            f"Best val loss {bv:.3f} is still at least {UNIFORM_FRACTION:.0%} of {uniform:.3f} = ln({vocab_size}), "
            f"the loss of a uniform guess over the vocabulary: the model has learned little so far."
        )
    means = "single evals" if r["k"] == 1 else f"means of {r['k']} evals"
    end = f"from {r['val_before']:.3f} to {r['val_last']:.3f} ({means}, from iter {r['iter_before']}; noise {noise})"
    train = f"train went from {r['train_before']:.3f} to {r['train_last']:.3f}"
    gap = r["gap_phrase"]
    if r["rising"] and r["train_rising"]:
        return "underfitting", (
            f"No overfitting onset: val loss rose at the end, {end}, but so did train loss ({train}): the model is "
            f"getting worse at its own training text too, so training became unstable (often a learning rate "
            f"too high); this is not overfitting."
        )
    if r["rising"]:
        return "healthy", (
            f"No overfitting onset: val loss rose at the end, {end}, while train loss did not keep falling "
            f"({train}), and {gap}: not the overfitting pattern, but watch the next evals."
        )
    if r["improving"] and not r["widening"]:
        return "underfitting", (
            f"No overfitting onset, and val loss was still falling at the end, {end}, while {gap}: both losses "
            f"are still falling together, so more training, or a larger model, would likely still help."
        )
    if r["improving"]:
        return "healthy", (
            f"No overfitting onset: val loss was still falling at the end, {end}, but {gap}: train loss is "
            f"improving faster than val loss, so watch for val to stop improving."
        )
    return "healthy", (
        f"No overfitting onset: val loss has levelled off (best {bv:.3f} at iter {bi}, final {fv:.3f}; its last "
        f"evals are within the noise, {noise}, of the ones before), and {gap}."
    )


def judge(
    history: pd.DataFrame,
    vocab_size: Optional[int] = None,
    *,
    val_noise: Optional[float] = None,
    train_noise: Optional[float] = None,
) -> dict[str, Any]:
    """The onset and the verdict of one history in one dict: :func:`detect_onset`'s keys plus
    ``verdict``, ``reason``, ``final_train``, ``final_gap`` and ``n_evals`` (finite rows).

    One eval gives ``underfitting`` ("no trend to judge yet").
    """
    h = finite_history(history)
    o = detect_onset(h, val_noise=val_noise, train_noise=train_noise)
    if len(h) >= 2:
        label, reason = verdict(h, vocab_size, onset=o)
    else:
        label, reason = "underfitting", f"Only one eval (iter {int(h['iter'].iloc[0])}): no trend to judge yet."
    final_train = float(h["train_loss"].iloc[-1])
    out = dict(o)
    out.update(
        {
            "verdict": label,
            "reason": reason,
            "final_train": finite_or_none(final_train),
            "final_gap": finite_or_none(float(h["val_loss"].iloc[-1]) - final_train),
            "n_evals": int(len(h)),
        }
    )
    return out


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
    h = finite_history(history)
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
