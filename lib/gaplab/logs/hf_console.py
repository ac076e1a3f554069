"""Hugging Face Trainer console output: among the tqdm bars, one printed dict per log
(``ProgressCallback.on_log`` writes ``str(logs)`` in ``transformers/trainer_callback.py``):
``{'loss': 2.31, 'grad_norm': ..., 'learning_rate': ..., 'epoch': 0.12}`` every ``logging_steps``,
``{'eval_loss': ..., 'eval_runtime': ..., 'epoch': ...}`` at each eval, and the run's summary
``{'train_runtime': ..., 'train_loss': ..., 'epoch': ...}`` at the end (never a curve point).

Recent versions print floats as strings (``'loss': '2.31'``), older ones as numbers with the epoch rounded
to 2 decimals.  The dicts carry no step, so x is the epoch (unless a dict has ``step``).  Each dict is
parsed as a literal (a fast pattern for the flat dicts HF prints, else :func:`ast.literal_eval`), never
evaluated.
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path
from typing import Optional

from gaplab.logs import textlog
from gaplab.logs.base import Reader, register
from gaplab.logs.hf_state import is_eval_loss
from gaplab.logs.shape import LogShape, Point, build_run_log, to_float

SNIFF = re.compile(r"\{'(?:loss|eval_[A-Za-z0-9_]*loss|train_runtime)':")
#: a printed log dict, from its first key to the end of its line (found in the raw bytes, chunk by chunk)
DICT_LINE = re.compile(rb"\{'(?:loss|eval_[A-Za-z0-9_]*loss|train_runtime|step|epoch)'[^\r\n]*")
_VALUE = rb"(?:'[^'\\]*'|[-+]?(?:\d[\d.eE+-]*|nan|inf)|None|True|False)"
_PAIR = rb"'[^'\\]+':\s*" + _VALUE
FLAT_DICT = re.compile(rb"\{\s*" + _PAIR + rb"(?:,\s*" + _PAIR + rb")*\s*\}")
PAIRS = re.compile(rb"'([^'\\]+)':\s*'?([^,'}]*)'?")
#: how much of the file is searched at once
CHUNK_BYTES = 32 << 20


def parse_dict(text) -> Optional[dict]:
    """The dict printed in ``text`` (str or bytes, from its first ``{``) as literals, or None.

    HF prints flat dicts of numbers and strings: a pattern reads those; anything else goes to
    :func:`ast.literal_eval`, which evaluates nothing."""
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else text
    start = raw.find(b"{'")
    if start < 0:
        return None
    match = FLAT_DICT.match(raw, start)
    if match:
        return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in PAIRS.findall(match.group(0))}
    end = raw.rfind(b"}")
    try:
        value = ast.literal_eval(raw[start : end + 1].decode("utf-8", "replace"))
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None
    return value if isinstance(value, dict) else None


def dict_lines(path: Path):
    """(line number, the bytes of each printed log dict), streamed in chunks of :data:`CHUNK_BYTES`."""
    line, carry = 1, b""
    with open(path, "rb") as fh:
        while True:
            block = fh.read(CHUNK_BYTES)
            data = carry + block
            cut = data.rfind(b"\n") + 1 if block else len(data)
            head, carry = data[:cut], data[cut:]
            position = 0
            for match in DICT_LINE.finditer(head):
                line += head.count(b"\n", position, match.start())
                position = match.start()
                yield line, match.group(0)
            line += head.count(b"\n", position)
            if not block:
                return


def _point(logs: dict, where: str, shape: LogShape) -> Optional[Point]:
    if "train_runtime" in logs:
        shape.notes.append(
            f"the summary dict at {where} (train_loss = {logs.get('train_loss')}, the mean over the whole run) "
            "is not a curve point"
        )
        return None
    train = to_float(logs["loss"]) if "loss" in logs else None
    evals = {k: v for k, value in logs.items() if is_eval_loss(k) and (v := to_float(value)) is not None}
    if train is None and not evals:
        return None
    epoch = to_float(logs.get("epoch"))
    step = to_float(logs.get("step"))
    x = step if step is not None else epoch
    if x is None:
        return None
    return Point(x, where, train, evals, math.nan if epoch is None else epoch)


class HfConsoleReader(Reader):
    name = "hf_console"
    describes = "Hugging Face Trainer console output with {'loss': ...} lines"

    def sniff(self, path, head):
        return path.is_file() and bool(SNIFF.search(textlog.prefix(path)))

    def read(self, path, val_key=None):
        path = Path(path)
        shape = LogShape(str(path), self.name, "epoch")
        points, keys, with_step = [], set(), 0
        for number, raw in dict_lines(path):
            close = raw.find(b"}")
            if close > 0 and b"{" not in raw[1:close] and b"[" not in raw[:close]:  # flat, as HF prints it
                point, has_step = _flat_point(PAIRS.findall(raw, 0, close + 1), number, shape, keys)
            else:
                logs = parse_dict(raw) or {}
                keys.update(logs)
                point, has_step = _point(logs, f"line {number}", shape), "step" in logs
            if point is not None:
                points.append(point)
                with_step += has_step
        shape.keys = sorted({k.decode("utf-8", "replace") if isinstance(k, bytes) else k for k in keys})
        if points and with_step == len(points):
            shape.x_unit = "step"
        else:
            shape.notes.append("the console's dicts carry no step: x is the epoch HF printed with each")
            shape.repeat_is_resume = False  # HF rounds the printed epoch: two logs may share one
            points = [p for p in points if not math.isnan(p.epoch)]
            for p in points:
                p.step = p.epoch
        return build_run_log(points, shape, val_key)


def _number(raw: bytes) -> Optional[float]:
    try:
        return float(raw)
    except ValueError:  # None, '' or a word: not logged
        return None


def _flat_point(pairs: list, number: int, shape: LogShape, keys: set) -> tuple[Optional[Point], bool]:
    """The point of one flat printed dict (its ``(key, value)`` byte pairs): the fast path for big consoles."""
    train = epoch = step = None
    evals = {}
    for key, value in pairs:
        if key == b"loss":
            train = _number(value)
        elif key == b"epoch":
            epoch = _number(value)
        elif key == b"step":
            step = _number(value)
        elif key.startswith(b"eval_") and key.endswith(b"loss") and (v := _number(value)) is not None:
            evals[key.decode("utf-8", "replace")] = v
        elif key == b"train_runtime":
            logs = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in pairs}
            return _point(logs, f"line {number}", shape), False
    keys.update(dict(pairs))  # byte keys, decoded once at the end (for a message if the log has no val loss)
    if train is None and not evals:
        return None, False
    x = step if step is not None else epoch
    if x is None:
        return None, False
    return Point(x, f"line {number}", train, evals, math.nan if epoch is None else epoch), step is not None


register(HfConsoleReader())
