"""nanoGPT's printed log (``train.py``): ``step N: train loss X, val loss Y`` at each eval (both estimated
over ``eval_iters`` batches) and ``iter N: loss X, time ...`` for each logged training iteration; and
the like (``Ep 1 (Step 000050): Train loss X, Val loss Y``, from *Build a Large Language Model (From
Scratch)*).  The eval line's train loss is the train level at that eval; the iteration lines are kept
as the train points."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from gaplab.logs import textlog
from gaplab.logs.base import TRAIN_POINT_COLUMNS, register
from gaplab.logs.mlx_lm import NUMBER
from gaplab.logs.shape import LogShape, Point, build_run_log

EVAL_LINE = re.compile(
    rf"(?:\bep(?:och)?\s*(\d+)\W+)?\b(?:step|iter|iteration)\s*(\d+)\W+\s*train[ _]loss\W*{NUMBER}"
    rf"\W+val(?:id|idation)?[ _]loss\W*{NUMBER}",
    re.I,
)
ITER_LINE = re.compile(rf"^\s*iter (\d+): loss {NUMBER}")


class NanoGptReader(textlog.TextLogReader):
    name = "nanogpt"
    describes = "printed 'step N: train loss X, val loss Y' lines (nanoGPT and the like)"
    line_pattern = EVAL_LINE

    def read(self, path, val_key=None):
        path = Path(path)
        shape = LogShape(str(path), self.name, "step", keys=["train loss", "val loss"])
        points, iters = [], []
        for number, line in textlog.lines(path):
            match = EVAL_LINE.search(line)
            if match:
                epoch = float(match.group(1)) if match.group(1) else math.nan
                train, val = float(match.group(3)), float(match.group(4))
                points.append(Point(int(match.group(2)), f"line {number}", train, {"val_loss": val}, epoch))
            elif (it := ITER_LINE.match(line)) is not None:
                iters.append((int(it.group(1)), float(it.group(2)), math.nan))
        shape.notes.append("the train loss at each eval is the log's own estimate over its eval batches")
        run = build_run_log(points, shape, val_key)
        if iters:
            last = run.history["iter"].iloc[-1]
            kept = [row for row in iters if row[0] <= last and math.isfinite(row[1])]
            run.train_points = pd.DataFrame(kept, columns=list(TRAIN_POINT_COLUMNS))
        return run


register(NanoGptReader())
