"""``history.csv``: one row per evaluation, written by the trainer and read by every stage after it.

This module is the one definition of the file: its columns (:data:`HISTORY_COLUMNS`), how the trainer
writes it (:func:`history_csv`, full float precision, so it reads back exactly) and how readers load
it (:func:`load_history`, :func:`finite_history`).  Losses are mean cross-entropy in nats per token;
``gap = val_loss - train_loss``; ``tokens_seen`` counts training tokens consumed up to ``iter``;
``epochs = tokens_seen / train tokens``.  ``*_se`` is the standard error of the eval's mean over its
windows (0 when the split was evaluated exactly, every window once), ``*_bpb`` the same loss in bits per
UTF-8 byte, and ``val_loss_seen`` / ``val_loss_unseen`` the val loss over tokens whose id does / does not
occur in the training split (see :func:`gaplab.train.loop.evaluate`).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Union

import numpy as np
import pandas as pd

PathLike = Union[str, Path]

HISTORY_COLUMNS = (
    "iter",
    "train_loss",
    "val_loss",
    "gap",
    "lr",
    "tokens_seen",
    "epochs",
    "elapsed_s",
    "train_loss_se",
    "val_loss_se",
    "train_bpb",
    "val_bpb",
    "val_loss_seen",
    "val_loss_unseen",
)
#: the columns a history must have to be read at all (``gaplab analyze`` accepts any log with these)
REQUIRED_COLUMNS = ("iter", "train_loss", "val_loss")


def history_csv(history: list[dict]) -> str:
    """``history.csv`` text for the trainer's rows; floats are written with full precision."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for row in history:
        writer.writerow([row[c] for c in HISTORY_COLUMNS])
    return buf.getvalue()


def history_csv_frame(frame: pd.DataFrame) -> str:
    """CSV text of a history-like DataFrame (e.g. the replicates' aggregate), floats at full precision."""
    return frame.to_csv(index=False, float_format="%.17g", lineterminator="\n")


def load_history(run_dir: PathLike) -> pd.DataFrame:
    """Read ``run_dir/history.csv`` (one row per eval), sorted by ``iter``; ``gap`` filled in if absent."""
    path = Path(run_dir) / "history.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run 02_train for this run_dir first")
    df = pd.read_csv(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected {', '.join(HISTORY_COLUMNS)}")
    for col in df.columns:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    if "gap" not in df.columns:
        df["gap"] = df["val_loss"] - df["train_loss"]
    return df.sort_values("iter", kind="stable").reset_index(drop=True)


def numeric_history(history: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``history`` with the required columns as numbers (what is not a number NaN); a
    ``TypeError`` for what is not a DataFrame, a ``ValueError`` naming the missing columns."""
    if not isinstance(history, pd.DataFrame):
        raise TypeError(f"history must be a pandas DataFrame, got {type(history).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in history.columns]
    if missing:
        raise ValueError(f"history is missing columns {missing}; expected {', '.join(HISTORY_COLUMNS)}")
    h = history.copy()
    for col in REQUIRED_COLUMNS:
        h[col] = pd.to_numeric(h[col], errors="coerce")
    return h


def finite_history(history: pd.DataFrame) -> pd.DataFrame:
    """The eval rows with finite train and val loss, sorted by iter (checks the columns)."""
    h = numeric_history(history)
    h = h[np.isfinite(h["train_loss"]) & np.isfinite(h["val_loss"])]
    if h.empty:
        raise ValueError("history has no rows with finite train_loss and val_loss")
    return h.sort_values("iter", kind="stable").reset_index(drop=True)
