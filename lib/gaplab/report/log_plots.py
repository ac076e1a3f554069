"""The figure of ``gaplab analyze --plot``: each analysed log's curves with the noise band, its best eval and
its onset, in gaplab's figure style (:mod:`gaplab.report.figure_kit`: 900 px wide, fonts of 11 points or more, at most
two panels a row, the legend in a panel of its own under the data)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..errors import UsageError
from ..files import atomic_write_bytes
from ..logs.analyze import LogAnalysis
from .figure_kit import DPI, STYLE, VERDICT_COLORS, _fill_key, _panels, key_rows, styled

#: the file types ``--plot`` writes
PLOT_SUFFIXES = (".png", ".svg")
#: at most this many runs are drawn (the rest are said in the key): more panels would not be readable
MAX_PANELS = 12


#: a panel's title is cut to this many characters (two panels a row at 900 px)
TITLE_CHARS = 36


def _label(a: LogAnalysis, limit: int) -> str:
    name = Path(a.path).name or a.path
    label = name if a.val_key in ("val_loss", "eval_loss") else f"{name} ({a.val_key})"
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _draw(ax, a: LogAnalysis, title_chars: int) -> None:
    """One run: train and val, val's noise band, the best eval and the onset."""
    h, o = a.history, a.curve.onset
    it = h["iter"].to_numpy(dtype=float)
    val, train = h["val_loss"].to_numpy(dtype=float), h["train_loss"].to_numpy(dtype=float)
    ax.fill_between(it, val - o.val_noise, val + o.val_noise, color="C1", alpha=0.2, lw=0, label="val ± noise")
    if np.isfinite(train).any():
        ax.plot(it, train, "-", color="C0", marker="." if len(it) <= 60 else None, label="train")
    ax.plot(it, val, "-", color="C1", marker="o" if len(it) <= 60 else None, ms=4, label="val")
    ax.plot([o.best_iter], [o.best_val], "*", color="k", ms=12, label="best val", zorder=5)
    if o.onset_iter is not None:
        ax.axvline(o.onset_iter, color=VERDICT_COLORS["overfitting"], ls="--", lw=1.5, label="onset")
    ax.set_title(
        f"{_label(a, title_chars)}: {a.curve.verdict}", color=VERDICT_COLORS.get(a.curve.verdict, "0.2"), loc="left"
    )
    ax.set_xlabel(a.unit)
    ax.set_ylabel("loss (nats)")
    ax.grid(alpha=0.3)


@styled
def log_curves(analyses: Sequence[LogAnalysis]) -> Figure:
    """The figure: one panel per analysed log (two a row), the key below."""
    shown = list(analyses)[:MAX_PANELS]
    ncols = 1 if len(shown) == 1 else 2
    nrows = math.ceil(len(shown) / ncols)
    notes = ["The band is val ± one eval's noise; the star is the lowest val eval; the dashed line the onset."]
    if len(analyses) > len(shown):
        notes.append(f"{len(analyses) - len(shown)} more runs are in the table, not drawn.")
    fig, axes, key = _panels(nrows, ncols, 3.4 if ncols == 2 else 4.2, key_rows(5, notes, ncol=5) + 1)
    for ax, a in zip(axes, shown):
        _draw(ax, a, TITLE_CHARS if ncols == 2 else 2 * TITLE_CHARS)
    for ax in axes[len(shown) :]:
        ax.axis("off")
    entries = {}
    for ax in axes[: len(shown)]:  # every kind of line any panel drew, once
        entries.update(zip(*reversed(ax.get_legend_handles_labels())))
    _fill_key(key, list(entries.values()), list(entries), notes, ncol=5)
    return fig


def save_log_plot(analyses: Sequence[LogAnalysis], path: Union[str, Path]) -> Path:
    """Draw :func:`log_curves` and write it to ``path`` (``.png`` or ``.svg``), atomically."""
    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise UsageError(f"--plot {path}: {path.suffix or 'no suffix'} is not allowed; give a .png or .svg file")
    if not path.parent.is_dir():
        raise UsageError(f"--plot {path}: the folder {path.parent} does not exist")
    fig = log_curves(analyses)
    buf = io.BytesIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buf, format=path.suffix.lower()[1:], dpi=DPI)
    return atomic_write_bytes(path, buf.getvalue())
