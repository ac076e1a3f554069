"""``gaplab run --executor dask``: run a study's phases on a Dask cluster.

One phase is one Dask task.  On the worker it runs :func:`gaplab.pipeline.execute.execute_phase`
(stages 01–04 with papermill) in a worker-local temporary folder, packs the
finished (or failed) phase folder into a tar.gz and returns the bytes with the
status.  The client unpacks them into a fresh folder in the runner's staging
area and hands the status to the runner's ``on_done``, which moves the folder
into ``outputs/<study>/<phase>/`` (or ``_failed/<phase>``) atomically.  So the
cache, failure isolation, progress bar and ``05_compare`` are the runner's,
shared with the local executor, and no shared filesystem is needed for outputs.

What a worker must have (see ``docs/dask.md``):

- the same gaplab installed, to the byte (checked with :func:`gaplab.versioning.gaplab_version`:
  a mismatch fails the phase with a message, because the cache fingerprint includes the code);
- the data at the same absolute paths as on the client for ``files``, ``text``,
  ``jsonl`` and ``csv`` sources, and prompt/keyword files (checked before the
  phase starts); ``stdlib`` and ``generated`` sources need nothing;
- the GPT-2 ranks provisioned (``gaplab tokenizer fetch``) when a phase uses them.

The stage notebooks are read on the client and travel with each task.

Threads: each phase gets ``threads`` torch threads (``GAPLAB_THREADS`` and
``OMP_NUM_THREADS`` in the worker before the kernel starts).  By default that is
the CPUs the worker process may use divided by the phases that can run at once
on that host, so a host's cores are shared out, never oversubscribed.

GPUs: with ``gpu="auto"`` (the default, or ``GAPLAB_DASK_GPU=auto|1|0``), if any
worker declares ``resources={"GPU": n}`` every phase is submitted with
``resources={"GPU": 1}``, so each GPU runs one phase at a time.
"""

from __future__ import annotations

import io
import os
import queue
import shutil
import socket
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path, PurePosixPath
from typing import Any, Optional, Union

from ...files import atomic_write_bytes, atomic_write_json
from ...versioning import gaplab_version
from ..execute import short_error
from ..runs import PhaseStatus
from ..stages import STAGES
from . import register_executor

GPU_ENV = "GAPLAB_DASK_GPU"


GpuSetting = Union[bool, str, None]


class DaskExecutorError(RuntimeError):
    """The Dask executor cannot start (Dask missing, scheduler unreachable, bad setting)."""


class SchedulerLost(RuntimeError):
    """The client lost its scheduler while phases were still running."""


# --------------------------------------------------------------------------- packing
def pack_dir(folder: Union[str, Path]) -> bytes:
    """The contents of ``folder`` as tar.gz bytes (paths relative to ``folder``; regular files and folders)."""
    folder = Path(folder)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                continue
            tar.add(str(path), arcname=path.relative_to(folder).as_posix(), recursive=False)
    return buf.getvalue()


def _safe_member_path(name: str) -> PurePosixPath:
    rel = PurePosixPath(name)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise DaskExecutorError(f"phase archive member {name!r} points outside its folder; refusing to unpack")
    return rel


