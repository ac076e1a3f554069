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
_VALUE = r"(?:'[^'\\]*'|[-+]?(?:\d[\d.eE+-]*|nan|inf)|None|True|False)"
_PAIR = rf"'[^'\\]+':\s*{_VALUE}"
FLAT_DICT = re.compile(rf"\{{\s*{_PAIR}(?:,\s*{_PAIR})*\s*\}}")
PAIRS = re.compile(rf"'([^'\\]+)':\s*({_VALUE})")


def parse_dict(text: str) -> Optional[dict]:
    """The dict printed in ``text`` (from its first ``{``), as literals; None if there is none."""
    start = text.find("{'")
    if start < 0:
        return None
    match = FLAT_DICT.match(text, start)
    if match:
        return {k: v.strip("'") for k, v in PAIRS.findall(match.group(0))}
    end = text.rfind("}")
    try:
        value = ast.literal_eval(text[start : end + 1])
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _point(logs: dict, where: str, shape: LogShape) -> Optional[Point]:
    if "train_runtime" in logs:
        shape.notes.append(
            f"the summary dict at {where} (train_loss = {logs.get('train_loss')}, the mean over the whole run) "
            "is not a curve point"
        )
        return None
    train = to_float(logs.get("loss"))
    evals = {k: v for k, value in logs.items() if is_eval_loss(k) and (v := to_float(value)) is not None}
    epoch = to_float(logs.get("epoch"))
    step = to_float(logs.get("step"))
    if train is None and not evals:
        return None
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
        points, keys, with_step = [], [], 0
        for number, line in textlog.lines(path):
            if "{'" not in line:
                continue
            logs = parse_dict(line)
            if not logs:
                continue
            keys.extend(k for k in logs if k not in keys)
            point = _point(logs, f"line {number}", shape)
            if point is not None:
                points.append(point)
                with_step += "step" in logs
        shape.keys = keys
        if points and with_step == len(points):
            shape.x_unit = "step"
        else:
            shape.notes.append("the console's dicts carry no step: x is the epoch HF printed with each")
            shape.repeat_is_resume = False  # HF rounds the printed epoch: two logs may share one
            points = [p for p in points if not math.isnan(p.epoch)]
            for p in points:
                p.step = p.epoch
        return build_run_log(points, shape, val_key)


register(HfConsoleReader())
