"""Figures of one phase (loss curves, perplexity, the data report), drawn with matplotlib.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot state), so they work under
any backend, including ``Agg`` in papermill and CI.  Each public function takes data and ``out_dir``,
saves ``out_dir/<name>.png`` and ``.svg`` (:func:`save_figure`, atomically) and returns the Figure (a
notebook shows it by evaluating it).  The study's comparison figures are in :mod:`gaplab.ui.study_plots`.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from ..measure.curves import detect_onset
from ..pipeline.summary import done_rows
from ..train.history import finite_history
from ..files import atomic_write_bytes

PathLike = Union[str, Path]


VERDICT_COLORS = {"underfitting": "#4C72B0", "healthy": "#55A868", "overfitting": "#DD8452",
                  "memorizing": "#C44E52", None: "0.5"}


def save_figure(fig, out_dir: PathLike, name: str, formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """Save a matplotlib figure as ``out_dir/name.png`` and ``.svg``, each atomically."""
    out = []
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=120 if fmt == "png" else None, bbox_inches="tight")
        out.append(atomic_write_bytes(Path(out_dir) / f"{name}.{fmt}", buf.getvalue()))
    return out


# --------------------------------------------------------------------------- helpers
def _figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (7.0, 4.5)):
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes.ravel()


def _save(fig: Figure, out_dir: PathLike, name: str) -> Figure:
    save_figure(fig, out_dir, name)
    return fig


def _num(s: Any) -> np.ndarray:
    """A float array from a column (nullable ints and None become NaN)."""
    return pd.to_numeric(pd.Series(s), errors="coerce").astype(float).to_numpy()


def _need_columns(df: pd.DataFrame, cols: tuple[str, ...], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing columns {missing}; it has {list(df.columns)}")


def _done(table: pd.DataFrame, what: str) -> pd.DataFrame:
    _need_columns(table, ("phase", "state", "best_val"), what)
    done = done_rows(table)
    if done.empty:
        raise ValueError(f"{what}: no finished phase (state done) with a best val loss in the table")
    return done


def _fmt_int(x: float) -> str:
    if not np.isfinite(x):
        return "n/a"
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suf}"
    return f"{x:.3g}"


def _label_points(ax, xs, ys, labels) -> None:
    for x, y, lab in zip(xs, ys, labels):
        if np.isfinite(x) and np.isfinite(y):
            ax.annotate(str(lab), (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)


def _iters_per_epoch_slope(history: pd.DataFrame) -> Optional[float]:
    """epochs per iteration from the history (it is linear: epochs = iter * tokens_per_iter / train_tokens)."""
    if "epochs" not in history.columns:
        return None
    it, ep = _num(history["iter"]), _num(history["epochs"])
    ok = np.isfinite(it) & np.isfinite(ep) & (it > 0) & (ep > 0)
    if not ok.any():
        return None
    return float(np.median(ep[ok] / it[ok]))


def _plain_log_ticks(axis) -> None:
    """Log-axis labels as plain numbers (1000, not 10^3); minor ticks labelled at 2x and 5x only."""
    def minor(v: float, _pos) -> str:
        if v <= 0:
            return ""
        mantissa = round(v / 10 ** math.floor(math.log10(v) + 1e-9), 6)
        return f"{v:g}" if mantissa in (2.0, 5.0) else ""

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(minor))


def _add_epoch_axis(ax, slope: Optional[float], logx: bool = False) -> None:
    if not slope:
        return
    sec = ax.secondary_xaxis("top", functions=(lambda x: np.asarray(x) * slope, lambda e: np.asarray(e) / slope))
    sec.set_xlabel("epochs over the train split")
    if logx:
        _plain_log_ticks(sec.xaxis)


def _reference_line_log_x(ax, xs, ref: float, note: str, top: bool, pad: tuple[float, float]) -> None:
    """A cited vertical reference line at ``ref`` on a log x-axis that spans the data and the line."""
    ax.axvline(ref, color="0.3", ls="--", lw=1)
    ax.annotate(note, (ref, 0.97 if top else 0.03), xycoords=("data", "axes fraction"), xytext=(-6, 0),
                textcoords="offset points", ha="right", va="top" if top else "bottom", fontsize=8,
                bbox={"boxstyle": "round", "fc": "white", "ec": "0.8", "alpha": 0.85})
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    finite = xs[np.isfinite(xs) & (xs > 0)]
    if finite.size:
        ax.set_xlim(min(finite.min(), ref) / pad[0], max(finite.max(), ref) * pad[1])


def _vline(ax, x: Optional[float], label: str, **kw) -> None:
    if x is not None and np.isfinite(x):
        ax.axvline(x, label=label, **kw)


# --------------------------------------------------------------------------- one phase
def loss_curves(history: pd.DataFrame, analysis: Optional[Mapping[str, Any]], out_dir: PathLike,
                name: str = "loss_curves") -> Figure:
    """Train and val loss (linear and log-x), the gap, best-val / onset / early-stop markers, LR and epochs.

    ``analysis`` is :func:`gaplab.measure.curves.analyze_run`'s dict (or None: computed from the history).
    """
    h = finite_history(history)
    a = dict(analysis) if analysis else {}
    if not a:
        a = detect_onset(h)
    it, tr, va = _num(h["iter"]), _num(h["train_loss"]), _num(h["val_loss"])
    slope = _iters_per_epoch_slope(h)
    best_iter, best_val = a.get("best_iter"), a.get("best_val")
    onset, early = a.get("onset_iter"), a.get("early_stop_iter")
    fig, (ax, lax, gax) = _figure(1, 3, (16, 4.6))

    for axis, logx in ((ax, False), (lax, True)):
        keep = it > 0 if logx else np.ones_like(it, dtype=bool)
        axis.plot(it[keep], tr[keep], color="C0", marker=".", label="train loss")
        axis.plot(it[keep], va[keep], color="C1", marker=".", label="val loss")
        n_seeds = int(_num(h["replicates"])[0]) if "replicates" in h.columns else 1
        if n_seeds > 1 and "val_loss_min" in h.columns:  # the mean of the seeds, and their range
            for col, color in (("train_loss", "C0"), ("val_loss", "C1")):
                axis.fill_between(it[keep], _num(h[f"{col}_min"])[keep], _num(h[f"{col}_max"])[keep], color=color,
                                  alpha=0.18, lw=0, label=f"{col.split('_')[0]}: range over {n_seeds} seeds")
        elif "val_loss_se" in h.columns and np.nanmax(_num(h["val_loss_se"])) > 0:
            se = _num(h["val_loss_se"])[keep]
            axis.fill_between(it[keep], va[keep] - 2 * se, va[keep] + 2 * se, color="C1", alpha=0.15, lw=0,
                              label="val ± 2 standard errors of the eval")
        if "val_loss_unseen" in h.columns and np.isfinite(_num(h["val_loss_unseen"])).any():
            axis.plot(it[keep], _num(h["val_loss_seen"])[keep], color="C1", ls="--", lw=1,
                      label="val, only tokens seen in training")
        if best_iter is not None and best_val is not None and (not logx or best_iter > 0):
            axis.plot([best_iter], [best_val], marker="*", ms=14, color="C3", ls="none",
                      label=f"best val {best_val:.3f} @ iter {best_iter}")
        if onset is not None and (not logx or onset > 0):
            _vline(axis, onset, f"overfitting onset (iter {onset})", color="C3", ls="--", lw=1)
        if early is not None:
            _vline(axis, early, f"early stop (iter {early})", color="0.3", ls=":", lw=1.5)
        if a.get("uniform_loss") is not None:
            axis.axhline(a["uniform_loss"], color="0.6", ls=":", lw=1, label=f"uniform guess ln(V) = {a['uniform_loss']:.2f}")
        axis.set_xlabel("iteration" + (" (log scale)" if logx else ""))
        axis.set_ylabel("loss (nats/token)")
        axis.grid(alpha=0.3)
        if logx:
            axis.set_xscale("log")
            _plain_log_ticks(axis.xaxis)
        _add_epoch_axis(axis, slope, logx)
    ax.set_title("train vs val loss")
    lax.set_title("same, log-x (late training spread out)")
    handles, labels = ax.get_legend_handles_labels()
    legend_ax = ax
    if "lr" in h.columns and np.isfinite(_num(h["lr"])).any():
        lr_ax = ax.twinx()
        lr_ax.plot(it, _num(h["lr"]), color="0.55", lw=1, ls="-.", label="learning rate")
        lr_ax.set_ylabel("learning rate", color="0.45")
        lr_ax.tick_params(axis="y", colors="0.45")
        lr_ax.set_ylim(bottom=0)
        h2, l2 = lr_ax.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
        legend_ax = lr_ax  # drawn on top of ax, so its legend is not covered by the LR line
    # below the panel: a legend inside would cover curves or the LR line, wherever they run
    legend_ax.legend(handles, labels, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    lax.legend(fontsize=8, loc="best")

    gap = va - tr
    gax.plot(it, gap, color="C3", marker=".", label="gap = val − train")
    gax.axhline(0, color="0.6", lw=0.8)
    if onset is not None:
        _vline(gax, onset, f"overfitting onset (iter {onset})", color="C3", ls="--", lw=1)
    if early is not None:
        _vline(gax, early, f"early stop (iter {early})", color="0.3", ls=":", lw=1.5)
    gax.set_xlabel("iteration")
    gax.set_ylabel("gap (nats/token)")
    gax.set_title(f"final gap {gap[-1]:.3f} nats")
    gax.grid(alpha=0.3)
    gax.legend(fontsize=8, loc="best")
    _add_epoch_axis(gax, slope)
    if a.get("verdict"):
        fig.suptitle(f"verdict: {a['verdict']}", color=VERDICT_COLORS.get(a["verdict"], "k"), fontweight="bold")
    return _save(fig, out_dir, name)


def perplexity_curves(history: pd.DataFrame, out_dir: PathLike, name: str = "perplexity_curves") -> Figure:
    """Train and val perplexity ``exp(loss)`` on a log y-axis."""
    h = finite_history(history)
    it = _num(h["iter"])
    fig, (ax,) = _figure(1, 1, (7, 4.2))
    ax.plot(it, np.exp(np.minimum(_num(h["train_loss"]), 700)), color="C0", marker=".", label="train perplexity")
    ax.plot(it, np.exp(np.minimum(_num(h["val_loss"]), 700)), color="C1", marker=".", label="val perplexity")
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("perplexity = exp(loss)")
    ax.set_title("perplexity: the effective number of equally likely next tokens")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    _add_epoch_axis(ax, _iters_per_epoch_slope(h))
    return _save(fig, out_dir, name)


# --------------------------------------------------------------------------- data (01_inspect_data)
def data_figures(report: Mapping[str, Any], out_dir: PathLike) -> list[Figure]:
    """Document lengths (with block_size marked) and the split's composition by source."""
    figs = []
    lengths = report.get("lengths") or {}
    hist = lengths.get("histogram") or []
    if hist:
        fig, (ax,) = _figure(size=(7.0, 3.6))
        ax.bar(range(len(hist)), [h["documents"] for h in hist], color="C0")
        ax.set_xticks(range(len(hist)), [h["label"] for h in hist], rotation=45, ha="right")
        ax.set_xlabel("document length (tokens)")
        ax.set_ylabel("documents")
        trunc = lengths.get("truncated") or {}
        ax.set_title(f"{lengths.get('documents', 0):,} documents; {trunc.get('share', 0):.0%} longer than "
                     f"block_size = {trunc.get('block_size')}")
        figs.append(_save(fig, out_dir, "data_lengths"))
    sources = (report.get("split") or {}).get("sources") or []
    if sources:
        fig, (ax,) = _figure(size=(7.0, 0.5 + 0.45 * len(sources) + 1.2))
        names = [s["source"] for s in sources]
        train = np.array([s["train_tokens"] for s in sources], dtype=float)
        val = np.array([s["val_tokens"] for s in sources], dtype=float)
        total = np.maximum(train + val, 1)
        ax.barh(names, train / total, color="C0", label="train")
        ax.barh(names, val / total, left=train / total, color="C1", label="val")
        overall = (report.get("split") or {}).get("overall_val_share")
        if overall is not None:
            ax.axvline(1 - overall, color="k", ls="--", lw=1, label=f"overall split ({1 - overall:.0%} / {overall:.0%})")
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of the source's tokens")
        ax.invert_yaxis()
        ax.legend(loc="lower right", fontsize=8)
        ax.set_title("split composition by source: each bar should cross the dashed line")
        figs.append(_save(fig, out_dir, "data_split_composition"))
    return figs
