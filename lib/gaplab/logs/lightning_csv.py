"""Lightning's ``CSVLogger`` ``metrics.csv`` (``lightning/fabric/loggers/csv_logs.py``): sparse rows (one
per ``log_metrics`` call, the keys not logged in it empty), a ``step`` column, ``epoch`` logged by the
trainer, and ``X_step``/``X_epoch`` twins for a value logged with ``on_step`` and ``on_epoch``."""

from __future__ import annotations

from pathlib import Path

from gaplab.logs import csvlog, names
from gaplab.logs.base import Reader, register
from gaplab.logs.shape import LogShape, build_run_log


class LightningCsvReader(Reader):
    name = "lightning_csv"
    describes = "Lightning CSVLogger metrics.csv"

    def sniff(self, path, head):
        columns, delimiter = csvlog.header_of(head)
        if "step" not in columns or not any(names.loss_role(c) for c in columns):
            return False
        lines = head.splitlines()[1:6]
        sparse = any(delimiter * 2 in ln or ln.endswith(delimiter) or ln.startswith(delimiter) for ln in lines)
        return "epoch" in columns or sparse

    def read(self, path, val_key=None):
        path = Path(path)
        columns = csvlog.file_columns(path)
        shape = LogShape(str(path), self.name, "step", keys=columns)
        train = names.train_key(columns)
        if train and names.words(train)[-1:] == ["epoch"]:
            shape.notes.append(f"train loss is {train!r}, the mean over each epoch: the log has no per-step train loss")
        points = csvlog.csv_points(path, "step", train, names.val_keys(columns), names.epoch_column(columns))
        return build_run_log(points, shape, val_key)


register(LightningCsvReader())
