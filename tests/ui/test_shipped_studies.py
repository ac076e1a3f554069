"""What a learner sees of the shipped studies: every phase is evaluated often enough to draw a curve."""

from pathlib import Path

import pytest
from gaplab.pipeline.config import load_study

ROOT = Path(__file__).resolve().parents[2]
STUDIES = sorted((ROOT / "params").glob("*.yaml"))


def eval_count(max_iters: int, interval: int) -> int:
    """Evals of a run (gaplab.train.loop): at iteration 0, every ``interval`` iterations, and at the last one."""
    return len({0, max_iters} | set(range(0, max_iters + 1, interval)))


def test_eval_count():
    assert eval_count(120, 10) == 13 and eval_count(2000, 150) == 15 and eval_count(60, 20) == 4


@pytest.mark.parametrize("path", STUDIES, ids=[p.name for p in STUDIES])
def test_every_phase_evaluates_at_least_10_times(path):
    for phase in load_study(path).phases:
        t = phase.params.train
        if t.max_iters is None:  # an epochs-based phase: its iterations depend on the data
            continue
        n = eval_count(t.max_iters, t.eval_interval)
        assert n >= 10, (
            f"{path.name}: phase {phase.name} evaluates {n} times (max_iters {t.max_iters}, "
            f"eval_interval {t.eval_interval}); a curve needs at least 10 points"
        )
