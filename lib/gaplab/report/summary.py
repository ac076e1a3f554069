"""The study's journey table: one row per phase, read from the phase folders.

:func:`journey_table` reads each phase's ``metrics.json``, ``params.yaml`` and ``status.json`` (or
``_failed/<phase>`` when the latest run failed) into the table ``05_compare`` writes as
``summary.csv``.  It only reads files; the stages decide what to write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import yaml

from ..files import PathLike, read_json
from ..measure.curves import analyze_run

#: Columns of :func:`journey_table`, in order (sample metrics follow as ``sample_<name>``).
JOURNEY_COLUMNS = (
    "phase",
    "state",
    "params_total",
    "params_non_embedding",
    "train_tokens",
    "tokens_per_param_total",
    "tokens_per_param_non_emb",
    "epochs",
    "best_val",
    "best_iter",
    "final_train",
    "final_val",
    "final_gap",
    "best_val_bpb",
    "final_val_bpb",
    "onset_iter",
    "wall_time_s",
    "tokens_per_s",
    "verdict",
    "stop_reason",
    # replicates: the number of training seeds; with more than one, the numbers above are means over the
    # seeds and these their spread (sample standard deviation) and the per-seed values
    "replicates",
    "best_val_mean",
    "best_val_std",
    "final_gap_mean",
    "final_gap_std",
    "onset_iter_mean",
    "onset_iter_std",
    "best_val_bpb_std",
    "best_val_values",
    "final_gap_values",
    # which losses compare: the val set (text + vocabulary), the val text alone, the tokenizer
    "val_fingerprint",
    "val_text_fingerprint",
    "tokenizer",
    "val_unseen_token_share",
    # extras: what the phase was (for grids and the report) and why it failed
    "error",
    "val_tokens",
    "vocab_size",
    "n_layer",
    "n_head",
    "n_embd",
    "block_size",
    "data_max_tokens",
    "model_size",
    "max_iters",
    "learning_rate",
)


_INT_COLUMNS = (
    "replicates",
    "params_total",
    "params_non_embedding",
    "train_tokens",
    "best_iter",
    "onset_iter",
    "val_tokens",
    "vocab_size",
    "n_layer",
    "n_head",
    "n_embd",
    "block_size",
    "data_max_tokens",
    "max_iters",
)


# --------------------------------------------------------------------------- the study
def _read_yaml(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    return data if isinstance(data, dict) else {}


def _phase_state(sdir: Path, name: str, study_status: dict) -> tuple[str, Optional[Path], str]:
    """(state, folder to read numbers from, error) for one phase of a study folder.

    The study's own record of the latest run wins when it says the phase
    failed (the runner moves a failed phase to ``_failed/<phase>``, leaving any
    older good result in place); otherwise the phase folder's ``status.json``.
    """
    entry = (study_status.get("phases") or {}).get(name) or {}
    pdir, fdir = sdir / name, sdir / "_failed" / name
    if entry.get("state") in ("failed", "interrupted"):
        folder = fdir if fdir.exists() else None
        err = entry.get("error") or (read_json(fdir / "status.json", {}) or {}).get("error", "")
        return entry["state"], folder, err or ""
    st = read_json(pdir / "status.json", None)
    if isinstance(st, dict):
        return str(st.get("state", "unknown")), pdir, st.get("error") or ""
    if pdir.is_dir():  # run by hand, stage by stage (no runner status)
        done = (pdir / "metrics.json").exists() and (pdir / "history.csv").exists()
        return ("done" if done else "incomplete"), pdir, ""
    st = read_json(fdir / "status.json", None)
    if isinstance(st, dict):
        return str(st.get("state", "failed")), fdir, st.get("error") or ""
    return (str(entry["state"]) if entry.get("state") else "missing"), None, entry.get("error") or ""


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (int, float, str, bool, np.integer, np.floating))


def model_size_label(n_layer: Any, n_embd: Any) -> Optional[str]:
    """A short model label for tables and axes, e.g. ``4L-128d`` (layers, embedding width)."""
    if n_layer is None or n_embd is None:
        return None
    return f"{int(n_layer)}L-{int(n_embd)}d"


def _phase_row(name: str, state: str, folder: Optional[Path], error: str) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in JOURNEY_COLUMNS}
    row.update(phase=name, state=state, error=error or None)
    if folder is None:
        return row
    m = read_json(folder / "metrics.json", {}) or {}
    params = _read_yaml(folder / "params.yaml")
    p = m.get("params") or {}
    row.update(
        params_total=p.get("total"),
        params_non_embedding=p.get("non_embedding"),
        train_tokens=m.get("train_tokens"),
        tokens_per_param_total=m.get("tokens_per_param_total"),
        tokens_per_param_non_emb=m.get("tokens_per_param_non_emb"),
        epochs=m.get("epochs"),
        best_val_bpb=m.get("best_val_bpb"),
        final_val_bpb=m.get("final_val_bpb"),
        val_fingerprint=m.get("val_fingerprint"),
        val_text_fingerprint=m.get("val_text_fingerprint"),
        tokenizer=m.get("tokenizer"),
        val_unseen_token_share=m.get("val_unseen_token_share"),
        best_val=m.get("best_val_loss"),
        best_iter=m.get("best_iter"),
        final_train=m.get("final_train_loss"),
        final_val=m.get("final_val_loss"),
        final_gap=m.get("final_gap"),
        wall_time_s=m.get("wall_time_s"),
        tokens_per_s=m.get("tokens_per_s"),
        stop_reason=m.get("stop_reason"),
        val_tokens=m.get("val_tokens"),
        vocab_size=m.get("vocab_size"),
    )
    model = params.get("model") or {}
    data = params.get("data") or {}
    train = params.get("train") or {}
    row.update(
        n_layer=model.get("n_layer"),
        n_head=model.get("n_head"),
        n_embd=model.get("n_embd"),
        block_size=model.get("block_size"),
        data_max_tokens=data.get("max_train_tokens") or data.get("max_tokens"),
        model_size=model_size_label(model.get("n_layer"), model.get("n_embd")),
        max_iters=m.get("max_iters", train.get("max_iters")),
        learning_rate=train.get("learning_rate"),
    )
    analysis = m.get("analysis")
    if not isinstance(analysis, dict) and (folder / "history.csv").exists():
        try:
            analysis = analyze_run(folder)
        except ValueError:
            analysis = None
    if isinstance(analysis, dict):
        row["onset_iter"] = analysis.get("onset_iter")
        row["verdict"] = analysis.get("verdict")
    _replicate_columns(row, m.get("replicates"))
    samples = m.get("samples")
    if isinstance(samples, dict) and isinstance(samples.get("aggregate"), dict):
        for key, value in samples["aggregate"].items():
            if _scalar(value):
                row[f"sample_{key}"] = value
    return row


def _replicate_columns(row: dict[str, Any], agg: Any) -> None:
    """Means and spreads over a phase's replicates (``metrics.json['replicates']``); one seed: its values."""
    n = int(agg.get("n", 1)) if isinstance(agg, dict) else 1
    row["replicates"] = n
    pairs = (
        ("best_val", "best_val_loss"),
        ("final_gap", "final_gap"),
        ("onset_iter", "onset_iter"),
        ("best_val_bpb", "best_val_bpb"),
    )
    for col, key in pairs:
        stats = (agg or {}).get(key) if isinstance(agg, dict) else None
        if n > 1 and isinstance(stats, dict):
            row[f"{col}_mean"] = stats.get("mean")
            row[f"{col}_std"] = stats.get("std")
            if col in ("best_val", "final_gap", "best_val_bpb") and stats.get("mean") is not None:
                row[col] = stats["mean"]  # the phase's number is the mean over its seeds
            if col in ("best_val", "final_gap"):
                row[f"{col}_values"] = ";".join(f"{v:.6g}" for v in stats.get("values") or [] if v is not None)
        elif col != "best_val_bpb":
            row[f"{col}_mean"] = row.get(col)
    if n > 1 and isinstance(agg, dict):
        for col, key in (
            ("final_train", "final_train_loss"),
            ("final_val", "final_val_loss"),
            ("final_val_bpb", "final_val_bpb"),
        ):
            mean = (agg.get(key) or {}).get("mean")
            if mean is not None:
                row[col] = mean


