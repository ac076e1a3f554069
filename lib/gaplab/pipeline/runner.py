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
  fingerprint + the package's code) matches is skipped and reported as cached.
- **Failure isolation**: a failing stage marks its phase failed; other phases
  go on (``--keep-going``, the default); the exit code is 1 if any failed.
- **Executors**: phases run one OS process each (papermill is not
  thread-safe); ``local`` uses a process pool, ``dask`` a Dask cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import traceback
from pathlib import Path
from typing import Optional

from .config import Phase, Study, load_study
from ..errors import StudyError
from ..files import atomic_write_json, read_json
from .stages import COMPARE, STAGES
from .executors.local import LocalExecutor
from .execute import PhaseJob, PhaseResult, short_error, kernel_config, kernel_name, notebooks_dir
from .runs import phase_fingerprint, place_phase, study_dir

def make_executor(kind: str, workers: int, scheduler: Optional[str]):
    if kind == "local":
        return LocalExecutor(workers)
    if kind == "dask":
        from .executors.dask import DaskExecutor

        return DaskExecutor(scheduler=scheduler, workers=workers)
    raise ValueError(f"--executor {kind!r}: allowed: local, dask")


# --------------------------------------------------------------------------- the study
def plan(study: Study, phases: Optional[list[str]], outputs: Optional[str]) -> list[tuple[Phase, dict, str]]:
    """Resolve each selected phase and compute its fingerprint; check the data before anything runs."""
    from ..data.split import prepare_data

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
        target = place_phase(staged, job.final_dir, job.name, job.params, status) if staged is not None and staged.exists() else None
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
        return short_error(exc)
    finally:
        if tmp.exists():
            os.replace(tmp, out)
