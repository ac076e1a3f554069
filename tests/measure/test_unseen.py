"""The val loss split into tokens seen in training and tokens never seen, and the notes on a shifted split."""

import pandas as pd
import pytest
from gaplab.measure.unseen import seen_unseen_summary
from gaplab.report.notes import shift_note


def test_seen_unseen_summary_by_hand():
    h = pd.DataFrame(
        {
            "iter": [0, 100, 200],
            "val_loss": [8.0, 4.4, 5.5],
            "val_loss_seen": [8.0, 2.6, 3.0],
            "val_loss_unseen": [9.0, 11.4, 15.4],
        }
    )
    s = seen_unseen_summary(h, {"best_iter": 100, "val_unseen_token_share": 0.2, "val_unseen_byte_share": 0.3})
    assert s["seen_at_best"] == 2.6 and s["unseen_final"] == 15.4 and s["best_iter"] == 100
    assert s["unseen_part_of_final"] == pytest.approx(0.2 * 15.4 / 5.5)
    assert "20.0% of val tokens never occur" in s["summary"] and "from 2.60 at the best eval to 3.00" in s["summary"]
    assert seen_unseen_summary(h.drop(columns=["val_loss_seen", "val_loss_unseen"]), {}) is None
    everyone = seen_unseen_summary(h, {"best_iter": 100, "val_unseen_token_share": 0.0})
    assert everyone["summary"] == "Every val token's id occurs in the training split."


def _report(train, val):
    return {"split": {"sources": [{"source": s, "train_tokens": train[s], "val_tokens": val[s]} for s in train]}}


def test_a_shifted_val_split_is_said_in_words():
    # seed_study_faithful's phase 4: train all json, val two thirds logging, a quarter of val never seen
    note = shift_note("phase4", _report({"json": 20_700, "logging": 0}, {"json": 782, "logging": 1518}), 0.236)
    assert note.startswith("phase4: val is 66% logging, 34% json, train 100% json; 24% of val tokens never occur")
    assert "distribution shift" in note
    # an iid split: the same mix on both sides, few unseen tokens: no note
    assert shift_note("p", _report({"a": 900, "b": 100}, {"a": 88, "b": 12}), 0.02) is None
    # one distribution, but a tiny training split misses many val tokens: a note, and not about a shift
    small = shift_note("overfit", _report({"a": 900, "b": 100}, {"a": 90, "b": 10}), 0.2, 3000)
    assert small.startswith("overfit: 20% of its val tokens never occur in its 3,000 training tokens.")
    assert "shift" not in small and "seen and unseen tokens apart" in small
