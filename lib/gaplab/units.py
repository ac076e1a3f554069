"""Units of a loss, and the one conversion of each.

gaplab's losses are mean cross-entropy in **nats per token** (natural log), as the trainer computes them.
A loss per token depends on the tokenizer: a vocabulary that cuts text into more, smaller tokens makes
each prediction easier.  **Bits per byte** divides the total loss of a text by ``ln 2`` times its length
in UTF-8 bytes, a unit that no tokenizer changes (nanochat's validation metric; Gao et al. 2020, "The
Pile", use it to compare models across tokenizers).  **Perplexity** is ``exp(loss)``: the number of
equally likely tokens the model is choosing between.
"""

from __future__ import annotations

import math
from typing import Any, Optional

#: the largest loss (nats) whose exp() is a finite float; above it a perplexity is not representable
MAX_EXP = 709.0


def finite_or_none(x: Any) -> Optional[float]:
    """A plain float for JSON: None for missing, non-numeric or non-finite values."""
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def int_or_none(x: Any) -> Optional[int]:
    """A plain int for JSON (rounded), or None like :func:`finite_or_none`."""
    v = finite_or_none(x)
    return int(round(v)) if v is not None else None


def perplexity(loss: Optional[float]) -> Optional[float]:
    """``exp(loss)`` for a loss in nats; None for missing or non-finite losses and for losses above
    :data:`MAX_EXP` (whose perplexity does not fit a float)."""
    v = finite_or_none(loss)
    if v is None or v > MAX_EXP:
        return None
    return math.exp(v)
