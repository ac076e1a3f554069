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
  thread-safe); ``local`` uses a process pool, ``dask`` a Dask cluster.
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
from pathlib import Path
from typing import Optional

from ..errors import StudyError
from ..files import atomic_write_json
from .config import Phase, Study, load_study
from .execute import PhaseJob, PhaseResult, kernel_config, kernel_name, notebooks_dir, short_error
from .executors.local import LocalExecutor
from .lock import study_lock
from .phase_kernel import COMPARE_MODULES, PhaseKernel, register_engine
from .resources import machine_memory, memory_problem
from .runs import phase_fingerprint, place_phase, reuse_problem, study_dir
from .stages import COMPARE, STAGES


def make_executor(kind: str, workers: int, scheduler: Optional[str]):
    if kind == "local":
        return LocalExecutor(workers)
    if kind == "dask":
        from .executors.dask import DaskExecutor

        return DaskExecutor(scheduler=scheduler, workers=workers)
    raise ValueError(f"--executor {kind!r}: allowed: local, dask")


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


def failure_message(name: str, status: dict, stage: Optional[str], notebook: Optional[str]) -> str:
    """``<phase>: FAILED at <stage> on worker <addr>: <error>``, and where its executed notebook is."""
    where = f"at {stage}" if stage else "before its first stage"
    worker = f" on worker {status['worker']}" if status.get("worker") else ""
    msg = f"{name}: FAILED {where}{worker}: {status.get('error') or 'no error was reported'}"
    if notebook:
        return msg + f"\n  executed notebook: {notebook}"
    return msg + ("\n  no executed notebook came back (the worker was lost during the stage)" if stage else "")


def _bar(total: int):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        unit="stage",
        dynamic_ncols=True,
        file=sys.stderr,
        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} stages [{elapsed}<{remaining}]",
    )


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
    sizes: dict = {}
    planned = plan(
        study,
        phases,
        outputs,
        prepare_generated=not dry_run,
        memory_check=memory_check and executor == "local",
        sizes=sizes,
    )
    sdir = study_dir(study.name, outputs).resolve()
    nbdir = notebooks_dir()
    kern = kernel_name()

    if dry_run:
        print(f"study {study.name} -> {sdir}")
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
        print(f"  {COMPARE:<24} would run")
        return 0

    with study_lock(sdir, f"gaplab run {study.path}", wait=wait):
        return _run_locked(
            study, planned, sdir, nbdir, kern, threads, force, keep_going, workers, timeout, executor, scheduler, sizes
        )


def _schedule(
    planned, names: list[str], sizes: dict, workers: Optional[int], threads: Optional[int], executor: str
) -> tuple[list[str], int, int]:
    """``(names in the order to start them, workers, threads per phase)`` for the phases that will run."""
    import psutil

    from .resources import _cuda_possible
    from .workers import auto_workers, longest_first, phase_cost

    cores = os.cpu_count() or 1
    params = {ph.name: ph.params for ph, _, _ in planned}
    costs = {n: phase_cost(n, params[n], *sizes[n]) for n in names if n in sizes}
    if workers is None:
        if executor != "local" or len(costs) < len(names):
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


