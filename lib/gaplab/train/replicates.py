"""Replicates: one phase trained with several training seeds, to see how much of a curve is luck.

A run of a small model on a small corpus depends on its seed: another initialisation and another batch
order moved the seed study's val curves by 0.12–0.29 nats, more than several differences a comparison
would otherwise draw conclusions from.  ``replicates: N`` trains the phase N times with training seeds
``train.seed``, ``train.seed + 1``, ... on the same data and the same split (``data.seed`` is unchanged).

Layout: replicate 0 is the phase folder itself, with every file a phase has; replicate k > 0 lives in
``<phase>/replicates/seed-<seed>/`` with its own ``history.csv``, ``metrics.json`` and ``ckpt/``.
Samples (04_samples) come from replicate 0.  The aggregate over the replicates is
:mod:`gaplab.measure.replicates`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

from ..schema import PhaseParams

REPLICATES_DIR = "replicates"


def replicate_seeds(params: PhaseParams) -> list[int]:
    """The training seed of each replicate: ``train.seed + k`` for k < ``replicates``."""
    return [params.train.seed + k for k in range(params.replicates)]


def replicate_dir(run_dir: Path, index: int, seed: int) -> Path:
    """Replicate 0 is the phase folder; replicate k its ``replicates/seed-<seed>/`` subfolder."""
    return Path(run_dir) if index == 0 else Path(run_dir) / REPLICATES_DIR / f"seed-{seed}"


def replicate_runs(params: PhaseParams, run_dir: Path) -> list[tuple[int, Path, PhaseParams]]:
    """``(seed, folder, params)`` of each replicate, the params with ``train.seed`` set to its seed."""
    out = []
    for k, seed in enumerate(replicate_seeds(params)):
        raw = params.to_dict()
        raw["train"]["seed"] = seed
        out.append((seed, replicate_dir(run_dir, k, seed), PhaseParams.model_validate(raw)))
    return out


def train_replicates(params: PhaseParams, data: Any, run_dir: Path, *, progress: bool = True, resume: bool = False,
                     on_eval: Optional[Callable[[dict], None]] = None,
                     should_stop: Optional[Callable[[], bool]] = None) -> list[dict[str, Any]]:
    """Train every replicate of the phase (one after the other); return their metrics, replicate 0 first.

    ``on_eval`` sees replicate 0's evals only (the live curves); ``should_stop`` stops the running replicate
    and skips the rest.
    """
    from .loop import train_phase

    out = []
    for k, (_, folder, p) in enumerate(replicate_runs(params, Path(run_dir))):
        if k and should_stop is not None and should_stop():
            break
        out.append(train_phase(p, data, folder, progress=progress, resume=resume,
                               on_eval=on_eval if k == 0 else None, should_stop=should_stop))
    return out
