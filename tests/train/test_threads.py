"""Threads: a small model trains on one CPU thread unless train.threads says otherwise; the process keeps its own."""

from __future__ import annotations

import pytest
import torch
from gaplab.model.device import SMALL_STEP_FLOPS, auto_threads, step_flops
from gaplab.pipeline.config import load_study
from gaplab.schema import PhaseParams, tokens_per_iter
from gaplab.train.loop import train_phase

from .test_replicates_together import _data


def _tokens(p) -> int:
    return tokens_per_iter(p.train, p.model.block_size)


def test_seed_phases_small_and_large(root):
    """Seed phases 1 and 2 (0.04 and 0.4 GFLOP a step) are small; 3 and 4 (3 and 15 GFLOP) are not."""
    study = load_study(root / "params" / "seed_study_compact.yaml")
    flops = {ph.name: step_flops(ph.params.model, _tokens(ph.params), 2036) for ph in study.phases}
    assert flops["phase1"] == pytest.approx(64 * (6 * (2 * 12 * 32**2 + 2036 * 32) + 12 * 2 * 32 * 16))
    assert flops["phase1"] < flops["phase2"] < SMALL_STEP_FLOPS < flops["phase3"] < flops["phase4"]
    cpu = torch.device("cpu")
    assert [auto_threads(ph.params.model, _tokens(ph.params), 2036, cpu) for ph in study.phases] == [
        None,
        1,
        1,
        None,
        None,
    ]  # phase 0 (6/6/384) is large too
    assert auto_threads(study.phase("phase1").params.model, 64, 2036, torch.device("meta")) is None


@pytest.mark.parametrize("threads, used", [(None, 1), (2, 2)])
def test_a_small_model_trains_on_one_thread_and_the_process_keeps_its_own(tmp_path, threads, used):
    params = PhaseParams.model_validate(
        {
            "model": {"n_layer": 1, "n_head": 2, "n_embd": 16, "block_size": 16},
            "train": {"max_iters": 4, "eval_interval": 2, "eval_iters": 1, "device": "cpu", "threads": threads},
        }
    )
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        metrics = train_phase(params, _data(), tmp_path, progress=False)
        assert metrics.threads == used
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(before)
