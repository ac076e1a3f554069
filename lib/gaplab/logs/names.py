"""What a logged key means, by the names training libraries give their losses.

``train_loss``, ``train/loss``, ``loss`` (Keras, HF), ``train_loss_step`` (Lightning) are train losses;
``val_loss``, ``eval/loss``, ``eval_squad_loss``, ``validation_loss``, ``valid/loss``, ``loss_nats/val``
are val losses; a loss in other units (bits per byte, perplexity) or a metric is neither.  And the
columns that carry the x axis: step, iter(ation) or epoch.
"""

from __future__ import annotations

import re
from typing import Optional

TRAIN_WORDS = frozenset({"train", "training", "tr"})
VAL_WORDS = frozenset({"val", "valid", "validation", "eval", "evaluation", "dev"})
#: a loss in other units, or a summary, is not the curve
NOT_THE_LOSS = frozenset({"bpb", "bpc", "ppl", "perplexity", "acc", "accuracy", "runtime", "std", "min", "max", "se"})
#: x columns by preference: the step first, then the iteration, then the epoch
STEP_NAMES = ("step", "global_step", "train/global_step", "steps", "iter", "iters", "iteration", "it", "_step")
EPOCH_NAMES = ("epoch", "epochs", "train/epoch")


def words(key: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", key.lower()) if w]


def loss_role(key: str) -> Optional[str]:
    """``"train"``, ``"val"`` or None for a logged key."""
    parts = words(key)
    if "loss" not in parts or NOT_THE_LOSS.intersection(parts):
        return None
    if VAL_WORDS.intersection(parts):
        return "val"
    if TRAIN_WORDS.intersection(parts) or parts == ["loss"]:
        return "train"
    return None


def _train_rank(key: str) -> int:
    parts = words(key)
    if parts[-1:] == ["step"]:
        return 0  # Lightning's per-step value: every point
    if parts[-1:] == ["epoch"]:
        return 2  # Lightning's epoch mean: one point an epoch
    return 1


def train_key(keys: list[str]) -> Optional[str]:
    """The key of the per-step train loss among ``keys`` (Lightning's ``*_step`` before ``*_epoch``)."""
    found = [k for k in keys if loss_role(k) == "train"]
    return min(found, key=lambda k: (_train_rank(k), len(k))) if found else None


def val_keys(keys: list[str]) -> list[str]:
    """The val loss keys among ``keys``; of Lightning's ``X_step``/``X_epoch`` twins, the epoch one."""
    found = [k for k in keys if loss_role(k) == "val"]
    out = []
    for key in found:
        parts = words(key)
        if parts[-1:] == ["step"] and any(k != key and words(k)[:-1] == parts[:-1] for k in found):
            continue
        out.append(key)
    return out


def x_column(columns: list[str], prefer: tuple[str, ...] = STEP_NAMES) -> Optional[str]:
    """The column that carries the step (or iteration), else None."""
    lowered = {c.lower(): c for c in columns}
    return next((lowered[n] for n in prefer if n in lowered), None)


def epoch_column(columns: list[str]) -> Optional[str]:
    lowered = {c.lower(): c for c in columns}
    return next((lowered[n] for n in EPOCH_NAMES if n in lowered), None)
