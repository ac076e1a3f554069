"""The one interface every log reader meets: :class:`RunLog` (what a reader returns), :class:`Reader`
(how it is recognised and read) and the registry that :func:`read_log` picks from by content.

A reader is one small module in this room that defines a :class:`Reader` subclass and calls
:func:`register` once; ``gaplab.logs`` imports every reader module, so importing it fills
:data:`READERS`.  Readers are tried in registration order (the generic CSV reader last); the first
whose :meth:`Reader.sniff` says yes reads the file.  Readers decide by what a file holds, never by its
name, and never open a pickle (``*.bin``, ``*.pt``, ``*.pth``, ``*.safetensors``): a run folder is read,
never executed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import pandas as pd

from gaplab.errors import DataError

PathLike = Union[str, Path]

#: the columns of :attr:`RunLog.history`, in order
HISTORY_COLUMNS = ("iter", "train_loss", "val_loss", "train_loss_se", "train_points", "epoch", "val_loss_se")
#: the columns of :attr:`RunLog.train_points`
TRAIN_POINT_COLUMNS = ("step", "loss", "epoch")
#: how many characters of a file's start a reader's :meth:`Reader.sniff` sees
HEAD_CHARS = 8192
#: files a reader never opens: pickles and weights (a run folder may hold a booby-trapped one)
NEVER_OPEN_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".safetensors", ".ckpt", ".npy", ".npz")


@dataclass
class RunLog:
    """One run's curves, as its log has them (what every reader returns).

    ``history`` has one row per eval: ``iter`` (the step, or the epoch when the log has no step),
    ``train_loss`` (NaN when not logged), ``val_loss``, ``train_loss_se`` (the spread of the train
    losses logged since the previous eval over the square root of their count; NaN with fewer than 2),
    ``train_points`` (how many train losses that level averages), ``epoch`` (NaN if unknown) and
    ``val_loss_se`` (the standard error of each eval when the log writes one, as gaplab's ``history.csv``
    or a CSV with a ``val_loss_se`` column does; else NaN).
    """

    path: str
    format: str
    history: pd.DataFrame
    x_unit: str
    val_key: str
    val_keys: list[str]
    notes: list[str]
    train_points: Optional[pd.DataFrame]
    checkpoints: dict[int, str] = field(default_factory=dict)
    best_checkpoint: Optional[str] = None
    #: the step (or epoch) of the first NaN/inf loss, where the run was cut; None when none
    stopped_at: Optional[float] = None


class Reader:
    """A log format: its registered ``name``, a one-line ``describes``, and how to recognise and read it."""

    name: str = ""
    #: whether the reader takes a folder (a run folder, a TensorBoard log dir) as well as a file
    reads_folders: bool = False
    #: what the format is, for the message that lists the formats gaplab reads
    describes: str = ""

    def sniff(self, path: Path, head: str) -> bool:
        """Whether ``path`` is this format, judged by its content (``head``: the file's first
        :data:`HEAD_CHARS` characters, ``""`` for a folder)."""
        raise NotImplementedError

    def read(self, path: PathLike, val_key: Optional[str] = None) -> RunLog:
        """The run's curves; ``val_key`` picks the eval set (default: ``eval_loss`` or the first)."""
        raise NotImplementedError


#: every registered reader by name, in the order they are tried
READERS: dict[str, Reader] = {}


def register(reader: Reader) -> Reader:
    """Add ``reader`` to :data:`READERS` under its name (a second reader with the same name is a bug)."""
    if not reader.name or reader.name in READERS:
        raise ValueError(f"a reader needs a new name, got {reader.name!r}")
    READERS[reader.name] = reader
    return reader


def file_head(path: Path, chars: int = HEAD_CHARS) -> str:
    """The first ``chars`` characters of ``path`` as text ("" for a folder or a file that never opens)."""
    if path.is_dir() or path.suffix.lower() in NEVER_OPEN_SUFFIXES:
        return ""
    with open(path, "rb") as fh:
        raw = fh.read(chars)
    return raw.decode("utf-8", errors="replace")