def unpack_into(data: bytes, dest: Union[str, Path]) -> Path:
    """Unpack tar.gz bytes made by :func:`pack_dir` into the (new or empty) folder ``dest``.

    Only regular files and folders are accepted; every file is written with
    :func:`gaplab.files.atomic_write_bytes`.  A member that is a link, a device or
    a path leaving ``dest`` raises :class:`DaskExecutorError`.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            rel = _safe_member_path(member.name)
            target = dest.joinpath(*rel.parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                fh = tar.extractfile(member)
                assert fh is not None
                atomic_write_bytes(target, fh.read())
            else:
                raise DaskExecutorError(f"phase archive member {member.name!r} is not a regular file or folder")
    return dest


# --------------------------------------------------------------------------- worker side
def read_notebooks(folder: Union[str, Path]) -> dict[str, bytes]:
    """The stage notebooks 01–04 from ``folder`` as bytes, keyed by stage name."""
    folder = Path(folder)
    out = {}
    for stage in STAGES:
        path = folder / f"{stage}.ipynb"
        if not path.exists():
            raise DaskExecutorError(f"stage notebook {path} is missing")
        out[stage] = path.read_bytes()
    return out


def missing_paths(params: dict[str, Any]) -> list[str]:
    """Paths a phase reads (``data.path``, ``sample.prompts``/``keyword_sets`` given as files) that do not exist here."""
    wanted = []
    data = params.get("data") or {}
    if isinstance(data.get("path"), str) and data["path"]:
        wanted.append(("data.path", data["path"]))
    sample = params.get("sample") or {}
    for key in ("prompts", "keyword_sets"):
        if isinstance(sample.get(key), str) and sample[key]:
            wanted.append((f"sample.{key}", sample[key]))
    return [f"{key} = {path}" for key, path in wanted if not Path(path).exists()]


def visible_cpus() -> int:
    """CPUs this process may run on (its affinity set, which SLURM and cgroups narrow), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def worker_facts() -> dict[str, Any]:
    """What the client asks each worker before submitting: gaplab version and usable CPUs."""
    return {"gaplab": gaplab_version(), "cpus": visible_cpus(), "hostname": socket.gethostname()}


def _worker_kernel(requested: str) -> str:
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        if requested in KernelSpecManager().find_kernel_specs():
            return requested
    except Exception:  # pragma: no cover - jupyter broken on the worker
        pass
    return "python3"


def _current_worker():
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