def _run_locked(
    study: Study,
    planned,
    sdir: Path,
    nbdir: Path,
    kern: str,
    threads: Optional[int],
    force: bool,
    keep_going: bool,
    workers: Optional[int],
    timeout: Optional[float],
    executor: str,
    scheduler: Optional[str],
    sizes: Optional[dict] = None,
) -> int:
    jobs, results, reasons, to_run = [], {}, {}, {}
    for ph, resolved, fp in planned:
        why = "--force" if force else reuse_problem(sdir / ph.name, fp)
        if why is None:
            st = json.loads((sdir / ph.name / "status.json").read_text(encoding="utf-8"))
            results[ph.name] = PhaseResult(ph.name, "cached", st.get("seconds", 0.0))
            continue
        reasons[ph.name] = why
        to_run[ph.name] = (resolved, fp)
    names, workers, threads = _schedule(planned, list(to_run), sizes or {}, workers, threads, executor)
    for name in names:
        resolved, fp = to_run[name]
        jobs.append(PhaseJob(study.name, name, resolved, fp, str(sdir / name), timeout, kern, str(nbdir), threads))

    staging = sdir / ".staging"
    clear_stale_staging(staging)
    staging.mkdir(exist_ok=True)
    run_root = Path(tempfile.mkdtemp(prefix="run-", dir=staging))
    order = [ph.name for ph, _, _ in planned]
    _write_study_status(sdir, study, order, results)
    for name in results:
        print(f"{name}: cached", file=sys.stderr)
    for name, why in reasons.items():
        if why not in ("not run yet", "--force"):
            print(f"{name}: re-running: {why}", file=sys.stderr)

    bar = _bar(len(jobs) * len(STAGES) + 1)
    started: dict[str, int] = {}
    last_stage: dict[str, str] = {}

    def on_stage(phase: str, stage: str) -> None:
        started[phase] = started.get(phase, 0) + 1
        last_stage[phase] = stage
        if started[phase] > 1:
            bar.update(1)
        bar.set_description(f"{phase} / {stage}")

    def on_done(job: PhaseJob, status: dict) -> bool:
        staged = Path(status["run_dir"]) if status.get("run_dir") else None
        target = (
            place_phase(staged, job.final_dir, job.name, job.params, status)
            if staged is not None and staged.exists()
            else None
        )
        remaining = len(STAGES) - max(0, started.get(job.name, 1) - 1)
        bar.update(remaining)  # the stages this phase will not report any more
        stage = status.get("stage") or (last_stage.get(job.name) if status.get("state") != "done" else None)
        notebook = str(target / status["notebook"]) if target and status.get("notebook") else None
        res = PhaseResult(
            job.name, status.get("state", "failed"), status.get("seconds", 0.0), stage, status.get("error"), notebook
        )
        results[job.name] = res
        if res.state == "done":
            shutil.rmtree(staging / f"train-{job.name}", ignore_errors=True)  # superseded by this finished run
        bar.write(
            f"{job.name}: done in {res.seconds:.1f}s"
            if res.state == "done"
            else failure_message(job.name, status, stage, notebook),
            file=sys.stderr,
        )
        _write_study_status(sdir, study, order, results)
        return res.state == "done"

    interrupted = False
    with PhaseKernel() as compare_kernel:
        try:
            # 05_compare's kernel starts and imports while the phases run; so does papermill here
            _start_early(compare_kernel, kern, sdir)
            threading.Thread(target=register_engine, daemon=True).start()
            if jobs:
                make_executor(executor, workers, scheduler).run(jobs, run_root, on_stage, on_done, keep_going)
        except KeyboardInterrupt:
            interrupted = True
            bar.write(
                "interrupted: finished phases are kept and will be reused; unfinished ones were discarded",
                file=sys.stderr,
            )
        finally:
            shutil.rmtree(run_root, ignore_errors=True)
            try:
                staging.rmdir()  # only when empty: an interrupted gaplab train's folder stays for --resume
            except OSError:
                pass
        if interrupted:
            bar.close()
            _write_study_status(sdir, study, order, results)
            return 130

        bar.set_description(f"study / {COMPARE}")
        compare_err = run_compare(study, sdir, order, nbdir, kern, timeout, compare_kernel)
    bar.update(1)
    bar.close()
    failed = [r for r in results.values() if r.state == "failed"]
    summary = ", ".join(f"{n}: {results[n].state}" for n in order if n in results)
    print(f"{study.name}: {summary}", file=sys.stderr)
    report = sdir / "report.html"
    if compare_err:
        print(f"05_compare FAILED: {compare_err} (see {sdir / (COMPARE + '.ipynb')})", file=sys.stderr)
        print(
            "report: not rebuilt (05_compare failed)"
            + (f"; {report} is from an earlier run and does not show this one" if report.exists() else "")
        )
    else:
        print(f"report: {report}")
    return 1 if failed or compare_err else 0


def _start_early(kernel: PhaseKernel, kern: str, sdir: Path) -> None:
    """Start 05_compare's kernel now; if it cannot start, papermill starts one (and reports why) later."""
    try:
        kernel.start(kern, str(sdir), kernel_config(), warm=COMPARE_MODULES)
    except Exception:  # noqa: BLE001 - 05_compare reports a kernel that does not start
        kernel.close()


def _write_study_status(sdir: Path, study: Study, order: list[str], results: dict[str, PhaseResult]) -> None:
    atomic_write_json(
        sdir / "study_status.json",
        {
            "study": study.name,
            "description": study.description,
            "study_file": str(study.path),
            "phases_order": order,
            "phases": {
                n: {"state": r.state, "seconds": r.seconds, "stage": r.stage, "error": r.error, "notebook": r.notebook}
                for n, r in results.items()
            },
        },
    )


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