def journey_table(study_dir: PathLike, phase_names: list[str]) -> pd.DataFrame:
    """One row per phase (failed and missing ones too, with their ``state``): the study's journey.

    Columns: :data:`JOURNEY_COLUMNS` (``phase, state, params_total,
    params_non_embedding, train_tokens, tokens_per_param_total, tokens_per_param_non_emb, epochs, best_val,
    best_iter, final_train, final_val, final_gap, onset_iter, wall_time_s,
    tokens_per_s, verdict, stop_reason`` and extras describing the phase), then
    ``sample_<metric>`` for each scalar in ``metrics.json['samples']['aggregate']``.
    A failed phase's numbers come from ``_failed/<phase>`` when it got that far.
    """
    sdir = Path(study_dir)
    if not isinstance(phase_names, (list, tuple)):
        raise TypeError(f"phase_names must be a list of phase names, got {type(phase_names).__name__}")
    study_status = read_json(sdir / "study_status.json", {}) or {}
    rows = [_phase_row(str(name), *_phase_state(sdir, str(name), study_status)) for name in phase_names]
    sample_cols = sorted({c for r in rows for c in r if c.startswith("sample_")})
    table = pd.DataFrame(rows, columns=list(JOURNEY_COLUMNS) + sample_cols)
    for col in _INT_COLUMNS:
        table[col] = pd.to_numeric(table[col], errors="coerce").round().astype("Int64")
    for col in (
        "tokens_per_param_total",
        "tokens_per_param_non_emb",
        "epochs",
        "best_val",
        "final_train",
        "final_val",
        "final_gap",
        "best_val_bpb",
        "final_val_bpb",
        "val_unseen_token_share",
        "wall_time_s",
        "tokens_per_s",
        "learning_rate",
        "best_val_mean",
        "best_val_std",
        "final_gap_mean",
        "final_gap_std",
        "onset_iter_mean",
        "onset_iter_std",
        "best_val_bpb_std",
    ):
        table[col] = pd.to_numeric(table[col], errors="coerce").astype(float)
    return table


def done_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The phases that finished (``state`` done or cached) and have a best val loss."""
    ok = table["state"].isin(["done", "cached"]) & pd.to_numeric(table["best_val"], errors="coerce").notna()
    return table[ok]
