"""Running one phase: its stage notebooks 01–04 with papermill, in a fresh folder, returning a status.

The four notebooks run one after another in one kernel (:mod:`gaplab.pipeline.phase_kernel`: its namespace
is reset before each notebook, so each starts as in a fresh kernel, without paying for the kernel's start
and its imports again).

:func:`execute_phase` is the one function every executor calls (a local worker process, or a Dask
task on another machine).  It never raises for a failing stage: the status says which stage failed
and why, and the executed notebook with the error is in the folder.  Placing the folder in the
study (:func:`gaplab.pipeline.runs.place_phase`) is the runner's job.

The notebooks that run ship inside the package (``gaplab/notebooks/``); the repository's
``notebooks/`` folder, which a learner opens in JupyterLab, is a link to them.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..files import atomic_write_json, atomic_write_yaml
from ..versioning import gaplab_version
from .runs import PhaseStatus
from .stages import STAGES

NOTEBOOK_DIR_ENV = "GAPLAB_NOTEBOOKS"


PACKAGE_NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def notebooks_dir() -> Path:
    """The stage notebooks: ``$GAPLAB_NOTEBOOKS`` if set, else the ones shipped in the package."""
    env = os.environ.get(NOTEBOOK_DIR_ENV)
    path = Path(env) if env else PACKAGE_NOTEBOOKS
    if not (path / f"{STAGES[0]}.ipynb").exists():
        raise FileNotFoundError(
            f"{path}: no stage notebooks there ({STAGES[0]}.ipynb is missing); "
            f"unset {NOTEBOOK_DIR_ENV} or point it at a folder with the stage notebooks"
        )
    return path


def kernel_name() -> str:
    """The registered ``gaplab`` kernel if present (``make setup`` registers it), else ``python3``."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        if "gaplab" in KernelSpecManager().find_kernel_specs():
            return "gaplab"
    except Exception:  # pragma: no cover - jupyter missing or broken
        pass
    return "python3"


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
    #: this process runs another phase after this one: start its kernel while this phase runs
    warm_next: bool = False


def short_error(exc: BaseException) -> str:
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


def execute_phase(job: PhaseJob, work_root: str, report: Optional[Callable[[str, str], None]] = None) -> PhaseStatus:
    """Run stages 01–04 of one phase in a fresh folder under ``work_root``; return its status.

    The folder is left for the caller to move into place (this is what a Dask
    worker runs too).  ``report(phase, stage)`` is called as each stage starts.
    """
    from .phase_kernel import PhaseKernel, take_spare

    _set_threads(job.threads)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{job.name}-", dir=work_root))
    params = dict(job.params, run_dir=str(run_dir))
    atomic_write_yaml(run_dir / "params.yaml", params)
    start = time.time()
    status = PhaseStatus(
        job.name, "running", fingerprint=job.fingerprint, gaplab=gaplab_version(), run_dir=str(run_dir), stages={}
    )
    with take_spare(job.kernel) or PhaseKernel() as kernel:
        kernel.cwd = str(run_dir)
        for i, stage in enumerate(STAGES):
            if report:
                report(job.name, stage)
            t0 = time.time()
            try:
                _run_stage(job, kernel, stage, params, run_dir, work_root, first=i == 0)
            except BaseException as exc:  # noqa: BLE001 - record and hand back, never crash the study
                status.state = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                status.stage, status.error, status.notebook = stage, short_error(exc), f"{stage}.ipynb"
                status.seconds = time.time() - start
                status.stages[stage] = round(time.time() - t0, 3)
                atomic_write_json(run_dir / "status.json", status.to_json())
                if isinstance(exc, KeyboardInterrupt):
                    raise
                return status
            status.stages[stage] = round(time.time() - t0, 3)
    status.state, status.seconds = "done", time.time() - start
    atomic_write_json(run_dir / "status.json", status.to_json())
    return status


def _set_threads(threads: Optional[int]) -> None:
    """Torch threads for the phase's kernel (it inherits this process's environment), and batch mode."""
    if threads:
        os.environ["GAPLAB_THREADS"] = str(threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ["GAPLAB_BATCH"] = "1"


def _run_stage(job: PhaseJob, kernel, stage: str, params: dict, run_dir: Path, work_root: str, first: bool) -> None:
    """One stage notebook with papermill in the phase's kernel (started, with the next phase's, before stage 01)."""
    from .phase_kernel import STAGE_MODULES, start_spare

    if first:
        if kernel.km is None:
            kernel.start(job.kernel, str(run_dir), kernel_config(), warm=STAGE_MODULES)
        if job.warm_next:
            start_spare(job.kernel, work_root, kernel_config(), warm=STAGE_MODULES)
    import papermill as pm  # the first time: while the kernel starts and imports what the stages use

    pm.execute_notebook(
        str(Path(job.notebooks) / f"{stage}.ipynb"),
        str(run_dir / f"{stage}.ipynb"),
        parameters=params,
        kernel_name=job.kernel,
        progress_bar=False,
        log_output=False,
        execution_timeout=job.timeout,
        cwd=str(run_dir),
        config=kernel_config(),
        engine_name=kernel.engine(),
        phase_kernel=kernel,
    )
