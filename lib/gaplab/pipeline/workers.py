"""How many phases ``gaplab run`` runs at once by default, and which it starts first.

Small models leave a second core idle, and their threads wait on each other when they share one; the
stages around training (data report, figures, samples) run on one core.  So on a CPU with several cores,
``gaplab run`` without ``--workers`` runs one phase per core, each with ``cores / workers`` torch threads
(:func:`auto_workers`), as long as the phases fit in memory together, and starts the longest first
(:func:`longest_first`), so that the study is not left waiting on its biggest phase at the end.  A study
that trains on a GPU runs one phase at a time (the GPU is the shared part).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: memory of a phase's worker process and kernel beyond the training estimate (Python, PyTorch, pandas,
#: matplotlib, the data): measured ~500 MB for the seed study's phases
PROCESS_BYTES = 600 * 2**20


@dataclass(frozen=True)
class PhaseCost:
    """What :func:`auto_workers` weighs: a phase's training FLOPs (all replicates) and its peak memory."""

    name: str
    flops: float
    bytes: int
    device: str


def phase_cost(name: str, params: Any, vocab_size: int, train_tokens: int) -> PhaseCost:
    """The phase's planned training FLOPs (:func:`gaplab.model.device.step_flops` x iterations x replicates) and
    peak memory (:func:`gaplab.pipeline.resources.peak_memory` per replicate process, plus its own)."""
    from ..model.device import step_flops
    from ..schema import planned_iters, tokens_per_iter
    from .resources import peak_memory

    t, m = params.train, params.model
    iters = planned_iters(t, m.block_size, train_tokens)
    flops = step_flops(m, tokens_per_iter(t, m.block_size), vocab_size) * iters * params.replicates
    peak = peak_memory(m, t, vocab_size)["total"]
    return PhaseCost(name, flops, PROCESS_BYTES + params.replicates * peak, t.device)


def auto_workers(costs: Sequence[PhaseCost], cores: int, bytes_free: int, cuda: bool) -> int:
    """Phases at once: one per core (at most one per phase), fewer while the biggest ones would not fit in
    ``bytes_free`` together; one when there is a single core or phase, or when phases train on CUDA
    (``cuda``: ``train.device: auto`` on a machine with a GPU, or a cuda device named)."""
    if cores < 2 or len(costs) < 2:
        return 1
    if any(c.device.startswith("cuda") or (c.device == "auto" and cuda) for c in costs):
        return 1
    n = min(cores, len(costs))
    biggest = sorted((c.bytes for c in costs), reverse=True)
    while n > 1 and sum(biggest[:n]) > bytes_free:
        n -= 1
    return n


def longest_first(names: Sequence[str], costs: dict[str, PhaseCost]) -> list[str]:
    """``names`` with the phases that train longest first (stable for equal costs)."""
    return sorted(names, key=lambda n: -costs[n].flops if n in costs else 0.0)
