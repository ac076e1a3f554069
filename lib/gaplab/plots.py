"""Every gaplab figure, drawn with matplotlib and saved as PNG + SVG (``runs.save_figure``).

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot
state), so they work under any backend, including ``Agg`` in papermill and CI.
Each public function takes data and ``out_dir``, saves ``out_dir/<name>.png``
and ``.svg``, and returns the Figure (a notebook shows it by evaluating it).

Reference lines carry their source in the figure itself:
Hoffmann et al. 2022 (Chinchilla, ~20 tokens per parameter), Muennighoff et
al. 2023 (up to ~4 epochs of repeated data are about as good as fresh data),
Kaplan et al. 2020 (L(N, D), eq. 1.5).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from . import analysis as an
from . import scaling
from .runs import save_figure

PathLike = Union[str, Path]

VERDICT_COLORS = {"underfitting": "#4C72B0", "healthy": "#55A868", "overfitting": "#DD8452",
                  "memorizing": "#C44E52", None: "0.5"}
CHINCHILLA_NOTE = "~20 tokens/param: Chinchilla compute-optimal\n(Hoffmann et al. 2022)"
MUENNIGHOFF_NOTE = "≤ 4 epochs of repetition ≈ fresh data\n(Muennighoff et al. 2023)"
KAPLAN_NOTE = "Kaplan et al. 2020, eq. 1.5"


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
    done = an.done_rows(table)
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

    ``analysis`` is :func:`gaplab.analysis.analyze_run`'s dict (or None: computed from the history).
    """
    h = an.finite_history(history)
    a = dict(analysis) if analysis else {}
    if not a:
        a = an.detect_onset(h)
    it, tr, va = _num(h["iter"]), _num(h["train_loss"]), _num(h["val_loss"])
    slope = _iters_per_epoch_slope(h)
    best_iter, best_val = a.get("best_iter"), a.get("best_val")
    onset, early = a.get("onset_iter"), a.get("early_stop_iter")
    fig, (ax, lax, gax) = _figure(1, 3, (16, 4.6))

    for axis, logx in ((ax, False), (lax, True)):
        keep = it > 0 if logx else np.ones_like(it, dtype=bool)
        axis.plot(it[keep], tr[keep], color="C0", marker=".", label="train loss")
        axis.plot(it[keep], va[keep], color="C1", marker=".", label="val loss")
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
    h = an.finite_history(history)
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


# --------------------------------------------------------------------------- a study
def compare_val_curves(histories: Mapping[str, pd.DataFrame], out_dir: PathLike,
                       name: str = "compare_val_curves") -> Figure:
    """Every phase's val loss (solid) and train loss (dotted) against iterations and against tokens seen."""
    if not histories:
        raise ValueError("compare_val_curves: no histories given (a dict phase -> history DataFrame)")
    fig, (ax, tax) = _figure(1, 2, (14, 4.8))
    for i, (phase, hist) in enumerate(histories.items()):
        h = an.finite_history(hist)
        color = f"C{i % 10}"
        it = _num(h["iter"])
        ax.plot(it, _num(h["val_loss"]), color=color, lw=1.8, label=f"{phase} val")
        ax.plot(it, _num(h["train_loss"]), color=color, lw=1, ls=":", alpha=0.8)
        if "tokens_seen" in h.columns:
            seen = _num(h["tokens_seen"])
            pos = seen > 0
            tax.plot(seen[pos], _num(h["val_loss"])[pos], color=color, lw=1.8, label=f"{phase} val")
            tax.plot(seen[pos], _num(h["train_loss"])[pos], color=color, lw=1, ls=":", alpha=0.8)
    ax.set_xlabel("iteration")
    tax.set_xscale("log")
    tax.set_xlabel("training tokens seen (log scale)")
    for axis in (ax, tax):
        axis.set_ylabel("loss (nats/token); dotted = train")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    ax.set_title("val loss by iteration")
    tax.set_title("val loss by tokens seen (compares runs with different batch sizes)")
    return _save(fig, out_dir, name)


