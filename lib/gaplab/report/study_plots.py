"""Figures that compare a study's phases (``05_compare``), drawn with matplotlib.

Reference lines carry their source in the figure itself (in the key panel under the axes, never on the
data); the constants and citations come from :mod:`gaplab.measure.references`.  Every figure names
phases by their names, gives each phase one colour in every figure (:func:`phase_colors`), is 900 px
wide with at most two panels a row and fonts of 11 pt or more (see :mod:`gaplab.report.plots`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..measure import scaling
from ..measure.references import (
    CHINCHILLA_NOTE,
    CHINCHILLA_TOKENS_PER_PARAM,
    KAPLAN_NOTE,
    MUENNIGHOFF_NOTE,
    REPEAT_SAFE_EPOCHS,
    load_seed_reference,
)
from ..train.history import finite_history, load_history
from .figure_kit import (
    FONT_PT,
    NEGATIVE_GAP_NOTE,
    VERDICT_COLORS,
    PathLike,
    _done,
    _fill_key,
    _fmt_int,
    _label_points,
    _need_columns,
    _num,
    _panels,
    _reference_line_log_x,
    _save,
    gap_axis_limits,
    key_rows,
    readable_log_axis,
    styled,
)
from .summary import COLUMN, done_rows

# --------------------------------------------------------------------------- units
#: per unit: the history columns (val, train), the table columns (best, final) and the axis label
UNITS = {
    "nats": ("val_loss", "train_loss", "best_val", "final_val", "loss (nats per token)"),
    "bpb": ("val_bpb", "train_bpb", "best_val_bpb", "final_val_bpb", "loss (bits per byte)"),
}


def comparable_unit(table: pd.DataFrame) -> tuple[str, str]:
    """The unit in which a study's losses compare, and a line saying why (drawn on the figure).

    Nats per token when every finished phase is scored on one validation set (same text, same
    vocabulary); else bits per byte, which no tokenizer changes, when the phases recorded it.
    """
    done = done_rows(table)
    fps = done[COLUMN.val_fingerprint].dropna() if COLUMN.val_fingerprint in done else pd.Series(dtype=object)
    if fps.nunique() <= 1 and len(fps) == len(done):
        return "nats", "all phases scored on one validation set: nats per token compare"
    if COLUMN.best_val_bpb in done and np.isfinite(_num(done[COLUMN.best_val_bpb])).all():
        same = COLUMN.val_text_fingerprint in done and done[COLUMN.val_text_fingerprint].nunique(dropna=True) == 1
        why = "one val text over different vocabularies" if same else "phases scored on different validation sets"
        return "bpb", f"{why}: shown in bits per byte (nats per token would not compare)"
    return "nats", "CAUTION: phases scored on different validation sets; these nats per token do not compare"


def phase_colors(phases: list[str]) -> dict[str, str]:
    """One colour per phase, the same in every comparison figure (matplotlib's tab10, then tab20)."""
    if len(phases) <= 10:
        return {p: f"C{i}" for i, p in enumerate(phases)}
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return {p: cmap(i % 20) for i, p in enumerate(phases)}


def _one_line(note: str) -> str:
    """A note as one sentence-case line (references' notes carry line breaks for boxes)."""
    note = " ".join(note.split())
    return note[:1].upper() + note[1:]


# --------------------------------------------------------------------------- a study
@styled
def compare_val_curves(
    histories: Mapping[str, pd.DataFrame],
    out_dir: PathLike,
    name: str = "compare_val_curves",
    unit: str = "nats",
    note: str = "",
) -> Figure:
    """Every phase's val loss (solid) and train loss (dotted) against iterations and against tokens seen.

    ``unit``: ``nats`` or ``bpb`` (:func:`comparable_unit` picks the one in which the phases compare).
    Replicated phases are drawn as their mean with a band (the range over the seeds).
    """
    if not histories:
        raise ValueError("compare_val_curves: no histories given (a dict phase -> history DataFrame)")
    vcol, tcol, _, _, label = UNITS[unit]
    colors = phase_colors(list(histories))
    notes = ["Solid: val loss; dotted: train loss, same colour."] + ([_one_line(note)] if note else [])
    fig, (ax, tax), key = _panels(1, 2, 4.2, key_lines=key_rows(len(histories), notes, ncol=3))
    for phase, hist in histories.items():
        h = finite_history(hist)
        if vcol not in h.columns:
            continue
        color = colors[phase]
        it = _num(h["iter"])
        seeds = int(_num(h["replicates"])[0]) if "replicates" in h.columns else 1
        ax.plot(
            it,
            _num(h[vcol]),
            color=color,
            lw=1.8,
            label=phase + (f" (mean of {seeds} seeds, band = range)" if seeds > 1 else ""),
        )
        ax.plot(it, _num(h[tcol]), color=color, lw=1, ls=":", alpha=0.8)
        if seeds > 1 and f"{vcol}_min" in h.columns:
            ax.fill_between(it, _num(h[f"{vcol}_min"]), _num(h[f"{vcol}_max"]), color=color, alpha=0.2, lw=0)
        if "tokens_seen" in h.columns:
            seen = _num(h["tokens_seen"])
            pos = seen > 0
            tax.plot(seen[pos], _num(h[vcol])[pos], color=color, lw=1.8, label=f"{phase} val")
            tax.plot(seen[pos], _num(h[tcol])[pos], color=color, lw=1, ls=":", alpha=0.8)
    ax.set_xlabel("iteration")
    tax.set_xscale("log")
    readable_log_axis(tax.xaxis, *tax.get_xlim())
    tax.set_xlabel("training tokens seen (log scale)")
    for axis in (ax, tax):
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    ax.set_title("by iteration")
    tax.set_title("by tokens seen")
    _fill_key(key, *ax.get_legend_handles_labels(), notes=notes, ncol=3)
    return _save(fig, out_dir, name)


@styled
def gap_curves(histories: Mapping[str, pd.DataFrame], out_dir: PathLike, name: str = "gap_curves") -> Figure:
    """Each phase's gap (val − train, nats) by iteration, one small panel per phase, all on one y-scale.

    Two panels a row; a zero line in each; the scale holds every phase's gaps and at least
    :data:`gaplab.report.figure_kit.GAP_AXIS_MIN`, so a 0.15-nat gap looks as small beside a 2-nat one as it is.
    """
    if not histories:
        raise ValueError("gap_curves: no histories given (a dict phase -> history DataFrame)")
    colors = phase_colors(list(histories))
    hs = {p: finite_history(h) for p, h in histories.items()}
    gaps = {p: _num(h["val_loss"]) - _num(h["train_loss"]) for p, h in hs.items()}
    lo, hi = gap_axis_limits(*gaps.values())
    negative = any((g < 0).any() for g in gaps.values())
    notes = ["Every panel has the same gap scale."] + ([NEGATIVE_GAP_NOTE] if negative else [])
    n = len(hs)
    ncols = 1 if n == 1 else 2
    nrows = math.ceil(n / ncols)
    fig, axes, key = _panels(nrows, ncols, 2.4, key_lines=key_rows(0, notes))
    for axis, (phase, h) in zip(axes, hs.items()):
        it = _num(h["iter"])
        seeds = int(_num(h["replicates"])[0]) if "replicates" in h.columns else 1
        axis.plot(it, gaps[phase], color=colors[phase], marker=".", lw=1.8)
        if seeds > 1 and {"val_loss_min", "train_loss_max"} <= set(h.columns):
            axis.fill_between(
                it,
                _num(h["val_loss_min"]) - _num(h["train_loss_max"]),
                _num(h["val_loss_max"]) - _num(h["train_loss_min"]),
                color=colors[phase],
                alpha=0.15,
                lw=0,
            )
        axis.axhline(0, color="0.35", lw=1)
        axis.set_ylim(lo, hi)
        axis.set_title(
            f"{phase}: final {gaps[phase][-1]:+.2f} nats" + (f" (mean of {seeds} seeds)" if seeds > 1 else "")
        )
        axis.set_xlabel("iteration")
        axis.set_ylabel("gap (nats)")
        axis.grid(alpha=0.3)
    for axis in axes[n:]:
        axis.axis("off")
    _fill_key(key, [], [], notes=notes)
    return _save(fig, out_dir, name)


def _verdict_key(ax, verdicts: list) -> tuple[list, list]:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", ls="none", ms=8, color=VERDICT_COLORS.get(v, "0.5")) for v in dict.fromkeys(verdicts)
    ]
    return handles, [v or "no verdict" for v in dict.fromkeys(verdicts)]


