"""One gaplab command at a time per study folder: a lock on ``outputs/<study>/.gaplab.lock`` (filelock).

``gaplab run`` and ``gaplab train`` hold it while they write into ``outputs/<study>/``; a second command
on the same folder either waits (``--wait``) or stops at once with one sentence naming who holds it and
since when.  The lock is an OS file lock (``flock``), so a killed holder (``kill -9``, a crash, a lost
machine) leaves no lock behind: the next command takes it and says that the last holder was gone.
Who holds it is written beside it, in ``.gaplab.lock.json``, for those messages.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Optional

from filelock import FileLock, Timeout

from ..errors import StudyLocked
from ..files import atomic_write_json

LOCK_NAME = ".gaplab.lock"
HOLDER_NAME = ".gaplab.lock.json"


def _holder(sdir: Path) -> Optional[dict]:
    try:
        info = json.loads((sdir / HOLDER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def describe(info: Optional[dict]) -> str:
    """``gaplab run (pid 123 on host, since 2026-05-01 12:00:03)``, or ``another gaplab command``."""
    if not info:
        return "another gaplab command"
    return (
        f"{info.get('command', 'gaplab')} (pid {info.get('pid', '?')} on {info.get('host', '?')}, "
        f"since {info.get('since', '?')})"
    )


@contextlib.contextmanager
def study_lock(
    sdir: Path, command: str, wait: bool = False, say: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr)
) -> Iterator[None]:
    """Hold the lock of the study folder ``sdir`` for the block.

    Without ``wait`` a held lock raises :class:`gaplab.errors.StudyLocked` at once; with it, ``say`` tells
    whom we wait for and the block starts when they finish.  A holder record left by a killed command is
    reported (via ``say``) and replaced.
    """
    sdir = Path(sdir)
    sdir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(sdir / LOCK_NAME), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        info = _holder(sdir)
        if not wait:
            raise StudyLocked(
                f"{sdir} is in use by {describe(info)}; wait for it to finish, or pass --wait to start when it does"
            ) from None
        say(f"waiting for {describe(info)} to finish with {sdir}")
        lock.acquire()
    try:
        left = _holder(sdir)
        if left is not None:  # its holder released the OS lock without removing the record: it was killed
            say(f"note: the last lock on {sdir} was left by {describe(left)}, which is gone (killed?); taking it over")
        atomic_write_json(
            sdir / HOLDER_NAME,
            {
                "command": command,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": datetime.now().isoformat(timespec="seconds"),
                "started": time.time(),
            },
        )
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                (sdir / HOLDER_NAME).unlink()
    finally:
        lock.release()