def gap_vs_tokens_per_param(table: pd.DataFrame, out_dir: PathLike, name: str = "gap_vs_tokens_per_param") -> Figure:
    """Final gap against training tokens per non-embedding parameter (log-x), with Chinchilla's ~20 line."""
    done = _done(table, "gap_vs_tokens_per_param")
    x, y = _num(done["tokens_per_param"]), _num(done["final_gap"])
    verdicts = done["verdict"].tolist() if "verdict" in done else [None] * len(done)
    fig, (ax,) = _figure(1, 1, (8, 5))
    for v in dict.fromkeys(verdicts):
        sel = np.array([vv == v for vv in verdicts])
        ax.scatter(x[sel], y[sel], s=50, color=VERDICT_COLORS.get(v, "0.5"), label=v or "no verdict", zorder=3)
    _label_points(ax, x, y, done["phase"])
    _reference_line_log_x(ax, x, scaling.CHINCHILLA_TOKENS_PER_PARAM, CHINCHILLA_NOTE, top=True, pad=(3, 3))
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("training tokens per non-embedding parameter (log scale)")
    ax.set_ylabel("final gap = val − train (nats)")
    ax.set_title("more data per parameter → smaller gap")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower left", title="verdict")
    return _save(fig, out_dir, name)


def best_val_vs_train_tokens(table: pd.DataFrame, out_dir: PathLike, name: str = "best_val_vs_train_tokens") -> Figure:
    """Best (filled) and final (hollow) val loss against the number of training tokens, log-x."""
    done = _done(table, "best_val_vs_train_tokens")
    x, best, final = _num(done["train_tokens"]), _num(done["best_val"]), _num(done["final_val"])
    params = _num(done["params_non_embedding"]) if "params_non_embedding" in done else np.full(len(done), np.nan)
    fig, (ax,) = _figure(1, 1, (8, 5))
    sc = ax.scatter(x, best, c=np.log10(np.where(params > 0, params, np.nan)), cmap="viridis", s=60, zorder=3,
                    label="best val loss")
    ax.scatter(x, final, facecolors="none", edgecolors="0.3", s=60, zorder=3, label="final val loss")
    for xi, b, f in zip(x, best, final):
        if np.isfinite(b) and np.isfinite(f) and f > b:
            ax.plot([xi, xi], [b, f], color="0.6", lw=1, zorder=2)
    _label_points(ax, x, best, done["phase"])
    if np.isfinite(params).any():
        cb = fig.colorbar(sc, ax=ax)
        cb.set_label("log10(non-embedding parameters)")
    ax.set_xscale("log")
    ax.set_xlabel("training tokens (log scale)")
    ax.set_ylabel("val loss (nats/token)")
    ax.set_title("best val loss vs data; a grey bar = val loss lost after the best eval")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _save(fig, out_dir, name)


def seed_vs_ours(table: pd.DataFrame, reference_df: pd.DataFrame, out_dir: PathLike, name: str = "seed_vs_ours") -> Figure:
    """Seed 003's reported numbers next to ours, per phase: best val, final val, final gap (val − train)."""
    _need_columns(table, ("phase", "best_val", "final_val", "final_gap"), "seed_vs_ours table")
    _need_columns(reference_df, ("phase", "best_val", "final_val", "final_train"), "seed_vs_ours reference_df")
    ours = table.set_index(table["phase"].astype(str))
    ref = reference_df.set_index(reference_df["phase"].astype(str))
    phases = [p for p in ref.index if p in ours.index]
    if not phases:
        raise ValueError(f"seed_vs_ours: no phase in common; reference has {list(ref.index)}, table has {list(ours.index)}")
    ref_gap = _num(ref.loc[phases, "final_val"]) - _num(ref.loc[phases, "final_train"])
    panels = (
        ("best val loss", _num(ref.loc[phases, "best_val"]), _num(ours.loc[phases, "best_val"])),
        ("final val loss", _num(ref.loc[phases, "final_val"]), _num(ours.loc[phases, "final_val"])),
        ("final gap = val − train", ref_gap, _num(ours.loc[phases, "final_gap"])),
    )
    fig, axes = _figure(1, 3, (15, 4.5))
    xs = np.arange(len(phases))
    for axis, (title, seed_v, our_v) in zip(axes, panels):
        axis.bar(xs - 0.2, seed_v, 0.4, color="0.65", label="seed 003 (reported; ChromaDB code)")
        axis.bar(xs + 0.2, our_v, 0.4, color="C0", label="gaplab (this study)")
        for xv, sv, ov in zip(xs, seed_v, our_v):
            for dx, v in ((-0.2, sv), (0.2, ov)):
                if np.isfinite(v):
                    axis.annotate(f"{v:.2f}", (xv + dx, v), ha="center", va="bottom" if v >= 0 else "top",
                                  fontsize=7, textcoords="offset points", xytext=(0, 2 if v >= 0 else -2))
        axis.set_xticks(xs, phases)
        axis.axhline(0, color="0.6", lw=0.8)
        axis.set_title(title)
        axis.set_ylabel("nats/token")
        axis.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=8)
    fig.suptitle("seed 003's reported figures (its own corpus) vs this study: compare the shape, not the digits",
                 fontsize=10)
    return _save(fig, out_dir, name)


