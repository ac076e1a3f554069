"""How many phases run at once by default, and which first."""

from __future__ import annotations

from gaplab.pipeline.config import load_study
from gaplab.pipeline.workers import PROCESS_BYTES, PhaseCost, auto_workers, longest_first, phase_cost

GiB = 2**30


def _cost(name, flops=1.0, gib=1.0, device="auto"):
    return PhaseCost(name, flops, int(gib * GiB), device)


def test_one_phase_per_core_while_they_fit():
    two = [_cost("a"), _cost("b")]
    assert auto_workers(two, cores=2, bytes_free=8 * GiB, cuda=False) == 2
    assert auto_workers(two + [_cost("c")], cores=2, bytes_free=8 * GiB, cuda=False) == 2  # one per core
    assert auto_workers(two, cores=8, bytes_free=8 * GiB, cuda=False) == 2  # one per phase
    assert auto_workers(two, cores=1, bytes_free=8 * GiB, cuda=False) == 1
    assert auto_workers(two[:1], cores=2, bytes_free=8 * GiB, cuda=False) == 1
    # the two biggest do not fit together: one at a time
    assert auto_workers([_cost("a", gib=5), _cost("b", gib=4), _cost("c")], 2, 8 * GiB, False) == 1
    assert auto_workers([_cost("a", gib=5), _cost("b", gib=2.5), _cost("c")], 4, 8 * GiB, False) == 2
    # a GPU is one device: phases that train on it go one at a time
    assert auto_workers(two, cores=8, bytes_free=64 * GiB, cuda=True) == 1
    assert auto_workers([_cost("a", device="cpu"), _cost("b", device="cpu")], 8, 64 * GiB, cuda=True) == 2
    assert auto_workers([_cost("a", device="cuda:0"), _cost("b", device="cpu")], 8, 64 * GiB, cuda=False) == 1


def test_the_seed_study_starts_with_its_longest_phase(root):
    study = load_study(root / "params" / "seed_study_compact.yaml")
    costs = {ph.name: phase_cost(ph.name, ph.params, 2036, ph.params.data.max_train_tokens) for ph in study.phases}
    assert longest_first([ph.name for ph in study.phases], costs) == ["phase4", "phase0", "phase3", "phase2", "phase1"]
    assert costs["phase4"].flops > 5 * costs["phase3"].flops
    # three replicates: three trainings' memory, plus the worker's own
    assert (
        costs["phase4"].bytes > PROCESS_BYTES
        and costs["phase4"].flops
        == 3 * phase_cost("p", study.phase("phase4").params.model_copy(update={"replicates": 1}), 2036, 20700).flops
    )
    assert longest_first(["x", "phase1"], costs) == ["phase1", "x"]  # no estimate: last
