"""One Jupyter kernel for the stage notebooks of a phase: papermill runs them one after another in it.

Starting a kernel and importing torch, pandas and matplotlib costs seconds per notebook, more than most
stages of a small phase compute.  :class:`PhaseKernel` lets papermill start one kernel for the phase's first
notebook and hands that kernel to papermill for each later one (through a papermill engine,
:data:`ENGINE`).  Before each later notebook the kernel is made to look fresh:
IPython's ``reset(new_session=True)`` drops every variable, the In/Out history and the execution count
(so each executed notebook counts its cells from 1), warnings are shown again as in a new kernel, pyplot's
figures are closed and memory is collected.  Imported modules stay: that is the time saved.

What does not change: stages still talk only through files in the phase folder, papermill still injects
the resolved parameters into each notebook and writes each executed notebook (the record of the run), and
any notebook still runs alone in a kernel of its own (by hand in JupyterLab, or ``papermill`` on one
notebook with the phase's ``params.yaml``).  The kernel is shut down when the phase ends, fails or is
interrupted (:meth:`PhaseKernel.close`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, Optional

ENGINE = "gaplab_phase_kernel"

#: what runs in the kernel before every notebook but the phase's first (silently: no output, no history);
#: ``{cwd!r}`` is the notebook's folder (a kernel started ahead, for the next phase, starts elsewhere)
RESET_CODE = """\
get_ipython().reset(new_session=True)
import gc as _gc, os as _os, sys as _sys, warnings as _warnings
_os.chdir({cwd!r})
_filters = _warnings.filters[:]
_warnings.resetwarnings()  # forgets which warnings were already shown, as a new kernel would
_warnings.filters[:] = _filters
if "matplotlib.pyplot" in _sys.modules:
    _sys.modules["matplotlib.pyplot"].close("all")
_gc.collect()
del _gc, _os, _sys, _warnings, _filters
"""


class KernelResetFailed(RuntimeError):
    """The phase's kernel could not be reset between two notebooks."""


#: what the stage notebooks import (``start(warm=...)``): the kernel can import them while other work goes on
STAGE_MODULES = (
    "gaplab.pipeline.stages",
    "gaplab.ui.show",
    "gaplab.report.plots",
    "gaplab.datareport.build",
    "gaplab.train.loop",
)
COMPARE_MODULES = (
    "gaplab.pipeline.stages",
    "gaplab.ui.show",
    "gaplab.report.study_plots",
    "gaplab.report.notes",
    "gaplab.report.html_report",
)


def warm_code(modules: Sequence[str]) -> str:
    """Kernel code that imports ``modules`` and binds no name (a module that fails to import is left for
    the notebook to report)."""
    return (
        "import importlib as _importlib\n"
        f"for _name in {tuple(modules)!r}:\n"
        "    try:\n        _importlib.import_module(_name)\n    except Exception:\n        pass\n"
        "del _importlib, _name\n"
    )


class PhaseKernel:
    """The kernel (and its client) that a phase's notebooks share; ``with PhaseKernel() as k: ...``.

    Pass it to papermill as ``execute_notebook(..., engine_name=k.engine(), phase_kernel=k)``.  Without
    :meth:`start`, papermill starts the kernel for the first notebook.
    """

    def __init__(self) -> None:
        self.km: Any = None
        self.kc: Any = None
        self.cwd: Optional[str] = None  # where the next notebook runs (the reset moves the kernel there)
        self.notebooks = 0  # notebooks run in this kernel so far
        self.key: Any = None  # what a kernel started ahead must match to be used (see :func:`take_spare`)

    def __enter__(self) -> PhaseKernel:
        return self

    def start(self, kernel_name: str, cwd: str, config: Any = None, warm: Sequence[str] = ()) -> PhaseKernel:
        """Start the kernel now, in ``cwd``, and have it import ``warm`` in the background; returns at once.

        The kernel starts and imports while this process goes on (importing papermill, running other
        phases); the first notebook's reset waits for it.  Started as nbclient starts a notebook's kernel.
        """
        _skip_iri_grammar()
        reap()
        _register_exit()
        import nbformat
        from nbclient import NotebookClient

        client = NotebookClient(
            nbformat.v4.new_notebook(), kernel_name=kernel_name, **({"config": config} if config is not None else {})
        )
        client.km = client.create_kernel_manager()
        client.start_new_kernel(cwd=cwd)
        self.cwd = cwd
        self.km = client.km
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.allow_stdin = False
        if warm:
            self.kc.execute(warm_code(warm), silent=True, store_history=False)
        return self

    def alive(self) -> bool:
        """Whether the kernel's process is running."""
        if self.km is None:
            return False
        from jupyter_core.utils import ensure_async, run_sync

        async def _alive() -> bool:
            return bool(await ensure_async(self.km.is_alive()))

        return run_sync(_alive)()

    def engine(self) -> str:
        """The papermill engine's name, registered."""
        register_engine()
        return ENGINE

    def close(self, wait: bool = True) -> None:
        """Shut the kernel down (gracefully, killed after jupyter_client's wait) and stop the client.

        ``wait=False`` only asks the kernel to shut down and returns: a kernel that has imported torch takes
        about a second to exit, and nothing needs to wait for that; :func:`reap` (called before the next
        kernel starts and when the process exits) finishes the shutdown.
        """
        km, kc, self.km, self.kc = self.km, self.kc, None, None
        if km is None:
            return
        if kc is not None:
            kc.stop_channels()
        if not wait:
            try:  # what jupyter_client's shutdown_kernel does first (the kernel is idle: no interrupt needed)
                km.shutting_down = True
                km.stop_restarter()
                _run(km.request_shutdown)
                _closing.append(km)
                return
            except Exception:  # noqa: BLE001 - shut it down the long way
                pass
        _run(_shutdown, km, False)

    def __exit__(self, exc_type, *exc) -> None:
        self.close(wait=exc_type is None)


