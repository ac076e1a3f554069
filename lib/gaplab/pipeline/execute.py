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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..files import atomic_write_json, atomic_write_yaml
from ..versioning import gaplab_version
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


@dataclass
class PhaseResult:
    name: str
    state: str  # done | failed | cached | interrupted
    seconds: float = 0.0
    stage: Optional[str] = None
    error: Optional[str] = None
    notebook: Optional[str] = None
    extra: dict[str, Any] = field(default_factory=dict)


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


def execute_phase(job: PhaseJob, work_root: str, report: Optional[Callable[[str, str], None]] = None) -> dict:
    """Run stages 01–04 of one phase in a fresh folder under ``work_root``; return a status dict.

    The folder is left for the caller to move into place (this is what a Dask
    worker runs too).  ``report(phase, stage)`` is called as each stage starts.
    """
    from .phase_kernel import STAGE_MODULES, PhaseKernel, start_spare, take_spare

    if job.threads:
        os.environ["GAPLAB_THREADS"] = str(job.threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(job.threads))
    os.environ["GAPLAB_BATCH"] = "1"
    run_dir = Path(tempfile.mkdtemp(prefix=f"{job.name}-", dir=work_root))
    params = dict(job.params, run_dir=str(run_dir))
    atomic_write_yaml(run_dir / "params.yaml", params)
    start = time.time()
    status: dict[str, Any] = {
        "phase": job.name,
        "fingerprint": job.fingerprint,
        "state": "running",
        "gaplab": gaplab_version(),
        "run_dir": str(run_dir),
        "stages": {},
    }
    with take_spare(job.kernel) or PhaseKernel() as kernel:
        kernel.cwd = str(run_dir)
        for i, stage in enumerate(STAGES):
            if report:
                report(job.name, stage)
            out_nb = run_dir / f"{stage}.ipynb"
            t0 = time.time()
            try:
                if i == 0:
                    if kernel.km is None:
                        kernel.start(job.kernel, str(run_dir), kernel_config(), warm=STAGE_MODULES)
                    if job.warm_next:
                        start_spare(job.kernel, work_root, kernel_config(), warm=STAGE_MODULES)
                import papermill as pm  # the first time: while the kernel starts and imports what the stages use

                pm.execute_notebook(
                    str(Path(job.notebooks) / f"{stage}.ipynb"),
                    str(out_nb),
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
            except BaseException as exc:  # noqa: BLE001 - record and hand back, never crash the study
                status.update(
                    state="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                    stage=stage,
                    error=short_error(exc),
                    notebook=f"{stage}.ipynb",
                    seconds=time.time() - start,
                )
                status["stages"][stage] = round(time.time() - t0, 3)
                atomic_write_json(run_dir / "status.json", status)
                if isinstance(exc, KeyboardInterrupt):
                    raise
                return status
            status["stages"][stage] = round(time.time() - t0, 3)
    status.update(state="done", seconds=time.time() - start)
    atomic_write_json(run_dir / "status.json", status)
    return status
