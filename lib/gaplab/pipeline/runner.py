"""``gaplab run``: batch-run a study's stage notebooks with papermill.

For each phase: resolve and write ``params.yaml``, run stages 01–04 with
papermill (the executed notebooks are kept as the record of the run), then
``05_compare`` once for the study.

- **Staging**: a phase runs in ``outputs/<study>/.staging/<phase>-*``; only a
  phase that finished every stage is moved into ``outputs/<study>/<phase>/``
  (the previous finished copy, if any, moves to ``_previous/<phase>``).  A
  failed phase goes to ``_failed/<phase>`` with its executed notebooks, so the
  error cell is there to read.  Nothing half-written ever sits where a
  finished result is expected, and a finished result is never deleted.
- **Cache**: a finished phase whose fingerprint (resolved params + corpus
  fingerprint + the package's code) matches, and whose artifacts still have
  the sha256 its ``status.json`` recorded, is skipped and reported as cached;
  any other is re-run, and the run says why (:func:`gaplab.pipeline.runs.reuse_problem`).
- **Lock**: one ``gaplab run`` or ``gaplab train`` at a time per study folder
  (:mod:`gaplab.pipeline.lock`); a second one stops with a sentence, or waits
  with ``--wait``.  Each run stages in its own ``.staging/run-*`` folder; those
  left by a killed run are removed by the next one.
- **Memory**: with the local executor, a phase whose estimated peak memory
  exceeds the machine's is refused before anything runs (:mod:`gaplab.pipeline.resources`).
- **Failure isolation**: a failing stage marks its phase failed; other phases
  go on (``--keep-going``, the default); the exit code is 1 if any failed.
- **Executors**: phases run one OS process each (papermill is not
  thread-safe); ``local`` uses a process pool, ``dask`` a Dask cluster; each is registered by name
  (:mod:`gaplab.pipeline.executors`).
- **05_compare**: runs once for the study after its phases; when no phase changed and the study's files
  are as the last 05_compare wrote them (their sha256 are in ``study_status.json``), nothing runs.

One run is a :class:`StudyRun`: plan (cached or to run, and why) → schedule (order, workers, threads) →
execute (the executor runs the phases; each finished one is placed) → compare (``05_compare``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import StudyError
from .config import Phase, Study, load_study
from .execute import PhaseJob, kernel_config, kernel_name, notebooks_dir, short_error
from .executors import executor_class, make_executor
from .lock import study_lock
from .phase_kernel import COMPARE_MODULES, PhaseKernel, register_engine
from .resources import machine_memory, memory_problem
from .runs import PhaseStatus, phase_fingerprint, place_phase, read_status, reuse_problem, study_dir
from .stages import COMPARE, STAGES
from .study_status import (
    CompareRecord,
    StudyStatus,
    compare_inputs,
    compare_problem,
    read_compare_record,
    study_file_hashes,
)


# --------------------------------------------------------------------------- the study
def plan(
    study: Study,
    phases: Optional[list[str]],
    outputs: Optional[str],
    prepare_generated: bool = True,
    memory_check: bool = False,
    sizes: Optional[dict] = None,
) -> list[tuple[Phase, dict, Optional[str]]]:
    """Resolve each selected phase and compute its fingerprint; check the data before anything runs.

    Each distinct data configuration is prepared once.  With ``prepare_generated`` false (``--dry-run``)
    a phase whose data comes from a ``data.generator`` is not prepared (the generator is never called)
    and its fingerprint is None.  ``memory_check`` refuses phases whose estimated peak memory exceeds
    this machine's (:func:`gaplab.pipeline.resources.memory_problem`).  ``sizes`` (a dict) receives each
    prepared phase's ``(vocabulary size, training tokens)``.
    """
    from ..data.split import prepare_data

    sdir = study_dir(study.name, outputs).resolve()
    out, problems, seen, limits = [], [], {}, {}
    for ph in study.select(phases):
        resolved = ph.resolved(study.name, str(sdir / ph.name))
        if not prepare_generated and ph.params.data.source == "generated":
            out.append((ph, resolved, None))
            continue
        key = json.dumps([resolved["data"], resolved["tokenizer"], resolved["model"]["block_size"]], sort_keys=True)
        try:
            if key not in seen:
                prep = prepare_data(ph.params, ph.name, str(study.path))
                seen[key] = (prep.corpus.fingerprint, int(prep.vocab_size), len(prep.train))
        except StudyError as exc:
            problems.extend(exc.problems)
            continue
        corpus_fp, vocab, train_tokens = seen[key]
        if sizes is not None:
            sizes[ph.name] = (vocab, train_tokens)
        if memory_check:
            device = ph.params.train.device
            if device not in limits:
                limits[device] = machine_memory(device)
            too_big = memory_problem(ph.params, vocab, str(study.path), ph.name, limits[device])
            if too_big is not None:
                problems.append(too_big)
        out.append((ph, resolved, phase_fingerprint(resolved, corpus_fp)))
    if problems:
        raise StudyError(problems)
    return out


def clear_stale_staging(staging: Path) -> None:
    """Remove what killed runs left in ``.staging/`` (never ``train-*``: ``gaplab train --resume`` continues those).

    Called while holding the study's lock, so nothing there belongs to a live run.
    """
    if not staging.is_dir():
        return
    for child in staging.iterdir():
        if child.name.startswith("train-"):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def failure_message(name: str, status: PhaseStatus, stage: Optional[str], notebook: Optional[str]) -> str:
    """``<phase>: FAILED at <stage> on worker <addr>: <error>``, and where its executed notebook is."""
    where = f"at {stage}" if stage else "before its first stage"
    worker = f" on worker {status.worker}" if status.worker else ""
    msg = f"{name}: FAILED {where}{worker}: {status.error or 'no error was reported'}"
    if notebook:
        return msg + f"\n  executed notebook: {notebook}"
    return msg + ("\n  no executed notebook came back (the worker was lost during the stage)" if stage else "")


class Progress:
    """The stage bar on stderr: one step per stage of each phase that runs, and one for 05_compare."""

    def __init__(self, phases: int):
        self.bar = _bar(phases * len(STAGES) + 1)
        self.started: dict[str, int] = {}  # stages each phase has started
        self.last_stage: dict[str, str] = {}

    def on_stage(self, phase: str, stage: str) -> None:
        self.started[phase] = self.started.get(phase, 0) + 1
        self.last_stage[phase] = stage
        if self.started[phase] > 1:
            self.bar.update(1)
        self.bar.set_description(f"{phase} / {stage}")

    def phase_ended(self, phase: str) -> None:
        """Count the stages this phase will not report any more."""
        self.bar.update(len(STAGES) - max(0, self.started.get(phase, 1) - 1))

    def write(self, message: str) -> None:
        self.bar.write(message, file=sys.stderr)


def _bar(total: int):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        unit="stage",
        dynamic_ncols=True,
        file=sys.stderr,
        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} stages [{elapsed}<{remaining}]",
    )


@dataclass
class RunOptions:
    """How ``gaplab run`` runs the phases it must (its command-line flags)."""

    force: bool = False
    keep_going: bool = True
    workers: Optional[int] = None
    threads: Optional[int] = None
    timeout: Optional[float] = None
    executor: str = "local"
    scheduler: Optional[str] = None


def run_study(
    study_path: str,
    phases: Optional[list[str]] = None,
    force: bool = False,
    keep_going: bool = True,
    workers: Optional[int] = None,
    timeout: Optional[float] = None,
    dry_run: bool = False,
    outputs: Optional[str] = None,
    executor: str = "local",
    scheduler: Optional[str] = None,
    threads: Optional[int] = None,
    wait: bool = False,
    memory_check: bool = True,
) -> int:
    """Run the study; ``workers`` None: :func:`gaplab.pipeline.workers.auto_workers` for the local executor
    (one phase per core while they fit in memory), 1 for Dask; ``threads`` None: cores / workers."""
    study = load_study(study_path)
    options = RunOptions(force, keep_going, workers, threads, timeout, executor, scheduler)
    sizes: dict = {}
    planned = plan(
        study,
        phases,
        outputs,
        prepare_generated=not dry_run,
        memory_check=memory_check and executor_class(executor).runs_here,
        sizes=sizes,
    )
    sdir = study_dir(study.name, outputs).resolve()
    nbdir, kern = notebooks_dir(), kernel_name()
    if dry_run:
        return print_dry_run(study, planned, sdir, force)
    with study_lock(sdir, f"gaplab run {study.path}", wait=wait):
        return StudyRun(study, planned, sdir, options, sizes, nbdir, kern).run()


def print_dry_run(study: Study, planned, sdir: Path, force: bool) -> int:
    """``--dry-run``: each phase cached or to run (and why), and whether 05_compare would run."""
    print(f"study {study.name} -> {sdir}")
    cached: dict[str, PhaseStatus] = {}
    for ph, _, fp in planned:
        if fp is None:
            print(
                f"  {ph.name:<24} {'unknown':<10} (its data comes from data.generator "
                f"{ph.params.data.generator!r}, which --dry-run does not call)"
            )
            continue
        why = "--force" if force else reuse_problem(sdir / ph.name, fp)
        state = "cached" if why is None else "would run"
        print(f"  {ph.name:<24} {state:<10} fingerprint {fp[:12]}" + (f"  ({why})" if why else ""))
        if why is None:
            cached[ph.name] = PhaseStatus(ph.name, "cached")
    order = [ph.name for ph, _, _ in planned]
    if (
        len(cached) == len(order)
        and compare_problem(sdir, compare_inputs(sdir, study.description, order, cached)) is None
    ):
        print(f"  {COMPARE:<24} cached")
    else:
        print(f"  {COMPARE:<24} would run")
    return 0


def _schedule(
    planned, names: list[str], sizes: dict, workers: Optional[int], threads: Optional[int], runs_here: bool
) -> tuple[list[str], int, int]:
    """``(names in the order to start them, workers, threads per phase)`` for the phases that will run."""
    import psutil

    from .resources import _cuda_possible
    from .workers import auto_workers, longest_first, phase_cost

    cores = os.cpu_count() or 1
    params = {ph.name: ph.params for ph, _, _ in planned}
    costs = {n: phase_cost(n, params[n], *sizes[n]) for n in names if n in sizes}
    if workers is None:
        if not runs_here or len(costs) < len(names):
            workers = 1  # Dask sizes itself; a phase whose data --dry-run did not prepare: no estimate
        else:
            cuda = False
            if _cuda_possible():
                import torch

                cuda = torch.cuda.is_available()
            workers = auto_workers(list(costs.values()), cores, psutil.virtual_memory().available, cuda)
    if threads is None:
        threads = max(1, cores // max(1, workers))
    return (longest_first(names, costs) if workers > 1 else names), workers, threads


class StudyRun:
    """One ``gaplab run`` of a study, holding its lock: :meth:`plan` → :meth:`schedule` → :meth:`execute` →
    :meth:`compare`.

    ``results`` holds each phase's outcome as it becomes known (cached, done, failed), and is what
    ``study_status.json`` records after each change.
    """

    def __init__(
        self, study: Study, planned, sdir: Path, options: RunOptions, sizes: dict, nbdir: Path, kern: str
    ) -> None:
        self.study, self.planned, self.sdir, self.options = study, planned, sdir, options
        self.sizes, self.nbdir, self.kern = sizes, nbdir, kern
        self.order = [ph.name for ph, _, _ in planned]
        self.staging = sdir / ".staging"
        self.results: dict[str, PhaseStatus] = {}
        self.reasons: dict[str, str] = {}  # why each phase that runs is not cached
        self.jobs: list[PhaseJob] = []  # the phases to run, in the order to start them (schedule)
        self.workers = 1  # phases at once (schedule)
        self.progress: Optional[Progress] = None
        self.compare_record: Optional[CompareRecord] = None
        self.compare_reason: Optional[str] = None  # why 05_compare runs again when no phase does

    def run(self) -> int:
        to_run = self.plan()
        if not to_run:
            self.compare_reason = compare_problem(self.sdir, self._compare_inputs())
            if self.compare_reason is None:
                return self.nothing_to_run()
        self.schedule(to_run)
        with PhaseKernel() as compare_kernel:
            if not self.execute(compare_kernel):
                return 130
            compare_error = self.compare(compare_kernel)
        return self.finish(compare_error)

    # ------------------------------------------------------------------ plan
    def plan(self) -> dict[str, tuple[dict, str]]:
        """Cached phases go to ``results``; the others are returned (``{name: (resolved params, fingerprint)}``)."""
        to_run = {}
        for ph, resolved, fp in self.planned:
            why = "--force" if self.options.force else reuse_problem(self.sdir / ph.name, fp)
            if why is None:
                status, _ = read_status(self.sdir / ph.name)
                self.results[ph.name] = PhaseStatus(ph.name, "cached", seconds=status.elapsed)
                continue
            self.reasons[ph.name] = why
            to_run[ph.name] = (resolved, fp)
        return to_run

    def nothing_to_run(self) -> int:
        """Every phase cached and 05_compare's files intact: say so, and run nothing."""
        self.compare_record = read_compare_record(self.sdir)
        clear_stale_staging(self.staging)
        with contextlib.suppress(OSError):
            self.staging.rmdir()
        self._write_status()
        for name in self.results:
            print(f"{name}: cached", file=sys.stderr)
        print(
            f"{COMPARE}: cached (no phase changed, and the study's files are as it wrote them): nothing to run",
            file=sys.stderr,
        )
        self._print_summary()
        print(f"report: {self.sdir / 'report.html'}")
        return 0

    # ------------------------------------------------------------------ schedule
    def schedule(self, to_run: dict[str, tuple[dict, str]]) -> None:
        """The jobs in the order to start them, with the workers and threads per phase they get."""
        runs_here = executor_class(self.options.executor).runs_here
        names, self.workers, threads = _schedule(
            self.planned, list(to_run), self.sizes, self.options.workers, self.options.threads, runs_here
        )
        for name in names:
            resolved, fp = to_run[name]
            final = str(self.sdir / name)
            self.jobs.append(
                PhaseJob(
                    self.study.name,
                    name,
                    resolved,
                    fp,
                    final,
                    self.options.timeout,
                    self.kern,
                    str(self.nbdir),
                    threads,
                )
            )

    # ------------------------------------------------------------------ execute
    def execute(self, compare_kernel: PhaseKernel) -> bool:
        """Run the phases with the executor, placing each as it ends; False when interrupted."""
        clear_stale_staging(self.staging)
        self.staging.mkdir(exist_ok=True)
        run_root = Path(tempfile.mkdtemp(prefix="run-", dir=self.staging))
        self._write_status()
        for name in self.results:
            print(f"{name}: cached", file=sys.stderr)
        for name, why in self.reasons.items():
            if why not in ("not run yet", "--force"):
                print(f"{name}: re-running: {why}", file=sys.stderr)
        if self.compare_reason:
            print(f"{COMPARE}: re-running: {self.compare_reason}", file=sys.stderr)
        self.progress = Progress(len(self.jobs))
        interrupted = False
        try:
            # 05_compare's kernel starts and imports while the phases run; so does papermill here
            _start_early(compare_kernel, self.kern, self.sdir)
            threading.Thread(target=register_engine, daemon=True).start()
            if self.jobs:
                executor = make_executor(self.options.executor, self.workers, self.options.scheduler)
                executor.run(self.jobs, run_root, self.progress.on_stage, self.phase_done, self.options.keep_going)
        except KeyboardInterrupt:
            interrupted = True
            self.progress.write(
                "interrupted: finished phases are kept and will be reused; unfinished ones were discarded"
            )
        finally:
            shutil.rmtree(run_root, ignore_errors=True)
            with contextlib.suppress(OSError):
                self.staging.rmdir()  # only when empty: an interrupted gaplab train's folder stays for --resume
        if interrupted:
            self.progress.bar.close()
            self._write_status()
        return not interrupted

    def phase_done(self, job: PhaseJob, status: PhaseStatus) -> bool:
        """``on_done``: place the phase's folder, record and report its outcome; whether it finished."""
        staged = Path(status.run_dir) if status.run_dir else None
        target = (
            place_phase(staged, job.final_dir, job.name, job.params, status)
            if staged is not None and staged.exists()
            else None
        )
        self.progress.phase_ended(job.name)
        stage = status.stage or (self.progress.last_stage.get(job.name) if status.state != "done" else None)
        notebook = str(target / status.notebook) if target and status.notebook else None
        result = PhaseStatus(
            job.name,
            status.state or "failed",
            seconds=status.elapsed,
            stage=stage,
            error=status.error,
            notebook=notebook,
        )
        self.results[job.name] = result
        if result.state == "done":
            shutil.rmtree(self.staging / f"train-{job.name}", ignore_errors=True)  # superseded by this finished run
        self.progress.write(
            f"{job.name}: done in {result.elapsed:.1f}s"
            if result.state == "done"
            else failure_message(job.name, status, stage, notebook)
        )
        self._write_status()
        return result.state == "done"

    # ------------------------------------------------------------------ compare
    def compare(self, compare_kernel: PhaseKernel) -> Optional[str]:
        """Run 05_compare; record its files' hashes when it succeeds.  Its error, or None."""
        self.progress.bar.set_description(f"study / {COMPARE}")
        error = run_compare(
            self.study, self.sdir, self.order, self.nbdir, self.kern, self.options.timeout, compare_kernel
        )
        if error is None:
            self.compare_record = CompareRecord(self._compare_inputs(), study_file_hashes(self.sdir))
            self._write_status()
        self.progress.bar.update(1)
        self.progress.bar.close()
        return error

    def finish(self, compare_error: Optional[str]) -> int:
        """Say how each phase and the report came out; the exit code."""
        self._print_summary()
        report = self.sdir / "report.html"
        if compare_error:
            print(f"05_compare FAILED: {compare_error} (see {self.sdir / (COMPARE + '.ipynb')})", file=sys.stderr)
            print(
                "report: not rebuilt (05_compare failed)"
                + (f"; {report} is from an earlier run and does not show this one" if report.exists() else "")
            )
        else:
            print(f"report: {report}")
        failed = [r for r in self.results.values() if r.state == "failed"]
        return 1 if failed or compare_error else 0

    # ------------------------------------------------------------------ records
    def _print_summary(self) -> None:
        summary = ", ".join(f"{n}: {self.results[n].state}" for n in self.order if n in self.results)
        print(f"{self.study.name}: {summary}", file=sys.stderr)

    def _compare_inputs(self) -> str:
        return compare_inputs(self.sdir, self.study.description, self.order, self.results)

    def _write_status(self) -> None:
        StudyStatus(
            self.study.name,
            self.study.description,
            str(self.study.path),
            self.order,
            dict(self.results),
            self.compare_record,
        ).write(self.sdir)


