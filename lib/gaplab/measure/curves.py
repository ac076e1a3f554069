"""Reading the loss curves: overfitting onset and the verdict.

All losses are mean cross-entropy in nats per token (natural log), as the trainer writes them;
``gap = val_loss - train_loss``.  The functions here read a history (a DataFrame, or a phase folder's
``history.csv`` and ``metrics.json``); the stages decide what to write.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from ..files import read_json
from ..files import PathLike
from ..train.history import finite_history, load_history
from .units import finite_or_none, int_or_none, perplexity

VERDICTS = ("underfitting", "healthy", "overfitting", "memorizing")


# seed 003's own gap scale ("The Gap Interpretation", seed 003, 2025): lower bound inclusive.
_SEED_GAP_SCALE = (
    (0.5, "perfect generalization (may be too generic)"),
    (1.0, "excellent balance"),
    (2.0, "mild overfitting"),
    (3.0, "moderate overfitting"),
    (math.inf, "severe overfitting"),
)


SEED_HEURISTIC = "seed 003's heuristic"


# --------------------------------------------------------------------------- onset
def detect_onset(history: pd.DataFrame, tol: float = 0.02, k: int = 2) -> dict[str, Any]:
    """Find where the validation loss turns up for good while the training loss keeps falling.

    Walk the evals keeping the *running best* validation loss.  An eval is a
    **rise** when its val loss exceeds the running best by more than ``tol``
    *relative to that loss* (``val > best * (1 + tol)``; the default 0.02 is
    2 %, e.g. 0.08 nats at a loss of 4).  A relative band is used because
    the eval noise (a mean over ``eval_iters`` batches) grows with the loss
    itself, so one setting works for tiny and large vocabularies alike.  An
    eval within the band resets the streak; a lower val loss becomes the new
    running best.

    Overfitting onset is confirmed at the ``k``-th rise in a row, provided the
    train loss at each of those ``k`` evals is below its value at the running
    best (train keeps falling while val rises).  ``onset_iter`` is the running
    best's iter: the last eval before the sustained rise, i.e. the first eval
    *after which* val loss rises beyond noise.  ``onset_confirmed_iter`` is
    the eval that confirmed it.

    Returns ``onset_iter`` (None if none), ``onset_confirmed_iter``,
    ``onset_val``, ``best_iter``/``best_val`` (the lowest val loss anywhere),
    ``train_at_best``, ``final_val``, ``val_lost_after_best`` (``final_val -
    best_val``), ``worst_val_after_best``/``worst_iter_after_best`` (highest
    val loss after the best; None when the best is the last eval), ``tol``, ``k``.
    Seed 003's phase 4 (best 4.04 at step 2000, 4.20 at step 3000) gives
    ``val_lost_after_best`` = 0.16.
    """
    if not (isinstance(tol, (int, float)) and tol >= 0):
        raise ValueError(f"tol = {tol!r}: allowed: a number >= 0 (a fraction of the loss, e.g. 0.02)")
    if not (isinstance(k, int) and k >= 1):
        raise ValueError(f"k = {k!r}: allowed: an integer >= 1 (consecutive evals)")
    h = finite_history(history)
    it = h["iter"].to_numpy()
    tr = h["train_loss"].to_numpy(dtype=float)
    va = h["val_loss"].to_numpy(dtype=float)
    n = len(h)

    b = int(np.argmin(va))  # first occurrence of the lowest val loss
    after = va[b + 1:]
    w = b + 1 + int(np.argmax(after)) if after.size else None

    onset = confirmed = None
    run_best, streak = 0, 0
    for i in range(1, n):
        if va[i] > va[run_best] * (1 + tol):
            streak += 1
            window = tr[i - k + 1: i + 1] if streak >= k else None
            if window is not None and bool(np.all(window < tr[run_best])):
                onset, confirmed = run_best, i
                break
        else:
            streak = 0
            if va[i] < va[run_best]:
                run_best = i

    return {
        "onset_iter": int_or_none(it[onset]) if onset is not None else None,
        "onset_confirmed_iter": int_or_none(it[confirmed]) if confirmed is not None else None,
        "onset_val": finite_or_none(va[onset]) if onset is not None else None,
        "best_iter": int_or_none(it[b]),
        "best_val": finite_or_none(va[b]),
        "train_at_best": finite_or_none(tr[b]),
        "final_val": finite_or_none(va[-1]),
        "val_lost_after_best": finite_or_none(va[-1] - va[b]),
        "worst_val_after_best": finite_or_none(va[w]) if w is not None else None,
        "worst_iter_after_best": int_or_none(it[w]) if w is not None else None,
        "tol": float(tol),
        "k": int(k),
    }


# --------------------------------------------------------------------------- verdict
def verdict(
    history: pd.DataFrame,
    vocab_size: Optional[int] = None,
    *,
    onset: Optional[dict[str, Any]] = None,
    tol: float = 0.02,
    k: int = 2,
    gap_large: float = 0.5,
    gap_growth: float = 0.1,
    memorize_train: float = 0.5,
    memorize_gap: float = 1.0,
    uniform_fraction: float = 0.85,
) -> tuple[str, str]:
    """Label a run ``underfitting``, ``healthy``, ``overfitting`` or ``memorizing``, with a one-sentence reason.

    Losses in nats.  The rules are checked in this order; the first that holds wins:

    1. **memorizing** — the final train loss is at most ``memorize_train``
       (0.5 nats: perplexity <= 1.65, the model nearly reproduces its training
       text), val loss is at least ``memorize_gap`` (1 nat) above it, and val
       is rising (an onset was detected, or the final val is more than ``tol``
       above the best val).
    2. **overfitting** — an onset was detected (:func:`detect_onset`), or the
       final gap is at least ``gap_large`` (0.5 nats: val perplexity 1.65x the
       train perplexity) and grew by at least ``gap_growth`` (0.1 nats) over
       the second half of the evals.
    3. **underfitting** — the best val loss is still at least
       ``uniform_fraction`` (85 %) of ``ln(vocab_size)``, the loss of a uniform
       guess over the vocabulary (when ``vocab_size`` is given); or both losses
       were still falling (each fell by more than ``tol`` relative over the last
       third of the evals) with a final gap below ``gap_large``.
    4. **healthy** — otherwise: val loss has levelled off without a sustained
       rise and the gap is small or stable.

    These thresholds are teaching defaults, not laws; every number used is in the reason.
    """
    h = finite_history(history)
    n = len(h)
    if n < 2:
        raise ValueError(f"history has {n} eval row(s); need at least 2 to judge a trend")
    o = onset if onset is not None else detect_onset(h, tol=tol, k=k)
    tr = h["train_loss"].to_numpy(dtype=float)
    va = h["val_loss"].to_numpy(dtype=float)
    it = h["iter"].to_numpy()
    gap = va - tr
    ft, fv, fg = tr[-1], va[-1], gap[-1]
    bv, bi = o["best_val"], o["best_iter"]
    mid = (n - 1) // 2
    growth = fg - gap[mid]
    r = max(0, n - 1 - max(1, n // 3))
    val_falling = (va[r] - fv) > tol * abs(va[r])
    train_falling = (tr[r] - ft) > tol * abs(tr[r])
    val_rising = o["onset_iter"] is not None or fv > bv * (1 + tol)
    uniform = math.log(vocab_size) if vocab_size and vocab_size > 1 else None

    if ft <= memorize_train and fg >= memorize_gap and val_rising:
        return "memorizing", (
            f"Train loss fell to {ft:.3f} nats (perplexity {math.exp(ft):.2f}) while val loss is {fv:.3f}, "
            f"{fg:.2f} nats above it and up from its best {bv:.3f} at iter {bi}: the model is reproducing its "
            f"training text rather than learning what transfers to new text."
        )
    if o["onset_iter"] is not None:
        worst = o["worst_val_after_best"] if o["worst_val_after_best"] is not None else fv
        return "overfitting", (
            f"Val loss bottomed at {o['onset_val']:.3f} (iter {o['onset_iter']}) and then rose more than "
            f"{tol:.0%} above it for {k} evals in a row (confirmed at iter {o['onset_confirmed_iter']}, "
            f"worst {worst:.3f}) while train loss kept falling, to {ft:.3f} at the end; final gap {fg:.3f} nats."
        )
    if fg >= gap_large and growth >= gap_growth:
        return "overfitting", (
            f"The gap grew from {gap[mid]:.3f} to {fg:.3f} nats over the second half of training "
            f"(iter {int(it[mid])} to {int(it[-1])}; final train {ft:.3f}, val {fv:.3f}): train loss is "
            f"improving faster than val loss."
        )
    if uniform is not None and bv >= uniform_fraction * uniform:
        return "underfitting", (
            f"Best val loss {bv:.3f} is still at least {uniform_fraction:.0%} of {uniform:.3f} = ln({vocab_size}), "
            f"the loss of a uniform guess over the vocabulary: the model has learned little so far."
        )
    if val_falling and train_falling and fg < gap_large:
        return "underfitting", (
            f"Both losses were still falling at the end (val {va[r]:.3f} to {fv:.3f}, train {tr[r]:.3f} to "
            f"{ft:.3f} over the last {_evals(n - 1 - r)}) with a small gap of {fg:.3f} nats: more training, "
            f"or a larger model, would likely still help."
        )
    return "healthy", (
        f"Val loss levelled off at {fv:.3f} (best {bv:.3f} at iter {bi}) without a sustained rise of more than "
        f"{tol:.0%}, and the gap is {fg:.3f} nats ({growth:+.3f} over the second half of training)."
    )


def _evals(count: int) -> str:
    return "eval" if count == 1 else f"{count} evals"


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


def analyze_run(run_dir: PathLike, tol: float = 0.02, k: int = 2) -> dict[str, Any]:
    """The dict stored under ``metrics.json['analysis']`` for one phase (writes nothing).

    Reads ``history.csv`` and, if present, ``metrics.json`` (for ``vocab_size``
    and ``stop_reason``).  Keys: everything :func:`detect_onset` returns,
    ``verdict`` and ``reason``, ``final_train``, ``final_gap``, ``gap_at_best``,
    ``best_train`` (lowest train loss), perplexities ``exp(loss)``
    (``best_val_perplexity``, ``final_val_perplexity``, ``best_train_perplexity``,
    ``final_train_perplexity``), ``uniform_loss`` (= ln(vocab_size)),
    ``seed_gap_label`` (seed 003's heuristic on the final gap),
    ``early_stop_iter`` (the last eval when training stopped early, else None),
    ``stop_reason``, ``n_evals``.
    """
    run_dir = Path(run_dir)
    history = load_history(run_dir)
    metrics = read_json(run_dir / "metrics.json", {}) or {}
    h = finite_history(history)
    vocab = int_or_none(metrics.get("vocab_size"))
    o = detect_onset(h, tol=tol, k=k)
    if len(h) >= 2:
        label, reason = verdict(h, vocab, onset=o, tol=tol, k=k)
    else:
        label, reason = "underfitting", f"Only one eval (iter {int(h['iter'].iloc[0])}): no trend to judge yet."
    final_train = float(h["train_loss"].iloc[-1])
    final_gap = float(h["val_loss"].iloc[-1] - final_train)
    best_train = float(h["train_loss"].min())
    stop_reason = metrics.get("stop_reason")
    out = dict(o)
    out.update({
        "verdict": label,
        "reason": reason,
        "final_train": finite_or_none(final_train),
        "final_gap": finite_or_none(final_gap),
        "gap_at_best": finite_or_none(o["best_val"] - o["train_at_best"]),
        "best_train": finite_or_none(best_train),
        "best_val_perplexity": perplexity(o["best_val"]),
        "final_val_perplexity": perplexity(o["final_val"]),
        "best_train_perplexity": perplexity(best_train),
        "final_train_perplexity": perplexity(final_train),
        "uniform_loss": finite_or_none(math.log(vocab)) if vocab and vocab > 1 else None,
        "seed_gap_label": seed_gap_label(final_gap),
        "early_stop_iter": int_or_none(h["iter"].iloc[-1]) if is_early_stop(stop_reason) else None,
        "stop_reason": stop_reason,
        "n_evals": int(len(h)),
        "dropped_non_finite_evals": int(len(history) - len(h)),
    })
    return out
