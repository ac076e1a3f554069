"""Replicates trained at the same time (one process each) give what training each seed alone gives."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from gaplab.schema import PhaseParams
from gaplab.train.inputs import TrainData
from gaplab.train.loop import train_phase
from gaplab.train.replicates import ReplicatePlan, replicate_plan, replicate_runs, train_replicates

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GiB = 2**30


def test_plan_one_process_per_replicate_on_cpu():
    assert replicate_plan(1, "cpu", 8) == ReplicatePlan(1, None)
    assert replicate_plan(3, "cuda", 8) == ReplicatePlan(1, None)  # one GPU: one replicate at a time
    assert replicate_plan(3, "cpu", 2) == ReplicatePlan(3, 1)  # 3 on 2 cores: 1.5 runs' time, not 2
    assert replicate_plan(5, "cpu", 2) == ReplicatePlan(4, 1)  # at most twice the cores
    assert replicate_plan(3, "cpu", 8) == ReplicatePlan(3, 2)  # spare cores: threads for each
    assert replicate_plan(3, "cpu", 2, threads=2) == ReplicatePlan(1, 2)  # train.threads is kept
    assert replicate_plan(4, "cpu", 8, threads=2) == ReplicatePlan(4, 2)
    assert replicate_plan(3, "cpu", 2, bytes_each=3 * GiB, bytes_free=7 * GiB) == ReplicatePlan(2, 1)
    assert replicate_plan(3, "cpu", 2, bytes_each=9 * GiB, bytes_free=7 * GiB) == ReplicatePlan(1, 1)


def _data() -> TrainData:
    rng = np.random.default_rng(0)
    stream = np.concatenate([np.tile(np.arange(24), 80), rng.integers(0, 40, 1200)])  # learnable, with noise
    return TrainData(
        train=stream[:2600].astype(np.int64),
        val=stream[2600:].astype(np.int64),
        vocab_size=40,
        vocab_size_original=40,
        corpus_fingerprint="fp-test",
    )


def _params(**train) -> PhaseParams:
    t = {
        "max_iters": 40,
        "eval_interval": 10,
        "eval_iters": 2,
        "batch_size": 4,
        "learning_rate": 3e-3,
        "device": "cpu",
        "threads": 1,
    }
    t.update(train)
    return PhaseParams.model_validate(
        {"model": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16}, "train": t, "replicates": 3}
    )


def _history(folder) -> dict[str, np.ndarray]:
    with open(folder / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {k: np.array([float(r[k]) for r in rows]) for k in ("iter", "train_loss", "val_loss", "val_loss_se")}


def test_replicates_in_processes_equal_each_seed_trained_alone(tmp_path):
    params, data = _params(), _data()
    together = train_replicates(params, data, tmp_path / "together", progress=False, plan=ReplicatePlan(3, 1))
    assert [m.iters for m in together] == [40, 40, 40]
    finals = set()
    for (seed, folder, p), m in zip(replicate_runs(params, tmp_path / "together"), together):
        alone = train_phase(p, data, tmp_path / f"alone-{seed}", progress=False)
        a, b = _history(folder), _history(tmp_path / f"alone-{seed}")
        for key in a:  # same thread count, same code: the same numbers
            np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-7, err_msg=f"seed {seed} {key}")
        assert m.best_val_loss == pytest.approx(alone.best_val_loss, rel=1e-6)
        assert (folder / "ckpt" / "last.pt").exists() and (folder / "ckpt" / "best.pt").exists()
        finals.add(round(m.final_val_loss, 6))
    assert len(finals) == 3  # three seeds, three different runs


def test_stop_ends_every_replicate_with_a_final_eval(tmp_path):
    params, data = _params(max_iters=3000, eval_interval=10), _data()
    rows = []
    out = train_replicates(
        params,
        data,
        tmp_path,
        progress=False,
        plan=ReplicatePlan(3, 1),
        on_eval=rows.append,
        should_stop=lambda: len(rows) >= 2,
    )
    assert out[0].stop_reason == "stopped by user" and out[0].iters == 11  # polled before iter 11
    # the others were stopped before they began (skipped) or at their next iteration, never run to the end
    assert all(m.stop_reason == "stopped by user" and m.iters < 3000 for m in out)
    assert [r["iter"] for r in rows] == [0, 10, 11]  # on_eval saw replicate 0 only


_ORPHAN_PARENT = """
import os, sys
from concurrent.futures import ProcessPoolExecutor
import multiprocessing as mp
from gaplab.train.replicates import _child_init
if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=_child_init,
                               initargs=(ctx.Event(), 1, os.getpid()))
    print(pool.submit(os.getpid).result(), flush=True)
    os._exit(0)  # killed, as a kernel is: no pool shutdown
"""


def test_a_replicate_process_exits_when_its_parent_dies(tmp_path):
    """A killed kernel's replicate processes do not stay behind (they held the dead run's pipes open)."""
    import os
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(_ORPHAN_PARENT, encoding="utf-8")
    import gaplab

    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(Path(gaplab.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    child = int(out.stdout.split()[0])

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        with open(f"/proc/{pid}/stat") as f:  # a zombie has exited
            return f.read().split(") ")[1][0] != "Z"

    deadline = time.time() + 10
    while alive(child) and time.time() < deadline:
        time.sleep(0.2)
    if alive(child):
        os.kill(child, 9)
        raise AssertionError(f"replicate process {child} outlived its parent by 10 s")
