"""Figures of one phase (loss curves, the live curves, perplexity, the data report), drawn with matplotlib.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot state), so they work under
any backend, including ``Agg`` in papermill and CI, and from a training thread.  Each public function
takes data and ``out_dir``, saves ``out_dir/<name>.png`` and ``.svg`` (:func:`save_figure`, atomically)
and returns the Figure (a notebook shows it by evaluating it).  The study's comparison figures are in
:mod:`gaplab.ui.study_plots`.

**Readable where they are shown.** JupyterLab shows a PNG at its own width up to the width of the output
area (about 900 px on a laptop), and a projector shows about as much.  So every figure is
:data:`WIDTH_IN` x :data:`DPI` = 900 px wide, has at most two panels in a row (more are stacked) and
draws every text at :data:`FONT_PT` points or more (:data:`STYLE`); :func:`display_points` is the size
a text is seen at.  Legends sit outside the axes (below them, or in a panel of their own), never on data.
"""

from __future__ import annotations

import functools
import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from ..files import atomic_write_bytes
from ..measure.curves import detect_onset
from ..pipeline.summary import done_rows
from ..train.history import finite_history

PathLike = Union[str, Path]


VERDICT_COLORS = {
    "underfitting": "#4C72B0",
    "healthy": "#55A868",
    "overfitting": "#DD8452",
    "memorizing": "#C44E52",
    None: "0.5",
}

#: PNG resolution; with :data:`WIDTH_IN` it makes figures 900 px wide, JupyterLab's output width
DPI = 100
#: the width at which a learner sees a figure (JupyterLab's output area; a projector's 1024 px, less margins)
DISPLAY_WIDTH_PX = 900
WIDTH_IN = DISPLAY_WIDTH_PX / DPI
#: the smallest font, in points, at display size
FONT_PT = 11
STYLE = {
    "font.size": FONT_PT,
    "axes.titlesize": FONT_PT + 1,
    "axes.labelsize": FONT_PT,
    "xtick.labelsize": FONT_PT,
    "ytick.labelsize": FONT_PT,
    "legend.fontsize": FONT_PT,
    "legend.title_fontsize": FONT_PT,
    "figure.titlesize": FONT_PT + 2,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "legend.frameon": False,
}

#: the gap axis spans at least this range (nats), so a 0.15-nat gap looks small and a 2-nat gap large
GAP_AXIS_MIN = (-0.25, 1.0)
#: earlier runs' curves under the current one (the playground's run history): the latest first, older lighter
FADED = ("#8a9ab0", "#a5b2c4", "#bfc9d6", "#d5dce5")
NEGATIVE_GAP_NOTE = (
    "A gap below 0 (val under train) is common early on: before the model has fitted its "
    "training text, the val text can simply be easier to predict, and each eval is noisy."
)


def display_points(
    fontsize: float, png_width_px: float, dpi: float = DPI, display_width_px: float = DISPLAY_WIDTH_PX
) -> float:
    """The size in points at which a ``fontsize`` text of a ``png_width_px`` wide PNG is seen.

    The PNG is shown at its own width (1 CSS pixel = 1/96 inch) or scaled down to ``display_width_px``.
    """
    return fontsize * dpi / 96 * min(1.0, display_width_px / png_width_px)


