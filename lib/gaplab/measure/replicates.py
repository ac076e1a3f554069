"""The aggregate of a phase's replicates: the mean curve with its spread, and each number's mean and std.

:func:`aggregate_histories` aligns the replicates' histories on their common eval iterations and gives,
per eval, the mean train and val loss, their standard deviation, minimum and maximum over the seeds (the
band a figure draws) and the standard error of the mean, ``std / sqrt(n)`` — the noise of the mean curve,
seed-to-seed variation and eval sampling noise together, which is what the onset rule compares a rise with
when a phase has replicates.  :func:`aggregate_metrics` does the same for the numbers of ``metrics.json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from ..train.history import load_history
from ..train.metrics import TrainMetrics
from ..train.replicates import REPLICATES_DIR

#: the per-run numbers that get a mean and a spread over the replicates: training keys of metrics.json (checked
#: against :class:`gaplab.train.metrics.TrainMetrics` at import, so a renamed field fails here) and the onset
AGGREGATED = TrainMetrics.fields_named(
    "best_val_loss",
    "best_iter",
    "final_train_loss",
    "final_val_loss",
    "final_gap",
    "best_val_bpb",
    "final_val_bpb",
) + ("onset_iter",)
_CURVES = ("train_loss", "val_loss", "train_bpb", "val_bpb", "val_loss_seen", "val_loss_unseen")


def replicate_folders(run_dir: Path) -> list[Path]:
    """The phase folder (replicate 0) and every ``replicates/seed-*`` folder with a history, in seed order."""
    run_dir = Path(run_dir)
    extra = sorted(
        (p for p in (run_dir / REPLICATES_DIR).glob("seed-*") if (p / "history.csv").exists()),
        key=lambda p: int(p.name.split("-", 1)[1]) if p.name.split("-", 1)[1].isdigit() else 0,
    )
    return [run_dir] + extra


def aggregate_histories(histories: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One row per eval iteration that every replicate has: means, ``*_std``, ``*_min``, ``*_max``, ``*_se``.

    ``val_loss_se`` / ``train_loss_se`` of the result are ``std / sqrt(n)`` over the replicates (with one
    replicate, its own eval standard error).  ``gap``, ``lr``, ``tokens_seen`` and ``epochs`` are carried over.
    """
    if not histories:
        raise ValueError("aggregate_histories: no histories given")
    frames = [h.drop_duplicates("iter", keep="last").set_index("iter") for h in histories]
    common = sorted(set.intersection(*(set(f.index) for f in frames)))
    if not common:
        raise ValueError("aggregate_histories: the replicates share no eval iteration")
    n = len(frames)
    out = pd.DataFrame({"iter": common})
    for col in _CURVES:
        if not all(col in f.columns for f in frames):
            continue
        stack = np.vstack([pd.to_numeric(f.loc[common, col], errors="coerce").to_numpy(dtype=float) for f in frames])
        out[col] = stack.mean(axis=0)
        out[f"{col}_min"], out[f"{col}_max"] = stack.min(axis=0), stack.max(axis=0)
        out[f"{col}_std"] = stack.std(axis=0, ddof=1) if n > 1 else np.zeros(len(common))
    for col in ("train_loss", "val_loss"):
        if n > 1:
            out[f"{col}_se"] = out[f"{col}_std"] / math.sqrt(n)
        elif f"{col}_se" in frames[0].columns:
            out[f"{col}_se"] = frames[0].loc[common, f"{col}_se"].to_numpy(dtype=float)
    out["gap"] = out["val_loss"] - out["train_loss"]
    for col in ("lr", "tokens_seen", "epochs"):
        if col in frames[0].columns:
            out[col] = frames[0].loc[common, col].to_numpy()
    out["replicates"] = n
    return out


def load_phase_histories(run_dir: Path) -> list[pd.DataFrame]:
    """Every replicate's ``history.csv`` of a phase folder (replicate 0 first)."""
    return [load_history(folder) for folder in replicate_folders(run_dir)]


def aggregate_metrics(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``n``, and for each number in :data:`AGGREGATED`: its ``values`` per replicate, ``mean``, ``std``
    (sample standard deviation; None with one replicate), ``min`` and ``max``.  ``onset_iter`` is taken from
    each run's ``analysis``; a run without an onset counts in ``onsets`` but not in the onset's mean."""
    out: dict[str, Any] = {"n": len(runs)}
    for key in AGGREGATED:
        vals = [(r.get("analysis") or {}).get(key) if key == "onset_iter" else r.get(key) for r in runs]
        nums = [float(v) for v in vals if v is not None and math.isfinite(float(v))]
        out[key] = {
            "values": vals,
            "mean": float(np.mean(nums)) if nums else None,
            "std": float(np.std(nums, ddof=1)) if len(nums) > 1 else None,
            "min": min(nums) if nums else None,
            "max": max(nums) if nums else None,
        }
    out["onsets"] = sum(1 for r in runs if (r.get("analysis") or {}).get("onset_iter") is not None)
    out["verdicts"] = [(r.get("analysis") or {}).get("verdict") for r in runs]
    return out


def mean_of(agg: Optional[Mapping[str, Any]], key: str) -> Optional[float]:
    """The mean of ``key`` in an :func:`aggregate_metrics` dict (None when missing)."""
    return ((agg or {}).get(key) or {}).get("mean")
