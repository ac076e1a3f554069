"""Keras's ``CSVLogger`` file (``keras/callbacks/csv_logger.py``): ``epoch`` first (counted from 0), then
the sorted log keys, ``loss`` (the train loss averaged over the epoch) and ``val_loss``; a value missing
when training stopped is written ``NA``."""

from __future__ import annotations

from pathlib import Path

from gaplab.logs import csvlog, names
from gaplab.logs.base import Reader, register
from gaplab.logs.shape import LogShape, build_run_log


class KerasCsvReader(Reader):
    name = "keras_csv"
    describes = "Keras CSVLogger epoch,loss,val_loss"

    def sniff(self, path, head):
        columns, _ = csvlog.header_of(head)
        return bool(columns) and columns[0] == "epoch" and "loss" in columns and "step" not in columns

    def read(self, path, val_key=None):
        path = Path(path)
        columns = csvlog.file_columns(path)
        shape = LogShape(str(path), self.name, "epoch", keys=columns)
        shape.notes.append(
            "Keras logs once an epoch (counted from 0): the train loss is the mean over the epoch, val is "
            "measured at its end"
        )
        points = csvlog.csv_points(path, "epoch", "loss", names.val_keys(columns))
        for point in points:
            point.epoch = point.step + 1
        return build_run_log(points, shape, val_key)


register(KerasCsvReader())
