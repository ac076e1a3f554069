"""The trainer-free part of the callbacks (no extra needed): the train loss of an eval interval, the online
application of the one onset rule, the files, and that importing gaplab never imports a trainer."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from gaplab.cli import main as gaplab_main
from gaplab.integrations.common import OnsetWatch, analysis_record, interval_train_loss
from gaplab.measure.curves import detect_onset
from gaplab.train.history import HISTORY_COLUMNS, load_history

from tests.measure import curve_battery as B


def test_importing_gaplab_never_imports_a_trainer():
    code = (
        "import sys, gaplab, gaplab.integrations, gaplab.integrations.common\n"
        "print(sorted(m for m in ('transformers', 'lightning', 'accelerate') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_interval_train_loss_is_the_mean_and_its_scatter_around_the_trend():
    rng = np.random.default_rng(0)
    ses = []
    for _ in range(400):
        losses = 3.0 - 0.02 * np.arange(10) + 0.05 * rng.standard_normal(10)  # falling, noise 0.05
        mean, se = interval_train_loss(list(losses))
        assert mean == pytest.approx(losses.mean())
        ses.append(se)
    assert np.mean(ses) == pytest.approx(0.05 / math.sqrt(10), rel=0.1)  # the trend is not noise
    assert math.isnan(interval_train_loss([2.0, 2.1])[1]) and math.isnan(interval_train_loss([])[0])


def test_the_watch_stops_at_the_first_eval_where_the_rule_finds_an_onset(tmp_path, capsys):
    rng = np.random.default_rng(7)
    val, train, _ = B.u_shaped(rng)
    val, train = B.noisy(val, 0.01, rng), B.noisy(train, 0.01, rng)
    watch = OnsetWatch(tmp_path, figure=False)
    for i, (v, t) in enumerate(zip(val, train)):
        watch.add_train_loss(t)
        watch.add_eval(int(B.ITERS[i]), v)
        if watch.should_stop:
            break
    stopped_at = i
    assert watch.confirmed_iter == B.ITERS[stopped_at]
    prefix = B.history(val[: stopped_at + 1], train[: stopped_at + 1])
    assert all(detect_onset(prefix.iloc[:k])["onset_iter"] is None for k in range(2, stopped_at + 1))
    assert detect_onset(prefix)["onset_iter"] == watch.onset["onset_iter"]
    report = watch.finish(stopped_at * 100, planned_iter=2000)
    assert report.steps_not_run == 2000 - stopped_at * 100 and report.evals_not_run == report.steps_not_run // 100
    h = load_history(tmp_path)
    assert list(h.columns) == list(HISTORY_COLUMNS) and h["tokens_seen"].isna().all()
    np.testing.assert_array_equal(h["val_loss"], val[: stopped_at + 1])  # full precision
    assert gaplab_main(["analyze", str(tmp_path / "history.csv"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((tmp_path / "analysis.json").read_text())
    assert printed == json.loads(json.dumps(analysis_record(str(tmp_path / "history.csv"))))


def test_without_stop_the_watch_only_reports(tmp_path):
    val = np.linspace(3, 2, 8).tolist() + [2.2, 2.4, 2.6, 2.8]
    watch = OnsetWatch(tmp_path, stop=False, figure=False)
    for i, v in enumerate(val):
        watch.add_train_loss(3.0 - 0.2 * i)
        watch.add_eval(i * 10, v)
    assert watch.confirmed_iter is not None and not watch.should_stop
    report = watch.finish(110, planned_iter=110)
    assert not report.stopped and "training went on (stop=False)" in report.message
    assert pd.read_csv(tmp_path / "history.csv")["iter"].iloc[-1] == 110
