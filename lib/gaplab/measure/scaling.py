"""Scaling-law reference points and a fit of Kaplan et al.'s L(N, D).

Sources:

* Kaplan et al. 2020, "Scaling Laws for Neural Language Models" (arXiv:2001.08361):
  eq. 1.5, the early-stopped test loss of a model with ``N`` non-embedding
  parameters trained on ``D`` tokens,
  ``L(N, D) = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D``
  (their fit, Table 2: alpha_N = 0.076, alpha_D = 0.103, N_c = 6.4e13, D_c = 1.8e13, loss in nats);
  and eq. 4.4, overfitting stays small when ``D >~ 5e3 * N^0.74``.
* Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models"
  (Chinchilla, arXiv:2203.15556): compute-optimal training uses roughly 20
  tokens per parameter.

The constants fitted to gaplab's tiny models on tiny corpora come out far from
Kaplan's (different data, tokenizer and scale); the fit is a teaching tool for
"does one smooth law describe my grid, and how well does it predict a held-out
point", not a claim that these constants transfer.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from .references import KAPLAN_2020_FIT, KAPLAN_FORMULA, positive_array

_LOG_BOUNDS = (-20.0, 120.0)  # natural log of Nc and Dc: 2e-9 .. 1.3e52


_ALPHA_BOUNDS = (1e-3, 5.0)


def kaplan_loss(N: Any, D: Any, Nc: float, Dc: float, alpha_N: float, alpha_D: float) -> Any:
    """Kaplan et al. 2020 eq. 1.5: loss (nats) for ``N`` non-embedding parameters and ``D`` tokens."""
    N_arr, D_arr = positive_array("N", N), positive_array("D", D)
    for name, v in (("Nc", Nc), ("Dc", Dc), ("alpha_N", alpha_N), ("alpha_D", alpha_D)):
        if not (isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} = {v!r}: allowed: a finite number > 0")
    out = np.exp(_log_loss(np.array([math.log(Nc), math.log(Dc), alpha_N, alpha_D]), N_arr, D_arr))
    return float(out) if np.ndim(out) == 0 else out


def _log_loss(theta: np.ndarray, N: np.ndarray, D: np.ndarray) -> np.ndarray:
    """log L for theta = (log Nc, log Dc, alpha_N, alpha_D), computed stably with logaddexp."""
    log_nc, log_dc, a_n, a_d = theta
    return a_d * np.logaddexp((a_n / a_d) * (log_nc - np.log(N)), log_dc - np.log(D))


def _starts(N: np.ndarray, D: np.ndarray) -> list[np.ndarray]:
    log_nc = (math.log(float(np.median(N))), math.log(float(np.max(N))) + 3.0, math.log(KAPLAN_2020_FIT["Nc"]))
    log_dc = (math.log(float(np.median(D))), math.log(float(np.max(D))) + 3.0, math.log(KAPLAN_2020_FIT["Dc"]))
    alphas = ((KAPLAN_2020_FIT["alpha_N"], KAPLAN_2020_FIT["alpha_D"]), (0.3, 0.3), (1.0, 1.0), (0.2, 0.6), (0.6, 0.2))
    return [np.array([a, b, an, ad]) for a, b, (an, ad) in itertools.product(log_nc, log_dc, alphas)]


def _fit_points(N, D, L, holdout_mask) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``N``, ``D``, ``L`` as positive 1-D arrays of one length, and the holdout mask; at least 4 fit points."""
    N_arr, D_arr, L_arr = positive_array("N", N), positive_array("D", D), positive_array("L", L)
    N_arr, D_arr, L_arr = np.atleast_1d(N_arr), np.atleast_1d(D_arr), np.atleast_1d(L_arr)
    if not (len(N_arr) == len(D_arr) == len(L_arr)):
        raise ValueError(f"N, D and L must have the same length; got {len(N_arr)}, {len(D_arr)}, {len(L_arr)}")
    if holdout_mask is None:
        hold = np.zeros(len(N_arr), dtype=bool)
    else:
        hold = np.asarray(holdout_mask, dtype=bool)
        if hold.shape != N_arr.shape:
            raise ValueError(f"holdout_mask has {hold.size} entries; N has {N_arr.size}")
    n_fit = int((~hold).sum())
    if n_fit < 4:
        raise ValueError(
            f"fit_kaplan needs at least 4 fit points for its 4 constants; got {n_fit} ({int(hold.sum())} held out)"
        )
    return N_arr, D_arr, L_arr, hold


def _least_squares_fit(N: np.ndarray, D: np.ndarray, log_loss: np.ndarray):
    """The lowest-cost ``least_squares`` result over :func:`_starts`, for theta = (log Nc, log Dc, alphas)."""

    def resid(theta: np.ndarray) -> np.ndarray:
        return _log_loss(theta, N, D) - log_loss

    lower = [_LOG_BOUNDS[0], _LOG_BOUNDS[0], _ALPHA_BOUNDS[0], _ALPHA_BOUNDS[0]]
    upper = [_LOG_BOUNDS[1], _LOG_BOUNDS[1], _ALPHA_BOUNDS[1], _ALPHA_BOUNDS[1]]
    best = None
    for x0 in _starts(N, D):
        x0 = np.clip(x0, lower, upper)
        res = least_squares(
            resid,
            x0,
            bounds=(lower, upper),
            method="trf",
            x_scale="jac",
            xtol=1e-12,
            ftol=1e-12,
            gtol=1e-12,
            max_nfev=2000,
        )
        if best is None or res.cost < best.cost:
            best = res
    return best


