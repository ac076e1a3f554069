"""TensorBoard scalars of a training run, written at every eval beside ``history.csv``.

``history.csv`` and ``metrics.json`` stay the record that the notebooks read; the event files are for
people who want TensorBoard's run overlay, smoothing and hover values (``make tensorboard STUDY=<study>``
serves a study's folder).  Each replicate writes into its own folder's
``tensorboard/seed-<seed>/`` (:data:`EVENTS_DIR`), so TensorBoard names a run
``<phase>/tensorboard/seed-1337`` or ``<phase>/replicates/seed-1338/tensorboard/seed-1338``: the phase and
the training seed.

Scalars, with the iteration as the step (:data:`SCALARS`): train and val loss in nats per token and in
bits per byte, the gap (val - train) in both units, the learning rate and the training tokens per second.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

#: the folder, inside a replicate's folder, that holds its event files (one subfolder per seed)
EVENTS_DIR = "tensorboard"


#: tag -> what it is (the unit is in the tag's group)
SCALARS = {
    "loss_nats/train": "mean train loss over the fixed eval windows, nats per token",
    "loss_nats/val": "mean val loss over the fixed eval windows, nats per token",
    "loss_bpb/train": "train loss in bits per UTF-8 byte",
    "loss_bpb/val": "val loss in bits per UTF-8 byte (compares across tokenizers on one val text)",
    "gap/nats": "val - train, nats per token",
    "gap/bpb": "val - train, bits per byte",
    "lr": "learning rate at this iteration",
    "tokens_per_s": "training tokens per second of training time so far (evaluation excluded)",
}


def events_dir(run_dir: Path, seed: int) -> Path:
    """Where one replicate's event files go: ``<run_dir>/tensorboard/seed-<seed>/``."""
    return Path(run_dir) / EVENTS_DIR / f"seed-{seed}"


def _finite(x: Any) -> Optional[float]:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class Tracker:
    """One replicate's TensorBoard writer.

    A fresh run removes the event files an earlier run left in its folder (as the trainer removes old
    checkpoints); a resumed run (``purge_from``: the iteration after its checkpoint's last eval) tells
    TensorBoard to drop whatever the interrupted run logged from there on, so the curve has one value per
    step, as ``history.csv`` has one row.  Every eval is flushed to
    disk at once, so a run that dies keeps its scalars up to its last eval.
    """

    def __init__(
        self, run_dir: Path, seed: int, purge_from: Optional[int] = None, params: Optional[Mapping[str, Any]] = None
    ):
        from torch.utils.tensorboard import SummaryWriter

        self.dir = events_dir(run_dir, seed)
        if purge_from is None and self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(log_dir=str(self.dir), purge_step=purge_from, flush_secs=30)
        if params and purge_from is None:  # the phase's settings, in TensorBoard's Text tab (markdown)
            import yaml

            text = yaml.safe_dump(dict(params), sort_keys=False)
            self.writer.add_text("phase", "\n".join("    " + line for line in text.splitlines()), 0)

    def log(self, row: Mapping[str, Any], tokens_per_s: Optional[float] = None) -> None:
        """One eval's history row (``gaplab.train.history`` columns) as scalars at step ``row['iter']``."""
        step = int(row["iter"])
        values = {
            "loss_nats/train": row.get("train_loss"),
            "loss_nats/val": row.get("val_loss"),
            "loss_bpb/train": row.get("train_bpb"),
            "loss_bpb/val": row.get("val_bpb"),
            "gap/nats": row.get("gap"),
            "lr": row.get("lr"),
            "tokens_per_s": tokens_per_s,
        }
        train_bpb, val_bpb = _finite(row.get("train_bpb")), _finite(row.get("val_bpb"))
        values["gap/bpb"] = val_bpb - train_bpb if train_bpb is not None and val_bpb is not None else None
        for tag, value in values.items():
            value = _finite(value)
            if value is not None:  # TensorBoard has no gaps: a missing number is left out, never drawn as 0
                self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