def _grid_axes(done: pd.DataFrame, data_col: str, model_col: str) -> tuple[pd.Series, pd.Series, str]:
    if data_col in done and done[data_col].notna().all():
        data, data_name = done[data_col], data_col
    else:
        data, data_name = done["train_tokens"], "train_tokens"
    if model_col in done and done[model_col].notna().all():
        model = done[model_col].astype(str)
    else:
        model = done["params_non_embedding"].astype(str)
    return pd.to_numeric(data, errors="coerce"), model, data_name


def grid_heatmaps(table: pd.DataFrame, out_dir: PathLike, data_col: str = "data_max_tokens",
                  model_col: str = "model_size", name: str = "grid_heatmaps") -> Figure:
    """Heatmaps of best val loss and final gap over data size (columns) × model size (rows)."""
    done = _done(table, "grid_heatmaps")
    data, model, data_name = _grid_axes(done, data_col, model_col)
    df = pd.DataFrame({"data": data.to_numpy(), "model": model.to_numpy(),
                       "N": _num(done.get("params_non_embedding", pd.Series(np.nan, index=done.index))),
                       "best_val": _num(done["best_val"]), "final_gap": _num(done["final_gap"])})
    order = df.groupby("model")["N"].median().sort_values(kind="stable").index.tolist()
    cols = sorted(df["data"].dropna().unique())
    fig, axes = _figure(1, 2, (13, 1.6 + 0.9 * max(2, len(order))))
    for axis, (key, title, cmap) in zip(axes, (("best_val", "best val loss (nats)", "viridis_r"),
                                                ("final_gap", "final gap = val − train (nats)", "magma_r"))):
        grid = df.pivot_table(index="model", columns="data", values=key, aggfunc="mean").reindex(index=order,
                                                                                                columns=cols)
        vals = grid.to_numpy(dtype=float)
        im = axis.imshow(vals, cmap=cmap, aspect="auto")
        for (r, c), v in np.ndenumerate(vals):
            if np.isfinite(v):
                axis.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=9,
                          color="white" if im.norm(v) > 0.6 else "black")
        n_by_model = df.groupby("model")["N"].median()
        axis.set_yticks(range(len(order)), [f"{m}\n{_fmt_int(n_by_model[m])} non-emb" for m in order], fontsize=8)
        axis.set_xticks(range(len(cols)), [_fmt_int(c) for c in cols])
        axis.set_xlabel("data size: " + {"data_max_tokens": "data.max_train_tokens (else data.max_tokens)",
                                          "train_tokens": "train tokens"}.get(data_name, data_name))
        axis.set_ylabel("model size")
        axis.set_title(title)
        fig.colorbar(im, ax=axis, shrink=0.8)
    return _save(fig, out_dir, name)


def loss_vs_epochs(table: pd.DataFrame, out_dir: PathLike, name: str = "loss_vs_epochs") -> Figure:
    """Best and final val loss against epochs over the train split, with the 4-epoch mark (Muennighoff et al. 2023)."""
    done = _done(table, "loss_vs_epochs")
    ep = _num(done["epochs"])
    groups = done["model_size"].astype(str) if "model_size" in done and done["model_size"].notna().all() \
        else pd.Series(["all phases"] * len(done), index=done.index)
    fig, (ax,) = _figure(1, 1, (8, 5))
    for i, g in enumerate(dict.fromkeys(groups)):
        sel = (groups == g).to_numpy()
        o = np.argsort(ep[sel])
        color = f"C{i % 10}"
        ax.plot(ep[sel][o], _num(done["best_val"])[sel][o], marker="o", color=color, label=f"{g}: best val")
        ax.plot(ep[sel][o], _num(done["final_val"])[sel][o], marker="o", mfc="none", ls=":", color=color,
                label=f"{g}: final val")
    _label_points(ax, ep, _num(done["best_val"]), done["phase"])
    _reference_line_log_x(ax, ep, 4, MUENNIGHOFF_NOTE, top=True, pad=(4, 2))
    ax.set_xlabel("epochs over the train split (log scale)")
    ax.set_ylabel("val loss (nats/token)")
    ax.set_title("repeating the data: past a few epochs it stops paying")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, out_dir, name)


