"""TensorBoard event files: every eval's scalars, readable by TensorBoard's own event reader."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from gaplab.data.split import prepare_data
from gaplab.schema import PhaseParams
from gaplab.train.loop import train_phase
from gaplab.train.replicates import train_replicates
from gaplab.train.tracking import SCALARS, events_dir
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _phase(**train) -> PhaseParams:
    t = {"max_iters": 6, "eval_interval": 2, "eval_iters": 1, "batch_size": 4, "device": "cpu"}
    t.update(train)
    return PhaseParams.model_validate(
        {
            "data": {"packages": ["json"], "split": "chunks", "chunk_size": 256, "split_on": "text"},
            "tokenizer": {"name": "char"},
            "model": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16},
            "train": t,
        }
    )


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _history(run_dir) -> list[dict[str, float]]:
    with open(run_dir / "history.csv", newline="") as fh:
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(fh)]


@pytest.fixture(scope="module")
def prep():
    return prepare_data(_phase())


def test_every_eval_is_in_the_event_files(tmp_path, prep):
    p = _phase()
    metrics = train_phase(p, prep, tmp_path, progress=False)
    scalars = _scalars(events_dir(tmp_path, 1337))
    assert set(scalars) == set(SCALARS)
    history = _history(tmp_path)
    steps = [int(r["iter"]) for r in history]
    assert steps == [0, 2, 4, 6]
    for tag, column in (
        ("loss_nats/train", "train_loss"),
        ("loss_nats/val", "val_loss"),
        ("gap/nats", "gap"),
        ("loss_bpb/train", "train_bpb"),
        ("loss_bpb/val", "val_bpb"),
        ("lr", "lr"),
    ):
        assert [s for s, _ in scalars[tag]] == steps, tag
        np.testing.assert_allclose([v for _, v in scalars[tag]], [r[column] for r in history], rtol=1e-6)
    np.testing.assert_allclose(
        [v for _, v in scalars["gap/bpb"]], [r["val_bpb"] - r["train_bpb"] for r in history], rtol=1e-5
    )
    # tokens/s from the first update on (iteration 0 has trained nothing); the last one is the run's average
    tps = scalars["tokens_per_s"]
    assert [s for s, _ in tps] == steps[1:] and all(v > 0 for _, v in tps)
    assert math.isclose(tps[-1][1], metrics.tokens_per_s, rel_tol=1e-5)


def test_replicates_write_one_run_each_named_by_seed(tmp_path, prep):
    p = PhaseParams.model_validate({**_phase().to_dict(), "replicates": 2})
    train_replicates(p, prep, tmp_path, progress=False)
    first = _scalars(tmp_path / "tensorboard" / "seed-1337")
    second = _scalars(tmp_path / "replicates" / "seed-1338" / "tensorboard" / "seed-1338")
    assert [s for s, _ in first["loss_nats/val"]] == [s for s, _ in second["loss_nats/val"]] == [0, 2, 4, 6]
    assert first["loss_nats/train"][-1][1] != second["loss_nats/train"][-1][1]  # other seed, other run


def test_a_fresh_run_replaces_old_events_and_a_resume_continues_them(tmp_path, prep):
    train_phase(_phase(max_iters=4), prep, tmp_path, progress=False)
    train_phase(_phase(max_iters=4), prep, tmp_path, progress=False)  # fresh: the first run's events go
    assert [s for s, _ in _scalars(events_dir(tmp_path, 1337))["loss_nats/val"]] == [0, 2, 4]
    assert len(list(events_dir(tmp_path, 1337).glob("events.out.tfevents.*"))) == 1
    train_phase(_phase(max_iters=8, lr_schedule="constant"), prep, tmp_path / "r", progress=False)
    (tmp_path / "r2").mkdir()
    train_phase(_phase(max_iters=4, lr_schedule="constant"), prep, tmp_path / "r2", progress=False)
    train_phase(_phase(max_iters=8, lr_schedule="constant"), prep, tmp_path / "r2", progress=False, resume=True)
    whole = _scalars(events_dir(tmp_path / "r", 1337))["loss_nats/val"]
    resumed = _scalars(events_dir(tmp_path / "r2", 1337))["loss_nats/val"]
    assert [s for s, _ in resumed] == [s for s, _ in whole] == [0, 2, 4, 6, 8]  # one value per step
    np.testing.assert_allclose([v for _, v in resumed], [v for _, v in whole], rtol=1e-6)