@styled
def gap_vs_tokens_per_param(table: pd.DataFrame, out_dir: PathLike, name: str = "gap_vs_tokens_per_param") -> Figure:
    """Final gap against training tokens per parameter, all counted (log-x), with Chinchilla's ~20 line.

    Hoffmann et al. 2022 count every parameter, embeddings included, for their ~20; so does the x-axis.
    Points are coloured by verdict and named by phase.
    """
    done = _done(table, "gap_vs_tokens_per_param")
    x, y = _num(done[COLUMN.tokens_per_param_total]), _num(done[COLUMN.final_gap])
    verdicts = done[COLUMN.verdict].tolist() if COLUMN.verdict in done else [None] * len(done)
    notes = [_one_line(CHINCHILLA_NOTE)] + ([NEGATIVE_GAP_NOTE] if (y < 0).any() else [])
    fig, (ax,), key = _panels(1, 1, 4.6, key_lines=key_rows(len(set(verdicts)), notes, ncol=4, title=True))
    ax.scatter(x, y, s=60, c=[VERDICT_COLORS.get(v, "0.5") for v in verdicts], zorder=3)
    _reference_line_log_x(
        ax,
        x,
        CHINCHILLA_TOKENS_PER_PARAM,
        CHINCHILLA_NOTE,
        top=True,
        pad=(3, 3),
        short=f"~{CHINCHILLA_TOKENS_PER_PARAM:g} tokens/param",
    )
    _label_points(ax, x, y, done[COLUMN.phase].tolist())
    ax.axhline(0, color="0.35", lw=1)
    ax.set_ylim(*gap_axis_limits(y))
    ax.set_xlabel("training tokens per parameter, embeddings included (log scale)")
    ax.set_ylabel("final gap = val − train (nats)")
    ax.set_title("more data per parameter → smaller gap", pad=22)
    ax.grid(alpha=0.3, which="both")
    _fill_key(key, *_verdict_key(ax, verdicts), notes=notes, ncol=4, title="verdict")
    return _save(fig, out_dir, name)


