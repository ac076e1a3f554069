"""The study's journey table: one row per phase, read from the phase folders.

:func:`journey_table` reads each phase's ``metrics.json``, ``params.yaml`` and ``status.json`` (or
``_failed/<phase>`` when the latest run failed) into the table ``05_compare`` writes as
``summary.csv``.  It only reads files; the stages decide what to write.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

import numpy as np
import pandas as pd
import yaml

from ..files import PathLike, atomic_write_text, read_json
from ..measure.curves import analyze_run


@dataclass
class JourneyRow:
    """One row of ``summary.csv``: one phase of a study (its fields are the columns, in order).

    Written by :func:`write_summary` (05_compare); read back with :func:`journey_rows` by the notes, the study
    figures and ``report.html``.  Losses are in nats per token; a field is None where the phase did not get that
    far (a failed or missing phase keeps its ``state`` and ``error``).  Scalar sample metrics follow the fields
    as ``sample_<name>`` columns (:attr:`samples`).
    """

    phase: str
    state: str  # done, cached, failed, interrupted, trained, incomplete, missing
    params_total: Optional[int] = None
    params_non_embedding: Optional[int] = None
    train_tokens: Optional[int] = None
    tokens_per_param_total: Optional[float] = None  # Chinchilla's convention: all parameters
    tokens_per_param_non_emb: Optional[float] = None  # Kaplan's N
    epochs: Optional[float] = None
    best_val: Optional[float] = None
    best_iter: Optional[int] = None
    final_train: Optional[float] = None
    final_val: Optional[float] = None
    final_gap: Optional[float] = None
    best_val_bpb: Optional[float] = None
    final_val_bpb: Optional[float] = None
    onset_iter: Optional[int] = None
    wall_time_s: Optional[float] = None
    tokens_per_s: Optional[float] = None
    verdict: Optional[str] = None
    stop_reason: Optional[str] = None
    # replicates: the number of training seeds; with more than one, the numbers above are means over the
    # seeds and these their spread (sample standard deviation) and the per-seed values
    replicates: Optional[int] = None
    best_val_mean: Optional[float] = None
    best_val_std: Optional[float] = None
    final_gap_mean: Optional[float] = None
    final_gap_std: Optional[float] = None
    onset_iter_mean: Optional[float] = None
    onset_iter_std: Optional[float] = None
    best_val_bpb_std: Optional[float] = None
    best_val_values: Optional[str] = None  # "v1;v2;..." over the seeds
    final_gap_values: Optional[str] = None
    # which losses compare: the val set (text + vocabulary), the val text alone, the tokenizer
    val_fingerprint: Optional[str] = None
    val_text_fingerprint: Optional[str] = None
    tokenizer: Optional[str] = None
    val_unseen_token_share: Optional[float] = None
    # extras: what the phase was (for grids and the report) and why it failed
    error: Optional[str] = None
    val_tokens: Optional[int] = None
    vocab_size: Optional[int] = None
    n_layer: Optional[int] = None
    n_head: Optional[int] = None
    n_embd: Optional[int] = None
    block_size: Optional[int] = None
    data_max_tokens: Optional[int] = None
    model_size: Optional[str] = None  # e.g. 4L-128d (model_size_label)
    max_iters: Optional[int] = None
    learning_rate: Optional[float] = None
    samples: dict[str, Any] = field(default_factory=dict)  # sample_<name>: metrics.json["samples"]["aggregate"]

    def columns(self) -> dict[str, Any]:
        """The row as ``summary.csv`` holds it: the fields in order, then the ``sample_<name>`` columns."""
        out = {name: getattr(self, name) for name in JOURNEY_COLUMNS}
        out.update({f"sample_{k}": v for k, v in self.samples.items()})
        return out


#: the columns of ``summary.csv``, in order: :class:`JourneyRow`'s fields (sample metrics follow as ``sample_<name>``)
JOURNEY_COLUMNS = tuple(f.name for f in fields(JourneyRow) if f.name != "samples")
_TYPES = {f.name: f.type for f in fields(JourneyRow)}
#: the column names as attributes, for the readers that work on whole columns: ``COLUMN.best_val == "best_val"``;
#: a renamed field is an AttributeError where a reader names it, not a KeyError three rooms away
COLUMN = SimpleNamespace(**{name: name for name in JOURNEY_COLUMNS})


_INT_COLUMNS = tuple(name for name in JOURNEY_COLUMNS if _TYPES[name] == "Optional[int]")
_FLOAT_COLUMNS = tuple(name for name in JOURNEY_COLUMNS if _TYPES[name] == "Optional[float]")


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


#: JourneyRow field <- metrics.json key, for the keys copied as they are
_METRICS_FIELDS = {
    "train_tokens": "train_tokens",
    "tokens_per_param_total": "tokens_per_param_total",
    "tokens_per_param_non_emb": "tokens_per_param_non_emb",
    "epochs": "epochs",
    "best_val_bpb": "best_val_bpb",
    "final_val_bpb": "final_val_bpb",
    "val_fingerprint": "val_fingerprint",
    "val_text_fingerprint": "val_text_fingerprint",
    "tokenizer": "tokenizer",
    "val_unseen_token_share": "val_unseen_token_share",
    "best_val": "best_val_loss",
    "best_iter": "best_iter",
    "final_train": "final_train_loss",
    "final_val": "final_val_loss",
    "final_gap": "final_gap",
    "wall_time_s": "wall_time_s",
    "tokens_per_s": "tokens_per_s",
    "stop_reason": "stop_reason",
    "val_tokens": "val_tokens",
    "vocab_size": "vocab_size",
}


def _phase_row(name: str, state: str, folder: Optional[Path], error: str) -> JourneyRow:
    row = JourneyRow(phase=name, state=state, error=error or None)
    if folder is None:
        return row
    m = read_json(folder / "metrics.json", {}) or {}
    for attr, key in _METRICS_FIELDS.items():
        setattr(row, attr, m.get(key))
    p = m.get("params") or {}
    row.params_total, row.params_non_embedding = p.get("total"), p.get("non_embedding")
    _setting_columns(row, _read_yaml(folder / "params.yaml"), m)
    analysis = m.get("analysis")
    if not isinstance(analysis, dict) and (folder / "history.csv").exists():
        try:
            analysis = analyze_run(folder)
        except ValueError:
            analysis = None
    if isinstance(analysis, dict):
        row.onset_iter, row.verdict = analysis.get("onset_iter"), analysis.get("verdict")
    _replicate_columns(row, m.get("replicates"))
    samples = m.get("samples")
    if isinstance(samples, dict) and isinstance(samples.get("aggregate"), dict):
        row.samples = {key: value for key, value in samples["aggregate"].items() if _scalar(value)}
    return row


def _setting_columns(row: JourneyRow, params: dict[str, Any], metrics: dict[str, Any]) -> None:
    """What the phase was (``params.yaml``): its model, data size and training settings."""
    model = params.get("model") or {}
    data = params.get("data") or {}
    train = params.get("train") or {}
    row.n_layer, row.n_head, row.n_embd = model.get("n_layer"), model.get("n_head"), model.get("n_embd")
    row.block_size = model.get("block_size")
    row.data_max_tokens = data.get("max_train_tokens") or data.get("max_tokens")
    row.model_size = model_size_label(model.get("n_layer"), model.get("n_embd"))
    row.max_iters = metrics.get("max_iters", train.get("max_iters"))
    row.learning_rate = train.get("learning_rate")


def _replicate_columns(row: JourneyRow, agg: Any) -> None:
    """Means and spreads over a phase's replicates (``metrics.json['replicates']``); one seed: its values."""
    n = int(agg.get("n", 1)) if isinstance(agg, dict) else 1
    row.replicates = n
    pairs = (
        ("best_val", "best_val_loss"),
        ("final_gap", "final_gap"),
        ("onset_iter", "onset_iter"),
        ("best_val_bpb", "best_val_bpb"),
    )
    for col, key in pairs:
        stats = (agg or {}).get(key) if isinstance(agg, dict) else None
        if n > 1 and isinstance(stats, dict):
            if col != "best_val_bpb":  # no such column: best_val_bpb itself becomes the mean
                setattr(row, f"{col}_mean", stats.get("mean"))
            setattr(row, f"{col}_std", stats.get("std"))
            if col in ("best_val", "final_gap", "best_val_bpb") and stats.get("mean") is not None:
                setattr(row, col, stats["mean"])  # the phase's number is the mean over its seeds
            if col in ("best_val", "final_gap"):
                values = ";".join(f"{v:.6g}" for v in stats.get("values") or [] if v is not None)
                setattr(row, f"{col}_values", values)
        elif col != "best_val_bpb":
            setattr(row, f"{col}_mean", getattr(row, col))
    if n > 1 and isinstance(agg, dict):
        for col, key in (
            ("final_train", "final_train_loss"),
            ("final_val", "final_val_loss"),
            ("final_val_bpb", "final_val_bpb"),
        ):
            mean = (agg.get(key) or {}).get("mean")
            if mean is not None:
                setattr(row, col, mean)


