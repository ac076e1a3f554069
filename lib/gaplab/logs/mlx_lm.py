"""mlx-lm fine-tuning output (``mlx_lm/tuner/trainer.py``): ``Iter N: Val loss X, Val took Ys`` at iteration 1,
every ``steps_per_eval`` and at the end, and ``Iter N: Train loss X, Learning Rate ..., It/sec ...`` every
``steps_per_report`` (the mean over the iterations since the previous report)."""

from __future__ import annotations

import math
import re
from pathlib import Path

from gaplab.logs import textlog
from gaplab.logs.base import register
from gaplab.logs.shape import LogShape, Point, build_run_log

NUMBER = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|nan|inf))"
LINE = re.compile(rf"Iter (\d+): (Train|Val) loss {NUMBER}", re.I)


class MlxLmReader(textlog.TextLogReader):
    name = "mlx_lm"
    describes = "mlx-lm output with 'Iter N: Val loss' and 'Iter N: Train loss' lines"
    line_pattern = LINE

    def read(self, path, val_key=None):
        path = Path(path)
        shape = LogShape(str(path), self.name, "step", keys=["Train loss", "Val loss"])
        points = []
        for number, line in textlog.lines(path):
            if "Iter " not in line:
                continue
            match = LINE.search(line)
            if match:
                step, kind, value = int(match.group(1)), match.group(2).lower(), float(match.group(3))
                if kind == "val":
                    points.append(Point(step, f"line {number}", None, {"val_loss": value}))
                else:
                    points.append(Point(step, f"line {number}", value, {}, math.nan))
        shape.notes.append("mlx-lm's first val loss (iteration 1) is measured before any training step")
        return build_run_log(points, shape, val_key)


register(MlxLmReader())