@styled
def best_val_vs_train_tokens(
    table: pd.DataFrame, out_dir: PathLike, name: str = "best_val_vs_train_tokens", unit: str = "nats", note: str = ""
) -> Figure:
    """Best (filled) and final (hollow) val loss against the number of training tokens, log-x."""
    done = _done(table, "best_val_vs_train_tokens")
    _, _, bcol, fcol, label = UNITS[unit]
    x, best, final = _num(done[COLUMN.train_tokens]), _num(done[bcol]), _num(done[fcol])
    params = (
        _num(done[COLUMN.params_non_embedding]) if COLUMN.params_non_embedding in done else np.full(len(done), np.nan)
    )
    notes = ["A grey bar: the val loss lost after the best eval."] + ([_one_line(note)] if note else [])
    fig, (ax,), key = _panels(1, 1, 4.6, key_lines=key_rows(2, notes))
    sc = ax.scatter(
        x,
        best,
        c=np.log10(np.where(params > 0, params, np.nan)),
        cmap="viridis",
        s=60,
        zorder=3,
        label="best val loss (colour: model size)",
    )
    ax.scatter(x, final, facecolors="none", edgecolors="0.3", s=60, zorder=3, label="final val loss")
    for xi, b, f in zip(x, best, final):
        if np.isfinite(b) and np.isfinite(f) and f > b:
            ax.plot([xi, xi], [b, f], color="0.6", lw=1, zorder=2)
    ax.set_xscale("log")
    finite = x[np.isfinite(x) & (x > 0)]
    if finite.size:
        ax.set_xlim(finite.min() / 1.6, finite.max() * 1.6)
    readable_log_axis(ax.xaxis, *ax.get_xlim())
    _label_points(ax, x, best, done[COLUMN.phase].tolist())
    if np.isfinite(params).any():
        cb = fig.colorbar(sc, ax=ax)
        cb.set_label("log10(non-embedding parameters)")
    ax.set_xlabel("training tokens (log scale)")
    ax.set_ylabel(f"val {label}")
    ax.set_title("best val loss vs data")
    ax.grid(alpha=0.3, which="both")
    _fill_key(key, *ax.get_legend_handles_labels(), notes=notes)
    return _save(fig, out_dir, name)


