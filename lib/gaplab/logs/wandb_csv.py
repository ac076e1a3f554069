"""A W&B run-history CSV export (``run.history().to_csv()`` or the run page's "Export as CSV"): one row
per ``wandb.log`` call, ``_step`` counting calls, keys such as ``train/loss``, ``eval/loss``,
``train/global_step`` (the Hugging Face integration's step, preferred over ``_step``)."""

from __future__ import annotations

from pathlib import Path

from gaplab.logs import csvlog, names
from gaplab.logs.base import Reader, register
from gaplab.logs.shape import LogShape, build_run_log

#: the summary the HF integration once logged into the history at the end ("train/train_loss")
SUMMARY_KEYS = ("train/train_loss", "train/train_runtime", "train/train_samples_per_second")


class WandbCsvReader(Reader):
    name = "wandb_csv"
    describes = "W&B run history CSV export with _step"

    def sniff(self, path, head):
        columns, _ = csvlog.header_of(head)
        return "_step" in columns and any(names.loss_role(c) for c in columns)

    def read(self, path, val_key=None):
        path = Path(path)
        columns = csvlog.file_columns(path)
        shape = LogShape(str(path), self.name, "step", keys=columns)
        usable = [c for c in columns if c not in SUMMARY_KEYS]
        x_key = "train/global_step" if "train/global_step" in columns else "_step"
        if x_key == "_step":
            shape.notes.append("x is W&B's _step (one per wandb.log call): the log has no train/global_step")
        if set(SUMMARY_KEYS) & set(columns):
            shape.notes.append("the run's summary (train/train_loss) is not read as a curve point")
        points = csvlog.csv_points(
            path, x_key, names.train_key(usable), names.val_keys(usable), names.epoch_column(usable)
        )
        return build_run_log(points, shape, val_key)


register(WandbCsvReader())