def _run(fn, *args):
    """Call a jupyter_client method (or coroutine function) from synchronous code and return its result."""
    from jupyter_core.utils import ensure_async, run_sync

    async def _call():
        return await ensure_async(fn(*args))

    return run_sync(_call)()


async def _shutdown(km, asked: bool) -> None:
    """Shut ``km``'s kernel down (``asked``: the shutdown request was sent already) and free its resources."""
    from jupyter_core.utils import ensure_async

    try:
        if asked:
            await ensure_async(km.finish_shutdown())
        elif await ensure_async(km.is_alive()):
            await ensure_async(km.shutdown_kernel(now=False))
    except RuntimeError as exc:  # already gone
        if "No kernel is running" not in str(exc):
            raise
    finally:
        await ensure_async(km.cleanup_resources())


_closing: list = []  # kernels asked to shut down (close(wait=False)), not yet waited for


def reap() -> None:
    """Finish the shutdown of the kernels :meth:`PhaseKernel.close` asked to shut down without waiting."""
    while _closing:
        km = _closing.pop()
        try:
            _run(_shutdown, km, True)
        except Exception:  # noqa: BLE001 - a kernel that will not go is killed
            try:
                _run(km.kill_kernel)
            except Exception:  # noqa: BLE001
                pass


def _at_exit() -> None:
    close_spare()
    reap()


_exit_registered = False


def _register_exit() -> None:
    global _exit_registered
    if not _exit_registered:
        import atexit

        atexit.register(_at_exit)
        _exit_registered = True


# --------------------------------------------------------------------------- a kernel started ahead
_spare: Optional[PhaseKernel] = None


def _env_key(kernel_name: str) -> tuple:
    """A kernel started ahead serves a phase only if it was started the same way (same kernel and settings)."""
    return (kernel_name,) + tuple(
        os.environ.get(k)
        for k in ("GAPLAB_THREADS", "OMP_NUM_THREADS", "GAPLAB_BATCH", "PYTHONPATH", "GAPLAB_NOTEBOOKS")
    )


def start_spare(kernel_name: str, cwd: str, config: Any = None, warm: Sequence[str] = ()) -> None:
    """Start the next phase's kernel now, in the background, so it is ready when that phase begins.

    A worker that runs several phases one after another calls this as a phase begins: the next kernel
    starts and imports while this phase computes.  Each phase still gets a kernel of its own.
    """
    global _spare
    if _spare is not None:
        return
    kernel = PhaseKernel()
    try:
        kernel.start(kernel_name, cwd, config, warm)
    except Exception:  # noqa: BLE001 - the next phase starts its own kernel
        kernel.close()
        return
    kernel.key = _env_key(kernel_name)
    _spare = kernel