def kaplan_fit_plot(fit: Mapping[str, Any], N: Any, D: Any, L: Any, out_dir: PathLike,
                    name: str = "kaplan_fit", labels: Optional[list[str]] = None) -> Figure:
    """Kaplan et al. 2020 eq. 1.5 fitted to the study: predicted vs observed, and loss vs data per model size."""
    N, D, L = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (N, D, L))
    pred = scaling.kaplan_loss(N, D, fit["Nc"], fit["Dc"], fit["alpha_N"], fit["alpha_D"])
    hold = np.asarray(fit.get("holdout_mask") or [False] * len(N), dtype=bool)
    fig, (ax, dax) = _figure(1, 2, (14, 5))
    ax.scatter(L[~hold], pred[~hold], color="C0", s=45, label="fit points", zorder=3)
    if hold.any():
        ax.scatter(L[hold], pred[hold], facecolors="none", edgecolors="C3", s=70, lw=1.5, label="held out", zorder=3)
    if labels is not None:
        _label_points(ax, L, pred, labels)
    lo, hi = float(np.nanmin([L.min(), pred.min()])), float(np.nanmax([L.max(), pred.max()]))
    pad = 0.05 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.5", ls="--", lw=1, label="perfect prediction")
    text = (f"Nc = {fit['Nc']:.3g}, Dc = {fit['Dc']:.3g}\nα_N = {fit['alpha_N']:.3f}, α_D = {fit['alpha_D']:.3f}\n"
            f"RMSE (fit, {fit['n_fit']} pts) = {fit['rmse']:.3f} nats")
    if fit.get("holdout_rmse") is not None:
        text += f"\nheld-out RMSE = {fit['holdout_rmse']:.3f}, max |err| = {fit['holdout_max_abs_error']:.3f}"
    ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", fontsize=8,
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"})
    ax.set_xlabel("observed best val loss (nats)")
    ax.set_ylabel("predicted L(N, D) (nats)")
    ax.set_title(f"fit of L(N, D) = [(Nc/N)^(α_N/α_D) + Dc/D]^α_D ({KAPLAN_NOTE})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")

    d_grid = np.geomspace(D.min() / 2, D.max() * 2, 100)
    for i, n in enumerate(sorted(set(N.tolist()))):
        color = f"C{i % 10}"
        sel = N == n
        dax.plot(d_grid, scaling.kaplan_loss(n, d_grid, fit["Nc"], fit["Dc"], fit["alpha_N"], fit["alpha_D"]),
                 color=color, lw=1, label=f"N = {_fmt_int(n)}")
        dax.scatter(D[sel & ~hold], L[sel & ~hold], color=color, s=40, zorder=3)
        if (sel & hold).any():
            dax.scatter(D[sel & hold], L[sel & hold], facecolors="none", edgecolors=color, s=70, lw=1.5, zorder=3)
    dax.set_xscale("log")
    dax.set_xlabel("training tokens D (log scale)")
    dax.set_ylabel("best val loss (nats)")
    dax.set_title("lines: fitted law per non-embedding size N; hollow: held out")
    dax.grid(alpha=0.3, which="both")
    dax.legend(fontsize=8)
    return _save(fig, out_dir, name)


# --------------------------------------------------------------------------- 05_compare
def is_grid(table: pd.DataFrame, data_col: str = "data_max_tokens", model_col: str = "model_size") -> bool:
    """True when the finished phases span at least 2 data sizes and 2 model sizes."""
    done = an.done_rows(table)
    if done.empty:
        return False
    data, model, _ = _grid_axes(done, data_col, model_col)
    return data.nunique() >= 2 and model.nunique() >= 2


def is_seed_study(table: pd.DataFrame, study: Optional[str] = None) -> bool:
    """A study that reproduces seed 003: its name says so, or every finished phase is one of the seed's phases."""
    ref_phases = set(an.load_seed_reference()["phase"])
    done = set(an.done_rows(table)["phase"].astype(str))
    if not done & ref_phases:
        return False
    return bool(study and "seed" in study.lower()) or done <= ref_phases


def _paths(out_dir: Path, name: str) -> list[Path]:
    return [out_dir / f"{name}.png", out_dir / f"{name}.svg"]


def compare_figures(study_dir: PathLike, table: pd.DataFrame, phases: list[str],
                    study: Optional[str] = None) -> list[Path]:
    """Draw every comparison figure the study's results support into ``study_dir/figures``; return their paths."""
    sdir = Path(study_dir)
    out = sdir / "figures"
    done = an.done_rows(table)
    made: list[Path] = []
    if done.empty:
        return made
    histories = {}
    for phase in phases:
        if phase in set(done["phase"]) and (sdir / phase / "history.csv").exists():
            histories[phase] = an.load_history(sdir / phase)
    if histories:
        compare_val_curves(histories, out)
        made += _paths(out, "compare_val_curves")
    gap_vs_tokens_per_param(table, out)
    best_val_vs_train_tokens(table, out)
    made += _paths(out, "gap_vs_tokens_per_param") + _paths(out, "best_val_vs_train_tokens")
    if np.isfinite(_num(done["epochs"])).any():
        loss_vs_epochs(table, out)
        made += _paths(out, "loss_vs_epochs")
    if is_seed_study(table, study):
        seed_vs_ours(table, an.load_seed_reference(), out)
        made += _paths(out, "seed_vs_ours")
    if is_grid(table):
        grid_heatmaps(table, out)
        made += _paths(out, "grid_heatmaps")
    fj = scaling.fit_journey(table)
    if fj is not None:
        kaplan_fit_plot(fj["fit"], fj["N"], fj["D"], fj["L"], out, labels=fj["phases"])
        made += _paths(out, "kaplan_fit")
    return made