def journey_rows_of(study_dir: PathLike, phase_names: list[str]) -> list[JourneyRow]:
    """One :class:`JourneyRow` per phase, read from the phase folders (failed and missing ones too)."""
    sdir = Path(study_dir)
    if not isinstance(phase_names, (list, tuple)):
        raise TypeError(f"phase_names must be a list of phase names, got {type(phase_names).__name__}")
    study_status = read_json(sdir / "study_status.json", {}) or {}
    return [_phase_row(str(name), *_phase_state(sdir, str(name), study_status)) for name in phase_names]


def journey_table(study_dir: PathLike, phase_names: list[str]) -> pd.DataFrame:
    """One row per phase (failed and missing ones too, with their ``state``): the study's journey.

    Columns: :data:`JOURNEY_COLUMNS` (the fields of :class:`JourneyRow`), then ``sample_<metric>`` for each
    scalar in ``metrics.json['samples']['aggregate']``.  A failed phase's numbers come from
    ``_failed/<phase>`` when it got that far.
    """
    rows = [row.columns() for row in journey_rows_of(study_dir, phase_names)]
    sample_cols = sorted({c for r in rows for c in r if c.startswith("sample_")})
    table = pd.DataFrame(rows, columns=list(JOURNEY_COLUMNS) + sample_cols)
    for col in _INT_COLUMNS:
        table[col] = pd.to_numeric(table[col], errors="coerce").round().astype("Int64")
    for col in _FLOAT_COLUMNS:
        table[col] = pd.to_numeric(table[col], errors="coerce").astype(float)
    return table


