"""The onset rule on logs of another shape (issue 24, items 2 and 3): train not logged, and few evals.

The few-evals rates are measured on seeded curves (tests/measure/curve_battery.py's families, 3 to 5 evals
taken across the run, multiplicative Gaussian eval noise of 1 % and 2 %); ``python -m
tests.measure.test_log_shape`` prints them (the README quotes them).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from gaplab.measure.curves import analyze_curve, judge
from gaplab.measure.noise import FEW_EVALS_FLOOR_FRACTION, FEW_EVALS_SOURCE, scatter_sigma
from gaplab.measure.onset import eval_rows, find_onset
from gaplab.train.history import finite_history

from tests.measure import curve_battery as B
from tests.measure.seed_curves import SEED_CURVES

N_FEW = 400  # seeded few-evals runs per family
FEW_FALSE_ONSET_BUDGET = 0.02


def history(iters, train, val) -> pd.DataFrame:
    return pd.DataFrame({"iter": iters, "train_loss": train, "val_loss": val})


# --------------------------------------------------------------------------- few evals
def test_issue_24_three_epoch_run_reads_overfitting():
    """The issue's 3-epoch fine-tune: val rose 39 % after epoch 1 (0.300 -> 0.417) while train fell 3.5x."""
    a = analyze_curve(history([156, 312, 468], [0.4967, 0.2567, 0.1405], [0.300, 0.372, 0.417]))
    assert a.verdict == "overfitting" and a.onset.onset_iter == 156 and a.thin_evidence
    assert "the evidence is thin: 3 evals are too few" in a.reason
    assert a.onset.val_noise_source == FEW_EVALS_SOURCE
    assert a.onset.val_noise == pytest.approx(FEW_EVALS_FLOOR_FRACTION * 0.372)


def test_flat_noisy_few_evals_run_is_not_an_onset():
    rng = np.random.default_rng(11)
    for n in (3, 4, 5):
        for _ in range(50):
            val = 2.0 * (1 + 0.02 * rng.standard_normal(n))
            train = np.linspace(1.9, 1.7, n) * (1 + 0.02 * rng.standard_normal(n))
            a = analyze_curve(history(np.arange(1, n + 1), train, val))
            assert a.onset.onset_iter is None, a.reason
            assert a.verdict in ("healthy", "underfitting") and "evidence is thin" in a.reason


def test_few_evals_floor_is_the_scatter_of_the_seeds_logged_curves():
    """The floor's number and source (gaplab.measure.noise): the median relative scatter of the seed logs."""
    logs = [c for c in SEED_CURVES if len(c.val) >= 10 and not c.name.endswith("table")]
    scatter = [scatter_sigma(np.array(c.val)) / np.median(c.val) for c in logs]
    assert len(logs) == 6
    assert round(float(np.median(scatter)), 3) == FEW_EVALS_FLOOR_FRACTION


def _few(values: np.ndarray, n: int) -> np.ndarray:
    """``n`` evals spread across a 21-eval run: its first, last and evenly between."""
    return values[np.linspace(0, len(values) - 1, n).round().astype(int)]


@functools.cache
def measure() -> dict[str, float]:
    """False onsets on healthy few-evals runs, and onsets found on few-evals runs whose val rose 30 %+."""
    rates = {}
    families = {"still_improving": B.still_improving, "plateau": B.plateau, "flat": lambda r: B.flat(3.0, r)}
    for seed, (name, draw) in enumerate(families.items()):
        for rel in (0.01, 0.02):
            rng = np.random.default_rng(100 + seed)
            hits = 0
            for i in range(N_FEW):
                n = 3 + i % 3
                val, train = draw(rng)
                h = history(np.arange(n), B.noisy(_few(train, n), rel, rng), B.noisy(_few(val, n), rel, rng))
                hits += find_onset(h).onset_iter is not None
            rates[f"few_{name}_{rel:.0%}_false_onset"] = hits / N_FEW
    rng = np.random.default_rng(7)
    found = 0
    for i in range(N_FEW):
        n = 3 + i % 3
        best = rng.uniform(0.3, 3.0)
        val = best * np.concatenate([[1.0], np.linspace(1.15, rng.uniform(1.3, 1.5), n - 1)])
        train = best * np.geomspace(1.5, rng.uniform(0.3, 0.6), n)
        found += find_onset(history(np.arange(n), B.noisy(train, 0.01, rng), B.noisy(val, 0.01, rng))).onset_iter == 0
    rates["few_rose_30%_found_at_best"] = found / N_FEW
    return rates


@pytest.mark.parametrize("family", ["still_improving", "plateau", "flat"])
def test_few_evals_false_onsets_are_rare(family):
    rates = measure()
    for rel in ("1%", "2%"):
        assert rates[f"few_{family}_{rel}_false_onset"] <= FEW_FALSE_ONSET_BUDGET, rates


def test_few_evals_clear_overfitting_is_found():
    assert measure()["few_rose_30%_found_at_best"] >= 0.95


# --------------------------------------------------------------------------- train not logged
def test_complete_logs_keep_the_rows_they_always_had():
    rng = np.random.default_rng(3)
    val, train = B.u_shaped(rng)[:2]
    h = B.history(B.noisy(val, 0.01, rng), B.noisy(train, 0.01, rng))
    h.loc[4, "val_loss"] = np.nan  # a row without val is still left out
    pd.testing.assert_frame_equal(eval_rows(h), finite_history(h))