@styled
def seed_vs_ours(
    table: pd.DataFrame, reference_df: pd.DataFrame, out_dir: PathLike, name: str = "seed_vs_ours"
) -> Figure:
    """Seed 003's reported numbers next to ours, per phase: best val, final val, final gap (val − train).

    Two panels a row: best and final val on top, the gap under them; the legend beside the gap.
    """
    _need_columns(table, ("phase", "best_val", "final_val", "final_gap"), "seed_vs_ours table")
    _need_columns(reference_df, ("phase", "best_val", "final_val", "final_train"), "seed_vs_ours reference_df")
    ours = table.set_index(table[COLUMN.phase].astype(str))
    ref = reference_df.set_index(reference_df["phase"].astype(str))
    phases = [p for p in ref.index if p in ours.index]
    if not phases:
        raise ValueError(
            f"seed_vs_ours: no phase in common; reference has {list(ref.index)}, table has {list(ours.index)}"
        )
    ref_gap = _num(ref.loc[phases, "final_val"]) - _num(ref.loc[phases, "final_train"])
    panels = (
        ("best val loss", _num(ref.loc[phases, "best_val"]), _num(ours.loc[phases, "best_val"])),
        ("final val loss", _num(ref.loc[phases, "final_val"]), _num(ours.loc[phases, "final_val"])),
        ("final gap = val − train", ref_gap, _num(ours.loc[phases, "final_gap"])),
    )
    fig, axes, _ = _panels(2, 2, 3.4)
    xs = np.arange(len(phases))
    for axis, (title, seed_v, our_v) in zip(axes, panels):
        axis.bar(xs - 0.2, seed_v, 0.4, color="0.65", label="seed 003 (reported; ChromaDB code)")
        axis.bar(xs + 0.2, our_v, 0.4, color="C0", label="gaplab (this study)")
        axis.set_xticks(xs, phases)
        axis.axhline(0, color="0.35", lw=1)
        axis.set_title(title)
        axis.set_ylabel("nats/token")
        axis.grid(alpha=0.3, axis="y")
    key = axes[3]
    key.axis("off")
    _fill_key(
        key,
        *axes[0].get_legend_handles_labels(),
        ncol=1,
        width=40,
        notes=["Seed 003's figures are its own, on its own corpus: compare the shape, not the digits."],
    )
    fig.suptitle("seed 003's reported figures vs this study")
    return _save(fig, out_dir, name)


def _grid_axes(done: pd.DataFrame, data_col: str, model_col: str) -> tuple[pd.Series, pd.Series, str]:
    if data_col in done and done[data_col].notna().all():
        data, data_name = done[data_col], data_col
    else:
        data, data_name = done[COLUMN.train_tokens], "train_tokens"
    if model_col in done and done[model_col].notna().all():
        model = done[model_col].astype(str)
    else:
        model = done[COLUMN.params_non_embedding].astype(str)
    return pd.to_numeric(data, errors="coerce"), model, data_name