def write_summary(study_dir: PathLike, phase_names: list[str]) -> pd.DataFrame:
    """Write ``study_dir/summary.csv`` (:func:`journey_table`, one :class:`JourneyRow` a line) and return it."""
    table = journey_table(study_dir, phase_names)
    atomic_write_text(Path(study_dir) / "summary.csv", table.to_csv(index=False))
    return table


def journey_rows(table: pd.DataFrame) -> list[JourneyRow]:
    """The rows of a journey table (or of a read ``summary.csv``) as records; a missing value is None."""
    missing = [c for c in ("phase", "state") if c not in table.columns]
    if missing:
        raise ValueError(f"a journey table needs the columns {missing}; it has {list(table.columns)}")
    out = []
    for record in table.to_dict("records"):
        values = {k: (None if _is_missing(v) else v) for k, v in record.items()}
        row = JourneyRow(**{k: _typed(k, values[k]) for k in JOURNEY_COLUMNS if k in values})
        row.samples = {k[len("sample_") :]: v for k, v in values.items() if k.startswith("sample_")}
        out.append(row)
    return out


#: a JourneyRow field's type (as written in the class) -> how a value read from a table becomes it
_CASTS = {"Optional[int]": int, "Optional[float]": float, "Optional[str]": str, "str": str}


def _typed(name: str, value: Any) -> Any:
    """A table's value as the field's type (a CSV reads an int column with gaps as floats)."""
    return None if value is None else _CASTS[_TYPES[name]](value)


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or an array is a value
        return False


def done_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The phases that finished (``state`` done or cached) and have a best val loss."""
    ok = table["state"].isin(["done", "cached"]) & pd.to_numeric(table["best_val"], errors="coerce").notna()
    return table[ok]
