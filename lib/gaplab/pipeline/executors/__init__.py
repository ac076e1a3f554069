"""executors: where a study's phases run, registered by name (as papermill registers its engines).

An executor is a class with a ``name``, a ``from_options(workers, scheduler)`` constructor and
``run(jobs, work_root, on_stage, on_done, keep_going)``: it calls :func:`gaplab.pipeline.execute.execute_phase`
for each :class:`~gaplab.pipeline.execute.PhaseJob` (in a process, on a cluster), calls ``on_stage(phase, stage)``
as each stage starts and hands each phase's :class:`~gaplab.pipeline.execute.PhaseStatus` to ``on_done``, which
places its folder and answers whether the phase finished.  ``runs_here`` says whether its phases run on this
machine (then the runner checks their memory against this machine's and picks the worker count).

Adding one is one step: a module in this folder with the class, decorated ``@register_executor``.  Every
module here is imported when the registry is first read, so ``gaplab run --executor NAME`` offers it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Optional, Protocol

if TYPE_CHECKING:
    from ..execute import PhaseJob
    from ..runs import PhaseStatus


class Executor(Protocol):
    """What the runner needs of an executor."""

    name: ClassVar[str]
    runs_here: ClassVar[bool]

    @classmethod
    def from_options(cls, workers: int, scheduler: Optional[str]) -> Executor: ...

    def run(
        self,
        jobs: list[PhaseJob],
        work_root: Path,
        on_stage: Callable[[str, str], None],
        on_done: Callable[[PhaseJob, PhaseStatus], bool],
        keep_going: bool,
    ) -> None: ...


_REGISTRY: dict[str, type] = {}
_LOADED = False


def register_executor(cls: type) -> type:
    """Class decorator: make ``cls`` the executor called ``cls.name``."""
    _REGISTRY[cls.name] = cls
    return cls


def _load_modules() -> None:
    """Import every module of this package once, so each registers its executor."""
    global _LOADED
    if not _LOADED:
        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")
        _LOADED = True


def executor_names() -> tuple[str, ...]:
    """The registered executors' names, ``local`` first (the default)."""
    _load_modules()
    return tuple(sorted(_REGISTRY, key=lambda name: (name != "local", name)))


def executor_class(name: str) -> type:
    """The executor registered as ``name``; a ValueError naming the allowed ones otherwise."""
    _load_modules()
    if name not in _REGISTRY:
        raise ValueError(f"--executor {name!r}: allowed: {', '.join(executor_names())}")
    return _REGISTRY[name]


def make_executor(name: str, workers: int, scheduler: Optional[str]) -> Executor:
    """An executor by its registered name."""
    return executor_class(name).from_options(workers, scheduler)
