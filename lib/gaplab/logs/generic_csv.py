"""Any CSV whose columns say where (``step``, ``iter``, ``iteration``, ``epoch``) and what (a train and a
val loss under their usual names: ``train_loss``, ``train/loss``, ``loss``; ``val_loss``, ``eval_loss``,
``valid/loss``...).  Tried last, after every reader of a named format."""

from __future__ import annotations

from pathlib import Path

from gaplab.logs import csvlog, names
from gaplab.logs.base import Reader, register
from gaplab.logs.shape import LogShape, build_run_log, fill_from_log


class GenericCsvReader(Reader):
    name = "csv"
    describes = "any CSV with a step/iter/epoch column and train/val loss columns"

    def sniff(self, path, head):
        columns, _ = csvlog.header_of(head)
        has_x = names.x_column(columns) or names.epoch_column(columns)
        return bool(has_x) and any(names.loss_role(c) for c in columns)

    def read(self, path, val_key=None):
        path = Path(path)
        columns = csvlog.file_columns(path)
        step_key, epoch_key = names.x_column(columns), names.epoch_column(columns)
        shape = LogShape(str(path), self.name, "step" if step_key else "epoch", keys=columns)
        x_key = step_key or epoch_key
        points = csvlog.csv_points(path, x_key, names.train_key(columns), names.val_keys(columns), epoch_key)
        run = build_run_log(points, shape, val_key)
        for history_column, column in csvlog.se_columns(columns, run.val_key).items():
            fill_from_log(run, history_column, csvlog.column_by_x(path, x_key, column))
            run.notes.append(f"{history_column} is the log's own column {column!r}")
        return run


register(GenericCsvReader())