def fit_kaplan(
    N: Sequence[float], D: Sequence[float], L: Sequence[float], holdout_mask: Optional[Sequence[bool]] = None
) -> dict[str, Any]:
    """Fit Kaplan's L(N, D) (eq. 1.5) to observed losses, in log space.

    ``N``: non-embedding parameters; ``D``: training tokens; ``L``: loss in nats
    (use the best, i.e. early-stopped, val loss, as Kaplan did).  Points with
    ``holdout_mask`` True are left out of the fit and used to measure how well
    the law predicts them.

    Minimises ``sum (log L_pred - log L)^2`` over ``(log Nc, log Dc, alpha_N,
    alpha_D)`` with ``scipy.optimize.least_squares`` (trust-region, bounded:
    alphas in [0.001, 5], ``Nc``/``Dc`` in [e^-20, e^120]) from several starts
    (Kaplan's constants and data-scaled guesses), keeping the lowest cost.

    Returns ``Nc, Dc, alpha_N, alpha_D``, ``n_fit``, ``n_holdout``, ``dof``,
    ``predicted`` (all points), ``residuals`` (``L_pred - L`` on fit points),
    ``rmse`` (on fit points, nats), ``rmse_log``, ``holdout_residuals``,
    ``holdout_rmse`` and ``holdout_max_abs_error`` (None without a holdout),
    ``success``, ``message``, ``formula``.
    """
    N_arr, D_arr, L_arr, hold = _fit_points(N, D, L, holdout_mask)
    fit = ~hold
    n_fit = int(fit.sum())
    best = _least_squares_fit(N_arr[fit], D_arr[fit], np.log(L_arr[fit]))
    theta = best.x
    pred = np.exp(_log_loss(theta, N_arr, D_arr))
    err = pred - L_arr
    out: dict[str, Any] = {
        "Nc": float(math.exp(theta[0])),
        "Dc": float(math.exp(theta[1])),
        "alpha_N": float(theta[2]),
        "alpha_D": float(theta[3]),
        "n_fit": n_fit,
        "n_holdout": int(hold.sum()),
        "dof": n_fit - 4,
        "predicted": pred.tolist(),
        "residuals": err[fit].tolist(),
        "rmse": float(np.sqrt(np.mean(err[fit] ** 2))),
        "rmse_log": float(np.sqrt(np.mean(best.fun**2))),
        "holdout_mask": hold.tolist(),
        "holdout_residuals": err[hold].tolist() if hold.any() else [],
        "holdout_rmse": float(np.sqrt(np.mean(err[hold] ** 2))) if hold.any() else None,
        "holdout_max_abs_error": float(np.max(np.abs(err[hold]))) if hold.any() else None,
        "success": bool(best.success),
        "message": str(best.message),
        "formula": KAPLAN_FORMULA,
    }
    return out


def fit_journey(table: pd.DataFrame, min_points: int = 6) -> Optional[dict[str, Any]]:
    """Fit eq. 1.5 to a study's finished phases: N = non-embedding params, D = train tokens, L = best val loss.

    Needs at least ``min_points`` phases (default 6: two more than the law's 4
    constants) with at least two distinct N and two distinct D; else returns None.  The phases with the largest D are held out
    (an extrapolation test) when at least ``min_points`` phases remain to fit.
    Returns ``{"fit": ..., "N", "D", "L", "phases", "holdout"}`` (lists).
    """
    ok = table["state"].isin(["done", "cached"]) if "state" in table else pd.Series(True, index=table.index)
    df = pd.DataFrame(
        {
            "phase": table.get("phase", pd.Series(range(len(table)), index=table.index)).astype(str),
            "N": pd.to_numeric(table["params_non_embedding"], errors="coerce").astype(float),
            "D": pd.to_numeric(table["train_tokens"], errors="coerce").astype(float),
            "L": pd.to_numeric(table["best_val"], errors="coerce").astype(float),
        }
    )[ok.to_numpy()]
    df = df[np.isfinite(df[["N", "D", "L"]]).all(axis=1) & (df[["N", "D", "L"]] > 0).all(axis=1)]
    if len(df) < min_points or df["N"].nunique() < 2 or df["D"].nunique() < 2:
        return None
    hold = (df["D"] == df["D"].max()).to_numpy()
    if (~hold).sum() < min_points or len(set(df["D"][~hold])) < 2:
        hold = np.zeros(len(df), dtype=bool)
    fit = fit_kaplan(df["N"].to_numpy(), df["D"].to_numpy(), df["L"].to_numpy(), holdout_mask=hold)
    return {
        "fit": fit,
        "N": df["N"].tolist(),
        "D": df["D"].tolist(),
        "L": df["L"].tolist(),
        "phases": df["phase"].tolist(),
        "holdout": hold.tolist(),
    }
