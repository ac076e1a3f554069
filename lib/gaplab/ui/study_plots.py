"""Figures that compare a study's phases (``05_compare``), drawn with matplotlib.

Reference lines carry their source in the figure itself; the constants and citations come from
:mod:`gaplab.measure.references`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..pipeline.summary import done_rows
from ..train.history import finite_history, load_history
from ..measure.references import load_seed_reference
from ..measure import scaling
from ..measure.references import CHINCHILLA_NOTE, CHINCHILLA_TOKENS_PER_PARAM, KAPLAN_NOTE, MUENNIGHOFF_NOTE, REPEAT_SAFE_EPOCHS
from .plots import PathLike, VERDICT_COLORS, _done, _figure, _fmt_int, _label_points, _need_columns, _num, _reference_line_log_x, _save

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
    fps = done["val_fingerprint"].dropna() if "val_fingerprint" in done else pd.Series(dtype=object)
    if fps.nunique() <= 1 and len(fps) == len(done):
        return "nats", "all phases scored on one validation set: nats per token compare"
    if "best_val_bpb" in done and np.isfinite(_num(done["best_val_bpb"])).all():
        same = "val_text_fingerprint" in done and done["val_text_fingerprint"].nunique(dropna=True) == 1
        why = "one val text over different vocabularies" if same else "phases scored on different validation sets"
        return "bpb", f"{why}: shown in bits per byte (nats per token would not compare)"
    return "nats", "CAUTION: phases scored on different validation sets; these nats per token do not compare"


def _unit_note(fig: Figure, text: str) -> None:
    fig.text(0.01, 0.005, text, fontsize=8, color="0.35", ha="left", va="bottom")


# --------------------------------------------------------------------------- a study
def compare_val_curves(histories: Mapping[str, pd.DataFrame], out_dir: PathLike,
                       name: str = "compare_val_curves", unit: str = "nats", note: str = "") -> Figure:
    """Every phase's val loss (solid) and train loss (dotted) against iterations and against tokens seen.

    ``unit``: ``nats`` or ``bpb`` (:func:`comparable_unit` picks the one in which the phases compare).
    """
    if not histories:
        raise ValueError("compare_val_curves: no histories given (a dict phase -> history DataFrame)")
    vcol, tcol, _, _, label = UNITS[unit]
    fig, (ax, tax) = _figure(1, 2, (14, 4.8))
    for i, (phase, hist) in enumerate(histories.items()):
        h = finite_history(hist)
        if vcol not in h.columns:
            continue
        color = f"C{i % 10}"
        it = _num(h["iter"])
        seeds = int(_num(h["replicates"])[0]) if "replicates" in h.columns else 1
        ax.plot(it, _num(h[vcol]), color=color, lw=1.8,
                label=f"{phase} val" + (f" (mean of {seeds} seeds, band = their range)" if seeds > 1 else ""))
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
    tax.set_xlabel("training tokens seen (log scale)")
    for axis in (ax, tax):
        axis.set_ylabel(f"{label}; dotted = train")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    ax.set_title("val loss by iteration")
    tax.set_title("val loss by tokens seen (compares runs with different batch sizes)")
    if note:
        _unit_note(fig, note)
    return _save(fig, out_dir, name)


def gap_vs_tokens_per_param(table: pd.DataFrame, out_dir: PathLike, name: str = "gap_vs_tokens_per_param") -> Figure:
    """Final gap against training tokens per parameter, all counted (log-x), with Chinchilla's ~20 line.

    Hoffmann et al. 2022 count every parameter, embeddings included, for their ~20; so does the x-axis.
    """
    done = _done(table, "gap_vs_tokens_per_param")
    x, y = _num(done["tokens_per_param_total"]), _num(done["final_gap"])
    verdicts = done["verdict"].tolist() if "verdict" in done else [None] * len(done)
    fig, (ax,) = _figure(1, 1, (8, 5))
    for v in dict.fromkeys(verdicts):
        sel = np.array([vv == v for vv in verdicts])
        ax.scatter(x[sel], y[sel], s=50, color=VERDICT_COLORS.get(v, "0.5"), label=v or "no verdict", zorder=3)
    _label_points(ax, x, y, done["phase"])
    _reference_line_log_x(ax, x, CHINCHILLA_TOKENS_PER_PARAM, CHINCHILLA_NOTE, top=True, pad=(3, 3))
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("training tokens per parameter, embeddings included (log scale)")
    ax.set_ylabel("final gap = val − train (nats)")
    ax.set_title("more data per parameter → smaller gap")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower left", title="verdict")
    return _save(fig, out_dir, name)


def best_val_vs_train_tokens(table: pd.DataFrame, out_dir: PathLike, name: str = "best_val_vs_train_tokens",
                             unit: str = "nats", note: str = "") -> Figure:
    """Best (filled) and final (hollow) val loss against the number of training tokens, log-x."""
    done = _done(table, "best_val_vs_train_tokens")
    _, _, bcol, fcol, label = UNITS[unit]
    x, best, final = _num(done["train_tokens"]), _num(done[bcol]), _num(done[fcol])
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
    ax.set_ylabel(f"val {label}")
    ax.set_title("best val loss vs data; a grey bar = val loss lost after the best eval")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if note:
        _unit_note(fig, note)
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
    _reference_line_log_x(ax, ep, REPEAT_SAFE_EPOCHS, MUENNIGHOFF_NOTE, top=True, pad=(4, 2))
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
    done = done_rows(table)
    if done.empty:
        return False
    data, model, _ = _grid_axes(done, data_col, model_col)
    return data.nunique() >= 2 and model.nunique() >= 2


def is_seed_study(table: pd.DataFrame, study: Optional[str] = None) -> bool:
    """A study that reproduces seed 003: its name says so, or every finished phase is one of the seed's phases."""
    ref_phases = set(load_seed_reference()["phase"])
    done = set(done_rows(table)["phase"].astype(str))
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
    done = done_rows(table)
    made: list[Path] = []
    if done.empty:
        return made
    histories = {}
    for phase in phases:
        mean = sdir / phase / "replicates" / "mean"
        if phase in set(done["phase"]) and (mean / "history.csv").exists():
            histories[phase] = load_history(mean)  # the replicates' mean curve, with their range
        elif phase in set(done["phase"]) and (sdir / phase / "history.csv").exists():
            histories[phase] = load_history(sdir / phase)
    unit, why = comparable_unit(table)
    if histories:
        compare_val_curves(histories, out, unit=unit, note=why)
        made += _paths(out, "compare_val_curves")
    gap_vs_tokens_per_param(table, out)
    best_val_vs_train_tokens(table, out, unit=unit, note=why)
    made += _paths(out, "gap_vs_tokens_per_param") + _paths(out, "best_val_vs_train_tokens")
    if np.isfinite(_num(done["epochs"])).any():
        loss_vs_epochs(table, out)
        made += _paths(out, "loss_vs_epochs")
    if is_seed_study(table, study):
        seed_vs_ours(table, load_seed_reference(), out)
        made += _paths(out, "seed_vs_ours")
    if is_grid(table):
        grid_heatmaps(table, out)
        made += _paths(out, "grid_heatmaps")
    fj = scaling.fit_journey(table)
    if fj is not None:
        kaplan_fit_plot(fj["fit"], fj["N"], fj["D"], fj["L"], out, labels=fj["phases"])
        made += _paths(out, "kaplan_fit")
    return made
