"""How noisy a loss curve is, in nats: the trainer's standard error, or the curve's own scatter.

An eval's loss is a mean over a finite set of windows, and the weights it measures move with every
optimizer step, so two evals of an unchanged model would still differ.  :func:`estimate_noise` puts one
number on that: **sigma**, the typical size (one standard deviation, in nats per token) of the random part
of one eval's loss.  It is the largest of

- the standard error the trainer wrote for each eval (``val_loss_se`` / ``train_loss_se`` in
  ``history.csv``: the standard deviation of the per-window losses over the square root of their count),
  median over the run's evals; it measures only which windows were read;
- the **curve's own scatter**: a robust spread of its second differences ``x[i+1] - 2 x[i] + x[i-1]``.
  A second difference cancels any straight-line trend, so what is left is noise: for independent noise of
  standard deviation ``s`` it has standard deviation ``s * sqrt(6)``.  The spread is the median absolute
  deviation from the median, scaled to a normal standard deviation (what
  ``scipy.stats.median_abs_deviation(scale="normal")`` computes), so a steady bend of the curve (a
  constant second difference) adds nothing, and the sharp bends of the first plunge from ln(V), a turn at
  the minimum or a learning-rate step do not count as long as they are fewer than half of the second
  differences (the median's breakdown point: a run of 20 evals may have up to 9 such bends).  It catches
  what the standard error cannot see: the scatter from one optimizer step to the next;
- a floor, :data:`NOISE_FLOOR_FRACTION` of the loss.

Either of the first two can be missing: a history without ``*_se`` columns (a CSV made from printed logs),
or with zeros there (an exact evaluation of a tiny split), uses the scatter; a run too short for a scatter
(fewer than 3 evals) uses the standard error or the floor.

**Few evals** (at most :data:`FEW_EVALS`: a fine-tune evaluated once per epoch for 3 epochs): the curve
cannot measure its own noise (one to three second differences, which are mostly the curve's bends), so
:func:`few_evals_noise` uses the standard error or a stated floor, :data:`FEW_EVALS_FLOOR_FRACTION` of the
loss: the eval-to-eval scatter that real logged curves show, measured as described beside the number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Optional

import numpy as np

# Below this fraction of the loss (0.2 %: 0.006 nats at a loss of 3) no difference is read as real: it keeps a
# noise-free or rounded curve (a synthetic example, a table printed with two decimals) from turning rounding
# into an onset, and is far below the ~1 % eval noise real small runs show.
NOISE_FLOOR_FRACTION = 0.002
# A curve of at most this many evals is too short to measure its own noise: it has at most 3 second
# differences, and on a curve that short most of them are bends (the first plunge, the turn), not noise.
FEW_EVALS = 5
# The noise assumed for such a curve, as a fraction of its loss: 3.3 %, the median relative eval-to-eval
# scatter (scatter_sigma(val) / median(val)) of the real logged curves with at least 10 evals in the user's
# seeds (tests/measure/seed_curves.py: seed 003 phases 0-4 "Training Progress" logs, 5.1 %, 3.6 %, 3.8 %,
# 3.0 %, 1.8 %, and seed 000 v3, 0.3 %; tests/measure/test_noise_floor.py recomputes it).  A scatter that large
# keeps a flat or still-improving 3-5-eval run from reading as an onset (the rate is measured there too);
# a val that rose by 39 % after its best, as in issue 24's 3-epoch fine-tune, is far beyond it.
FEW_EVALS_FLOOR_FRACTION = 0.033
#: the ``source`` of a few-evals curve's noise when the floor is the largest measure
FEW_EVALS_SOURCE = "few_evals_floor"
# A second difference of independent noise of standard deviation s has standard deviation s * sqrt(6).
_SECOND_DIFFERENCE_SD = math.sqrt(6.0)
# The median absolute deviation of normal noise is its standard deviation times the normal's upper quartile
# (0.6745); dividing by it makes the MAD estimate a standard deviation (scipy's scale="normal").  The standard
# library's normal quantile is the same number, without importing scipy.stats (over a second) for one constant.
_MAD_TO_SD = 1.0 / NormalDist().inv_cdf(0.75)


@dataclass(frozen=True)
class Noise:
    """One curve's noise: ``sigma`` (nats, one eval) and where it came from.

    ``source`` is ``"given"`` (passed in, e.g. the spread of replicate runs), ``"<column>"`` (the
    trainer's standard error), ``"scatter"`` (the curve's second differences) or ``"floor"``.
    ``se`` and ``scatter`` are the two measures (None where not available); ``floor`` the minimum.
    """

    sigma: float
    source: str
    se: Optional[float]
    scatter: Optional[float]
    floor: float

    def as_dict(self, prefix: str) -> dict[str, Any]:
        return {
            f"{prefix}_noise": self.sigma,
            f"{prefix}_noise_source": self.source,
            f"{prefix}_noise_se": self.se,
            f"{prefix}_noise_scatter": self.scatter,
        }


def scatter_sigma(values: np.ndarray) -> Optional[float]:
    """The robust scatter of a curve's second differences, as one eval's standard deviation (None if < 3 evals)."""
    if len(values) < 3:
        return None
    d2 = np.diff(np.asarray(values, dtype=float), 2)
    return float(np.median(np.abs(d2 - np.median(d2)))) * _MAD_TO_SD / _SECOND_DIFFERENCE_SD


def estimate_noise(values, se=None, *, given: Optional[float] = None, se_name: str = "se") -> Noise:
    """The noise of one loss curve (nats per eval); see the module docstring for the rule.

    ``values``: the losses in eval order (finite).  ``se``: the matching standard errors or None; only
    finite values above zero count, and they are used when at least half the evals have one.
    ``given``: a noise measured elsewhere (e.g. the spread of replicate runs at the same iter); it
    replaces the standard error, and the scatter and the floor still apply.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError("estimate_noise: values must be a non-empty 1-d array of finite losses")
    floor = NOISE_FLOOR_FRACTION * float(np.median(np.abs(v)))
    se_value: Optional[float] = None
    if given is not None:
        if not (isinstance(given, (int, float)) and math.isfinite(given) and given >= 0):
            raise ValueError(f"noise = {given!r}: allowed: a number of nats >= 0")
        se_value, se_name = float(given), "given"
    elif se is not None:
        s = np.asarray(se, dtype=float)
        ok = np.isfinite(s) & (s > 0)
        if ok.sum() * 2 >= len(s) and ok.any():
            se_value = float(np.median(s[ok]))
    scatter = scatter_sigma(v)
    parts = [(se_value, se_name), (scatter, "scatter"), (floor, "floor")]
    sigma, source = max(((x, name) for x, name in parts if x is not None), key=lambda p: p[0])
    return Noise(sigma=float(sigma), source=source, se=se_value, scatter=scatter, floor=floor)


def few_evals_noise(values, se=None, *, given: Optional[float] = None, se_name: str = "se") -> Noise:
    """The noise of a curve of at most :data:`FEW_EVALS` evals: the larger of the standard error (or ``given``)
    and :data:`FEW_EVALS_FLOOR_FRACTION` of the loss; the curve's scatter is recorded but not used (on so
    few evals it measures the curve's bends)."""
    measured = estimate_noise(values, se, given=given, se_name=se_name)
    floor = FEW_EVALS_FLOOR_FRACTION * float(np.median(np.abs(np.asarray(values, dtype=float))))
    if measured.se is not None and measured.se >= floor:
        source = "given" if given is not None else se_name
        return Noise(sigma=measured.se, source=source, se=measured.se, scatter=measured.scatter, floor=floor)
    return Noise(sigma=floor, source=FEW_EVALS_SOURCE, se=measured.se, scatter=measured.scatter, floor=floor)