@styled
def grid_heatmaps(
    table: pd.DataFrame,
    out_dir: PathLike,
    data_col: str = "data_max_tokens",
    model_col: str = "model_size",
    name: str = "grid_heatmaps",
    data_label: Optional[str] = None,
) -> Figure:
    """Heatmaps of best val loss and final gap over data size (columns) × model size (rows).

    ``data_label`` names the study key the grid varies (e.g. ``data.max_train_tokens``); by default the
    journey table's column is named.
    """
    done = _done(table, "grid_heatmaps")
    data, model, data_name = _grid_axes(done, data_col, model_col)
    df = pd.DataFrame(
        {
            "data": data.to_numpy(),
            "model": model.to_numpy(),
            "N": _num(done.get("params_non_embedding", pd.Series(np.nan, index=done.index))),
            "best_val": _num(done[COLUMN.best_val]),
            "final_gap": _num(done[COLUMN.final_gap]),
        }
    )
    order = df.groupby("model")["N"].median().sort_values(kind="stable").index.tolist()
    cols = sorted(df["data"].dropna().unique())
    fig, axes, _ = _panels(2, 1, 1.4 + 0.7 * max(2, len(order)))
    for axis, (key, title, cmap) in zip(
        axes,
        (("best_val", "best val loss (nats)", "viridis_r"), ("final_gap", "final gap = val − train (nats)", "magma_r")),
    ):
        grid = df.pivot_table(index="model", columns="data", values=key, aggfunc="mean").reindex(
            index=order, columns=cols
        )
        vals = grid.to_numpy(dtype=float)
        im = axis.imshow(vals, cmap=cmap, aspect="auto")
        for (r, c), v in np.ndenumerate(vals):
            if np.isfinite(v):
                axis.text(
                    c,
                    r,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=FONT_PT,
                    color="white" if im.norm(v) > 0.6 else "black",
                )
        n_by_model = df.groupby("model")["N"].median()
        axis.set_yticks(range(len(order)), [f"{m} ({_fmt_int(n_by_model[m])} non-emb)" for m in order])
        axis.set_xticks(range(len(cols)), [_fmt_int(c) for c in cols])
        axis.set_xlabel(
            data_label
            or {"data_max_tokens": "data size (tokens)", "train_tokens": "train tokens"}.get(data_name, data_name)
        )
        axis.set_ylabel("model")
        axis.set_title(title)
        fig.colorbar(im, ax=axis, shrink=0.9)
    return _save(fig, out_dir, name)


@styled
def loss_vs_epochs(table: pd.DataFrame, out_dir: PathLike, name: str = "loss_vs_epochs") -> Figure:
    """Best (filled) and final (hollow) val loss of each phase against its epochs over the train split,
    with the 4-epoch mark (Muennighoff et al. 2023); points named by phase, coloured by verdict."""
    from matplotlib.lines import Line2D

    done = _done(table, "loss_vs_epochs")
    ep, best, final = _num(done[COLUMN.epochs]), _num(done[COLUMN.best_val]), _num(done[COLUMN.final_val])
    verdicts = done[COLUMN.verdict].tolist() if COLUMN.verdict in done else [None] * len(done)
    colors = [VERDICT_COLORS.get(v, "0.5") for v in verdicts]
    notes = [_one_line(MUENNIGHOFF_NOTE), "A grey bar: the val loss lost after the best eval."]
    fig, (ax,), key = _panels(1, 1, 4.6, key_lines=key_rows(2 + len(set(verdicts)), notes, ncol=3))
    for x, b, f in zip(ep, best, final):
        if np.isfinite(b) and np.isfinite(f) and f > b:
            ax.plot([x, x], [b, f], color="0.6", lw=1, zorder=2)
    ax.scatter(ep, best, s=60, c=colors, zorder=3)
    ax.scatter(ep, final, s=60, facecolors="none", edgecolors=colors, lw=1.5, zorder=3)
    _reference_line_log_x(
        ax, ep, REPEAT_SAFE_EPOCHS, MUENNIGHOFF_NOTE, top=True, pad=(4, 2), short=f"{REPEAT_SAFE_EPOCHS:g} epochs"
    )
    _label_points(ax, ep, best, done[COLUMN.phase].tolist())
    ax.set_xlabel("epochs over the train split (log scale)")
    ax.set_ylabel("val loss (nats/token)")
    ax.set_title("repeating the data: past a few epochs it stops paying", pad=22)
    ax.grid(alpha=0.3, which="both")
    handles = [
        Line2D([], [], marker="o", ls="none", ms=8, color="0.3"),
        Line2D([], [], marker="o", ls="none", ms=8, mfc="none", color="0.3"),
    ]
    vh, vl = _verdict_key(ax, verdicts)
    _fill_key(key, handles + vh, ["best val", "final val"] + [f"verdict: {v}" for v in vl], notes=notes, ncol=3)
    return _save(fig, out_dir, name)