def _start_early(kernel: PhaseKernel, kern: str, sdir: Path) -> None:
    """Start 05_compare's kernel now; if it cannot start, papermill starts one (and reports why) later."""
    try:
        kernel.start(kern, str(sdir), kernel_config(), warm=COMPARE_MODULES)
    except Exception:  # noqa: BLE001 - 05_compare reports a kernel that does not start
        kernel.close()


def run_compare(
    study: Study,
    sdir: Path,
    order: list[str],
    nbdir: Path,
    kern: str,
    timeout: Optional[float],
    kernel: Optional[PhaseKernel] = None,
) -> Optional[str]:
    """Run ``05_compare`` into the study folder (in ``kernel`` if given, else a new one); return an error
    string or None."""
    import papermill as pm

    out = sdir / f"{COMPARE}.ipynb"
    tmp = sdir / f".{COMPARE}.running.ipynb"
    try:
        with contextlib.ExitStack() as stack:
            if kernel is None:
                kernel = stack.enter_context(PhaseKernel())
            pm.execute_notebook(
                str(nbdir / f"{COMPARE}.ipynb"),
                str(tmp),
                parameters={"study": study.name, "study_dir": str(sdir), "phases": order},
                kernel_name=kern,
                progress_bar=False,
                log_output=False,
                execution_timeout=timeout,
                cwd=str(sdir),
                config=kernel_config(),
                engine_name=kernel.engine(),
                phase_kernel=kernel,
            )
        return None
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc(limit=0)
        return short_error(exc)
    finally:
        if tmp.exists():
            os.replace(tmp, out)