def compare_notes(study_dir: PathLike, table: pd.DataFrame, study: Optional[str] = None) -> list[str]:
    """Plain-language notes for the report: best phase, onsets, data needs (Chinchilla, Kaplan), fit, seed caveats."""
    notes: list[str] = []
    done = an.done_rows(table)
    if done.empty:
        return ["No phase finished, so there is nothing to compare yet."]
    best = done.iloc[int(np.nanargmin(_num(done["best_val"])))]
    notes.append(f"Lowest val loss: {best['phase']} with {best['best_val']:.3f} nats "
                 f"(perplexity {math.exp(min(best['best_val'], 700)):.1f}) at iter {best['best_iter']}.")
    vocabs = set(_num(done["vocab_size"])[np.isfinite(_num(done["vocab_size"]))]) if "vocab_size" in done else set()
    if len(vocabs) > 1:
        notes.append(f"Caution: these phases predict over different vocabularies ({', '.join(_fmt_int(v) for v in sorted(vocabs))} "
                     "ids), so their losses are not directly comparable: a smaller vocabulary makes each guess "
                     "easier, and with tokenizer.compact every val token unseen in train counts as one unknown id. "
                     "Compare gaps and curve shapes across phases; compare loss values only between equal vocabularies.")
    for _, r in done.iterrows():
        fv, bv = r.get("final_val"), r.get("best_val")
        if pd.notna(r.get("onset_iter")):
            lost = f"; it ended {fv - bv:.3f} nats above its best" if pd.notna(fv) and pd.notna(bv) else ""
            notes.append(f"{r['phase']}: val loss stopped improving after iter {int(r['onset_iter'])} while train loss "
                         f"kept falling (overfitting onset){lost}.")
    for _, r in done.iterrows():
        n, d = r.get("params_non_embedding"), r.get("train_tokens")
        if pd.notna(n) and pd.notna(d) and n > 0:
            need_k = scaling.kaplan_overfit_min_tokens(float(n))
            need_c = scaling.chinchilla_tokens(float(n))
            notes.append(f"{r['phase']}: {_fmt_int(float(n))} non-embedding parameters trained on {_fmt_int(float(d))} "
                         f"tokens ({float(d) / float(n):.3g} tokens/param). Chinchilla's ~20 tokens/param "
                         f"(Hoffmann et al. 2022) would be {_fmt_int(need_c)} tokens; Kaplan et al. 2020 (eq. 4.4) "
                         f"suggest at least 5e3·N^0.74 = {_fmt_int(need_k)} tokens to keep overfitting small.")
    fj = scaling.fit_journey(table)
    if fj is not None:
        f = fj["fit"]
        msg = (f"Kaplan et al. 2020 eq. 1.5 fitted to {f['n_fit']} phases: α_N = {f['alpha_N']:.3f}, "
               f"α_D = {f['alpha_D']:.3f}, RMSE {f['rmse']:.3f} nats")
        if f["holdout_rmse"] is not None:
            held = [p for p, h in zip(fj["phases"], fj["holdout"]) if h]
            msg += (f"; predicting the held-out largest-data phases ({', '.join(held)}) it is off by "
                    f"{f['holdout_rmse']:.3f} nats RMSE (max {f['holdout_max_abs_error']:.3f})")
        notes.append(msg + ". The law describes well-trained, early-stopped runs, so underfitting phases bend it; "
                     "and tiny models on tiny corpora give constants that do not transfer to Kaplan's scale.")
    if is_seed_study(table, study):
        ref = an.load_seed_reference()
        notes.append("Seed 003's figures are its own, reported on its ChromaDB code corpus; this study reproduces its "
                     "settings on a different corpus, so compare the shape of the journey, not the digits.")
        notes.extend(an.seed_findings_sentences(an.seed_findings(table)))
        for _, r in ref[ref["note"] != ""].iterrows():
            notes.append(f"Seed 003, {r['phase']}: {r['note']}.")
    return notes


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
