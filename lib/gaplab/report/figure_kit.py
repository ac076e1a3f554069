"""The drawing kit every gaplab figure shares: the style (sizes readable where a figure is shown), saving
(PNG and SVG, atomically), readable log axes, the key panel under the axes, the gap axis and small helpers.

:mod:`gaplab.report.plots` (one phase) and :mod:`gaplab.report.study_plots` (a study) draw with it.

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from ..files import atomic_write_bytes
from .summary import done_rows

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
