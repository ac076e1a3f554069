"""Onset detection, verdicts, seed 003's gap scale, per-run analysis and the journey table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from gaplab.measure import curves as curves_mod
from gaplab.measure.curves import detect_onset
from gaplab.measure.references import load_seed_reference
from gaplab.report.notes import seed_findings, seed_findings_sentences
from gaplab.report.summary import done_rows, journey_table
from gaplab.train.history import load_history

from tests.measure.seed_curves import seed_curve

# Seed 003's "Training Progress" logs (data and sources in tests/measure/seed_curves.py)
_P4, _P0, _P3 = (seed_curve(f"003 phase {i} log") for i in (4, 0, 3))
SEED4_ITERS, SEED4_TRAIN, SEED4_VAL = list(_P4.iters), list(_P4.train), list(_P4.val)
SEED0_ITERS, SEED0_TRAIN, SEED0_VAL = list(_P0.iters), list(_P0.train), list(_P0.val)
SEED3_ITERS, SEED3_TRAIN, SEED3_VAL = list(_P3.iters), list(_P3.train), list(_P3.val)


def make_history(iters, train, val, tokens_per_iter: int = 100, train_tokens: int = 1000) -> pd.DataFrame:
    """A history.csv-shaped frame (as the trainer writes it) from iters and losses."""
    it = np.asarray(iters, dtype=float)
    tr, va = np.asarray(train, dtype=float), np.asarray(val, dtype=float)
    return pd.DataFrame(
        {
            "iter": it.astype(int),
            "train_loss": tr,
            "val_loss": va,
            "gap": va - tr,
            "lr": np.full(len(it), 1e-3),
            "tokens_seen": (it * tokens_per_iter).astype(int),
            "epochs": it * tokens_per_iter / train_tokens,
            "elapsed_s": it * 0.01,
        }
    )


def seed4() -> pd.DataFrame:
    return make_history(SEED4_ITERS, SEED4_TRAIN, SEED4_VAL, tokens_per_iter=16 * 128, train_tokens=20700)


def write_phase(
    sdir: Path,
    name: str,
    history: pd.DataFrame | None,
    metrics: dict | None,
    state: str | None = "done",
    error: str = "",
    where: str | None = None,
    model: dict | None = None,
) -> Path:
    """Fabricate a phase folder as the runner leaves it (``where='_failed'`` for a failed one)."""
    pdir = sdir / where / name if where else sdir / name
    pdir.mkdir(parents=True, exist_ok=True)
    if history is not None:
        history.to_csv(pdir / "history.csv", index=False)
    if metrics is not None:
        (pdir / "metrics.json").write_text(json.dumps(metrics))
    params = {
        "study": sdir.name,
        "phase": name,
        "run_dir": str(pdir),
        "data": {"max_tokens": 1000},
        "tokenizer": {"name": "gpt2"},
        "model": model or {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32},
        "train": {"max_iters": 3000, "learning_rate": 1e-3},
        "sample": {},
    }
    (pdir / "params.yaml").write_text(yaml.safe_dump(params))
    if state is not None:
        (pdir / "status.json").write_text(json.dumps({"phase": name, "state": state, "error": error}))
    return pdir


def metrics_for(history: pd.DataFrame, **extra) -> dict:
    va, tr = history["val_loss"], history["train_loss"]
    b = int(va.idxmin())
    m = {
        "best_val_loss": float(va[b]),
        "best_iter": int(history["iter"][b]),
        "final_train_loss": float(tr.iloc[-1]),
        "final_val_loss": float(va.iloc[-1]),
        "final_gap": float(va.iloc[-1] - tr.iloc[-1]),
        "params": {"total": 120_000, "embedding": 80_000, "non_embedding": 40_000},
        "train_tokens": 900,
        "val_tokens": 100,
        "tokens_per_param_non_emb": 900 / 40_000,
        "epochs": 12.5,
        "iters": int(history["iter"].iloc[-1]),
        "max_iters": 3000,
        "wall_time_s": 12.0,
        "tokens_per_s": 5000.0,
        "stop_reason": "max_iters",
        "vocab_size": 1000,
    }
    m.update(extra)
    return m


# --------------------------------------------------------------------------- onset
def test_seed_phase4_onset_and_val_lost_after_best():
    o = detect_onset(seed4())
    assert o["best_iter"] == 2000 and o["best_val"] == pytest.approx(4.0449)
    # the onset is at the best (2000), not at the 1,000-1,400 plateau that val later improved on
    assert o["onset_iter"] == 2000 and o["onset_val"] == pytest.approx(4.0449)
    assert 1000 not in o["candidate_iters"] and 1200 not in o["candidate_iters"]
    assert o["onset_level"] == pytest.approx(np.mean(SEED4_VAL[8:13]))  # 1600-2400: a tenth of the run each side
    assert o["onset_level_evals"] == 5 and o["evals_after_onset"] == 5
    assert o["val_end"] == pytest.approx(np.mean(SEED4_VAL[-3:]))
    assert o["train_end"] == pytest.approx(np.mean(SEED4_TRAIN[-3:]))
    assert o["gap_end"] == pytest.approx(o["val_end"] - o["train_end"])
    assert o["final_val"] == pytest.approx(4.2001)
    assert round(o["val_lost_after_best"], 2) == 0.16  # seed: "4.04 -> 4.20"
    assert o["worst_val_after_best"] == pytest.approx(4.2735) and o["worst_iter_after_best"] == 2600
    assert o["worst_val_after_onset"] == pytest.approx(4.2735) and o["worst_iter_after_onset"] == 2600
    assert o["train_at_best"] == pytest.approx(1.6190)
    # no *_se columns: the noise is the curve's own scatter, in nats
    assert o["val_noise_source"] == "scatter" and o["val_noise"] == pytest.approx(o["val_noise_scatter"])
    assert 0.03 < o["val_noise"] < 0.12 and o["val_noise_se"] is None
    json.dumps(o, allow_nan=False)


def test_u_shaped_val_onset_at_the_minimum():
    it = np.arange(0, 2001, 100)
    val = 2.0 + 1.5e-6 * (it - 1000.0) ** 2  # min 2.0 at 1000, 3.5 at the end
    train = 4.0 - it / 1000
    o = detect_onset(make_history(it, train, val))
    assert (o["onset_iter"], o["best_iter"]) == (1000, 1000)
    assert o["val_lost_after_best"] == pytest.approx(1.5)
    # a noise-free parabola has a constant second difference: no scatter, so the floor (0.2 % of the loss)
    assert o["val_noise_source"] == "floor" and o["val_noise_scatter"] == pytest.approx(0, abs=1e-12)


def test_long_log_onset_stays_at_the_turn():
    # 1,000 evals (a log evaluated every few steps): comparing levels with levels, not with the luckiest of a
    # thousand pairs of evals, keeps the onset at the minimum
    rng = np.random.default_rng(3)
    t = np.linspace(0, 1, 1000)
    val = np.where(t < 0.5, 3 + 8 * (0.5 - t) ** 2, 3 * (1 + 0.2 * (t - 0.5))) * (1 + 0.01 * rng.standard_normal(1000))
    train = (3.5 - 1.5 * t) * (1 + 0.01 * rng.standard_normal(1000))
    o = detect_onset(make_history(np.arange(1000) * 10, train, val))
    assert o["onset_iter"] is not None and abs(o["onset_iter"] - 4995) <= 200  # within 2 % of the run
    assert o["onset_level_evals"] == 201 and o["comeback_evals"] == 201


def test_single_spike_is_not_an_onset():
    it = np.arange(0, 1001, 100)
    val = np.linspace(5, 3, len(it))
    val[5] *= 1.10  # one bad eval
    train = np.linspace(5, 2.5, len(it))
    assert detect_onset(make_history(it, train, val))["onset_iter"] is None


def test_a_rise_that_comes_back_below_the_best_is_not_an_onset():
    # val turns up by 8 % for three evals, then improves past its old best: a blip, not an onset
    it = np.arange(0, 2001, 100)
    val = np.concatenate([np.linspace(6, 3.0, 8), [3.12, 3.24, 3.2], np.linspace(2.95, 2.6, 10)])
    train = np.linspace(6, 1.5, len(it))
    o = detect_onset(make_history(it, train, val))
    assert o["onset_iter"] is None and o["candidate_iters"] == []
    # the same run stopped during the rise does have one, at the top of the descent
    o = detect_onset(make_history(it[:11], train[:11], np.concatenate([val[:8], [3.3, 3.5, 3.7]])))
    assert o["onset_iter"] == 700


def test_no_onset_when_train_rises_too():
    it = np.arange(0, 1001, 100)
    val = [5, 4, 3, 2.5, 2.4, 2.6, 2.9, 3.3, 3.8, 4.4, 5.0]
    train = [5, 3.9, 2.9, 2.4, 2.3, 2.5, 2.8, 3.2, 3.7, 4.3, 4.9]  # diverging, not overfitting
    assert detect_onset(make_history(it, train, val))["onset_iter"] is None
    label, reason = curves_mod.verdict(make_history(it, train, val))
    assert label == "underfitting" and "val loss rose at the end" in reason and "so did train loss" in reason
    assert "levelled off" not in reason  # val went from 2.4 to 5.0


def test_flat_val_while_train_falls_is_an_onset():
    # val never improves while train falls by far more than the noise: the model fits only its training text
    rng = np.random.default_rng(0)
    it = np.arange(0, 2001, 100)
    val = 3.1 * (1 + 0.01 * rng.standard_normal(len(it)))
    train = np.linspace(3.0, 1.5, len(it)) * (1 + 0.01 * rng.standard_normal(len(it)))
    o = detect_onset(make_history(it, train, val))
    assert o["onset_iter"] is not None and o["gap_end"] - o["gap_at_onset"] > 0.3
    assert curves_mod.verdict(make_history(it, train, val), onset=o)[0] == "overfitting"


def test_standard_error_columns_are_the_noise_when_larger():
    it = np.arange(0, 2001, 100)
    val = 3.0 + 0.12 * np.abs(it - 1000) / 1000  # a V: 3.0 at 1000, up 4 % by the end
    train = 2.9 - it / 8000  # falls 0.25 nats
    h = make_history(it, train, val)
    assert detect_onset(h)["onset_iter"] == 1000  # noise-free: the floor (0.2 % of the loss)
    h["val_loss_se"], h["train_loss_se"] = 0.2, 0.2  # evals this noisy cannot show these changes
    o = detect_onset(h)
    assert o["onset_iter"] is None
    assert o["val_noise_source"] == "val_loss_se" and o["val_noise"] == pytest.approx(0.2)
    assert o["train_noise_source"] == "train_loss_se"
    h["val_loss_se"], h["train_loss_se"] = 0.0, 0.0  # an exact evaluation records 0: the scatter/floor is used
    o = detect_onset(h)
    assert o["onset_iter"] == 1000 and o["val_noise_source"] == "floor" and o["val_noise_se"] is None
    # a noise measured elsewhere (e.g. replicate runs) replaces the column
    o = detect_onset(make_history(it, train, val), val_noise=0.2, train_noise=0.2)
    assert o["onset_iter"] is None and o["val_noise_source"] == "given"


def test_onset_rejects_bad_arguments():
    with pytest.raises(ValueError, match="noise = -0.1"):
        detect_onset(seed4(), val_noise=-0.1)
    with pytest.raises(ValueError, match=r"missing columns \['val_loss'\]"):
        detect_onset(pd.DataFrame({"iter": [0, 1], "train_loss": [1.0, 0.5]}))


def test_non_finite_rows_are_ignored():
    h = make_history([0, 100, 200, 300], [5, 4, 3, float("nan")], [5, 4.5, 4.2, float("nan")])
    o = detect_onset(h)
    assert o["best_iter"] == 200 and o["final_val"] == pytest.approx(4.2)
    assert o["onset_iter"] is None  # three evals: too few for a sustained stretch


# --------------------------------------------------------------------------- verdicts
def test_verdict_flat_at_uniform_guess_is_underfitting():
    it = np.arange(0, 501, 50)
    u = math.log(1000)
    label, reason = curves_mod.verdict(
        make_history(it, np.full(len(it), u), np.full(len(it), u + 0.01)), vocab_size=1000
    )
    assert label == "underfitting"
    assert "ln(1000)" in reason and f"{u:.3f}" in reason


def test_verdict_flat_converged_is_healthy():
    it = np.arange(0, 501, 50)
    label, reason = curves_mod.verdict(make_history(it, np.full(len(it), 2.9), np.full(len(it), 3.0)), vocab_size=1000)
    assert label == "healthy"
    assert "3.000" in reason and "0.100" in reason and "levelled off" in reason


def test_verdict_steadily_improving_is_underfitting():
    it = np.arange(0, 2001, 100)
    train = 2.0 + 6.0 * np.exp(-it / 800)
    label, reason = curves_mod.verdict(make_history(it, train, train + 0.1), vocab_size=50257)
    assert label == "underfitting"
    assert "still falling" in reason and "0.100" in reason


def test_verdict_widening_gap_while_val_improves_is_healthy():
    # the old second rule ("final gap >= 0.5 and grew >= 0.1") called this overfitting; val improves at every eval
    it = np.arange(0, 2001, 100)
    val = 3.0 + 3.0 * np.exp(-it / 800)
    train = val - 0.2 - 0.5 * (6.0 - val)  # the gap grows from 0.2 to 1.5 nats
    assert np.all(np.diff(val) < 0)
    label, reason = curves_mod.verdict(make_history(it, train, val), vocab_size=50257)
    assert label == "healthy"
    assert "No overfitting onset" in reason and "the gap is widening" in reason and "still falling" in reason


def test_verdict_u_shape_is_overfitting():
    it = np.arange(0, 2001, 100)
    val = 2.0 + 1.5e-6 * (it - 1000.0) ** 2
    label, reason = curves_mod.verdict(make_history(it, 4.0 - it / 1000, val), vocab_size=1000)
    assert label == "overfitting"
    assert "iter 1000" in reason and "that eval alone 2.000" in reason and "ended at 3.500" in reason
    assert "worst" not in reason  # the last eval is the worst: nothing to add, nothing to contradict


def test_verdict_memorizing():
    it = np.arange(0, 1001, 100)
    train = [6.0, 3.0, 1.5, 0.8, 0.4, 0.2, 0.12, 0.08, 0.06, 0.05, 0.04]
    val = [6.0, 5.0, 4.8, 5.0, 5.4, 5.9, 6.3, 6.8, 7.2, 7.6, 8.0]
    label, reason = curves_mod.verdict(make_history(it, train, val), vocab_size=1000)
    assert label == "memorizing"
    assert "0.040" in reason and "8.000" in reason and "iter 200" in reason


def test_verdict_on_seed_phases():
    assert curves_mod.verdict(make_history(SEED0_ITERS, SEED0_TRAIN, SEED0_VAL), vocab_size=50257)[0] == "memorizing"
    assert curves_mod.verdict(seed4(), vocab_size=50257)[0] == "overfitting"
    # phase 3: its last eval is its lowest (2.1311 at 2000); the old gap rule called it overfitting
    label, reason = curves_mod.verdict(make_history(SEED3_ITERS, SEED3_TRAIN, SEED3_VAL), vocab_size=50257)
    assert label == "healthy" and "the gap is widening" in reason


def test_overfitting_reason_quotes_the_numbers_the_rule_used():
    o = detect_onset(seed4())
    label, reason = curves_mod.verdict(seed4(), vocab_size=50257, onset=o)
    for key in (
        "onset_level",
        "comeback_margin",
        "val_noise",
        "onset_train_level",
        "train_end",
        "gap_at_onset",
        "gap_end",
        "final_val",
        "worst_val_after_onset",
    ):
        assert f"{o[key]:.3f}" in reason, key
    assert o["worst_val_after_onset"] >= o["final_val"] and o["gap_end"] > o["gap_at_onset"]
    assert reason.endswith(".") and ". " not in reason  # one sentence


def test_verdict_needs_two_evals():
    with pytest.raises(ValueError, match="at least 2"):
        curves_mod.verdict(make_history([0], [5.0], [5.0]))


@pytest.mark.parametrize(
    "gap,label",
    [
        (-0.17, "perfect generalization (may be too generic)"),
        (0.17, "perfect generalization (may be too generic)"),
        (0.5, "excellent balance"),
        (0.99, "excellent balance"),
        (1.0, "mild overfitting"),
        (1.5, "mild overfitting"),
        (2.5, "moderate overfitting"),
        (3.14, "severe overfitting"),
        (6.9, "severe overfitting"),
    ],
)
def test_seed_gap_label(gap, label):
    assert curves_mod.seed_gap_label(gap) == f"seed 003's heuristic: {label}"


def test_seed_gap_label_missing():
    assert curves_mod.seed_gap_label(float("nan")).startswith("seed 003's heuristic: n/a")


# --------------------------------------------------------------------------- analyze_run
def test_analyze_run_early_stop_and_perplexities(tmp_path):
    h = seed4()
    write_phase(tmp_path, "p4", h, metrics_for(h, stop_reason="early_stop (patience 3)", vocab_size=50257))
    a = curves_mod.analyze_run(tmp_path / "p4")
    assert a["verdict"] == "overfitting" and a["onset_iter"] == 2000 and a["reason"].startswith("Val loss stopped")
    assert a["early_stop_iter"] == 3000 and a["stop_reason"] == "early_stop (patience 3)"
    assert a["best_val_perplexity"] == pytest.approx(math.exp(4.0449))
    assert a["final_val_perplexity"] == pytest.approx(math.exp(4.2001))
    assert a["final_train_perplexity"] == pytest.approx(math.exp(1.0617))
    assert a["best_train_perplexity"] == pytest.approx(math.exp(1.0617))
    assert a["final_gap"] == pytest.approx(4.2001 - 1.0617)
    assert a["gap_at_best"] == pytest.approx(4.0449 - 1.6190)
    assert a["uniform_loss"] == pytest.approx(math.log(50257))
    assert a["seed_gap_label"] == "seed 003's heuristic: severe overfitting"
    assert a["n_evals"] == 16
    json.dumps(a, allow_nan=False)  # plain JSON: no numpy types, no NaN


def test_analyze_run_without_early_stop(tmp_path):
    h = seed4()
    write_phase(tmp_path, "p4", h, metrics_for(h))
    assert curves_mod.analyze_run(tmp_path / "p4")["early_stop_iter"] is None


def test_load_history_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="history.csv is missing"):
        load_history(tmp_path)
    (tmp_path / "history.csv").write_text("iter,train_loss\n0,1.0\n")
    with pytest.raises(ValueError, match=r"history.csv: missing columns \['val_loss'\]"):
        load_history(tmp_path)


# --------------------------------------------------------------------------- journey table
def make_study(sdir: Path) -> list[str]:
    """A study folder: two finished phases, one failed at 04_samples, one never run."""
    h1 = make_history(SEED0_ITERS, SEED0_TRAIN, SEED0_VAL)
    m1 = metrics_for(h1, samples={"aggregate": {"distinct_2": 0.4, "copied_8gram": 0.9, "per_prompt": [1, 2]}})
    m1["analysis"] = {"onset_iter": 100, "verdict": "memorizing"}
    write_phase(sdir, "tiny", h1, m1)
    h2 = seed4()
    m2 = metrics_for(
        h2,
        params={"total": 7_242_624, "embedding": 6_445_952, "non_embedding": 796_672},
        train_tokens=20_700,
        tokens_per_param_non_emb=20_700 / 796_672,
        epochs=98.9,
        wall_time_s=3899.0,
    )
    write_phase(sdir, "big", h2, m2, model={"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 128})
    write_phase(
        sdir,
        "broken",
        h1,
        metrics_for(h1),
        state="failed",
        error="FileNotFoundError: iter_999.pt is missing",
        where="_failed",
    )
    (sdir / "study_status.json").write_text(
        json.dumps(
            {
                "study": sdir.name,
                "phases_order": ["tiny", "big", "broken", "ghost"],
                "phases": {
                    "tiny": {"state": "cached"},
                    "big": {"state": "done"},
                    "broken": {"state": "failed", "error": "FileNotFoundError: iter_999.pt is missing"},
                },
            }
        )
    )
    return ["tiny", "big", "broken", "ghost"]


def test_journey_table(tmp_path):
    phases = make_study(tmp_path)
    t = journey_table(tmp_path, phases)
    assert list(t.columns[:20]) == [
        "phase",
        "state",
        "params_total",
        "params_non_embedding",
        "train_tokens",
        "tokens_per_param_total",
        "tokens_per_param_non_emb",
        "epochs",
        "best_val",
        "best_iter",
        "final_train",
        "final_val",
        "final_gap",
        "best_val_bpb",
        "final_val_bpb",
        "onset_iter",
        "wall_time_s",
        "tokens_per_s",
        "verdict",
        "stop_reason",
    ]
    assert t["phase"].tolist() == phases
    assert t["state"].tolist() == ["done", "done", "failed", "missing"]
    row = t.set_index("phase")
    # tiny: the stored analysis is used as is
    assert row.loc["tiny", "onset_iter"] == 100 and row.loc["tiny", "verdict"] == "memorizing"
    assert row.loc["tiny", "best_val"] == pytest.approx(6.1531) and row.loc["tiny", "best_iter"] == 100
    assert row.loc["tiny", "sample_distinct_2"] == pytest.approx(0.4)
    assert "sample_per_prompt" not in t.columns  # lists are not table cells
    # big: no stored analysis, so it is computed from history.csv
    assert row.loc["big", "onset_iter"] == 2000 and row.loc["big", "verdict"] == "overfitting"
    assert row.loc["big", "params_total"] == 7_242_624 and row.loc["big", "params_non_embedding"] == 796_672
    assert row.loc["big", "train_tokens"] == 20_700 and row.loc["big", "model_size"] == "4L-128d"
    assert row.loc["big", "final_gap"] == pytest.approx(4.2001 - 1.0617)
    assert pd.isna(row.loc["big", "sample_distinct_2"])
    # broken: its numbers come from _failed/broken, with the error
    assert row.loc["broken", "error"] == "FileNotFoundError: iter_999.pt is missing"
    assert row.loc["broken", "best_val"] == pytest.approx(6.1531)
    # ghost: never ran
    assert pd.isna(row.loc["ghost", "best_val"]) and pd.isna(row.loc["ghost", "params_total"])
    assert str(t["params_total"].dtype) == "Int64"
    assert len(done_rows(t)) == 2


def test_journey_table_latest_failure_wins_over_old_result(tmp_path):
    h = seed4()
    write_phase(tmp_path, "p", h, metrics_for(h))  # an older good run
    write_phase(tmp_path, "p", h, metrics_for(h), state="failed", error="boom", where="_failed")
    (tmp_path / "study_status.json").write_text(json.dumps({"phases": {"p": {"state": "failed", "error": "boom"}}}))
    t = journey_table(tmp_path, ["p"])
    assert t["state"].tolist() == ["failed"] and t["error"].tolist() == ["boom"]


def test_journey_table_phase_run_by_hand_without_status(tmp_path):
    h = seed4()
    write_phase(tmp_path, "manual", h, metrics_for(h), state=None)
    assert journey_table(tmp_path, ["manual"])["state"].tolist() == ["done"]


# --------------------------------------------------------------------------- seed reference
def test_seed_reference():
    ref = load_seed_reference()
    assert ref["phase"].tolist() == ["phase0", "phase1", "phase2", "phase3", "phase4"]
    r = ref.set_index("phase")
    assert r.loc["phase0", "params"] == 29_995_392 and r.loc["phase4", "params"] == 7_242_624
    assert (r.loc["phase4", "best_val"], r.loc["phase4", "best_iter"]) == (4.04, 2000)
    assert (r.loc["phase4", "final_train"], r.loc["phase4", "final_val"], r.loc["phase4", "gap"]) == (1.06, 4.20, 3.14)
    assert r["train_tokens"].tolist() == [900, 900, 4500, 13500, 20700]
    assert r["time_s"].tolist() == [541, 23, 155, 954, 3899]
    # reported gaps agree with final_val - final_train except phase 2's sign
    assert r.loc["phase2", "gap"] == 0.17 and r.loc["phase2", "gap_signed"] == pytest.approx(-0.17)
    others = r.drop(index="phase2")
    assert np.allclose(others["gap"], others["gap_signed"])


def _seed_table(rows):
    cols = ["phase", "state", "best_val", "best_iter", "final_train", "final_val", "final_gap", "max_iters"]
    return pd.DataFrame([dict(zip(cols, r)) for r in rows], columns=cols)


def test_seed_findings_all_reproduced():
    table = _seed_table(
        [
            ("phase0", "done", 6.1, 100, 0.2, 7.0, 6.8, 500),
            ("phase1", "done", 6.0, 400, 2.5, 6.3, 3.8, 500),
            ("phase2", "done", 1.8, 900, 1.7, 1.6, -0.1, 1000),
            ("phase3", "done", 2.1, 1800, 0.6, 2.1, 1.5, 2000),
            ("phase4", "done", 4.0, 2000, 1.1, 4.2, 3.1, 3000),
        ]
    )
    found = seed_findings(table)
    assert [f["reproduced"] for f in found] == [True, True, True]
    assert "smallest at phase2" in found[1]["ours"]
    text = " ".join(seed_findings_sentences(found))
    assert "NOT reproduced" not in text and text.count("reproduced.") == 3


def test_seed_findings_disagreement_is_said_plainly_with_both_numbers():
    table = _seed_table(
        [
            ("phase0", "done", 6.1, 500, 0.2, 6.12, 5.9, 500),  # still improving at the end: no rise
            ("phase1", "done", 3.2, 200, 1.5, 3.4, 1.7, 500),  # smallest gap here, not at phase 2
            ("phase2", "done", 3.5, 900, 1.2, 3.6, 2.4, 1000),
            ("phase4", "failed", None, None, None, None, None, 3000),
        ]
    )
    found = seed_findings(table)
    assert [f["reproduced"] for f in found] == [False, False, None]
    sentences = seed_findings_sentences(found)
    assert "NOT reproduced" in sentences[0] and "6.15" in sentences[0] and "6.10" in sentences[0]
    assert "NOT reproduced" in sentences[1] and "smallest at phase1" in sentences[1] and "phase2 0.17" in sentences[1]
    assert "not checked" in sentences[2] and "phase4 did not finish" in sentences[2]


def test_train_above_val_closing_its_gap_is_not_an_onset():
    """A real Keras MNIST log (tests/logs/fixtures/keras_csv, its source in the README there): val sits at
    0.031-0.037 for epochs 2-7 while the epoch-mean train loss falls from 0.073 to 0.043 ABOVE it, then val
    falls to 0.009. The gap closing from -0.04 towards zero is not val pulling away; applied after every eval,
    as a trainer callback does, the rule used to call epoch 2 an onset and stop the run there."""
    from gaplab.logs import read_log

    fixture = Path(__file__).resolve().parents[1] / "logs" / "fixtures" / "keras_csv" / "mnist_cnn_training_log.csv"
    h = read_log(fixture).history
    assert (h["train_loss"].iloc[2:8] > h["val_loss"].iloc[2:8]).all()  # the case: train above val
    assert all(detect_onset(h.iloc[:k])["onset_iter"] is None for k in range(5, len(h) + 1))