def test_no_log_rows_keep_their_val_and_the_onset_lands_at_the_best():
    """Issue 24's model card: the first 20 of 23 evals have no train loss ("No log"); val is best at step 104."""
    val = [5.402, 5.233, 5.158, 5.101, 5.117, 5.131, 5.150, 5.139, 5.171, 5.188, 5.203, 5.219]
    val += [5.236, 5.244, 5.262, 5.281, 5.297, 5.309, 5.322, 5.340, 5.357, 5.371, 5.388]
    train = [np.nan] * 20 + [3.912] * 3
    a = analyze_curve(history(np.arange(1, 24) * 26, train, val))
    assert (a.onset.best_iter, a.onset.best_val) == (104, 5.101)
    assert a.verdict == "overfitting" and 104 <= a.onset.onset_iter <= 156  # the level's lopsided minimum
    assert a.onset.read_val_alone and not a.train_logged
    assert "train loss was not logged at 20 of 23 evals" in a.reason and ". " not in a.reason


def test_val_alone_rising_is_an_onset_and_flat_is_not():
    it = np.arange(20) * 50
    rng = np.random.default_rng(4)
    rising = np.concatenate([np.linspace(3.0, 2.5, 8), np.linspace(2.5, 2.8, 12)]) * (
        1 + 0.005 * rng.standard_normal(20)
    )
    j = judge(history(it, np.full(20, np.nan), rising))
    assert j["verdict"] == "overfitting" and j["train_noise"] is None and j["train_noise_source"] == "not logged"
    assert "not logged at any eval" in j["reason"] and j["final_train"] is None
    flat = 2.5 * (1 + 0.01 * rng.standard_normal(20))
    j = judge(history(it, np.full(20, np.nan), flat))
    assert j["onset_iter"] is None and j["verdict"] == "healthy", j["reason"]


def test_val_alone_false_onsets_on_healthy_curves_are_rare():
    rng = np.random.default_rng(8)
    hits = 0
    for i in range(200):
        val, _ = (B.still_improving if i % 2 else B.plateau)(rng)
        hits += find_onset(history(B.ITERS, np.full(len(val), np.nan), B.noisy(val, 0.01, rng))).onset_iter is not None
    assert hits / 200 <= 0.05


def test_train_logged_less_often_than_eval_is_read_between():
    """Train at every other eval (the others NaN): the overfitting shape is still read with train."""
    rng = np.random.default_rng(9)
    val, train, i_min = B.u_shaped(rng)
    train = B.noisy(train, 0.01, rng)
    train[1::2] = np.nan
    a = analyze_curve(history(B.ITERS, train, B.noisy(val, 0.01, rng)))
    assert a.verdict in ("overfitting", "memorizing") and abs(a.onset.onset_iter / 100 - i_min) <= 3
    assert "not logged at 10 of 21 evals" in a.reason


if __name__ == "__main__":  # pragma: no cover
    for key, value in measure().items():
        print(f"{key}: {value:.1%}")


# --------------------------------------------------------------------------- the records
LEGACY_KEYS = (
    "onset_iter onset_val onset_train onset_level onset_train_level onset_level_evals comeback_margin "
    "comeback_evals evals_after_onset worst_val_after_onset worst_iter_after_onset gap_at_onset val_end train_end "
    "gap_end best_iter best_val train_at_best final_val val_lost_after_best worst_val_after_best "
    "worst_iter_after_best val_noise val_noise_source val_noise_se val_noise_scatter train_noise "
    "train_noise_source train_noise_se train_noise_scatter candidate_iters verdict reason final_train final_gap "
    "n_evals"
).split()


def test_the_records_give_the_keys_metrics_json_always_had():
    """metrics.json['analysis'] and `gaplab analyze --json` keep their keys, in order, for every log shape."""
    rng = np.random.default_rng(12)
    val, train, _ = B.u_shaped(rng)
    for h in (
        B.history(B.noisy(val, 0.01, rng), B.noisy(train, 0.01, rng)),
        history(np.arange(3), [np.nan] * 3, [1.0, 1.2, 1.4]),
        history([0], [2.0], [2.1]),
    ):
        a = analyze_curve(h)
        assert list(a.to_dict()) == LEGACY_KEYS and list(a.onset.to_dict()) == LEGACY_KEYS[:-5]
        assert a.to_dict() == judge(h)


def test_few_evals_lower_at_every_eval_read_as_still_improving():
    """Seed 000 v1 (3 epochs): val 3.23, 2.82, 2.74; its last step alone is within the floor, the run is not."""
    c = next(c for c in SEED_CURVES if c.name == "000 v1")
    a = analyze_curve(history(c.iters, c.train, c.val))
    assert a.verdict == "underfitting" and "lower at every one of its 3" in a.reason
    flat = analyze_curve(history([1, 2, 3], [2.0, 1.9, 1.8], [2.74, 2.73, 2.72]))  # lower each time, but barely
    assert flat.verdict == "healthy" and "levelled off" in flat.reason
