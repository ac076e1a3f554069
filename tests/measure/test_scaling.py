"""Kaplan et al. 2020 L(N, D): the formula, the fit (recovery on synthetic data), held-out error, reference rules."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from gaplab.measure.references import (
    CHINCHILLA_TOKENS_PER_PARAM,
    KAPLAN_2020_FIT,
    chinchilla_tokens,
    kaplan_overfit_min_tokens,
)
from gaplab.measure.scaling import fit_journey, fit_kaplan, kaplan_loss

TRUE = {"Nc": 3e6, "Dc": 2e5, "alpha_N": 0.35, "alpha_D": 0.45}


def grid_points():
    N, D = np.meshgrid([1e4, 3e4, 1e5, 3e5, 1e6], [1e4, 3e4, 1e5, 3e5, 1e6])
    return N.ravel(), D.ravel()


def test_kaplan_loss_by_hand():
    # (Nc/N)^(aN/aD) + Dc/D = 1 + 1 = 2, raised to aD = 0.5
    assert kaplan_loss(1e6, 1e6, 1e6, 1e6, 0.5, 0.5) == pytest.approx(math.sqrt(2))
    # Kaplan's own fit (Table 2) at N = 1e8, D = 1e10
    k = KAPLAN_2020_FIT
    want = ((6.4e13 / 1e8) ** (0.076 / 0.103) + 1.8e13 / 1e10) ** 0.103
    assert kaplan_loss(1e8, 1e10, **k) == pytest.approx(want, rel=1e-12)
    # vectorised, and D -> infinity leaves L(N) = (Nc/N)^aN
    out = kaplan_loss(np.array([1e6, 1e7]), np.array([1e30, 1e30]), **TRUE)
    assert out == pytest.approx([(3e6 / 1e6) ** 0.35, (3e6 / 1e7) ** 0.35], rel=1e-9)


def test_reference_rules():
    assert CHINCHILLA_TOKENS_PER_PARAM == 20
    assert chinchilla_tokens(1e6) == 2e7
    assert kaplan_overfit_min_tokens(1e6) == pytest.approx(5e3 * 1e6**0.74)
    assert kaplan_overfit_min_tokens(1e6) == pytest.approx(1.377e8, rel=1e-3)


def test_fit_recovers_constants_exactly_without_noise():
    N, D = grid_points()
    L = kaplan_loss(N, D, **TRUE)
    fit = fit_kaplan(N, D, L)
    for key, value in TRUE.items():
        assert fit[key] == pytest.approx(value, rel=0.01), key
    assert fit["rmse"] < 1e-6 and fit["success"]
    assert fit["n_fit"] == 25 and fit["n_holdout"] == 0 and fit["holdout_rmse"] is None


def test_fit_with_noise_and_holdout():
    N, D = grid_points()
    rng = np.random.default_rng(0)
    L = kaplan_loss(N, D, **TRUE) * np.exp(rng.normal(0, 0.005, N.size))  # 0.5 % noise
    hold = D == D.max()
    fit = fit_kaplan(N, D, L, holdout_mask=hold)
    assert fit["n_fit"] == 20 and fit["n_holdout"] == 5
    assert fit["alpha_N"] == pytest.approx(TRUE["alpha_N"], rel=0.05)
    assert fit["alpha_D"] == pytest.approx(TRUE["alpha_D"], rel=0.05)
    assert fit["Nc"] == pytest.approx(TRUE["Nc"], rel=0.15)
    # extrapolating to 3x more data than any fit point: error stays near the noise level
    assert fit["holdout_rmse"] < 0.05 and fit["holdout_max_abs_error"] < 0.1
    assert len(fit["residuals"]) == 20 and len(fit["holdout_residuals"]) == 5
    assert np.allclose(np.array(fit["predicted"])[hold] - L[hold], fit["holdout_residuals"])


def test_fit_errors():
    with pytest.raises(ValueError, match="at least 4 fit points"):
        fit_kaplan([1e4, 1e5, 1e6], [1e4, 1e5, 1e6], [3.0, 2.5, 2.0])
    with pytest.raises(ValueError, match="N = \\[-1.0\\]"):
        fit_kaplan([-1, 1e5, 1e6, 1e7], [1e4] * 4, [3.0] * 4)
    with pytest.raises(ValueError, match="same length"):
        fit_kaplan([1e4] * 4, [1e4] * 5, [3.0] * 4)
    with pytest.raises(ValueError, match="holdout_mask has 2 entries"):
        fit_kaplan([1e4] * 4, [1e4] * 4, [3.0] * 4, holdout_mask=[True, False])
    with pytest.raises(ValueError, match="alpha_D"):
        kaplan_loss(1e6, 1e6, 1e6, 1e6, 0.5, 0.0)


def test_fit_journey_holds_out_the_largest_data():
    N, D = grid_points()
    L = kaplan_loss(N, D, **TRUE)
    table = pd.DataFrame(
        {
            "phase": [f"p{i}" for i in range(N.size)],
            "state": "done",
            "params_non_embedding": N.astype(int),
            "train_tokens": D.astype(int),
            "best_val": L,
        }
    )
    table.loc[0, "state"] = "failed"  # not used
    fj = fit_journey(table)
    assert fj is not None and "p0" not in fj["phases"]
    assert sum(fj["holdout"]) == 5 and all(d == 1e6 for d, h in zip(fj["D"], fj["holdout"]) if h)
    assert fj["fit"]["holdout_rmse"] < 1e-6
    assert fit_journey(table.head(5)) is None  # too few phases: 4 constants need >= 6 to be checked
    assert fit_journey(table.head(11)) is not None
    same_d = table.assign(train_tokens=1000)
    assert fit_journey(same_d) is None  # one data size: D's exponent is not identifiable
