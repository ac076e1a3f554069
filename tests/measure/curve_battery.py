"""Seeded synthetic loss curves for the onset battery (tests/measure/test_verdict_battery.py).

Each family draws the noise-free val and train curves of one run of :data:`N_EVALS` evals (iters 0 to
2,000 every 100, like a 2,000-iter run evaluated every 100); :func:`noisy` adds eval noise the way it
arises, multiplicative and Gaussian: an eval of loss ``L`` reads ``L * (1 + rel * z)``, ``z ~ N(0, 1)``,
drawn independently for every eval of train and of val.  Levels and shapes are drawn from ranges that
cover gaplab's runs and the seeds' (final val 1 to 6 nats, first eval 1.6 to 3 times the last).

- :func:`still_improving` — healthy: val still falling at the end (exponential or power-law decay),
  train keeping up, its gap steady or widening (train falling up to twice as fast as val);
- :func:`plateau` — healthy: train and val both converged by 60 % of the run, the gap steady;
- :func:`u_shaped` — val falls to a minimum at 35-60 % of the run, then rises to end 10 % above it,
  while train keeps falling; returns the index of the true minimum too;
- :func:`flat` — val and train constant (pure noise).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

N_EVALS = 21
ITERS = np.arange(N_EVALS) * 100
_T = np.linspace(0.0, 1.0, N_EVALS)  # run fraction


def _decay(rng: np.random.Generator) -> np.ndarray:
    """A decreasing shape from 1 at the first eval to 0 at the last, still falling at the end."""
    if rng.random() < 0.5:
        tau = rng.uniform(0.3, 1.0)
        e = np.exp(-_T / tau)
    else:
        t0, alpha = rng.uniform(0.02, 0.2), rng.uniform(0.5, 1.5)
        e = (1 + _T / t0) ** -alpha
    return (e - e[-1]) / (e[0] - e[-1])


def still_improving(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    final = rng.uniform(1.0, 6.0)
    start = final * rng.uniform(1.6, 3.0)
    val = final + (start - final) * _decay(rng)
    gap0 = rng.uniform(-0.05, 0.15) * final  # train may sit above val (a train loss averaged over an epoch)
    widen = rng.uniform(0.0, 1.0)  # the gap grows by this fraction of val's own improvement
    train = val - gap0 - widen * (start - val)
    return val, train


def plateau(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    final = rng.uniform(1.0, 6.0)
    start = final * rng.uniform(1.6, 3.0)
    tau = rng.uniform(0.04, 0.1)  # converged by 60 % of the run (within 0.5 %)
    val = final + (start - final) * np.exp(-_T / tau)
    train_final = final * (1 - rng.uniform(0.0, 0.15))
    train = train_final + (start * rng.uniform(0.97, 1.03) - train_final) * np.exp(-_T / (tau * rng.uniform(0.8, 1.0)))
    return val, train


def u_shaped(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    i_min = int(rng.integers(round(0.35 * (N_EVALS - 1)), round(0.60 * (N_EVALS - 1)) + 1))
    tm = _T[i_min]
    vmin = rng.uniform(1.0, 6.0)
    start = vmin * rng.uniform(1.6, 3.0)
    p, q = rng.uniform(1.5, 3.0), rng.uniform(0.5, 2.0)
    left = vmin + (start - vmin) * (np.clip(tm - _T, 0, None) / tm) ** p
    right = vmin * (1 + 0.10 * (np.clip(_T - tm, 0, None) / (1 - tm)) ** q)
    val = np.where(_T <= tm, left, right)
    train_end = vmin * rng.uniform(0.4, 0.9)
    tau = rng.uniform(0.2, 0.5)
    e = np.exp(-_T / tau)
    train = train_end + (start * rng.uniform(0.97, 1.03) - train_end) * (e - e[-1]) / (1 - e[-1])
    return val, train, i_min


def flat(level: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return np.full(N_EVALS, level), np.full(N_EVALS, level * rng.uniform(0.85, 1.0))


def noisy(x: np.ndarray, rel: float, rng: np.random.Generator) -> np.ndarray:
    return x * (1 + rel * rng.standard_normal(len(x)))


def history(val: np.ndarray, train: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"iter": ITERS[: len(val)], "train_loss": train, "val_loss": val})