@styled
def kaplan_fit_plot(
    fit: Mapping[str, Any],
    N: Any,
    D: Any,
    L: Any,
    out_dir: PathLike,
    name: str = "kaplan_fit",
    labels: Optional[list[str]] = None,
) -> Figure:
    """Kaplan et al. 2020 eq. 1.5 fitted to the study: predicted vs observed, and loss vs data per model size."""
    N, D, L = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (N, D, L))
    pred = scaling.kaplan_loss(N, D, fit["Nc"], fit["Dc"], fit["alpha_N"], fit["alpha_D"])
    hold = np.asarray(fit.get("holdout_mask") or [False] * len(N), dtype=bool)
    text = (
        f"Fit of L(N, D) = [(Nc/N)^(α_N/α_D) + Dc/D]^α_D ({KAPLAN_NOTE}): Nc = {fit['Nc']:.3g}, "
        f"Dc = {fit['Dc']:.3g}, α_N = {fit['alpha_N']:.3f}, α_D = {fit['alpha_D']:.3f}; RMSE over the "
        f"{fit['n_fit']} fit points {fit['rmse']:.3f} nats"
    )
    if fit.get("holdout_rmse") is not None:
        text += f"; held out: RMSE {fit['holdout_rmse']:.3f}, max |err| {fit['holdout_max_abs_error']:.3f}"
    sizes = sorted(set(N.tolist()))
    fig, (ax, dax), key = _panels(1, 2, 4.2, key_lines=key_rows(3 + len(sizes), [text + "."], ncol=3))
    ax.scatter(L[~hold], pred[~hold], color="C0", s=45, label="fit points", zorder=3)
    if hold.any():
        ax.scatter(L[hold], pred[hold], facecolors="none", edgecolors="C3", s=70, lw=1.5, label="held out", zorder=3)
    if labels is not None:
        _label_points(ax, L, pred, labels)
    lo, hi = float(np.nanmin([L.min(), pred.min()])), float(np.nanmax([L.max(), pred.max()]))
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.5", ls="--", lw=1, label="perfect prediction")
    ax.set_xlabel("observed best val loss (nats)")
    ax.set_ylabel("predicted L(N, D) (nats)")
    ax.set_title("predicted vs observed")
    ax.grid(alpha=0.3)

    d_grid = np.geomspace(D.min() / 2, D.max() * 2, 100)
    for i, n in enumerate(sizes):
        color = f"C{i % 10}"
        sel = N == n
        dax.plot(
            d_grid,
            scaling.kaplan_loss(n, d_grid, fit["Nc"], fit["Dc"], fit["alpha_N"], fit["alpha_D"]),
            color=color,
            lw=1,
            label=f"law at N = {_fmt_int(n)}",
        )
        dax.scatter(D[sel & ~hold], L[sel & ~hold], color=color, s=40, zorder=3)
        if (sel & hold).any():
            dax.scatter(D[sel & hold], L[sel & hold], facecolors="none", edgecolors=color, s=70, lw=1.5, zorder=3)
    dax.set_xscale("log")
    readable_log_axis(dax.xaxis, *dax.get_xlim())
    dax.set_xlabel("training tokens D (log scale)")
    dax.set_ylabel("best val loss (nats)")
    dax.set_title("the law per non-embedding size N")
    dax.grid(alpha=0.3, which="both")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = dax.get_legend_handles_labels()
    _fill_key(key, h1 + h2, l1 + l2, notes=[text + "."], ncol=3)
    return _save(fig, out_dir, name)