def take_spare(kernel_name: str) -> Optional[PhaseKernel]:
    """The kernel started ahead by :func:`start_spare`, if it is alive and started the way this phase needs."""
    global _spare
    kernel, _spare = _spare, None
    if kernel is None:
        return None
    try:
        alive = kernel.key == _env_key(kernel_name) and kernel.alive()
    except Exception:  # noqa: BLE001
        alive = False
    if not alive:
        kernel.close()
        return None
    return kernel


def close_spare() -> None:
    """Shut down a kernel started ahead that no phase took (the worker's last phase is done)."""
    global _spare
    kernel, _spare = _spare, None
    if kernel is not None:
        kernel.close()


_registered = False


def register_engine() -> None:
    """Register :data:`ENGINE` with papermill (once per process)."""
    global _registered
    if _registered:
        return
    _skip_iri_grammar()
    from papermill.engines import papermill_engines

    papermill_engines.register(ENGINE, _engine_class())
    _registered = True


def _cancel_pending() -> None:
    """Cancel what an interrupted notebook left running on this thread's event loop (nbclient's cell task),
    so that it does not finish later, once the kernel is gone, with an error nobody reads."""
    import asyncio

    from jupyter_core.utils import ensure_event_loop

    loop = ensure_event_loop()
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending and not loop.is_running():
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


def _skip_iri_grammar() -> None:
    """Keep jsonschema (imported with papermill) from building rfc3987-syntax's IRI grammar at import.

    jsonschema registers a checker for the ``iri`` string format when ``rfc3987_syntax`` is installed, and
    that package compiles a Lark grammar as it is imported: over a second in every process that imports
    papermill.  Notebook validation (nbformat's schema) has no ``iri`` field, so nothing here needs it.
    Only done while jsonschema is not yet imported, in the processes that run notebooks.
    """
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # None: "import rfc3987_syntax" raises ImportError


def _client_class():
    """papermill's notebook client, resetting a reused kernel before the notebook's first cell."""
    from papermill.clientwrap import PapermillNotebookClient

    class PhaseNotebookClient(PapermillNotebookClient):
        """papermill's client, resetting a reused kernel before the notebook's first cell."""

        reset_first = False

        def papermill_execute_cells(self):
            if self.reset_first:
                code = RESET_CODE.format(cwd=self.phase_kernel.cwd or os.getcwd())
                reply = self.wait_for_reply(self.kc.execute(code, silent=True, store_history=False))
                content = (reply or {}).get("content", {})
                if content.get("status") != "ok":
                    raise KernelResetFailed(
                        f"resetting the phase's kernel failed: {content.get('ename')}: {content.get('evalue')}"
                    )
            super().papermill_execute_cells()

    return PhaseNotebookClient


def _execute_in(client, phase_kernel: PhaseKernel):
    """Run the notebook in the phase's kernel (reset first when it ran a notebook before); the kernel stays."""
    client.phase_kernel = phase_kernel
    client.owns_km = False  # nbclient then leaves the kernel running when the notebook ends
    if phase_kernel.kc is not None:
        client.kc = phase_kernel.kc
        client.reset_first = True
    try:
        return client.execute()
    except BaseException:  # interrupted, timed out, kernel died: stop it as papermill's own client would
        try:
            _cancel_pending()
            client._cleanup_kernel()
        except Exception:  # noqa: BLE001 - PhaseKernel.close() tries again
            pass
        raise
    finally:
        phase_kernel.km, phase_kernel.kc = client.km, client.kc
        phase_kernel.notebooks += 1


def _engine_class():
    from papermill.engines import NBClientEngine
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    client_class = _client_class()

    class PhaseKernelEngine(NBClientEngine):
        """papermill's nbclient engine with one kernel per :class:`PhaseKernel` instead of one per notebook."""

        @classmethod
        def execute_managed_notebook(
            cls,
            nb_man,
            kernel_name,
            log_output=False,
            stdout_file=None,
            stderr_file=None,
            start_timeout=60,
            execution_timeout=None,
            phase_kernel: Optional[PhaseKernel] = None,
            **kwargs,
        ):
            if phase_kernel is None:
                raise TypeError(f"the {ENGINE} engine needs phase_kernel=PhaseKernel()")
            kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
            final = merge_kwargs(
                kwargs,
                timeout=execution_timeout,
                startup_timeout=start_timeout,
                kernel_name=kernel_name,
                log=logger,
                log_output=log_output,
                stdout_file=stdout_file,
                stderr_file=stderr_file,
            )
            return _execute_in(client_class(nb_man, km=phase_kernel.km, **final), phase_kernel)

    return PhaseKernelEngine
