"""Figures of one phase (loss curves, the live and training curves, the data report), drawn with matplotlib.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot state), so they work under
any backend, including ``Agg`` in papermill and CI, and from a training thread.  Each public function
takes data and ``out_dir``, saves ``out_dir/<name>.png`` and ``.svg`` (:func:`~gaplab.report.figure_kit.save_figure`, atomically)
and returns the Figure (a notebook shows it by evaluating it).  The study's comparison figures are in
:mod:`gaplab.report.study_plots`.

**Readable where they are shown** (:mod:`gaplab.report.figure_kit`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter

from ..measure.curves import detect_onset
from ..train.history import finite_history
from .figure_kit import (
    DPI,
    FADED,
    FONT_PT,
    GAP_AXIS_MIN,
    NEGATIVE_GAP_NOTE,
    VERDICT_COLORS,
    WIDTH_IN,
    PathLike,
    _add_epoch_axis,
    _figure,
    _fill_key,
    _gap_axis,
    _iters_per_epoch_slope,
    _num,
    _panels,
    _save,
    _vline,
    gap_axis_limits,
    key_rows,
    readable_log_axis,
    styled,
)


# --------------------------------------------------------------------------- one phase
def _draw_bands(axis, h: pd.DataFrame, it: np.ndarray, va: np.ndarray, keep: np.ndarray) -> None:
    """The spread under the curves: the range over the seeds (replicates), else ±2 standard errors of the eval."""
    n_seeds = int(_num(h["replicates"])[0]) if "replicates" in h.columns else 1
    if n_seeds > 1 and "val_loss_min" in h.columns:  # the mean of the seeds, and their range
        for col, color in (("train_loss", "C0"), ("val_loss", "C1")):
            axis.fill_between(
                it[keep],
                _num(h[f"{col}_min"])[keep],
                _num(h[f"{col}_max"])[keep],
                color=color,
                alpha=0.18,
                lw=0,
                label=f"{col.split('_')[0]}: range over {n_seeds} seeds",
            )
    elif "val_loss_se" in h.columns and np.nanmax(_num(h["val_loss_se"]), initial=0) > 0:
        se = _num(h["val_loss_se"])[keep]
        axis.fill_between(
            it[keep],
            va[keep] - 2 * se,
            va[keep] + 2 * se,
            color="C1",
            alpha=0.15,
            lw=0,
            label="val ± 2 standard errors of the eval",
        )


def _draw_markers(axis, a: Mapping[str, Any], logx: bool) -> None:
    """The analysis on the loss axes: best val (starred), the onset, an early stop, the uniform guess."""
    best_iter, best_val = a.get("best_iter"), a.get("best_val")
    onset, early = a.get("onset_iter"), a.get("early_stop_iter")
    if best_iter is not None and best_val is not None and (not logx or best_iter > 0):
        axis.plot(
            [best_iter],
            [best_val],
            marker="*",
            ms=15,
            color="C3",
            ls="none",
            label=f"best val {best_val:.3f} @ iter {best_iter} (ckpt/best.pt)",
        )
    if onset is not None and (not logx or onset > 0):
        _vline(axis, onset, f"overfitting onset (iter {onset})", color="C3", ls="--", lw=1.2)
    if early is not None:
        _vline(axis, early, f"early stop (iter {early})", color="0.3", ls=":", lw=1.5)
    if a.get("uniform_loss") is not None:
        axis.axhline(
            a["uniform_loss"], color="0.6", ls=":", lw=1, label=f"uniform guess ln(V) = {a['uniform_loss']:.2f}"
        )


def _draw_losses(axis, h: pd.DataFrame, a: Mapping[str, Any], logx: bool) -> None:
    it, tr, va = _num(h["iter"]), _num(h["train_loss"]), _num(h["val_loss"])
    keep = it > 0 if logx else np.ones_like(it, dtype=bool)
    axis.plot(it[keep], tr[keep], color="C0", marker=".", label="train loss")
    axis.plot(it[keep], va[keep], color="C1", marker=".", label="val loss")
    _draw_bands(axis, h, it, va, keep)
    if "val_loss_unseen" in h.columns and np.isfinite(_num(h["val_loss_unseen"])).any():
        axis.plot(
            it[keep],
            _num(h["val_loss_seen"])[keep],
            color="C1",
            ls="--",
            lw=1,
            label="val, only tokens seen in training",
        )
    _draw_markers(axis, a, logx)
    axis.set_ylabel("loss (nats/token)")
    axis.grid(alpha=0.3)
    if logx:
        axis.set_xscale("log")
        pos = it[it > 0]
        if pos.size:
            axis.set_xlim(pos.min() / 1.15, pos.max() * 1.15)
            readable_log_axis(axis.xaxis, *axis.get_xlim())


def _lr_panels(fig: Figure, gs, h: pd.DataFrame, it: np.ndarray, ax, lax) -> None:
    """The learning rate on its own small axis under each loss panel (linear, log-x)."""
    lr = _num(h["lr"])
    for col, share, logx in ((0, ax, False), (1, lax, True)):
        lr_ax = fig.add_subplot(gs[1, col], sharex=share)
        keep = it > 0 if logx else np.ones_like(it, dtype=bool)
        lr_ax.plot(it[keep], lr[keep], color="0.4", lw=1.5)
        lr_ax.set_ylim(0, np.nanmax(lr) * 1.15 or 1)
        lr_ax.yaxis.set_major_locator(FixedLocator([0, float(np.nanmax(lr))]))
        lr_ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0e}" if v else "0"))
        lr_ax.set_ylabel("learning\nrate" if col == 0 else "")
        lr_ax.set_xlabel("iteration" + (" (log scale)" if logx else ""))
        lr_ax.grid(alpha=0.3)
        if logx:
            readable_log_axis(lr_ax.xaxis, *lax.get_xlim())


def _iteration_labels(ax, lax) -> None:
    ax.set_xlabel("iteration")
    lax.set_xlabel("iteration (log scale)")


@styled
def loss_curves(
    history: pd.DataFrame,
    analysis: Optional[Mapping[str, Any]],
    out_dir: PathLike,
    name: str = "loss_curves",
    phase: Optional[str] = None,
    gap_ylim: Optional[tuple[float, float]] = None,
) -> Figure:
    """Train and val loss (linear and log-x), the learning rate, the gap, and the markers of the analysis.

    Layout, two panels a row: top left the losses by iteration (epochs on the top axis), top right the
    same on a log-x axis (late training spread out); under each, the learning rate on its own small axis;
    bottom left the gap (val − train) with a zero line, on an axis that spans at least
    :data:`GAP_AXIS_MIN` (or ``gap_ylim``, one scale for a study's phases); bottom right the legend; under
    them a note on the gap axis (and on a negative gap, when there is one).
    ``analysis`` is :func:`gaplab.measure.curves.analyze_run`'s dict (or None: computed from the history).
    """
    h = finite_history(history)
    a = dict(analysis) if analysis else {}
    if not a:
        a = detect_onset(h)
    it, tr, va = _num(h["iter"]), _num(h["train_loss"]), _num(h["val_loss"])
    slope = _iters_per_epoch_slope(h)
    has_lr = "lr" in h.columns and np.isfinite(_num(h["lr"])).any()
    gap = va - tr
    notes = [
        f"The gap axis spans at least {GAP_AXIS_MIN[0]:g} to {GAP_AXIS_MIN[1]:g} nat in every phase, so a small "
        "gap looks small; 05_compare draws all phases' gaps on one scale."
    ]
    if np.nanmin(gap) < 0:
        notes.append(NEGATIVE_GAP_NOTE)
    heights = ([3.3, 1.1, 3.0] if has_lr else [3.3, 3.0]) + [0.27 * key_rows(0, notes) + 0.1]
    fig = Figure(figsize=(WIDTH_IN, sum(heights) + 1.0), layout="constrained", dpi=DPI)
    gs = fig.add_gridspec(len(heights), 2, height_ratios=heights)
    ax, lax = fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[0, 1])
    gax, key = fig.add_subplot(gs[-2, 0], sharex=ax), fig.add_subplot(gs[-2, 1])
    note_ax = fig.add_subplot(gs[-1, :])
    note_ax.axis("off")
    for axis, logx in ((ax, False), (lax, True)):
        _draw_losses(axis, h, a, logx)
        _add_epoch_axis(axis, slope, logx, label=not logx)
    ax.set_title("train vs val loss")
    lax.set_title("same, log-x: late training spread out")
    lax.set_ylabel("")
    if has_lr:
        _lr_panels(fig, gs, h, it, ax, lax)
    else:
        _iteration_labels(ax, lax)
    _gap_panel(gax, it, gap, gap_ylim, a)
    key.axis("off")
    handles, labels = ax.get_legend_handles_labels()
    key.legend(handles, labels, loc="upper left", borderaxespad=0, frameon=False, fontsize=FONT_PT)
    _fill_key(note_ax, [], [], notes=notes)
    _verdict_title(fig, phase, a.get("verdict"))
    return _save(fig, out_dir, name)


def _gap_panel(gax, it: np.ndarray, gap: np.ndarray, ylim: Optional[tuple[float, float]], a: Mapping[str, Any]):
    """The gap (val − train) by iteration with a zero line, the onset and an early stop marked."""
    _gap_axis(gax, it, gap, ylim)
    for x, style in (
        (a.get("onset_iter"), dict(color="C3", ls="--", lw=1.2)),
        (a.get("early_stop_iter"), dict(color="0.3", ls=":", lw=1.5)),
    ):
        _vline(gax, x, "", **style)
    gax.set_xlabel("iteration")
    gax.set_title(f"gap: final {gap[-1]:+.3f} nats")


def _verdict_title(fig: Figure, phase: Optional[str], verdict: Optional[str]) -> None:
    """``<phase>: verdict <verdict>`` over the figure, in the verdict's colour."""
    title = phase or ""
    if verdict:
        title = f"{title}: verdict {verdict}" if title else f"verdict: {verdict}"
    if title:
        fig.suptitle(title, color=VERDICT_COLORS.get(verdict, "k"), fontweight="bold")


# --------------------------------------------------------------------------- live curves (02_train, playground)
@styled
def live_figure(
    history: pd.DataFrame,
    earlier: Sequence[tuple[str, pd.DataFrame]] = (),
    max_iters: Optional[int] = None,
    title: Optional[str] = None,
    best: Optional[tuple[int, float]] = None,
) -> Figure:
    """The curves of a run in progress: losses (left) and gap (right), two panels in a row.

    ``history``: the evals so far (at least one row).  ``earlier``: ``(label, history)`` of earlier runs,
    whose val loss and gap are drawn faded under the current run (the playground's run history; the label
    says what differed).  ``max_iters`` fixes the x-axis to the whole run, so the axes do not move as it
    goes.  The best val so far (``best``, else the lowest val in ``history``) is starred: that is what
    ``ckpt/best.pt`` holds.  Epochs are on the top axis.
    """
    if len(history) == 0:
        raise ValueError("live_figure: no eval yet (an empty history); draw after the first eval")
    h = finite_history(history)
    it, tr, va = _num(h["iter"]), _num(h["train_loss"]), _num(h["val_loss"])
    notes = [NEGATIVE_GAP_NOTE] if (va - tr < 0).any() else []
    fig, (ax, gax), key = _panels(1, 2, 3.9, key_lines=key_rows(3 + len(earlier), notes))
    gaps = [va - tr]
    for i, (label, old) in enumerate(earlier):
        o = finite_history(old)
        if o.empty:
            continue
        oit, otr, ova = _num(o["iter"]), _num(o["train_loss"]), _num(o["val_loss"])
        shade = FADED[min(len(earlier) - 1 - i, len(FADED) - 1)]  # the latest earlier run darkest, older lighter
        ax.plot(oit, ova, color=shade, lw=1.6, ls="-", label=f"{label}: val")
        gax.plot(oit, ova - otr, color=shade, lw=1.4)
        gaps.append(ova - otr)
    ax.plot(it, tr, color="C0", marker=".", lw=2, label="train loss (this run)")
    ax.plot(it, va, color="C1", marker=".", lw=2, label="val loss (this run)")
    b = int(np.nanargmin(va))
    bi, bv = best if best is not None else (int(it[b]), float(va[b]))
    ax.plot([bi], [bv], marker="*", ms=15, color="C3", ls="none", label=f"best val {bv:.3f} @ iter {bi} (ckpt/best.pt)")
    gax.plot(it, va - tr, color="C3", marker=".", lw=2)
    gax.axhline(0, color="0.35", lw=1)
    gax.set_ylim(*gap_axis_limits(*gaps))
    right = max([float(max_iters or 0), float(it.max())] + [float(_num(o["iter"]).max()) for _, o in earlier if len(o)])
    for axis in (ax, gax):
        axis.set_xlim(-0.02 * max(1.0, right), max(1.0, right) * 1.05)
        axis.set_xlabel("iteration")
        axis.grid(alpha=0.3)
        _add_epoch_axis(axis, _iters_per_epoch_slope(h), label=axis is ax)
    ax.set_ylabel("loss (nats/token)")
    gax.set_ylabel("gap = val − train (nats)")
    row = h.iloc[-1]
    ax.set_title(title or f"iter {int(row['iter'])}: train {row['train_loss']:.3f}, val {row['val_loss']:.3f}")
    gax.set_title(f"gap {row['val_loss'] - row['train_loss']:+.3f} nats")
    handles, labels = ax.get_legend_handles_labels()
    now = [i for i, lab in enumerate(labels) if "(this run)" in lab or lab.startswith("best val")]
    order = now + [i for i in range(len(labels)) if i not in now]  # this run first, then the earlier runs
    _fill_key(key, [handles[i] for i in order], [labels[i] for i in order], notes=notes)
    return fig


# --------------------------------------------------------------------------- data (01_inspect_data)
def training_curves(history: pd.DataFrame, out_dir: PathLike, max_iters: Optional[int] = None) -> Figure:
    """A finished run's curves (the last state of :func:`live_figure`), saved as ``out_dir/training_curves``."""
    return _save(live_figure(history, max_iters=max_iters), out_dir, "training_curves")


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
        ax.set_title(
            f"{lengths.get('documents', 0):,} documents; {trunc.get('share', 0):.0%} longer than "
            f"block_size = {trunc.get('block_size')}"
        )
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
            ax.axvline(
                1 - overall, color="k", ls="--", lw=1, label=f"overall split ({1 - overall:.0%} / {overall:.0%})"
            )
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of the source's tokens")
        ax.invert_yaxis()
        ax.legend(loc="lower right", fontsize=8)
        ax.set_title("split composition by source: each bar should cross the dashed line")
        figs.append(_save(fig, out_dir, "data_split_composition"))
    return figs