def save_figure(fig, out_dir: PathLike, name: str, formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """Save a matplotlib figure as ``out_dir/name.png`` and ``.svg``, each atomically."""
    out = []
    for fmt in formats:
        buf = io.BytesIO()
        with matplotlib.rc_context(STYLE):
            fig.savefig(buf, format=fmt, dpi=DPI if fmt == "png" else None)
        out.append(atomic_write_bytes(Path(out_dir) / f"{name}.{fmt}", buf.getvalue()))
    return out


def png_bytes(fig, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes (for a widget or an HTML page)."""
    buf = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


# --------------------------------------------------------------------------- helpers
def styled(func):
    """Draw under :data:`STYLE` (fonts of at least :data:`FONT_PT` points) and keep tick sizes for later draws."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            fig = func(*args, **kwargs)
        if isinstance(fig, Figure):
            for ax in fig.axes:
                ax.tick_params(labelsize=FONT_PT)
        return fig

    return wrapper


def _figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (WIDTH_IN, 4.5)):
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=size, layout="constrained", dpi=DPI)
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
    """Phase names beside their points, each nudged to the side with the most room among the points."""
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    if not ok.any():
        return
    lx = np.log10(np.where(xs > 0, xs, np.nan)) if ax.get_xscale() == "log" else xs
    span = lambda v: (np.nanmax(v[ok]) - np.nanmin(v[ok])) or 1.0  # noqa: E731
    px, py = (lx - np.nanmin(lx[ok])) / span(lx), (ys - np.nanmin(ys[ok])) / span(ys)
    offsets = ((6, 6, "left", "bottom"), (6, -6, "left", "top"), (-6, 6, "right", "bottom"), (-6, -6, "right", "top"))
    for i in np.flatnonzero(ok):
        others = [(px[j] - px[i], py[j] - py[i]) for j in np.flatnonzero(ok) if j != i]

        def crowding(o, others=others) -> float:
            sx, sy = np.sign(o[0]), np.sign(o[1])
            return sum(1.0 / (0.02 + math.hypot(dx, dy)) for dx, dy in others if dx * sx >= 0 and dy * sy >= 0)

        dx, dy, ha, va = min(offsets, key=crowding)
        ax.annotate(
            str(labels[i]), (xs[i], ys[i]), textcoords="offset points", xytext=(dx, dy), ha=ha, va=va, fontsize=FONT_PT
        )


def _iters_per_epoch_slope(history: pd.DataFrame) -> Optional[float]:
    """epochs per iteration from the history (it is linear: epochs = iter * tokens_per_iter / train_tokens)."""
    if "epochs" not in history.columns:
        return None
    it, ep = _num(history["iter"]), _num(history["epochs"])
    ok = np.isfinite(it) & np.isfinite(ep) & (it > 0) & (ep > 0)
    if not ok.any():
        return None
    return float(np.median(ep[ok] / it[ok]))


