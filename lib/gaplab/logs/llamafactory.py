"""LlamaFactory's ``trainer_log.jsonl`` (``LogCallback.on_log`` in ``llamafactory/train/callbacks.py``): one
JSON object per Trainer log with ``current_steps``, ``total_steps``, ``loss`` and/or ``eval_loss``,
``epoch``, ``percentage``, times; keys whose value is None are left out."""

from __future__ import annotations

import json
import math
from pathlib import Path

from gaplab.logs import textlog
from gaplab.logs.base import Reader, register
from gaplab.logs.shape import LogShape, Point, build_run_log, to_float


class LlamaFactoryReader(Reader):
    name = "llamafactory"
    describes = "LlamaFactory trainer_log.jsonl"

    def sniff(self, path, head):
        return path.is_file() and head.lstrip().startswith("{") and '"current_steps"' in head.split("\n", 1)[0]

    def read(self, path, val_key=None):
        path = Path(path)
        shape = LogShape(str(path), self.name, "step")
        points, keys = [], []
        for number, line in textlog.lines(path):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(entry, dict) or "current_steps" not in entry:
                continue
            keys.extend(k for k in entry if k not in keys)
            step, train, val = (to_float(entry.get(k)) for k in ("current_steps", "loss", "eval_loss"))
            epoch = to_float(entry.get("epoch"))
            if step is not None and (train is not None or val is not None):
                evals = {} if val is None else {"eval_loss": val}
                points.append(Point(step, f"line {number}", train, evals, math.nan if epoch is None else epoch))
        shape.keys = keys
        return build_run_log(points, shape, val_key)


register(LlamaFactoryReader())
