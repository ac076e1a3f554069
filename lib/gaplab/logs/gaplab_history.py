"""gaplab's own ``history.csv`` (``gaplab.train.history``): one row per eval, train and val measured over
the same fixed windows, with the eval's standard error in ``train_loss_se``."""

from __future__ import annotations

import math
from pathlib import Path

from gaplab.logs import csvlog
from gaplab.logs.base import Reader, register
from gaplab.logs.shape import LogShape, Point, build_run_log, fill_from_log, to_float
from gaplab.train.history import HISTORY_COLUMNS


class GaplabHistoryReader(Reader):
    name = "gaplab_history"
    describes = "gaplab's history.csv"

    def sniff(self, path, head):
        columns, _ = csvlog.header_of(head)
        return columns[:4] == list(HISTORY_COLUMNS[:4])

    def read(self, path, val_key=None):
        path = Path(path)
        shape = LogShape(str(path), self.name, "step")
        points, train_se, val_se = [], {}, {}
        for number, row in csvlog.rows(path):
            x = to_float(row.get("iter"))
            if x is None:
                continue
            shape.keys = list(row)
            val = to_float(row.get("val_loss"))
            epochs = to_float(row.get("epochs"))
            point = Point(x, f"line {number}", to_float(row.get("train_loss")), {}, epochs if epochs else math.nan)
            if val is not None:
                point.evals["val_loss"] = val
            points.append(point)
            train_se[x], val_se[x] = to_float(row.get("train_loss_se")), to_float(row.get("val_loss_se"))
        run = build_run_log(points, shape, val_key)
        run.history["train_loss_se"] = math.nan  # gaplab's train level is one eval, not a mean of logged losses
        fill_from_log(run, "train_loss_se", train_se)
        fill_from_log(run, "val_loss_se", val_se)
        run.notes.append("gaplab measures train and val over the same fixed windows at each eval")
        return run


register(GaplabHistoryReader())
