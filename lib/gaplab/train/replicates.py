"""Replicates: one phase trained with several training seeds, to see how much of a curve is luck.

A run of a small model on a small corpus depends on its seed: another initialisation and another batch
order moved the seed study's val curves by 0.12–0.29 nats, more than several differences a comparison
would otherwise draw conclusions from.  ``replicates: N`` trains the phase N times with training seeds
``train.seed``, ``train.seed + 1``, ... on the same data and the same split (``data.seed`` is unchanged).

Layout: replicate 0 is the phase folder itself, with every file a phase has; replicate k > 0 lives in
``<phase>/replicates/seed-<seed>/`` with its own ``history.csv``, ``metrics.json`` and ``ckpt/``.
Samples (04_samples) come from replicate 0.  The aggregate over the replicates is
:mod:`gaplab.measure.replicates`.

Replicates train at the same time on CPU (:func:`replicate_plan`): replicate 0 in this process (its
progress bar, its live curves, the Stop button), the others each in a process of its own, one thread
each when there are at least as many replicates as cores.  Every replicate is the same
:func:`gaplab.train.loop.train_phase` on the same data with its own seed, so it gives the numbers training
that seed alone gives (exactly, at the same thread count; threads change only the float rounding).
Small models are far from using two cores well: a process per replicate keeps every core busy without
the threads of one run waiting on each other.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

from ..schema import PhaseParams
from .inputs import TrainData
from .metrics import TrainMetrics

if TYPE_CHECKING:
    from ..data.split import Prepared

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


@dataclass(frozen=True)
class ReplicatePlan:
    """How a phase's replicates train: ``processes`` at a time (this one included), ``threads`` each
    (None: the process's own setting, for one process at a time)."""

    processes: int
    threads: Optional[int]


def replicate_plan(
    n: int,
    device_type: str,
    cores: int,
    threads: Optional[int] = None,
    bytes_each: Optional[int] = None,
    bytes_free: Optional[int] = None,
) -> ReplicatePlan:
    """How ``n`` replicates train on a machine with ``cores`` cores.

    - One replicate, or a device other than the CPU (one GPU is shared by time, not by processes): one at a
      time, the process's threads.
    - ``threads`` (``train.threads``) set: ``cores // threads`` at a time, never fewer than one.
    - Otherwise all ``n`` at once up to twice the cores (3 replicates on 2 cores finish in 1.5 runs' time,
      2 + 1 would take 2), ``cores // n`` threads each but at least one.
    - ``bytes_each`` (one replicate's peak) and ``bytes_free`` (memory available) cap the processes so that
      they fit.
    """
    cores = max(1, int(cores))
    if n <= 1 or device_type != "cpu":
        return ReplicatePlan(1, threads)
    if threads:
        processes = max(1, cores // threads)
    else:
        processes = min(n, 2 * cores)
        threads = max(1, cores // processes)
    if bytes_each and bytes_free is not None:
        processes = max(1, min(processes, int(bytes_free // bytes_each)))
    return ReplicatePlan(min(processes, n), threads)


def train_replicates(
    params: PhaseParams,
    data: Union[TrainData, Prepared],
    run_dir: Path,
    *,
    progress: bool = True,
    resume: bool = False,
    on_eval: Optional[Callable[[dict], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
    plan: Optional[ReplicatePlan] = None,
) -> list[TrainMetrics]:
    """Train every replicate of the phase; return their metrics, replicate 0 first.

    ``plan`` (default :func:`replicate_plan` for this machine, without a memory cap) says how many train at
    once.  ``on_eval`` sees replicate 0's evals only (the live curves); ``should_stop`` stops every running
    replicate (each ends with a final eval and checkpoint, "stopped by user") and skips those not started.
    """
    from ..model.device import resolve_device
    from .loop import train_phase

    data = TrainData.of(data)  # what training reads, and all a replicate's process is sent
    runs = replicate_runs(params, Path(run_dir))
    if plan is None:
        plan = replicate_plan(
            len(runs), resolve_device(params.train.device).type, os.cpu_count() or 1, params.train.threads
        )
    if plan.processes <= 1:
        out = []
        for k, (_, folder, p) in enumerate(runs):
            if k and should_stop is not None and should_stop():
                break
            out.append(
                train_phase(
                    p,
                    data,
                    folder,
                    progress=progress,
                    resume=resume,
                    on_eval=on_eval if k == 0 else None,
                    should_stop=should_stop,
                )
            )
        return out
    return _train_together(runs, data, progress, resume, on_eval, should_stop, plan)


# --------------------------------------------------------------------------- replicates in processes
_child_stop = None  # the stop event, in a replicate's process


def _child_init(stop_event, threads: Optional[int], parent: int) -> None:
    """A replicate's process: Ctrl-C is the parent's to handle (it sets the stop event); one torch thread; it
    exits within a second of losing its parent (a killed kernel or ``gaplab train``), as the kernels do,
    rather than stay behind holding the dead run's pipes."""
    global _child_stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _child_stop = (stop_event, parent)
    threading.Thread(target=_exit_without_parent, args=(parent,), name="gaplab-parent-watch", daemon=True).start()
    if threads:
        import torch

        torch.set_num_threads(threads)


def _exit_without_parent(parent: int, every_s: float = 0.5) -> None:
    """Poll the parent; when it is gone, end this process at once.  What it was writing is atomic (a temporary
    file, then a rename), and a run whose parent died is discarded or resumed from its last checkpoint."""
    while os.getppid() == parent:
        time.sleep(every_s)
    os._exit(3)


def _child_should_stop() -> bool:
    event, parent = _child_stop
    return event.is_set() or os.getppid() != parent  # the parent was killed: stop at the next eval


def _train_child(raw_params: dict, data: TrainData, folder: str, resume: bool) -> Optional[TrainMetrics]:
    from .loop import train_phase

    if _child_should_stop():
        return None  # stopped before this replicate began: skipped
    return train_phase(
        PhaseParams.model_validate(raw_params),
        data,
        Path(folder),
        progress=False,
        resume=resume,
        should_stop=_child_should_stop,
    )


def _train_together(
    runs, data: TrainData, progress, resume, on_eval, should_stop, plan: ReplicatePlan
) -> list[TrainMetrics]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    import torch

    from .loop import train_phase

    main = sys.modules.get("__main__")
    if main is not None and not hasattr(main, "__spec__"):
        # IPython's reset(new_session=True) (the phase kernel's between notebooks, or a learner's %reset)
        # deletes __spec__ from the kernel's __main__, and spawn reads it to prepare each child.  None is what a
        # fresh kernel has: the children import nothing from __main__ (what they run lives in this module).
        main.__spec__ = None
    ctx = mp.get_context("spawn")
    stop = ctx.Event()

    def stop_all() -> bool:
        if should_stop is not None and should_stop():
            stop.set()
        return stop.is_set()

    pool = ProcessPoolExecutor(
        max_workers=plan.processes - 1,
        mp_context=ctx,
        initializer=_child_init,
        initargs=(stop, plan.threads, os.getpid()),
    )
    futures = []
    try:
        futures = [pool.submit(_train_child, p.to_dict(), data, str(folder), resume) for _, folder, p in runs[1:]]
        before = torch.get_num_threads()
        if plan.threads:
            torch.set_num_threads(plan.threads)
        try:
            first = train_phase(
                runs[0][2], data, runs[0][1], progress=progress, resume=resume, on_eval=on_eval, should_stop=stop_all
            )
        finally:
            torch.set_num_threads(before)
        others = [f.result() for f in futures]
    except BaseException:
        stop.set()  # the others end at their next iteration, with a final eval and checkpoint
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [first] + [m for m in others if m is not None]