def log_ticks(lo: float, hi: float, most: int = 7) -> list[float]:
    """Tick values for a log axis from ``lo`` to ``hi``: at least 3 where the span allows, at 1-2-5 steps
    (finer, 1-2-3-5-7, then more, when the axis spans less than a decade or two), at most ``most``."""
    if not (lo > 0 and hi > lo):
        return []
    k0, k1 = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    best: list[float] = []
    for subs in ((1,), (1, 2, 5), (1, 2, 3, 5, 7), (1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [m * 10.0**k for k in range(k0, k1 + 1) for m in subs if lo <= m * 10.0**k <= hi]
        if len(ticks) > most and best:
            break
        best = ticks
        if len(ticks) >= 3:
            break
    return best


def _plain(v: float, _pos=None) -> str:
    """A tick label: 0.5, 20, 2,000, 50k, 1M."""
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e4:
        return f"{v / 1e3:g}k"
    return f"{v:,.0f}" if v >= 1000 else f"{v:g}"


def readable_log_axis(axis, lo: Optional[float] = None, hi: Optional[float] = None) -> None:
    """Plain-number labels (1,000, not 10^3) at :func:`log_ticks` positions; no labelled minor ticks."""
    if lo is None or hi is None:
        lo, hi = axis.get_view_interval()
        lo, hi = min(lo, hi), max(lo, hi)
    ticks = log_ticks(lo, hi)
    if ticks:
        axis.set_major_locator(FixedLocator(ticks))
    axis.set_major_formatter(FuncFormatter(_plain))
    axis.set_minor_formatter(NullFormatter())


def _add_epoch_axis(ax, slope: Optional[float], logx: bool = False, label: bool = True) -> None:
    if not slope:
        return
    sec = ax.secondary_xaxis("top", functions=(lambda x: np.asarray(x) * slope, lambda e: np.asarray(e) / slope))
    if label:
        sec.set_xlabel("epochs over the train split")
    sec.tick_params(labelsize=FONT_PT)
    if logx:
        lo, hi = ax.get_xlim()
        readable_log_axis(sec.xaxis, lo * slope, hi * slope)


def _reference_line_log_x(
    ax, xs, ref: float, note: str, top: bool, pad: tuple[float, float], short: Optional[str] = None
) -> None:
    """A cited vertical reference line at ``ref`` on a log x-axis that spans the data and the line.

    The line is labelled ``short`` just above the axes (off the data); the caller puts the full ``note``
    with its citation in the figure's key panel (:func:`_fill_key`), where it covers nothing.
    """
    ax.axvline(ref, color="0.3", ls="--", lw=1)
    ax.set_xscale("log")
    finite = xs[np.isfinite(xs) & (xs > 0)]
    if finite.size:
        ax.set_xlim(min(finite.min(), ref) / pad[0], max(finite.max(), ref) * pad[1])
    readable_log_axis(ax.xaxis, *ax.get_xlim())
    ax.annotate(
        short or note,
        (ref, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(0, 3),
        textcoords="offset points",
        ha="center",
        va="bottom",
        fontsize=FONT_PT,
        color="0.3",
    )


def key_rows(n_entries: int, notes: Sequence[str] = (), ncol: int = 2, width: int = 95, title: bool = False) -> int:
    """How many text lines a key panel (:func:`_fill_key`) needs."""
    return math.ceil(n_entries / max(1, ncol)) + int(title) + sum(len(textwrap.wrap(n, width)) for n in notes)


def _panels(nrows: int, ncols: int, panel_height: float, key_lines: int = 0, width: float = WIDTH_IN):
    """A figure of ``nrows`` x ``ncols`` panels (at most 2 a row) and, under them, a key panel of
    ``key_lines`` text lines for the legend and notes (so neither covers data); returns ``fig, axes, key``."""
    if ncols > 2:
        raise ValueError(f"ncols = {ncols}: at most two panels in a row (stack the rest)")
    key_h = 0.27 * key_lines + 0.1 if key_lines else 0.0
    heights = [panel_height] * nrows + ([key_h] if key_lines else [])
    fig = Figure(figsize=(width, sum(heights) + 0.4), layout="constrained", dpi=DPI)
    gs = fig.add_gridspec(len(heights), ncols, height_ratios=heights)
    axes = [fig.add_subplot(gs[r, c]) for r in range(nrows) for c in range(ncols)]
    key = None
    if key_lines:
        key = fig.add_subplot(gs[-1, :])
        key.axis("off")
    return fig, axes, key


def _fill_key(
    key, handles, labels, notes: Sequence[str] = (), ncol: int = 2, width: int = 95, title: Optional[str] = None
) -> None:
    """The legend at the top of a key panel, notes (wrapped) at its bottom."""
    if key is None:
        return
    if handles:
        key.legend(
            handles,
            labels,
            loc="upper left",
            ncol=ncol,
            frameon=False,
            borderaxespad=0,
            fontsize=FONT_PT,
            title=title,
            alignment="left",
        )
    if notes:
        key.text(
            0,
            0,
            "\n".join(textwrap.fill(n, width) for n in notes),
            transform=key.transAxes,
            va="bottom",
            ha="left",
            fontsize=FONT_PT,
            color="0.3",
        )


def _vline(ax, x: Optional[float], label: str, **kw) -> None:
    if x is not None and np.isfinite(x):
        ax.axvline(x, label=label, **kw)


def gap_axis_limits(*gaps: Any) -> tuple[float, float]:
    """A gap axis that holds every given gap and at least :data:`GAP_AXIS_MIN` (nats)."""
    vals = np.concatenate([np.asarray(g, dtype=float).ravel() for g in gaps]) if gaps else np.array([])
    vals = vals[np.isfinite(vals)]
    lo, hi = GAP_AXIS_MIN
    if vals.size:
        pad = 0.08 * max(hi - lo, float(vals.max() - vals.min()))
        lo, hi = min(lo, float(vals.min()) - pad), max(hi, float(vals.max()) + pad)
    return lo, hi


def _gap_axis(gax, it, gap, ylim: Optional[tuple[float, float]], color: str = "C3") -> None:
    gax.plot(it, gap, color=color, marker=".", label="gap = val − train")
    gax.axhline(0, color="0.35", lw=1)
    gax.set_ylim(*(ylim or gap_axis_limits(gap)))
    gax.set_ylabel("gap = val − train (nats)")
    gax.grid(alpha=0.3)


# --------------------------------------------------------------------------- one phase
def _draw_losses(axis, h: pd.DataFrame, a: Mapping[str, Any], logx: bool) -> None:
    it, tr, va = _num(h["iter"]), _num(h["train_loss"]), _num(h["val_loss"])
    keep = it > 0 if logx else np.ones_like(it, dtype=bool)
    axis.plot(it[keep], tr[keep], color="C0", marker=".", label="train loss")
    axis.plot(it[keep], va[keep], color="C1", marker=".", label="val loss")
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
    if "val_loss_unseen" in h.columns and np.isfinite(_num(h["val_loss_unseen"])).any():
        axis.plot(
            it[keep],
            _num(h["val_loss_seen"])[keep],
            color="C1",
            ls="--",
            lw=1,
            label="val, only tokens seen in training",
        )
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
    axis.set_ylabel("loss (nats/token)")
    axis.grid(alpha=0.3)
    if logx:
        axis.set_xscale("log")
        pos = it[it > 0]
        if pos.size:
            axis.set_xlim(pos.min() / 1.15, pos.max() * 1.15)
            readable_log_axis(axis.xaxis, *axis.get_xlim())


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
    else:
        ax.set_xlabel("iteration")
        lax.set_xlabel("iteration (log scale)")
    _gap_axis(gax, it, gap, gap_ylim)
    for x, style in (
        (a.get("onset_iter"), dict(color="C3", ls="--", lw=1.2)),
        (a.get("early_stop_iter"), dict(color="0.3", ls=":", lw=1.5)),
    ):
        _vline(gax, x, "", **style)
    gax.set_xlabel("iteration")
    gax.set_title(f"gap: final {gap[-1]:+.3f} nats")
    key.axis("off")
    handles, labels = ax.get_legend_handles_labels()
    key.legend(handles, labels, loc="upper left", borderaxespad=0, frameon=False, fontsize=FONT_PT)
    _fill_key(note_ax, [], [], notes=notes)
    title = phase or ""
    if a.get("verdict"):
        title = f"{title}: verdict {a['verdict']}" if title else f"verdict: {a['verdict']}"
    if title:
        fig.suptitle(title, color=VERDICT_COLORS.get(a.get("verdict"), "k"), fontweight="bold")
    return _save(fig, out_dir, name)


@styled
def perplexity_curves(history: pd.DataFrame, out_dir: PathLike, name: str = "perplexity_curves") -> Figure:
    """Train and val perplexity ``exp(loss)`` on a log y-axis."""
    h = finite_history(history)
    it = _num(h["iter"])
    fig, (ax,), key = _panels(1, 1, 4.2, key_lines=1)
    ax.plot(it, np.exp(np.minimum(_num(h["train_loss"]), 700)), color="C0", marker=".", label="train perplexity")
    ax.plot(it, np.exp(np.minimum(_num(h["val_loss"]), 700)), color="C1", marker=".", label="val perplexity")
    ax.set_yscale("log")
    readable_log_axis(ax.yaxis, *ax.get_ylim())
    ax.set_xlabel("iteration")
    ax.set_ylabel("perplexity = exp(loss)")
    ax.set_title("perplexity: the effective number of equally likely next tokens")
    ax.grid(alpha=0.3, which="both")
    _fill_key(key, *ax.get_legend_handles_labels())
    _add_epoch_axis(ax, _iters_per_epoch_slope(h))
    return _save(fig, out_dir, name)


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
