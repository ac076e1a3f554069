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
  fingerprint + gaplab version) matches is skipped and reported as cached.
- **Failure isolation**: a failing stage marks its phase failed; other phases
  go on (``--keep-going``, the default); the exit code is 1 if any failed.
- **Executors**: phases run one OS process each (papermill is not
  thread-safe); ``local`` uses a process pool, ``dask`` a Dask cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from . import __version__
from .config import Phase, Study, StudyError, load_study
from .runs import atomic_write_json, atomic_write_yaml, read_json, stable_hash, study_dir
from .stages import COMPARE, STAGES

NOTEBOOK_DIR_ENV = "GAPLAB_NOTEBOOKS"


def notebooks_dir() -> Path:
    """The stage notebooks: ``$GAPLAB_NOTEBOOKS`` or the repository's ``notebooks/``."""
    env = os.environ.get(NOTEBOOK_DIR_ENV)
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for cand in (here.parents[2] / "notebooks", here.parent / "notebooks"):
        if (cand / f"{STAGES[0]}.ipynb").exists():
            return cand
    raise FileNotFoundError("cannot find the stage notebooks; set GAPLAB_NOTEBOOKS to the notebooks/ folder")


def kernel_name() -> str:
    """The registered ``gaplab`` kernel if present (``make setup`` registers it), else ``python3``."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        if "gaplab" in KernelSpecManager().find_kernel_specs():
            return "gaplab"
    except Exception:  # pragma: no cover - jupyter missing or broken
        pass
    return "python3"


# --------------------------------------------------------------------------- fingerprints
def phase_fingerprint(resolved: dict[str, Any], corpus_fingerprint: str) -> str:
    params = {k: v for k, v in resolved.items() if k != "run_dir"}
    return stable_hash({"params": params, "corpus": corpus_fingerprint, "gaplab": __version__})


@dataclass
class PhaseJob:
    study: str
    name: str
    params: dict[str, Any]  # resolved, run_dir = final folder
    fingerprint: str
    final_dir: str
    timeout: Optional[float] = None
    kernel: str = "python3"
    notebooks: str = ""
    threads: Optional[int] = None


@dataclass
class PhaseResult:
    name: str
    state: str  # done | failed | cached | interrupted
    seconds: float = 0.0
    stage: Optional[str] = None
    error: Optional[str] = None
    notebook: Optional[str] = None
    extra: dict[str, Any] = field(default_factory=dict)


def _short_error(exc: BaseException) -> str:
    ename = getattr(exc, "ename", None)
    evalue = getattr(exc, "evalue", None)
    if ename:
        return f"{ename}: {evalue}"
    return f"{type(exc).__name__}: {exc}"


def kernel_config():
    """papermill's client config: encrypt the kernel's local TCP sockets (CurveZMQ) where pyzmq can.

    ipykernel >= 7.3 warns on every start that its sockets are unencrypted;
    with ``transport_encryption: auto`` jupyter_client hands the kernel Curve
    keys when its kernelspec declares support, and does nothing otherwise.
    """
    import zmq
    from traitlets.config import Config

    return Config({"KernelManager": {"transport_encryption": "auto"}}) if zmq.has("curve") else Config()


def execute_phase(job: PhaseJob, work_root: str, report: Optional[Callable[[str, str], None]] = None) -> dict:
    """Run stages 01–04 of one phase in a fresh folder under ``work_root``; return a status dict.

    The folder is left for the caller to move into place (this is what a Dask
    worker runs too).  ``report(phase, stage)`` is called as each stage starts.
    """
    import papermill as pm

    if job.threads:
        os.environ["GAPLAB_THREADS"] = str(job.threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(job.threads))
    os.environ["GAPLAB_BATCH"] = "1"
    run_dir = Path(tempfile.mkdtemp(prefix=f"{job.name}-", dir=work_root))
    params = dict(job.params, run_dir=str(run_dir))
    atomic_write_yaml(run_dir / "params.yaml", params)
    start = time.time()
    status: dict[str, Any] = {"phase": job.name, "fingerprint": job.fingerprint, "state": "running",
                              "gaplab": __version__, "run_dir": str(run_dir), "stages": {}}
    for stage in STAGES:
        if report:
            report(job.name, stage)
        out_nb = run_dir / f"{stage}.ipynb"
        t0 = time.time()
        try:
            pm.execute_notebook(str(Path(job.notebooks) / f"{stage}.ipynb"), str(out_nb), parameters=params,
                                kernel_name=job.kernel, progress_bar=False, log_output=False,
                                execution_timeout=job.timeout, cwd=str(run_dir), config=kernel_config())
        except BaseException as exc:  # noqa: BLE001 - record and hand back, never crash the study
            status.update(state="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                          stage=stage, error=_short_error(exc), notebook=f"{stage}.ipynb",
                          seconds=time.time() - start)
            status["stages"][stage] = round(time.time() - t0, 3)
            atomic_write_json(run_dir / "status.json", status)
            if isinstance(exc, KeyboardInterrupt):
                raise
            return status
        status["stages"][stage] = round(time.time() - t0, 3)
    status.update(state="done", seconds=time.time() - start)
    atomic_write_json(run_dir / "status.json", status)
    return status


def place_phase(staged: Path, job: PhaseJob, status: dict) -> Path:
    """Move a staged phase folder into place (done) or into ``_failed/`` (failed), keeping old results."""
    sdir = Path(job.final_dir).parent
    done = status.get("state") == "done"
    target = Path(job.final_dir) if done else sdir / "_failed" / job.name
    params = dict(job.params, run_dir=str(target))
    atomic_write_yaml(staged / "params.yaml", params)
    status = dict(status, run_dir=str(target))
    atomic_write_json(staged / "status.json", status)
    if target.exists():
        keep = sdir / "_previous" / job.name if done else None
        if keep is not None:
            if keep.exists():
                shutil.rmtree(keep)
            keep.parent.mkdir(parents=True, exist_ok=True)
            os.replace(target, keep)
        else:
            shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, target)
    if done:  # an older failure of this phase no longer describes it
        old_fail = sdir / "_failed" / job.name
        if old_fail.exists():
            shutil.rmtree(old_fail)
    return target


def _interrupt_once(signum, frame):
    """First Ctrl-C stops the phase; later ones are ignored so papermill can shut its kernel down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _local_worker(job: PhaseJob, work_root: str, queue=None) -> dict:
    signal.signal(signal.SIGINT, _interrupt_once)
    report = (lambda ph, st: queue.put((ph, st))) if queue is not None else None
    return execute_phase(job, work_root, report)