# --------------------------------------------------------------------------- 05_compare
def is_grid(table: pd.DataFrame, data_col: str = "data_max_tokens", model_col: str = "model_size") -> bool:
    """True when the finished phases form a grid: at least 2 data sizes x 2 model sizes, every
    combination of them present (a heatmap of a study that is not a grid would be mostly empty)."""
    done = done_rows(table)
    if done.empty:
        return False
    data, model, _ = _grid_axes(done, data_col, model_col)
    if data.isna().any() or data.nunique() < 2 or model.nunique() < 2:
        return False
    cells = set(zip(data.tolist(), model.tolist()))
    return len(cells) == data.nunique() * model.nunique()


def grid_data_key(study_dir: PathLike, phases: list[str]) -> str:
    """The study key that sets a grid's data size (the journey table's ``data_max_tokens`` is
    ``data.max_train_tokens`` where set, else ``data.max_tokens``), read from the phases' params.yaml."""
    import yaml

    keys = set()
    for phase in phases:
        path = Path(study_dir) / phase / "params.yaml"
        try:
            data = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("data") or {}
        except (OSError, yaml.YAMLError):
            continue
        keys.add("data.max_train_tokens" if data.get("max_train_tokens") else "data.max_tokens")
    if len(keys) == 1:
        return keys.pop()
    return "data.max_train_tokens, else data.max_tokens" if keys else "data size (tokens)"


def is_seed_study(table: pd.DataFrame, study: Optional[str] = None) -> bool:
    """A study that reproduces seed 003: its name says so, or every finished phase is one of the seed's phases."""
    ref_phases = set(load_seed_reference()["phase"])
    done = set(done_rows(table)["phase"].astype(str))
    if not done & ref_phases:
        return False
    return bool(study and "seed" in study.lower()) or done <= ref_phases


def _paths(out_dir: Path, name: str) -> list[Path]:
    return [out_dir / f"{name}.png", out_dir / f"{name}.svg"]


def compare_figures(
    study_dir: PathLike, table: pd.DataFrame, phases: list[str], study: Optional[str] = None
) -> list[Path]:
    """Draw every comparison figure the study's results support into ``study_dir/figures``; return their paths."""
    sdir = Path(study_dir)
    out = sdir / "figures"
    done = done_rows(table)
    made: list[Path] = []
    if done.empty:
        return made
    histories = {}
    for phase in phases:
        mean = sdir / phase / "replicates" / "mean"
        if phase in set(done[COLUMN.phase]) and (mean / "history.csv").exists():
            histories[phase] = load_history(mean)  # the replicates' mean curve, with their range
        elif phase in set(done[COLUMN.phase]) and (sdir / phase / "history.csv").exists():
            histories[phase] = load_history(sdir / phase)
    unit, why = comparable_unit(table)
    if histories:
        compare_val_curves(histories, out, unit=unit, note=why)
        gap_curves(histories, out)
        made += _paths(out, "compare_val_curves") + _paths(out, "gap_curves")
    gap_vs_tokens_per_param(table, out)
    best_val_vs_train_tokens(table, out, unit=unit, note=why)
    made += _paths(out, "gap_vs_tokens_per_param") + _paths(out, "best_val_vs_train_tokens")
    if np.isfinite(_num(done[COLUMN.epochs])).any():
        loss_vs_epochs(table, out)
        made += _paths(out, "loss_vs_epochs")
    if is_seed_study(table, study):
        seed_vs_ours(table, load_seed_reference(), out)
        made += _paths(out, "seed_vs_ours")
    if is_grid(table):
        grid_heatmaps(table, out, data_label=grid_data_key(sdir, list(done[COLUMN.phase].astype(str))))
        made += _paths(out, "grid_heatmaps")
    fj = scaling.fit_journey(table)
    if fj is not None:
        kaplan_fit_plot(fj["fit"], fj["N"], fj["D"], fj["L"], out, labels=fj["phases"])
        made += _paths(out, "kaplan_fit")
    return made
