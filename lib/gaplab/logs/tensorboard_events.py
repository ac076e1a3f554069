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

import re
import struct
from pathlib import Path

import numpy as np

from gaplab.errors import DataError
from gaplab.logs import names
from gaplab.logs.base import NEVER_OPEN_SUFFIXES, Reader, register
from gaplab.logs.shape import LogArrays, LogShape, build_from_arrays, choose_val_key, format_x

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


#: the tag of a scalar event as SummaryWriter.add_scalar writes it (summary, field 5, holding one value
#: whose tag is field 1 and whose simple_value is field 2): its length byte and its text
SCALAR_TAG = re.compile(rb"\x2a[\x00-\x7f]\x0a[\x00-\x7f]\x0a([\x01-\x7f][\x20-\x7e]{1,118}?)\x15", re.S)

Series = tuple[np.ndarray, np.ndarray]  # (steps, values) of one tag, in the order written


def _scalar_event(tag: bytes) -> re.Pattern:
    """One scalar event of ``tag``: wall_time (field 1), the step (field 2, absent when 0), the summary with
    its exact lengths, then the float32; the group runs from the step to the value's last byte."""
    n = len(tag)
    fixed = b"\x2a" + bytes([n + 9]) + b"\x0a" + bytes([n + 7]) + b"\x0a" + bytes([n]) + tag + b"\x15"
    return re.compile(rb"\x09.{8}((?:\x10[\x80-\xff]{0,9}[\x00-\x7f])?" + re.escape(fixed) + rb".{4})", re.S)


def _decode(groups: list[bytes], fixed: int) -> Series:
    """Steps and values of matched events, with numpy: the value is each group's last 4 bytes, the step the
    varint after its leading field byte (none: step 0)."""
    lengths = np.fromiter(map(len, groups), np.int64, len(groups))
    buf = np.frombuffer(b"".join(groups), np.uint8)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    values = buf[(ends - 4)[:, None] + np.arange(4)].copy().view("<f4").ravel().astype(float)
    sizes = np.maximum(lengths - 4 - fixed - 1, 0)
    within = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    parts = (buf[np.repeat(starts + 1, sizes) + within].astype(np.int64) & 0x7F) << (7 * within)
    steps = np.zeros(len(groups), np.int64)
    has = sizes > 0
    if has.any():
        steps[has] = np.add.reduceat(parts, (np.cumsum(sizes) - sizes)[has])
    return steps, values


def fast_scalars(path: Path, wanted=None) -> dict[str, Series]:
    """The ``simple_value`` scalars of an event file, by regular-expression passes over its bytes (one to
    list the tags, one per tag ``wanted`` keeps), decoded with numpy: a million points in about a second."""
    data = path.read_bytes()
    out = {}
    for raw in set(SCALAR_TAG.findall(data)):
        tag = raw[1:]
        if raw[0] != len(tag) or (wanted is not None and not wanted(tag.decode("ascii"))):
            continue
        groups = _scalar_event(tag).findall(data)
        if groups:
            out[tag.decode("ascii")] = _decode(groups, len(tag) + 7)
    return out


def scalars(path: Path) -> dict[str, Series]:
    """tag -> (steps, values) in the order the file wrote them: the fast path when the file's losses are
    ``simple_value`` scalars, else every record parsed with TensorBoard's ``event_pb2``."""
    fast = fast_scalars(path, lambda tag: bool(names.loss_role(tag)) or names.words(tag)[-1:] == ["epoch"])
    if any(names.loss_role(tag) == "val" for tag in fast):
        return fast
    return {
        tag: (np.asarray([p[0] for p in pts], np.int64), np.asarray([p[1] for p in pts], float))
        for tag, pts in proto_scalars(path).items()
    }


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


def _run_order(read: list, root: Path) -> tuple[list, dict]:
    """The files in the order to stitch them, and each run folder's name in the keys ("" when one).

    Run folders whose own tags include a val loss are either one run resumed into a new folder (each
    starts later than the one before: stitched, with a note) or separate runs that start together
    (refused with a sentence); other run folders (Keras's ``train/`` and ``validation/``) name their keys."""
    runs = sorted({f.parent for f, _ in read})
    label = {r: (r.relative_to(root).as_posix() if root.is_dir() and len(runs) > 1 else "") for r in runs}
    first_val: dict[Path, int] = {}
    for file, tags in read:
        for tag, (steps, _) in tags.items():
            if names.loss_role(tag) == "val" and len(steps):
                first_val[file.parent] = min(first_val.get(file.parent, int(steps.min())), int(steps.min()))
    if len(first_val) > 1:
        starts = sorted(first_val.values())
        if len(set(starts)) < len(starts):
            shown = ", ".join(f"{label[r]} (from step {s})" for r, s in sorted(first_val.items(), key=lambda i: i[1]))
            raise DataError(
                f"{root}: holds {len(first_val)} runs that start at the same step ({shown}); give one run's folder, "
                "or pass each to gaplab analyze to compare them"
            )
        chain = sorted(first_val, key=first_val.get)
        for r in chain:
            label[r] = ""
        read = sorted(read, key=lambda item: (first_val.get(item[0].parent, -1), str(item[0])))
    return read, label


def _collect(files: list[Path], root: Path, shape: LogShape) -> dict[str, Series]:
    """key -> (steps, values), sorted by step, one value a step: where a later file (a resumed run) writes
    a step again, its value wins, with a note."""
    read, label = _run_order([(f, scalars(f)) for f in files], root)
    parts: dict[str, list[Series]] = {}
    for file, tags in read:
        run = label[file.parent]
        for tag, (steps, values) in tags.items():
            key = f"{run}/{tag}" if run else tag
            earlier = parts.setdefault(key, [])
            top = max((int(s.max()) for s, _ in earlier if len(s)), default=None)
            if top is not None and len(steps) and steps.min() <= top and names.loss_role(key):
                shape.notes.append(
                    f"{file.relative_to(root) if root.is_dir() else file.name} writes {key} again from step "
                    f"{int(steps.min())} (the log had reached {top}): a resumed run; stitched, the later values win"
                )
            earlier.append((steps, values))
    series = {}
    for key, chunks in parts.items():
        steps = np.concatenate([c[0] for c in chunks])
        values = np.concatenate([c[1] for c in chunks])
        unique, last_in_reverse = np.unique(steps[::-1], return_index=True)
        series[key] = (unique, values[::-1][last_in_reverse])
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
        return build_from_arrays(_arrays(series, train_key, val_keys, epoch_key), shape, chosen)


def _arrays(series: dict[str, Series], train_key, val_keys: list[str], epoch_key) -> LogArrays:
    """The records sorted by step, a train loss before the evals of its step."""
    chosen = ([(train_key, -1)] if train_key else []) + [(k, i) for i, k in enumerate(val_keys)]
    x = np.concatenate([series[k][0] for k, _ in chosen]).astype(float)
    value = np.concatenate([series[k][1] for k, _ in chosen])
    key = np.concatenate([np.full(len(series[k][0]), i) for k, i in chosen])
    order = np.lexsort((key, x))
    x, value, key = x[order], value[order], key[order]
    epoch = np.full(len(x), np.nan)
    if epoch_key:
        e_steps, e_values = series[epoch_key]
        at = np.clip(np.searchsorted(e_steps, x), 0, max(len(e_steps) - 1, 0))
        found = (e_steps[at] == x) if len(e_steps) else np.zeros(len(x), bool)
        epoch[found] = e_values[at[found]]
    return LogArrays(x, key >= 0, value, key, epoch, list(val_keys), lambda i: f"step {format_x(x[i])}")


register(TensorBoardReader())
