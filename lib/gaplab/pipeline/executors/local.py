"""The local executor: phases in a pool of OS processes on this machine (papermill is not thread-safe).

Ctrl-C: each worker takes one SIGINT (later ones are ignored, so papermill can shut its kernel down),
and the parent waits for the workers and their kernels before the runner removes the staging folder.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import Optional

from ..execute import PhaseJob, execute_phase, short_error
from ..runs import PhaseStatus
from . import register_executor


def _interrupt_once(signum, frame):
    """First Ctrl-C stops the phase; later ones are ignored so papermill can shut its kernel down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


_queue = None  # in a worker: where it reports (phase, stage) as each stage starts


def _init_worker(queue) -> None:
    global _queue
    _queue = queue


def _local_worker(job: PhaseJob, work_root: str) -> PhaseStatus:
    signal.signal(signal.SIGINT, _interrupt_once)
    queue = _queue
    report = (lambda ph, st: queue.put((ph, st))) if queue is not None else None
    return execute_phase(job, work_root, report)


@register_executor
class LocalExecutor:
    """Phases in a pool of OS processes on this machine."""

    name = "local"
    runs_here = True

    def __init__(self, workers: int = 1):
        self.workers = max(1, workers)

    @classmethod
    def from_options(cls, workers: int, scheduler: Optional[str]) -> LocalExecutor:
        return cls(workers)

    def run(self, jobs: list[PhaseJob], work_root: Path, on_stage, on_done, keep_going: bool) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        queue = ctx.Queue()  # handed to each worker as it starts (no Manager process to start)
        pool = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=ctx, initializer=_init_worker, initargs=(queue,)
        )
        # a worker whose pool still holds phases after this one starts the next phase's kernel ahead
        jobs = [replace(job, warm_next=i < len(jobs) - self.workers) for i, job in enumerate(jobs)]
        try:
            futures = {pool.submit(_local_worker, job, str(work_root)): job for job in jobs}
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                while not queue.empty():
                    on_stage(*queue.get())
                for fut in finished:
                    job = futures[fut]
                    try:
                        status = fut.result()
                    except Exception as exc:  # a worker died
                        status = PhaseStatus(job.name, "failed", error=f"worker lost: {short_error(exc)}")
                    ok = on_done(job, status)
                    if not ok and not keep_going:
                        for f in pending:
                            f.cancel()
                        pending = {f for f in pending if not f.cancelled()}
            while not queue.empty():
                on_stage(*queue.get())
        except KeyboardInterrupt:
            procs = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            _stop_workers(procs)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            queue.close()


def _stop_workers(procs, grace: float = 60.0) -> None:
    """Stop worker processes after Ctrl-C and wait until they (and their kernels) are gone.

    A terminal's Ctrl-C reaches the workers too, but ``kill -INT`` of the parent
    alone does not, so each worker is sent one SIGINT (a second is ignored by
    ``_interrupt_once``).  Workers then shut their kernel down and exit; only a
    worker that has not done so within ``grace`` seconds is terminated.  The
    caller removes the staging folder after this returns, so no late write can
    bring it back.
    """
    for proc in procs:
        if proc.is_alive() and proc.pid:
            try:
                os.kill(proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    deadline = time.time() + grace
    for proc in procs:
        proc.join(max(0.0, deadline - time.time()))
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join(5)
