"""The units of a loss, for the measure room's readers: :mod:`gaplab.units` holds them.

They moved down to the base room because the trainer needs ``perplexity`` too, and the trainer may not
import from ``measure`` (a higher room).  This module re-exports them so that ``from .units import ...``
in ``measure`` and ``ui`` keeps working; new code imports :mod:`gaplab.units`.
"""

from __future__ import annotations

from ..units import MAX_EXP, finite_or_none, int_or_none, perplexity

__all__ = ["MAX_EXP", "finite_or_none", "int_or_none", "perplexity"]
