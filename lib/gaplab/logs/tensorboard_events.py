"""TensorBoard event files (``events.out.tfevents.*``), one file or a folder of runs: every scalar point.

The records are framed as TFRecords (length, its CRC, the bytes, their CRC) and each one is an ``Event``
protocol buffer, parsed with TensorBoard's own ``event_pb2`` (``EventAccumulator``'s default would keep a
sample of 10,000 points a tag; gaplab keeps them all).  The framing is walked here rather than with
``tensorboard.backend.event_processing.event_file_loader``, whose pure-Python record reader (no TensorFlow
installed) takes 15 s for a million points; the bytes are the same.  Scalars are ``simple_value`` (PyTorch's
``SummaryWriter``, TF1) or a one-element float tensor (``tf.summary.scalar`` in TF2).

Runs are the folders holding event files: Keras writes ``train/`` and ``validation/`` with the tag
``epoch_loss`` in each, so a key is ``<run>/<tag>`` when there are several runs.  A run resumed into a
new event file writes steps again: the later value wins, with a note.
"""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path

import numpy as np

from gaplab.errors import DataError
from gaplab.logs import names
from gaplab.logs.base import NEVER_OPEN_SUFFIXES, Reader, register
from gaplab.logs.shape import LogShape, Point, build_run_log, choose_val_key

MAGIC = b"brain.Event:"
#: how many files a folder's sniff and read look at, at most
MAX_FILES = 2000


def _is_event_file(path: Path) -> bool:
    if not path.is_file() or path.suffix.lower() in NEVER_OPEN_SUFFIXES:
        return False
    with open(path, "rb") as fh:
        return MAGIC in fh.read(64)


def event_files(path: Path) -> list[Path]:
    """The event files at ``path`` (a file, or every one under a folder, in name order per folder)."""
    if path.is_file():
        return [path] if _is_event_file(path) else []
    found = []
    for candidate in sorted(path.rglob("*tfevents*"))[:MAX_FILES]:
        if _is_event_file(candidate):
            found.append(candidate)
    return found


def _records(path: Path):
    """Each record's bytes, walking the TFRecord framing (a torn last record, from a killed run, is left)."""
    data = path.read_bytes()
    offset, end, unpack = 0, len(data), struct.unpack_from
    while offset + 12 <= end:
        (length,) = unpack("<Q", data, offset)
        start = offset + 12
        if start + length + 4 > end:
            break
        yield data[start : start + length]
        offset = start + length + 4


#: a PyTorch/TF1 scalar event as SummaryWriter.add_scalar writes it: wall_time (field 1), step (field 2,
#: absent when 0), summary (field 5) with one value: tag (field 1) and simple_value (field 2, float32)
SIMPLE_SCALAR = re.compile(
    rb"\x09.{8}(?:\x10([\x80-\xff]{0,9}[\x00-\x7f]))?\x2a[\x00-\x7f]\x0a[\x00-\x7f]\x0a([\x01-\x7f])"
    rb"([\x20-\x7e]{1,127}?)\x15(.{4})",
    re.S,
)


def _varint(raw: bytes) -> int:
    value = 0
    for shift, byte in enumerate(raw):
        value |= (byte & 0x7F) << (7 * shift)
    return value


def fast_scalars(path: Path) -> dict[str, list[tuple[int, float]]]:
    """The ``simple_value`` scalars of an event file, found by one pass of :data:`SIMPLE_SCALAR` over its
    bytes (a million points in about a second); a match whose tag length disagrees is dropped."""
    data = path.read_bytes()
    found = SIMPLE_SCALAR.findall(data)
    values = np.frombuffer(b"".join(f[3] for f in found), "<f4").astype(float)
    out: dict[str, list[tuple[int, float]]] = {}
    for (step, size, tag, _), number in zip(found, values):
        if size[0] == len(tag):
            out.setdefault(tag.decode("ascii"), []).append((_varint(step) if step else 0, float(number)))
    return out


def scalars(path: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value), ...] in the order the file wrote them: the fast path when the file's losses
    are ``simple_value`` scalars, else every record parsed with TensorBoard's ``event_pb2``."""
    fast = fast_scalars(path)
    if any(names.loss_role(tag) == "val" for tag in fast):
        return fast
    return proto_scalars(path)


def proto_scalars(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Every record parsed with ``event_pb2``: ``simple_value`` or a one-element float tensor (TF2)."""
    from tensorboard.compat.proto import event_pb2

    parse, out = event_pb2.Event.FromString, {}
    for record in _records(path):
        try:
            event = parse(record)
        except Exception as err:  # a damaged record: protobuf's DecodeError
            raise DataError(f"{path}: a record does not parse as a TensorBoard event ({err})") from None
        for value in event.summary.value:
            kind = value.WhichOneof("value")
            if kind == "simple_value":
                number = value.simple_value
            elif kind == "tensor" and value.tensor.dtype == 1 and len(value.tensor.float_val) == 1:
                number = value.tensor.float_val[0]
            elif kind == "tensor" and value.tensor.dtype == 1 and len(value.tensor.tensor_content) == 4:
                number = float(np.frombuffer(value.tensor.tensor_content, "<f4")[0])
            else:
                continue
            out.setdefault(value.tag, []).append((event.step, number))
    return out


def _collect(files: list[Path], root: Path, shape: LogShape) -> dict[str, dict[int, float]]:
    runs = {f.parent for f in files}
    series: dict[str, dict[int, float]] = {}
    for file in files:
        run = file.parent.relative_to(root).as_posix() if root.is_dir() and len(runs) > 1 else ""
        for tag, points in scalars(file).items():
            key = f"{run}/{tag}" if run else tag
            target = series.setdefault(key, {})
            top = max(target) if target else -math.inf
            if points and points[0][0] <= top and names.loss_role(key):
                shape.notes.append(
                    f"{file.name} writes {key} again from step {points[0][0]} (the log had reached {top}): a resumed "
                    "run; stitched, the later values win"
                )
            for step, number in points:
                target[step] = number
    return series


def _train_key_for(val_key: str, keys: list[str]) -> str | None:
    same_run = [k for k in keys if k.rsplit("/", 1)[0] == val_key.rsplit("/", 1)[0]]
    return names.train_key(same_run) or names.train_key(keys)


class TensorBoardReader(Reader):
    name = "tensorboard"
    reads_folders = True
    describes = "TensorBoard event files or a folder of them"

    def sniff(self, path, head):
        return MAGIC.decode() in head[:64] if path.is_file() else bool(event_files(path))

    def read(self, path, val_key=None):
        path = Path(path)
        files = event_files(path)
        if not files:
            raise DataError(f"{path}: no TensorBoard event file (events.out.tfevents.*) here")
        shape = LogShape(str(path), self.name, "step")
        series = _collect(files, path, shape)
        shape.keys = sorted(series)
        val_keys = names.val_keys(shape.keys)
        chosen = choose_val_key(val_keys, val_key, shape)
        train_key = _train_key_for(chosen, shape.keys)
        epoch_key = next((k for k in shape.keys if names.words(k)[-1:] == ["epoch"]), None)
        if "epoch" in names.words(chosen):
            shape.x_unit = "epoch"
        steps = sorted(set().union(*(series[k] for k in [*val_keys, *([train_key] if train_key else [])])))
        epochs = series.get(epoch_key, {})
        points = [
            Point(
                step,
                f"step {step}",
                series[train_key].get(step) if train_key else None,
                {k: series[k][step] for k in val_keys if step in series[k]},
                epochs.get(step, math.nan),
            )
            for step in steps
        ]
        return build_run_log(points, shape, chosen)


register(TensorBoardReader())
