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
from gaplab.logs.base import register
from gaplab.logs.shape import LogShape, Records, build_from_arrays

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
            # cut after the last line end (tqdm's \r counts): a dict never spans two chunks; a "line" with no
            # end in a whole chunk (an endless bar) is not kept whole
            cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1 if block else len(data)
            if cut == 0 and len(data) > CHUNK_BYTES:
                cut = len(data)
            head, carry = data[:cut], data[cut:]
            position = 0
            for match in DICT_LINE.finditer(head):
                line += head.count(b"\n", position, match.start())
                position = match.start()
                yield line, match.group(0)
            line += head.count(b"\n", position)
            if not block:
                return


class HfConsoleReader(textlog.TextLogReader):
    name = "hf_console"
    describes = "Hugging Face Trainer console output with {'loss': ...} lines"
    line_pattern = SNIFF

    def read(self, path, val_key=None):
        path = Path(path)
        shape = LogShape(str(path), self.name, "epoch")
        records = Records()
        keys: set = set()
        for number, raw in dict_lines(path):
            close = raw.find(b"}")
            if close > 0 and b"{" not in raw[1:close] and b"[" not in raw[:close]:  # flat, as HF prints it
                pairs = PAIRS.findall(raw, 0, close + 1)
                keys.update(dict(pairs))  # byte keys, decoded once at the end (for the no-val-loss message)
                logs = dict(pairs)
            else:
                logs = {k.encode(): v for k, v in (parse_dict(raw) or {}).items()}
                keys.update(logs)
            _add(records, logs, number, shape)
        shape.keys = sorted(k.decode("utf-8", "replace") for k in keys)
        if records.x and all(s is not None for s in records.step):
            records.x = records.step
            shape.x_unit = "step"
        else:
            shape.notes.append("the console's dicts carry no step: x is the epoch HF printed with each")
            shape.repeat_is_resume = False  # HF rounds the printed epoch: two logs may share one
            records.x = records.epoch  # a record with no epoch has no place: left out
        return build_from_arrays(records.arrays(lambda line: f"line {line}"), shape, val_key)


#: a number printed inside a wrapper: ``np.float64(2.31)``, ``tensor(2.31, device='cuda:0')``
WRAPPED = re.compile(rb"^(?:np\.float\d*|numpy\.float\d*|tensor)\(([-+]?(?:\d[\d.eE+-]*|nan|inf))")


def _number(raw) -> Optional[float]:
    if isinstance(raw, bool) or raw is None:
        return None
    try:
        return float(raw)
    except (TypeError, ValueError):  # None, '' or a word: not logged, unless a wrapper holds the number
        wrapped = WRAPPED.match(raw) if isinstance(raw, bytes) else None
        return float(wrapped.group(1)) if wrapped else None


def _add(records: Records, logs: dict, line: int, shape: LogShape) -> None:
    """The records of one printed dict (byte keys): its train loss and its eval losses; the run's summary
    dict is said in a note and left out."""
    if b"train_runtime" in logs:
        shape.notes.append(
            f"the summary dict at line {line} (train_loss = {_number(logs.get(b'train_loss'))}, the mean over the "
            "whole run) is not a curve point"
        )
        return
    epoch, step = _number(logs.get(b"epoch")), _number(logs.get(b"step"))
    if epoch is None and step is None:
        return
    epoch = math.nan if epoch is None else epoch
    x = epoch if step is None else step
    if b"loss" in logs and (train := _number(logs[b"loss"])) is not None:
        records.add(x, step, False, train, "", epoch, line)
    for key, value in logs.items():
        if key.startswith(b"eval_") and key.endswith(b"loss") and (number := _number(value)) is not None:
            records.add(x, step, True, number, key.decode("utf-8", "replace"), epoch, line)


register(HfConsoleReader())