def formats_sentence() -> str:
    """The formats gaplab reads, for an error message."""
    return "; ".join(f"{r.name} ({r.describes})" for r in READERS.values())


def _first_line(head: str, limit: int = 60) -> str:
    line = next((ln for ln in head.splitlines() if ln.strip()), "")
    if any(ord(ch) < 9 or ch == "\ufffd" for ch in line):
        return "binary data"
    line = line.strip()
    return repr(line if len(line) <= limit else line[: limit - 3] + "...")


def read_log(path: PathLike, format: Optional[str] = None, val_key: Optional[str] = None) -> RunLog:
    """Read one training log (a file or a run folder) with the reader its content calls for.

    ``format`` forces a reader by name.  (Importing this module imports the package ``gaplab.logs`` first,
    which registers every reader.)  Raises :class:`~gaplab.errors.DataError` with one sentence
    for a missing path, an unknown format, a file no reader recognises, or a log with no val loss.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; give a training log or a run folder")
    if path.suffix.lower() in NEVER_OPEN_SUFFIXES:
        raise DataError(
            f"{path}: a {path.suffix} file is a pickle or weights, which gaplab never opens; give the log beside it "
            "(trainer_state.json, metrics.csv, the event files, the console output) or the run folder"
        )
    if format is not None:
        if format not in READERS:
            raise DataError(f"--format {format!r} is not a log format gaplab reads; choose one of {', '.join(READERS)}")
        return _read(READERS[format], path, val_key)
    head = file_head(path)
    for reader in READERS.values():
        if reader.sniff(path, head):
            return _read(reader, path, val_key)
    if path.is_dir():
        return _read_the_log_in(path, val_key)
    what = f"it starts {_first_line(head)}"
    if not path.is_dir() and not head.strip():
        what = "it is empty"
    raise DataError(f"{path}: no log reader recognises this file ({what}); gaplab reads: {formats_sentence()}")


#: at most this many files of a folder are looked at for the one log it holds
MAX_FOLDER_FILES = 200


def _read_the_log_in(folder: Path, val_key: Optional[str]) -> RunLog:
    """A folder that no folder reader takes (Lightning's ``version_0/`` with its ``metrics.csv``): the one
    log file directly inside it, read with a note; none or several is one sentence."""
    found = []
    for file in sorted(folder.iterdir())[:MAX_FOLDER_FILES]:
        if not file.is_file() or file.suffix.lower() in NEVER_OPEN_SUFFIXES:
            continue
        head = file_head(file)
        reader = next((r for r in READERS.values() if r.sniff(file, head)), None)
        if reader is not None:
            found.append((file, reader))
    if len(found) == 1:
        file, reader = found[0]
        run = _read(reader, file, val_key)
        run.notes.insert(0, f"read {file.name}, the one training log in {folder}")
        return run
    if found:
        names = ", ".join(f"{f.name} ({r.name})" for f, r in found)
        raise DataError(f"{folder}: holds {len(found)} training logs ({names}); give the one to analyse")
    raise DataError(
        f"{folder}: no log reader recognises this folder (a folder with no log gaplab knows); gaplab reads: {formats_sentence()}"
    )


def _read(reader: Reader, path: Path, val_key: Optional[str]) -> RunLog:
    """``reader.read``, with any failure to read the file said as one sentence (never a traceback)."""
    if path.is_dir() and not reader.reads_folders:
        raise DataError(f"{path}: is a folder; the {reader.name} reader reads one file ({reader.describes})")
    try:
        return reader.read(path, val_key=val_key)
    except DataError:
        raise
    except (OSError, UnicodeError, ValueError, csv.Error, KeyError, TypeError) as err:
        raise DataError(f"{path}: does not read as {reader.name} ({reader.describes}): {err}") from None
