"""Replicates: one phase, several training seeds; curves with a band; differences judged against the spread."""

import math

import numpy as np
import pandas as pd
import pytest
from gaplab.measure.replicates import aggregate_histories, aggregate_metrics
from gaplab.measure.stats import difference_sentence, welch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_aggregate_histories_by_hand():
    a = pd.DataFrame({"iter": [0, 10, 20], "train_loss": [5.0, 3.0, 2.0], "val_loss": [5.0, 3.5, 3.0], "lr": 1e-3})
    b = pd.DataFrame({"iter": [0, 10, 20], "train_loss": [5.2, 3.2, 2.2], "val_loss": [5.1, 3.9, 3.4], "lr": 1e-3})
    agg = aggregate_histories([a, b])
    assert agg["val_loss"].tolist() == pytest.approx([5.05, 3.7, 3.2])
    assert agg["val_loss_std"].tolist() == pytest.approx(
        [np.std([5.0, 5.1], ddof=1), np.std([3.5, 3.9], ddof=1), np.std([3.0, 3.4], ddof=1)]
    )
    assert agg["val_loss_se"].tolist() == pytest.approx((agg["val_loss_std"] / math.sqrt(2)).tolist())
    assert agg["val_loss_min"].tolist() == [5.0, 3.5, 3.0] and agg["val_loss_max"].tolist() == [5.1, 3.9, 3.4]
    assert agg["gap"].tolist() == pytest.approx([-0.05, 0.6, 1.1]) and agg["replicates"].iloc[0] == 2
    # only the evals every replicate has (a stopped replicate ends earlier)
    assert aggregate_histories([a, b.iloc[:2]])["iter"].tolist() == [0, 10]
    with pytest.raises(ValueError, match="no eval iteration"):
        aggregate_histories([a, b.assign(iter=[1, 11, 21])])


def test_aggregate_metrics_and_onsets():
    runs = [
        {"best_val_loss": 3.0, "final_gap": 1.0, "analysis": {"onset_iter": 100, "verdict": "overfitting"}},
        {"best_val_loss": 3.2, "final_gap": 1.4, "analysis": {"onset_iter": None, "verdict": "healthy"}},
        {"best_val_loss": 3.1, "final_gap": 1.2, "analysis": {"onset_iter": 120, "verdict": "overfitting"}},
    ]
    agg = aggregate_metrics(runs)
    assert agg["n"] == 3 and agg["best_val_loss"]["mean"] == pytest.approx(3.1)
    assert agg["best_val_loss"]["std"] == pytest.approx(0.1)
    assert agg["onsets"] == 2 and agg["onset_iter"]["mean"] == 110 and agg["verdicts"][1] == "healthy"


def test_welch_matches_a_hand_computation():
    a, b = [3.0, 3.1, 3.2], [3.4, 3.5, 3.7]
    w = welch(a, b)
    va, vb = np.var(a, ddof=1), np.var(b, ddof=1)
    se = math.sqrt(va / 3 + vb / 3)
    assert w["diff"] == pytest.approx(-0.4333333) and w["se"] == pytest.approx(se)
    assert w["t"] == pytest.approx(-0.4333333 / se)
    assert w["df"] == pytest.approx((va / 3 + vb / 3) ** 2 / ((va / 3) ** 2 / 2 + (vb / 3) ** 2 / 2))
    assert w["significant"]
    assert welch([3.0], [3.1, 3.2]) is None
    assert not welch([3.0, 3.3, 2.9], [3.1, 3.0, 3.2])["significant"]
    s = difference_sentence("a", a, "b", b, "best val loss")
    assert s.startswith("a's best val loss is lower than b's by 0.433 ±") and s.endswith(
        "beyond their seed-to-seed spread."
    )
    assert "cannot be told from seed noise" in difference_sentence("a", [3.0], "b", b, "best val loss")


def test_a_phase_with_replicates_trains_each_seed_and_aggregates(tmp_path):
    from gaplab.pipeline import stages
    from gaplab.pipeline.config import load_study
    from gaplab.report.notes import compare_notes
    from gaplab.report.summary import journey_table

    study = tmp_path / "s.yaml"
    study.write_text("""study: reps
defaults:
  data: {source: stdlib, packages: [json], max_train_tokens: 1500, split: chunks, chunk_size: 128}
  tokenizer: {name: gpt2, compact: true, compact_from: corpus}
  model: {n_layer: 1, n_head: 2, n_embd: 16, block_size: 16}
  train: {max_iters: 30, eval_interval: 10, eval_iters: 2, batch_size: 8, learning_rate: 3.0e-3}
  replicates: 3
phases:
  a: {}
  b: {model: {n_embd: 32}}
""")
    s = load_study(study)
    for ph in s.phases:
        params = ph.resolved("reps", str(tmp_path / "out" / ph.name))
        m = stages.train(params, progress=False)
        assert m["iters"] == 30
        stages.loss_gap(params)
    a = tmp_path / "out" / "a"
    seeds = sorted(p.name for p in (a / "replicates").glob("seed-*"))
    assert seeds == ["seed-1338", "seed-1339"]
    h0 = pd.read_csv(a / "history.csv")
    h1 = pd.read_csv(a / "replicates" / "seed-1338" / "history.csv")
    assert h0["iter"].tolist() == h1["iter"].tolist() and h0["val_loss"].iloc[-1] != h1["val_loss"].iloc[-1]
    import json

    metrics = json.loads((a / "metrics.json").read_text())
    assert metrics["replicates"]["n"] == 3 and len(metrics["replicates"]["best_val_loss"]["values"]) == 3
    assert metrics["analysis"]["replicates"] == 3  # the phase's verdict is that of the mean curve
    mean = pd.read_csv(a / "replicates" / "mean" / "history.csv")
    assert mean["val_loss_se"].iloc[-1] == pytest.approx(mean["val_loss_std"].iloc[-1] / math.sqrt(3))
    table = journey_table(tmp_path / "out", ["a", "b"]).set_index("phase")
    assert table.loc["a", "replicates"] == 3 and table.loc["a", "best_val"] == pytest.approx(
        metrics["replicates"]["best_val_loss"]["mean"]
    )
    assert table.loc["a", "best_val_std"] > 0 and len(table.loc["a", "best_val_values"].split(";")) == 3
    notes = compare_notes(tmp_path / "out", table.reset_index())
    assert any("(Welch t =" in n and "3 and 3 seeds" in n for n in notes)