# --------------------------------------------------------------------------- executors
class LocalExecutor:
    """Phases in a pool of OS processes on this machine."""

    name = "local"

    def __init__(self, workers: int = 1):
        self.workers = max(1, workers)

    def run(self, jobs: list[PhaseJob], work_root: Path, on_stage, on_done, keep_going: bool) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        manager = ctx.Manager()
        queue = manager.Queue()
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx)
        try:
            futures = {pool.submit(_local_worker, job, str(work_root), queue): job for job in jobs}
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
                        status = {"phase": job.name, "state": "failed", "error": f"worker lost: {_short_error(exc)}"}
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
            manager.shutdown()


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


def make_executor(kind: str, workers: int, scheduler: Optional[str]):
    if kind == "local":
        return LocalExecutor(workers)
    if kind == "dask":
        from .dask_executor import DaskExecutor

        return DaskExecutor(scheduler=scheduler, workers=workers)
    raise ValueError(f"--executor {kind!r}: allowed: local, dask")


# --------------------------------------------------------------------------- the study
def plan(study: Study, phases: Optional[list[str]], outputs: Optional[str]) -> list[tuple[Phase, dict, str]]:
    """Resolve each selected phase and compute its fingerprint; check the data before anything runs."""
    from .split import prepare_data

    sdir = study_dir(study.name, outputs).resolve()
    out, problems, seen = [], [], {}
    for ph in study.select(phases):
        resolved = ph.resolved(study.name, str(sdir / ph.name))
        key = json.dumps([resolved["data"], resolved["tokenizer"], resolved["model"]["block_size"]], sort_keys=True)
        try:
            if key not in seen:
                seen[key] = prepare_data(ph.params, ph.name, str(study.path)).corpus.fingerprint
        except StudyError as exc:
            problems.extend(exc.problems)
            continue
        out.append((ph, resolved, phase_fingerprint(resolved, seen[key])))
    if problems:
        raise StudyError(problems)
    return out


def _bar(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="stage", dynamic_ncols=True, file=sys.stderr,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} stages [{elapsed}<{remaining}]")