def run_phase_on_worker(
    job: dict[str, Any],
    notebooks: dict[str, bytes],
    threads: Optional[int] = None,
    threads_by_worker: Optional[dict[str, int]] = None,
    topic: Optional[str] = None,
    client_version: Optional[str] = None,
) -> dict[str, Any]:
    """The Dask task: run one phase in a worker-local temp folder; return status, archive and where it ran.

    ``job`` is a :class:`gaplab.pipeline.execute.PhaseJob` as a dict; ``notebooks`` the stage
    notebooks' bytes.  Returns ``{"status" (the status.json mapping), "archive" (tar.gz bytes or None),
    "worker", "hostname", "threads"}``.
    """
    worker = _current_worker()
    addr = worker.address if worker is not None else "local"
    info = {"worker": addr, "hostname": socket.gethostname()}
    refused = _refusal(job, addr, info["hostname"], client_version)
    if refused is not None:
        failed = {"phase": job["name"], "state": "failed", "stage": None, "error": refused, "seconds": 0.0}
        return {**info, "threads": None, "archive": None, "status": dict(failed, fingerprint=job.get("fingerprint"))}
    n = threads or (threads_by_worker or {}).get(addr)
    if not n:
        own = worker.state.nthreads if worker is not None else 1
        n = max(1, visible_cpus() // max(1, own))
    os.environ["GAPLAB_THREADS"] = str(n)
    os.environ["OMP_NUM_THREADS"] = str(n)  # the nanny sets 1 by default; the kernel inherits this
    local_root = Path(worker.local_directory) if worker is not None else Path(tempfile.gettempdir())
    tmp = Path(tempfile.mkdtemp(prefix=f"gaplab-{job['name']}-", dir=local_root))
    try:
        status = _execute_here(job, notebooks, tmp, n, worker, topic)
        status = replace(status, worker=addr, hostname=info["hostname"], threads=n)
        run_dir = Path(status.run_dir)
        atomic_write_json(run_dir / "status.json", status.to_json())
        return {**info, "threads": n, "status": status.to_json(), "archive": pack_dir(run_dir)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _refusal(job: dict[str, Any], addr: str, hostname: str, client_version: Optional[str]) -> Optional[str]:
    """Why this worker cannot run the phase (another gaplab, data paths it does not have), or None."""
    if client_version is not None and client_version != gaplab_version():
        return (
            f"worker {addr} has gaplab {gaplab_version()}, the client has {client_version}; "
            "install the same gaplab on every worker"
        )
    missing = missing_paths(job["params"])
    if missing:
        return (
            f"on worker {addr} ({hostname}) these paths do not exist: {'; '.join(missing)}. "
            "Workers need the data at the same absolute paths as the client (see docs/dask.md)"
        )
    return None


def _execute_here(job: dict[str, Any], notebooks: dict[str, bytes], tmp: Path, threads: int, worker, topic):
    """Write the notebooks under ``tmp`` and run the phase there, reporting each stage to the client's topic."""
    from ..execute import PhaseJob, execute_phase

    nbdir = tmp / "notebooks"
    for stage, data in notebooks.items():
        atomic_write_bytes(nbdir / f"{stage}.ipynb", data)
    work = tmp / "work"
    work.mkdir()
    kernel = _worker_kernel(job.get("kernel") or "python3")
    phase_job = replace(PhaseJob(**job), notebooks=str(nbdir), kernel=kernel, threads=threads)

    def report(phase: str, stage: str) -> None:
        if worker is not None and topic:
            worker.log_event(topic, [phase, stage, worker.address])

    return execute_phase(phase_job, str(work), report)


# --------------------------------------------------------------------------- client side
def decide_gpu(setting: GpuSetting, workers_info: dict[str, dict]) -> bool:
    """Whether to submit phases with ``resources={"GPU": 1}``.

    ``setting``: True/"1"/"yes" always, False/"0"/"no" never, None/"auto" when
    any worker declares a GPU resource.  ``workers_info`` is
    ``client.scheduler_info()["workers"]``.
    """
    if setting is None:
        setting = os.environ.get(GPU_ENV, "auto")
    if isinstance(setting, bool):
        return setting
    text = str(setting).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    if text == "auto":
        return any((w.get("resources") or {}).get("GPU", 0) > 0 for w in workers_info.values())
    raise DaskExecutorError(f"{GPU_ENV} / gpu={setting!r}: allowed: auto, 1 (always), 0 (never)")


def plan_threads(workers_info: dict[str, dict], cpus: dict[str, int], gpu: bool) -> dict[str, int]:
    """Torch threads per phase for each worker: its host's CPUs / phases that can run at once on that host.

    A worker runs ``nthreads`` phases at once, or ``min(nthreads, GPU)`` when
    phases are submitted with a GPU resource.  ``cpus[addr]`` is the CPUs that
    worker may use; workers without a CPU count are left out (they decide alone).
    """

    def slots(w: dict) -> int:
        n = int(w.get("nthreads") or 1)
        if gpu:
            n = min(n, int((w.get("resources") or {}).get("GPU", 0)))
        return max(0, n)

    per_host: dict[str, int] = {}
    for w in workers_info.values():
        per_host[w.get("host", "")] = per_host.get(w.get("host", ""), 0) + slots(w)
    return {
        addr: max(1, cpus[addr] // max(1, per_host[w.get("host", "")]))
        for addr, w in workers_info.items()
        if addr in cpus
    }


def lost_status(
    job_name: str, exc: BaseException, stage: Optional[str] = None, worker: Optional[str] = None
) -> PhaseStatus:
    """The status for a phase whose task raised on the Dask side (worker died, scheduler gone, import error).

    ``stage`` and ``worker``: the stage the phase had started and where, as its progress events said
    (a ``KilledWorker`` names its last worker too), so the failure says where the phase was lost.
    """
    lost = {
        "KilledWorker",
        "CommClosedError",
        "FutureCancelledError",
        "CancelledError",
        "TimeoutError",
        "StreamClosedError",
        "SchedulerLost",
    }
    if isinstance(exc, ModuleNotFoundError) and "gaplab" in str(exc):
        error = f"a worker cannot import gaplab ({exc}); install the same gaplab on every worker"
    elif type(exc).__name__ in lost or isinstance(exc, OSError):
        error = f"worker lost: {short_error(exc)}"
    else:
        error = f"the phase task raised on its worker: {short_error(exc)}"
    last = getattr(getattr(exc, "last_worker", None), "address", None)
    return PhaseStatus(job_name, "failed", stage=stage, error=error, seconds=0.0, worker=worker or last)


@register_executor
class DaskExecutor:
    """Phases as tasks on a Dask cluster: ``scheduler`` (``tcp://host:8786``) or a LocalCluster of ``workers``.

    ``threads``: torch threads per phase (default: per host, see :func:`plan_threads`).
    ``gpu``: submit with ``resources={"GPU": 1}`` — True, False or "auto" (default: ``$GAPLAB_DASK_GPU`` or auto).
    """

    name = "dask"
    runs_here = False  # the cluster sizes itself, and its machines' memory is theirs

    @classmethod
    def from_options(cls, workers: int, scheduler: Optional[str]) -> DaskExecutor:
        return cls(scheduler=scheduler, workers=workers)

    def __init__(
        self,
        scheduler: Optional[str] = None,
        workers: int = 1,
        threads: Optional[int] = None,
        gpu: GpuSetting = None,
        poll_s: float = 0.1,
        log: Optional[Callable[[str], None]] = None,
    ):
        self.scheduler = scheduler
        self.workers = max(1, int(workers or 1))
        self.threads = threads
        self.gpu = gpu
        self.poll_s = poll_s
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.last_run: dict[str, Any] = {}  # where each phase ran, for reports and tests

    # ------------------------------------------------------------------ connect
    def _connect(self):
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise DaskExecutorError(
                "--executor dask needs the 'distributed' package (pip install dask distributed)"
            ) from exc
        if self.scheduler:
            try:
                return Client(self.scheduler, timeout="20s"), None
            except (OSError, TimeoutError) as exc:
                raise DaskExecutorError(
                    f"--scheduler {self.scheduler}: cannot reach a Dask scheduler there ({exc}); "
                    "start one with `dask scheduler` (see docs/dask.md)"
                ) from exc
        cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True, dashboard_address=None)
        return Client(cluster), cluster

    def _survey(self, client) -> tuple[dict, dict]:
        workers_info = client.scheduler_info().get("workers", {})
        facts = client.run(worker_facts, on_error="return") if workers_info else {}
        good = {a: f for a, f in facts.items() if isinstance(f, dict)}
        for addr, f in facts.items():
            if not isinstance(f, dict):
                self.log(f"dask: worker {addr} cannot run gaplab ({f!r}); its phases will fail")
            elif f["gaplab"] != gaplab_version():
                self.log(
                    f"dask: worker {addr} has gaplab {f['gaplab']}, this client {gaplab_version()}; "
                    "its phases will fail"
                )
        return workers_info, good

    # ------------------------------------------------------------------ run
    def run(self, jobs: list, work_root: Path, on_stage, on_done, keep_going: bool) -> None:
        """Run ``jobs`` (:class:`gaplab.pipeline.execute.PhaseJob`) on the cluster; same contract as ``LocalExecutor.run``."""
        work_root = Path(work_root)
        client, cluster = self._connect()
        futures: dict[Any, Any] = {}
        try:
            workers_info, facts = self._survey(client)
            use_gpu = decide_gpu(self.gpu, workers_info)
            threads_by_worker = plan_threads(workers_info, {a: f["cpus"] for a, f in facts.items()}, use_gpu)
            where = f"scheduler {self.scheduler}" if self.scheduler else "a local cluster"
            self.log(
                f"dask: {where}, {len(workers_info)} worker(s), "
                f"{sum(int(w.get('nthreads') or 1) for w in workers_info.values())} phase slot(s)"
                f"{', one phase per GPU' if use_gpu else ''}"
            )
            if not workers_info:
                self.log("dask: no workers yet; phases start when workers connect")

            events: queue.Queue[tuple] = queue.Queue()
            topic = f"gaplab-progress-{uuid.uuid4().hex}"
            client.subscribe_topic(topic, lambda ev: events.put(tuple(ev[1])))

            notebooks_cache: dict[str, dict[str, bytes]] = {}
            for job in jobs:
                if job.notebooks not in notebooks_cache:
                    notebooks_cache[job.notebooks] = read_notebooks(job.notebooks)
                nbs = notebooks_cache[job.notebooks]
                fut = client.submit(
                    run_phase_on_worker,
                    asdict(job),
                    nbs,
                    self.threads,
                    threads_by_worker,
                    topic,
                    gaplab_version(),
                    key=f"gaplab-{job.study}-{job.name}-{uuid.uuid4().hex[:8]}",
                    pure=False,
                    resources={"GPU": 1} if use_gpu else None,
                )
                futures[fut] = job
            self._collect(client, futures, work_root, events, on_stage, on_done, keep_going)
            try:
                client.unsubscribe_topic(topic)
            except Exception:  # pragma: no cover - closing anyway
                pass
        except KeyboardInterrupt:
            if futures:
                client.cancel(list(futures))
            raise
        finally:
            client.close()
            if cluster is not None:
                cluster.close()

    def _collect(
        self, client, futures: dict, work_root: Path, events: queue.Queue, on_stage, on_done, keep_going: bool
    ) -> None:
        pending = set(futures)
        finished_phases: set[str] = set()
        where: dict[str, tuple] = {}  # phase -> (stage, worker) of its latest progress event

        def drain() -> None:
            while True:
                try:
                    phase, stage, *addr = events.get_nowait()
                except queue.Empty:
                    return
                if phase not in finished_phases:  # a late event after the result would overrun the bar
                    where[phase] = (stage, addr[0] if addr else None)
                    on_stage(phase, stage)

        while pending:
            done = [f for f in pending if f.done()]
            gone = not done and client.status in ("closed", "closing")
            if gone:
                done = list(pending)
            elif not done:
                drain()
                time.sleep(self.poll_s)
                continue
            drain()
            for fut in done:
                pending.discard(fut)
                job = futures[fut]
                stage, addr = where.get(job.name, (None, None))
                status = (
                    lost_status(job.name, SchedulerLost("the connection to the scheduler closed"), stage, addr)
                    if gone
                    else self._status_of(fut, job, work_root, stage, addr)
                )
                finished_phases.add(job.name)
                fut.release()
                ok = on_done(job, status)
                if not ok and not keep_going and pending:
                    client.cancel(list(pending))
                    pending.clear()
        drain()

    def _status_of(
        self, fut, job, work_root: Path, stage: Optional[str] = None, addr: Optional[str] = None
    ) -> PhaseStatus:
        try:
            result = fut.result()
        except Exception as exc:  # KilledWorker, CommClosedError, cancelled, unpickling errors
            return lost_status(job.name, exc, stage, addr)
        status = PhaseStatus.from_json(result["status"])
        status.worker = status.worker or result.get("worker")
        self.last_run[job.name] = {k: result.get(k) for k in ("worker", "hostname", "threads")}
        if result.get("archive") is None:
            return replace(status, run_dir=None)
        dest = Path(tempfile.mkdtemp(prefix=f"{job.name}-", dir=work_root))
        try:
            unpack_into(result["archive"], dest)
        except (DaskExecutorError, tarfile.TarError, OSError) as exc:
            shutil.rmtree(dest, ignore_errors=True)
            error = f"cannot unpack the phase folder from {result.get('worker')}: {exc}"
            return PhaseStatus(job.name, "failed", stage=status.stage, seconds=0.0, error=error)
        return replace(status, run_dir=str(dest))
