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

from typing import Any, Optional

ENGINE = "gaplab_phase_kernel"

#: what runs in the kernel before every notebook but the phase's first (silently: no output, no history)
RESET_CODE = """\
get_ipython().reset(new_session=True)
import gc as _gc, sys as _sys, warnings as _warnings
_filters = _warnings.filters[:]
_warnings.resetwarnings()  # forgets which warnings were already shown, as a new kernel would
_warnings.filters[:] = _filters
if "matplotlib.pyplot" in _sys.modules:
    _sys.modules["matplotlib.pyplot"].close("all")
_gc.collect()
del _gc, _sys, _warnings, _filters
"""


class KernelResetFailed(RuntimeError):
    """The phase's kernel could not be reset between two notebooks."""


class PhaseKernel:
    """The kernel (and its client) that a phase's notebooks share; ``with PhaseKernel() as k: ...``.

    Pass it to papermill as ``execute_notebook(..., engine_name=ENGINE, phase_kernel=k)``.
    """

    def __init__(self) -> None:
        self.km: Any = None
        self.kc: Any = None
        self.notebooks = 0  # notebooks run in this kernel so far

    def __enter__(self) -> "PhaseKernel":
        register_engine()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Shut the kernel down (gracefully, then killed after jupyter_client's wait) and stop the client."""
        km, kc, self.km, self.kc = self.km, self.kc, None, None
        if km is None:
            return
        from jupyter_core.utils import run_sync

        async def _shutdown() -> None:
            from jupyter_core.utils import ensure_async

            try:
                if await ensure_async(km.is_alive()):
                    await ensure_async(km.shutdown_kernel(now=False))
            except RuntimeError as exc:  # already gone
                if "No kernel is running" not in str(exc):
                    raise
            finally:
                await ensure_async(km.cleanup_resources())
                if kc is not None:
                    kc.stop_channels()

        run_sync(_shutdown)()


_registered = False


def register_engine() -> None:
    """Register :data:`ENGINE` with papermill (once per process)."""
    global _registered
    if _registered:
        return
    from papermill.engines import papermill_engines

    papermill_engines.register(ENGINE, _engine_class())
    _registered = True


def _engine_class():
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    class PhaseNotebookClient(PapermillNotebookClient):
        """papermill's client, resetting a reused kernel before the notebook's first cell."""

        reset_first = False

        def papermill_execute_cells(self):
            if self.reset_first:
                reply = self.wait_for_reply(self.kc.execute(RESET_CODE, silent=True, store_history=False))
                content = (reply or {}).get("content", {})
                if content.get("status") != "ok":
                    raise KernelResetFailed(f"resetting the phase's kernel failed: {content.get('ename')}: "
                                            f"{content.get('evalue')}")
            super().papermill_execute_cells()

    class PhaseKernelEngine(NBClientEngine):
        """papermill's nbclient engine with one kernel per :class:`PhaseKernel` instead of one per notebook."""

        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None,
                                     phase_kernel: Optional[PhaseKernel] = None, **kwargs):
            if phase_kernel is None:
                raise TypeError(f"the {ENGINE} engine needs phase_kernel=PhaseKernel()")
            kwargs = remove_args(["input_path", "timeout", "startup_timeout"], **kwargs)
            final = merge_kwargs(kwargs, timeout=execution_timeout, startup_timeout=start_timeout,
                                 kernel_name=kernel_name, log=logger, log_output=log_output,
                                 stdout_file=stdout_file, stderr_file=stderr_file)
            client = PhaseNotebookClient(nb_man, km=phase_kernel.km, **final)
            client.owns_km = False  # nbclient then leaves the kernel running when the notebook ends
            if phase_kernel.kc is not None:
                client.kc = phase_kernel.kc
                client.reset_first = True
            try:
                return client.execute()
            finally:
                phase_kernel.km, phase_kernel.kc = client.km, client.kc
                phase_kernel.notebooks += 1

    return PhaseKernelEngine