def run_study(study_path: str, phases: Optional[list[str]] = None, force: bool = False, keep_going: bool = True,
              workers: int = 1, timeout: Optional[float] = None, dry_run: bool = False,
              outputs: Optional[str] = None, executor: str = "local", scheduler: Optional[str] = None,
              threads: Optional[int] = None) -> int:
    study = load_study(study_path)
    planned = plan(study, phases, outputs)
    sdir = study_dir(study.name, outputs).resolve()
    nbdir = notebooks_dir()
    kern = kernel_name()
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // max(1, workers))

    jobs, results = [], {}
    for ph, resolved, fp in planned:
        st = read_json(sdir / ph.name / "status.json", {}) or {}
        if not force and st.get("state") == "done" and st.get("fingerprint") == fp:
            results[ph.name] = PhaseResult(ph.name, "cached", st.get("seconds", 0.0))
            continue
        jobs.append(PhaseJob(study.name, ph.name, resolved, fp, str(sdir / ph.name), timeout, kern, str(nbdir),
                             threads))

    if dry_run:
        print(f"study {study.name} -> {sdir}")
        for ph, _, fp in planned:
            state = "cached" if ph.name in results else "would run"
            print(f"  {ph.name:<24} {state:<10} fingerprint {fp[:12]}")
        print(f"  {COMPARE:<24} would run")
        return 0

    sdir.mkdir(parents=True, exist_ok=True)
    staging = sdir / ".staging"
    if staging.exists():  # left by an interrupted run: never a finished result
        shutil.rmtree(staging)
    staging.mkdir()
    order = [ph.name for ph, _, _ in planned]
    _write_study_status(sdir, study, order, results)
    for name, r in results.items():
        print(f"{name}: cached", file=sys.stderr)

    bar = _bar(len(jobs) * len(STAGES) + 1)
    started: dict[str, int] = {}

    def on_stage(phase: str, stage: str) -> None:
        started[phase] = started.get(phase, 0) + 1
        if started[phase] > 1:
            bar.update(1)
        bar.set_description(f"{phase} / {stage}")

    def on_done(job: PhaseJob, status: dict) -> bool:
        staged = Path(status["run_dir"]) if status.get("run_dir") else None
        target = place_phase(staged, job, status) if staged is not None and staged.exists() else None
        remaining = len(STAGES) - max(0, started.get(job.name, 1) - 1)
        bar.update(remaining)  # the stages this phase will not report any more
        res = PhaseResult(job.name, status.get("state", "failed"), status.get("seconds", 0.0), status.get("stage"),
                          status.get("error"),
                          str(target / status["notebook"]) if target and status.get("notebook") else None)
        results[job.name] = res
        msg = (f"{job.name}: done in {res.seconds:.1f}s" if res.state == "done"
               else f"{job.name}: FAILED at {res.stage}: {res.error}\n  executed notebook: {res.notebook}")
        bar.write(msg, file=sys.stderr)
        _write_study_status(sdir, study, order, results)
        return res.state == "done"

    interrupted = False
    try:
        if jobs:
            make_executor(executor, workers, scheduler).run(jobs, staging, on_stage, on_done, keep_going)
    except KeyboardInterrupt:
        interrupted = True
        bar.write("interrupted: finished phases are kept and will be reused; unfinished ones were discarded",
                  file=sys.stderr)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if interrupted:
        bar.close()
        _write_study_status(sdir, study, order, results)
        return 130

    bar.set_description(f"study / {COMPARE}")
    compare_err = run_compare(study, sdir, order, nbdir, kern, timeout)
    bar.update(1)
    bar.close()
    failed = [r for r in results.values() if r.state == "failed"]
    summary = ", ".join(f"{n}: {results[n].state}" for n in order if n in results)
    print(f"{study.name}: {summary}", file=sys.stderr)
    if compare_err:
        print(f"05_compare FAILED: {compare_err} (see {sdir / (COMPARE + '.ipynb')})", file=sys.stderr)
    print(f"report: {sdir / 'report.html'}")
    return 1 if failed or compare_err else 0


def _write_study_status(sdir: Path, study: Study, order: list[str], results: dict[str, PhaseResult]) -> None:
    atomic_write_json(sdir / "study_status.json", {
        "study": study.name, "description": study.description, "study_file": str(study.path),
        "phases_order": order,
        "phases": {n: {"state": r.state, "seconds": r.seconds, "stage": r.stage, "error": r.error,
                       "notebook": r.notebook} for n, r in results.items()},
    })


def run_compare(study: Study, sdir: Path, order: list[str], nbdir: Path, kern: str,
                timeout: Optional[float]) -> Optional[str]:
    """Run ``05_compare`` into the study folder; return an error string or None."""
    import papermill as pm

    out = sdir / f"{COMPARE}.ipynb"
    tmp = sdir / f".{COMPARE}.running.ipynb"
    try:
        pm.execute_notebook(str(nbdir / f"{COMPARE}.ipynb"), str(tmp),
                            parameters={"study": study.name, "study_dir": str(sdir), "phases": order},
                            kernel_name=kern, progress_bar=False, log_output=False, execution_timeout=timeout,
                            cwd=str(sdir), config=kernel_config())
        return None
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc(limit=0)
        return _short_error(exc)
    finally:
        if tmp.exists():
            os.replace(tmp, out)
