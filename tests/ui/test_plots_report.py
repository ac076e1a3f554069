"""Figures (PNG + SVG, with the right content) and the static report.html."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from gaplab.measure.curves import detect_onset
from gaplab.measure.references import load_seed_reference
from gaplab.measure.scaling import fit_kaplan, kaplan_loss
from gaplab.report import figure_kit, plots
from gaplab.report import study_plots as study_plots_mod
from gaplab.report.html_report import build_report, format_cell
from gaplab.report.notes import compare_notes
from gaplab.report.study_plots import compare_figures, is_grid, is_seed_study
from gaplab.report.summary import journey_table

from tests.measure.test_curves import (
    SEED0_ITERS,
    SEED0_TRAIN,
    SEED0_VAL,
    SEED4_ITERS,
    SEED4_TRAIN,
    make_history,
    make_study,
    metrics_for,
    seed4,
    write_phase,
)

TOKENS_PER_ITER, TRAIN_TOKENS = 16 * 128, 20700


def check_image_files(out_dir: Path, name: str, min_w: int = 600, min_h: int = 300) -> np.ndarray:
    """The PNG decodes to a non-blank image of a sensible size; the SVG parses as SVG."""
    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    img = mpimg.imread(png)
    assert img.ndim == 3 and img.shape[0] >= min_h and img.shape[1] >= min_w, img.shape
    rgb = img[..., :3]
    assert rgb.std() > 0.05  # not a blank canvas
    assert (rgb.min(axis=2) > 0.95).mean() > 0.3  # mostly white background, i.e. a chart, not noise
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg") and len(list(root.iter())) > 50
    return rgb


def has_color(rgb: np.ndarray, hex_color: str, tol: float = 0.06, min_pixels: int = 20) -> bool:
    target = np.array([int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(rgb - target).max(axis=2) < tol).sum()) >= min_pixels


def legend_texts(fig) -> set[str]:
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    return {t.get_text() for leg in legends for t in leg.get_texts()}


def all_texts(fig) -> str:
    from matplotlib.text import Text

    return "\n".join(t.get_text() for t in fig.findobj(Text))


def _data_axes(fig):
    """The panels that show data: not colour bars, not key panels (axis off), one per position (no twins)."""
    out, seen = [], set()
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>" or not ax.axison:
            continue
        box = tuple(np.round(ax.get_position().bounds, 3))
        if box not in seen:
            seen.add(box)
            out.append(ax)
    return out


def check_readable(fig, png: Path) -> None:
    """What a learner sees in JupyterLab (or on a projector): every text >= 11 pt at display size, at most
    two panels in a row, and no legend on a panel that shows data."""
    from matplotlib.text import Text
    from PIL import Image

    with Image.open(png) as im:
        width, dpi = im.size[0], im.info["dpi"][0]

    def seen(points: float) -> float:  # 1 CSS px = 1/96 in; a PNG wider than 900 px is scaled down to it
        return points * dpi / 96 * min(1.0, 900 / width)

    small = sorted(
        {
            (round(seen(t.get_fontsize()), 1), t.get_text()[:30])
            for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and seen(t.get_fontsize()) < 11
        }
    )
    assert not small, f"{png.name}: texts under 11 pt at display size: {small[:8]}"
    panels = [ax.get_position() for ax in _data_axes(fig)]
    for p in panels:  # the panels whose vertical span overlaps this one's by more than half: its row
        row = [q for q in panels if min(p.y1, q.y1) - max(p.y0, q.y0) > 0.5 * min(p.height, q.height)]
        assert len(row) <= 2, f"{png.name}: {len(row)} panels in a row"
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    for leg in legends:
        lb = leg.get_window_extent(renderer)
        for ax in _data_axes(fig):
            assert not lb.overlaps(ax.get_window_extent(renderer)), f"{png.name}: a legend covers a data panel"


def seed4_with_lr() -> pd.DataFrame:
    h = seed4()
    h["lr"] = np.where(h["iter"] < 400, h["iter"] / 400 * 1e-3, 1e-3 * np.cos(np.pi / 2 * (h["iter"] - 400) / 2600))
    return h


# --------------------------------------------------------------------------- one phase
def test_loss_curves(tmp_path):
    h = seed4_with_lr()
    a = dict(detect_onset(h), verdict="overfitting", early_stop_iter=2800, uniform_loss=10.825)
    fig = plots.loss_curves(h, a, tmp_path, phase="phase4")
    rgb = check_image_files(tmp_path, "loss_curves", min_w=850)
    check_readable(fig, tmp_path / "loss_curves.png")
    assert has_color(rgb, "#d62728")  # the red best-val star / onset line (matplotlib C3)
    assert has_color(rgb, "#1f77b4") and has_color(rgb, "#ff7f0e")  # train (C0) and val (C1) curves
    texts = legend_texts(fig)
    assert {
        "best val 4.045 @ iter 2000 (ckpt/best.pt)",
        "overfitting onset (iter 2000)",
        "early stop (iter 2800)",
        "train loss",
        "val loss",
    } <= texts
    assert fig.get_suptitle() == "phase4: verdict overfitting"
    # the learning rate has its own small axis under each loss panel, crossing no loss curve
    lr_axes = [ax for ax in fig.axes if ax.get_ylabel() == "learning\nrate"]
    assert len(lr_axes) == 1 and np.allclose(lr_axes[0].lines[0].get_ydata(), h["lr"])
    assert all(len(ax.lines) == 1 for ax in fig.axes if ax.get_xlabel() == "iteration (log scale)")
    # epochs on a secondary x-axis: the same span, converted iter -> epoch
    main = next(ax for ax in fig.axes if ax.get_title() == "train vs val loss")
    sec = next(ax for ax in main.child_axes if ax.get_xlabel() == "epochs over the train split")
    slope = TOKENS_PER_ITER / TRAIN_TOKENS
    assert np.allclose(sec.get_xlim(), np.array(main.get_xlim()) * slope)
    log_ax = next(ax for ax in fig.axes if ax.get_xscale() == "log")
    assert log_ax.lines[0].get_xdata()[0] == 200  # iter 0 cannot sit on a log axis
    gap_ax = next(ax for ax in fig.axes if ax.get_title() == "gap: final +3.138 nats")
    assert gap_ax.get_ylim()[0] <= -0.25 and any(np.allclose(line.get_ydata(), 0) for line in gap_ax.lines)  # zero line
    assert "below 0" not in all_texts(fig)  # seed 4's gap never goes negative: no note about it


def test_loss_curves_without_analysis_and_lr(tmp_path):
    h = make_history(SEED0_ITERS, SEED0_TRAIN, SEED0_VAL).drop(columns=["lr"])
    h.loc[0, "val_loss"] = h.loc[0, "train_loss"] - 0.05  # val below train at iter 0
    fig = plots.loss_curves(h, None, tmp_path, name="lc")
    check_image_files(tmp_path, "lc", min_w=850)
    check_readable(fig, tmp_path / "lc.png")
    assert "best val 6.153 @ iter 100 (ckpt/best.pt)" in legend_texts(fig)
    assert not any("learning" in ax.get_ylabel() for ax in fig.axes)
    assert "A gap below 0 (val under train) is common early on" in all_texts(fig).replace("\n", " ")


def test_loss_curves_gap_scale_is_shared(tmp_path):
    """A 0.15-nat gap is drawn on an axis of at least -0.25..1 nat (or the study's scale), not stretched to
    fill the panel as a 2-nat gap is."""
    small = make_history(SEED4_ITERS, SEED4_TRAIN, np.asarray(SEED4_TRAIN) + np.linspace(0, 0.15, len(SEED4_ITERS)))
    fig = plots.loss_curves(small, None, tmp_path, name="small")
    gap_ax = next(ax for ax in fig.axes if ax.get_ylabel() == "gap = val − train (nats)")
    lo, hi = gap_ax.get_ylim()
    assert lo <= -0.25 and hi >= 1.0
    fig = plots.loss_curves(small, None, tmp_path, name="small", gap_ylim=(-0.5, 3.0))
    gap_ax = next(ax for ax in fig.axes if ax.get_ylabel() == "gap = val − train (nats)")
    assert gap_ax.get_ylim() == (-0.5, 3.0)


@pytest.mark.parametrize("lo,hi", [(10, 40), (25, 500), (200, 3000), (1, 100_000)])
def test_log_ticks_are_readable(lo, hi):
    """A short run's log-x axis gets at least 3 labelled ticks (the old one had 1-2), at most 7."""
    ticks = figure_kit.log_ticks(lo, hi)
    assert 3 <= len(ticks) <= 7 and all(lo <= t <= hi for t in ticks) and ticks == sorted(ticks)


def test_live_figure_overlays_earlier_runs(tmp_path):
    h0 = make_history(SEED0_ITERS, SEED0_TRAIN, SEED0_VAL)
    now = h0.iloc[:4]
    fig = plots.live_figure(now, earlier=[("run-001: n_embd 32", h0)], max_iters=500)
    figure_kit.save_figure(fig, tmp_path, "live")
    check_readable(fig, tmp_path / "live.png")
    loss_ax = fig.axes[0]
    faded = next(line for line in loss_ax.lines if line.get_label() == "run-001: n_embd 32: val")
    assert np.allclose(faded.get_ydata(), h0["val_loss"])  # the whole earlier curve, under this run's
    assert loss_ax.get_xlim()[1] >= 500  # the axis is the whole run's, from the first eval
    star = next(line for line in loss_ax.lines if line.get_label().startswith("best val"))
    assert (star.get_xdata()[0], round(star.get_ydata()[0], 4)) == (100, 6.1531)
    assert any(ax.get_xlabel() == "epochs over the train split" for ax in loss_ax.child_axes)
    with pytest.raises(ValueError, match="no eval yet"):
        plots.live_figure(h0.iloc[:0])


# --------------------------------------------------------------------------- study figures
def small_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "phase": ["a", "b", "c", "gone"],
            "state": ["done", "done", "done", "failed"],
            "params_non_embedding": [40_000, 40_000, 800_000, None],
            "train_tokens": [900, 9000, 20_700, None],
            "tokens_per_param_total": [0.0225, 0.225, 0.0259, None],
            "epochs": [12.5, 1.25, 98.9, None],
            "best_val": [6.15, 4.5, 4.04, None],
            "final_val": [7.07, 4.6, 4.20, None],
            "final_gap": [6.90, 0.3, 3.14, None],
            "best_iter": [100, 900, 2000, None],
            "verdict": ["memorizing", "healthy", "overfitting", None],
            "model_size": ["2L-32d", "2L-32d", "4L-128d", None],
        }
    )


def scatter_points(ax) -> np.ndarray:
    return np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets())])


def test_compare_val_curves(tmp_path):
    h4, h0 = seed4(), make_history(SEED0_ITERS, SEED0_TRAIN, SEED0_VAL, tokens_per_iter=512)
    fig = study_plots_mod.compare_val_curves({"phase4": h4, "phase0": h0}, tmp_path)
    check_image_files(tmp_path, "compare_val_curves", min_w=850)
    check_readable(fig, tmp_path / "compare_val_curves.png")
    assert {"phase4", "phase0"} <= legend_texts(fig)
    it_ax, tok_ax = fig.axes[:2]
    assert np.allclose(it_ax.lines[0].get_ydata(), h4["val_loss"])
    assert tok_ax.get_xscale() == "log"
    assert np.allclose(tok_ax.lines[2].get_xdata(), h0["tokens_seen"][1:])  # tokens_seen 0 left off the log axis
    with pytest.raises(ValueError, match="no histories"):
        study_plots_mod.compare_val_curves({}, tmp_path)


def test_gap_vs_tokens_per_param(tmp_path):
    fig = study_plots_mod.gap_vs_tokens_per_param(small_table(), tmp_path)
    check_image_files(tmp_path, "gap_vs_tokens_per_param")
    check_readable(fig, tmp_path / "gap_vs_tokens_per_param.png")
    ax = fig.axes[0]
    pts = scatter_points(ax)
    assert sorted(map(tuple, pts.round(4))) == sorted([(0.0225, 6.9), (0.225, 0.3), (0.0259, 3.14)])
    assert any(np.allclose(line.get_xdata(), [20, 20]) for line in ax.lines)  # Chinchilla line
    assert "Hoffmann et al. 2022" in all_texts(fig)
    assert {"a", "b", "c"} <= {t.get_text() for t in ax.texts}  # points named by phase
    assert ax.get_xlim()[1] > 20


def test_best_val_vs_train_tokens(tmp_path):
    fig = study_plots_mod.best_val_vs_train_tokens(small_table(), tmp_path)
    check_image_files(tmp_path, "best_val_vs_train_tokens")
    check_readable(fig, tmp_path / "best_val_vs_train_tokens.png")
    best = fig.axes[0].collections[0].get_offsets()
    assert np.allclose(best, [[900, 6.15], [9000, 4.5], [20700, 4.04]])


def test_seed_vs_ours(tmp_path):
    ref = load_seed_reference()
    ours = pd.DataFrame(
        {
            "phase": ["phase0", "phase4", "extra"],
            "best_val": [5.9, 3.8, 1.0],
            "final_val": [6.5, 4.0, 1.0],
            "final_gap": [5.0, 1.5, 0.1],
        }
    )
    fig = study_plots_mod.seed_vs_ours(ours, ref, tmp_path)
    check_image_files(tmp_path, "seed_vs_ours", min_w=850)
    check_readable(fig, tmp_path / "seed_vs_ours.png")
    best_ax, _, gap_ax = fig.axes[:3]
    heights = [p.get_height() for p in best_ax.patches]
    assert heights == pytest.approx([6.15, 4.04, 5.9, 3.8])  # seed bars, then ours, for phase0 and phase4
    assert [t.get_text() for t in best_ax.get_xticklabels()] == ["phase0", "phase4"]
    assert [p.get_height() for p in gap_ax.patches][:2] == pytest.approx([6.90, 3.14])
    with pytest.raises(ValueError, match="no phase in common"):
        study_plots_mod.seed_vs_ours(ours.assign(phase=["x", "y", "z"]), ref, tmp_path)


def grid_table() -> pd.DataFrame:
    rows = []
    for model, n in (("4L-128d", 800_000), ("1L-32d", 12_000)):  # deliberately not in size order
        for d in (8000, 2000):
            rows.append(
                {
                    "phase": f"d{d}_{model}",
                    "state": "done",
                    "model_size": model,
                    "data_max_tokens": d,
                    "params_non_embedding": n,
                    "train_tokens": int(d * 0.9),
                    "epochs": 1e5 / d,
                    "best_val": round(3 + 1e4 / d + n / 1e6, 3),
                    "final_val": 9.0,
                    "final_gap": round(n / 1e5 / d * 1000, 3),
                    "tokens_per_param_total": d * 0.9 / n,
                }
            )
    return pd.DataFrame(rows)


def test_grid_heatmaps(tmp_path):
    t = grid_table()
    assert is_grid(t) and not is_grid(t[t.model_size == "1L-32d"])
    # a journey that grows data and model together (the seed study) is not a grid: its heatmap was mostly empty
    diagonal = t[[True, False, False, True]]
    assert diagonal["data_max_tokens"].nunique() == 2 and diagonal["model_size"].nunique() == 2
    assert not is_grid(diagonal)
    fig = study_plots_mod.grid_heatmaps(t, tmp_path, data_label="data.max_train_tokens")
    check_image_files(tmp_path, "grid_heatmaps", min_w=850, min_h=200)
    check_readable(fig, tmp_path / "grid_heatmaps.png")
    assert fig.axes[0].get_xlabel() == "data.max_train_tokens"
    best_ax, gap_ax = fig.axes[:2]  # the colour bars come after the two heatmaps
    # rows: models by size (small first); columns: data sizes ascending
    assert np.allclose(
        best_ax.images[0].get_array(), [[3 + 5 + 0.012, 3 + 1.25 + 0.012], [3 + 5 + 0.8, 3 + 1.25 + 0.8]]
    )
    assert np.allclose(gap_ax.images[0].get_array(), [[0.06, 0.015], [4.0, 1.0]])
    assert [t.get_text() for t in best_ax.get_xticklabels()] == ["2k", "8k"]
    assert best_ax.get_yticklabels()[0].get_text().startswith("1L-32d")


def test_loss_vs_epochs(tmp_path):
    fig = study_plots_mod.loss_vs_epochs(small_table(), tmp_path)
    check_image_files(tmp_path, "loss_vs_epochs")
    check_readable(fig, tmp_path / "loss_vs_epochs.png")  # the legend is off the data (it covered the overfit phase)
    ax = fig.axes[0]
    assert any(np.allclose(line.get_xdata(), [4, 4]) for line in ax.lines)
    assert "Muennighoff et al. 2023" in all_texts(fig)
    assert not any("Muennighoff" in t.get_text() for t in ax.texts)  # the citation is not a box on the data
    best, final = ax.collections[:2]
    assert np.allclose(best.get_offsets(), [[12.5, 6.15], [1.25, 4.5], [98.9, 4.04]])
    assert np.allclose(final.get_offsets(), [[12.5, 7.07], [1.25, 4.6], [98.9, 4.20]])
    # phases named by their names, on the points and nowhere by model size
    assert {t.get_text() for t in ax.texts} >= {"a", "b", "c"}
    assert not any("2L-32d" in t for t in legend_texts(fig))


def test_kaplan_fit_plot(tmp_path):
    true = {"Nc": 3e6, "Dc": 2e5, "alpha_N": 0.35, "alpha_D": 0.45}
    N, D = (a.ravel() for a in np.meshgrid([1e4, 1e5, 1e6], [1e4, 1e5, 1e6]))
    L = kaplan_loss(N, D, **true)
    hold = D == 1e6
    fit = fit_kaplan(N, D, L, holdout_mask=hold)
    fig = study_plots_mod.kaplan_fit_plot(fit, N, D, L, tmp_path)
    check_image_files(tmp_path, "kaplan_fit", min_w=850)
    check_readable(fig, tmp_path / "kaplan_fit.png")
    ax = fig.axes[0]
    assert np.allclose(ax.collections[0].get_offsets(), np.c_[L[~hold], L[~hold]], atol=1e-6)  # on the diagonal
    assert len(ax.collections[1].get_offsets()) == 3  # held-out points
    assert "Kaplan et al. 2020" in all_texts(fig)


# --------------------------------------------------------------------------- 05_compare pieces
@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One fabricated study (2 done, 1 failed, 1 missing) with its comparison figures drawn once."""
    sdir = tmp_path_factory.mktemp("studies") / "demo"
    phases = make_study(sdir)
    table = journey_table(sdir, phases)
    return sdir, phases, table, compare_figures(sdir, table, phases, study="demo")


def test_summary_csv_is_one_record_written_and_read_back(demo):
    """summary.csv's row is JourneyRow: its fields are the columns, written by write_summary and read back with
    the same types (a failed phase keeps its state and error; sample metrics follow as sample_<name>)."""
    from dataclasses import fields

    from gaplab.report.summary import JOURNEY_COLUMNS, JourneyRow, journey_rows, write_summary

    sdir, phases, table, _ = demo
    assert JOURNEY_COLUMNS == tuple(f.name for f in fields(JourneyRow) if f.name != "samples")
    written = write_summary(sdir, phases)
    pd.testing.assert_frame_equal(written, table)
    csv = pd.read_csv(sdir / "summary.csv")
    assert list(csv.columns[: len(JOURNEY_COLUMNS)]) == list(JOURNEY_COLUMNS)
    rows = {r.phase: r for r in journey_rows(csv)}
    assert list(rows) == list(phases)
    done = [r for r in rows.values() if r.state == "done"]
    assert len(done) == 2 and all(isinstance(r.best_val, float) and r.best_iter is not None for r in done)
    assert {r.best_val for r in done} == set(table.loc[table["state"] == "done", "best_val"])
    failed = next(r for r in rows.values() if r.state == "failed")
    assert failed.error and isinstance(failed.params_total, int) and isinstance(failed.model_size, str)
    assert [c for c in csv.columns if c.startswith("sample_")] == [f"sample_{k}" for k in done[0].samples]
    with pytest.raises(ValueError, match="needs the columns"):
        journey_rows(csv.drop(columns=["state"]))


def test_compare_figures_and_notes(demo):
    sdir, phases, table, paths = demo
    assert {p.name for p in paths} == {
        f"{n}.{ext}"
        for n in (
            "compare_val_curves",
            "gap_curves",
            "gap_vs_tokens_per_param",
            "best_val_vs_train_tokens",
            "loss_vs_epochs",
        )
        for ext in ("png", "svg")
    }
    assert all(p.exists() and p.parent == sdir / "figures" for p in paths)
    notes = compare_notes(sdir, table, study="demo")
    # histories from before val fingerprints: ranked, but with the warning that the val sets are not known
    assert notes[0].startswith("Lowest val loss: big with 4.045 nats per token (perplexity 57.1) at iter 2000; ")
    assert "no validation-set fingerprint" in notes[0]
    assert any(n.startswith("big: val loss stopped improving after iter 2000") and "0.155 nats" in n for n in notes)
    assert any("Hoffmann et al. 2022" in n and "797k non-embedding" in n for n in notes)
    assert not any("Seed 003" in n for n in notes)


def test_compare_figures_picks_seed_grid_and_kaplan_figures(tmp_path, monkeypatch):
    drawn: list[str] = []
    for name in (
        "compare_val_curves",
        "gap_curves",
        "gap_vs_tokens_per_param",
        "best_val_vs_train_tokens",
        "loss_vs_epochs",
        "seed_vs_ours",
        "grid_heatmaps",
        "kaplan_fit_plot",
    ):
        monkeypatch.setattr(study_plots_mod, name, lambda *a, _n=name, **k: drawn.append(_n))
    # the seed study: seed 003's phase names
    sdir = tmp_path / "seed_study"
    h4, h0 = seed4(), make_history(SEED0_ITERS, SEED0_TRAIN, SEED0_VAL)
    write_phase(sdir, "phase0", h0, metrics_for(h0))
    write_phase(sdir, "phase4", h4, metrics_for(h4, train_tokens=20_700))
    table = journey_table(sdir, ["phase0", "phase4"])
    assert is_seed_study(table, "seed_study")
    names = {p.stem for p in compare_figures(sdir, table, ["phase0", "phase4"], study="seed_study")}
    assert "seed_vs_ours" in names and "seed_vs_ours" in drawn and "grid_heatmaps" not in drawn
    notes = compare_notes(sdir, table, study="seed_study")
    assert any("Seed 003, phase2" in n and "-0.17" in n for n in notes)
    findings = [n for n in notes if n.startswith("Seed finding")]
    assert len(findings) == 3
    assert "phase 0's val loss rises" in findings[0] and ": reproduced." in findings[0]
    assert "smallest train/val gap" in findings[1] and "not checked" in findings[1]  # phase2 did not run here
    assert "phase 4's val loss degrades" in findings[2] and ": reproduced." in findings[2]
    # a 2 x 2 grid is a grid but too small for a 4-constant fit (6 phases needed)
    drawn.clear()
    grid = grid_table()
    names = {p.stem for p in compare_figures(tmp_path, grid, list(grid.phase), study="grid")}
    assert "grid_heatmaps" in names and "kaplan_fit" not in names and "seed_vs_ours" not in names
    # a 3 x 3 grid gets the Kaplan fit too
    drawn.clear()
    rows = [
        {
            "phase": f"p{n}_{d}",
            "state": "done",
            "model_size": f"m{n}",
            "data_max_tokens": d,
            "params_non_embedding": n,
            "train_tokens": d,
            "epochs": 1.0,
            "tokens_per_param_total": d / n,
            "best_val": kaplan_loss(n, d, 3e6, 2e5, 0.35, 0.45),
            "final_val": 5.0,
            "final_gap": 0.1,
        }
        for n in (1e4, 1e5, 1e6)
        for d in (1e4, 1e5, 1e6)
    ]
    names = {p.stem for p in compare_figures(tmp_path, pd.DataFrame(rows), [], study="big_grid")}
    assert {"grid_heatmaps", "kaplan_fit"} <= names and "kaplan_fit_plot" in drawn


def test_compare_with_nothing_finished(tmp_path):
    table = journey_table(tmp_path, ["ghost"])
    assert compare_figures(tmp_path, table, ["ghost"]) == []
    assert compare_notes(tmp_path, table) == ["No phase finished, so there is nothing to compare yet."]


# --------------------------------------------------------------------------- report.html
@pytest.mark.parametrize(
    "value,text",
    [
        (1234567, "1,234,567"),
        (0.0225, "0.0225"),
        (4.04490, "4.045"),
        (12345.6, "12,346"),
        (3899.0, "3,899"),
        (float("nan"), "—"),
        (pd.NA, "—"),
        (None, "—"),
        (True, "true"),
        ("a<b", "a<b"),
        (np.int64(20700), "20,700"),
    ],
)
def test_format_cell(value, text):
    assert format_cell(value) == text


def test_build_report(demo):
    sdir, phases, table, figs = demo
    failed = {"broken": "FileNotFoundError: <iter_999.pt> is missing & more"}
    out = build_report(
        sdir,
        table,
        figs,
        title="gaplab study: demo <1>",
        description="First paragraph with `gaplab run`.\n\nSecond <b>para</b>.",
        failed=failed,
        notes=["note with <script>alert(1)</script>"],
    )
    assert out == sdir / "report.html"
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    # the journey: its key columns first, one row per phase, in order, with formatted numbers
    key = html.split('<table class="key">')[1].split("</table>")[0]
    heads = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", key)
    assert heads == [
        "phase",
        "verdict",
        "params",
        "train tokens",
        "tokens / param",
        "epochs",
        "best val @ iter",
        "final gap",
        "onset",
    ]
    rows = re.findall(r"<tr class=\"[a-z]*\">(.*?)</tr>", key)
    assert [re.search(r"<td[^>]*>(.*?)</td>", r).group(1) for r in rows] == phases
    big = rows[1]
    assert "7,242,624" in big and "4.045 @ 2,000" in big and "overfitting" in big and "20,700" in big
    assert "iter 2,000" in big  # the onset
    assert 'class="failed"' in key and "missing" in rows[3]
    # every other column folded away, under the key table
    folded = html.split("<details><summary>All ")[1].split("</details>")[0]
    assert "tokens_per_s" in folded and "stop_reason" in folded and "tokens_per_s" not in key
    # failed phases, escaped
    assert "<h2>Failed phases</h2>" in html
    assert "<strong>broken</strong>: FileNotFoundError: &lt;iter_999.pt&gt; is missing &amp; more" in html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<title>gaplab study: demo &lt;1&gt;</title>" in html
    assert "<p>Second &lt;b&gt;para&lt;/b&gt;.</p>" in html
    assert "<p>First paragraph with <code>gaplab run</code>.</p>" in html  # markdown, not raw backticks
    # figures embedded as PNG, SVGs linked relative to the study folder
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(uris) == 5
    assert all(base64.b64decode(u)[:8] == b"\x89PNG\r\n\x1a\n" for u in uris)
    assert 'href="figures/compare_val_curves.svg"' in html
    # sources
    sources = html.split("<h2>Sources</h2>")[1]
    for cite in ("Kaplan et al. 2020", "Hoffmann et al. 2022", "Muennighoff et al. 2023", "Seed 003"):
        assert cite in sources
    assert not list(sdir.glob(".report.html.*"))  # no temp file left behind


def test_build_report_without_figures_or_failures(tmp_path):
    table = journey_table(tmp_path, ["ghost"])
    html = build_report(tmp_path, table, [], title="t").read_text()
    assert "Failed phases" not in html and "<p>No figures.</p>" in html and "ghost" in html
    with pytest.raises(TypeError, match="journey table"):
        build_report(tmp_path, [], [], title="t")


def test_compare_notes_never_rank_nats_across_validation_sets(tmp_path):
    import pandas as pd

    base = {
        "state": "done",
        "best_iter": 10,
        "onset_iter": None,
        "final_val": 3.0,
        "params_non_embedding": 1000,
        "params_total": 3000,
        "train_tokens": 5000,
        "val_tokens": 800,
    }
    # two compact vocabularies over one val text (a study mixing vocabularies): nats per token favour the
    # small vocabulary (b), bits per byte say a is better
    table = pd.DataFrame(
        [
            {
                **base,
                "phase": "a",
                "best_val": 2.9,
                "best_val_bpb": 1.10,
                "vocab_size": 7000,
                "val_fingerprint": "v1",
                "val_text_fingerprint": "t",
            },
            {
                **base,
                "phase": "b",
                "best_val": 2.0,
                "best_val_bpb": 1.25,
                "vocab_size": 400,
                "val_fingerprint": "v2",
                "val_text_fingerprint": "t",
            },
        ]
    )
    notes = compare_notes(tmp_path, table)
    assert not any("Lowest val loss" in n for n in notes)
    assert any("2 different validation sets" in n and "not compared across sets" in n for n in notes)
    across = next(n for n in notes if n.startswith("Across validation sets, in bits per byte"))
    assert "same validation text over different vocabularies" in across and "a 1.100, b 1.250" in across
    assert across.endswith("lowest a.")
    # different val texts: ranked in bits per byte with the caveat that the held-out texts differ
    other = table.assign(val_text_fingerprint=["t1", "t2"])
    across = next(n for n in compare_notes(tmp_path, other) if n.startswith("Across validation sets"))
    assert "how hard the held-out text is" in across
    # one val set: nats per token compare, and the note says which set
    same = table.assign(val_fingerprint="v1", vocab_size=7000)
    first = compare_notes(tmp_path, same)[0]
    assert first.startswith("All 2 phases are scored on one validation set (800 tokens, fingerprint v1)")
    assert "Lowest val loss: b with 2.000 nats per token (1.250 bits/byte" in first
    # old results without fingerprints over different vocabularies: not ranked at all
    old = table.drop(columns=["val_fingerprint", "val_text_fingerprint", "best_val_bpb"])
    assert any("not ranked" in n for n in compare_notes(tmp_path, old))


def test_comparison_figures_pick_the_unit_in_which_losses_compare():
    from gaplab.report.study_plots import comparable_unit

    base = {"state": "done", "best_val": 3.0, "best_val_bpb": 1.2}
    one = pd.DataFrame([{**base, "phase": "a", "val_fingerprint": "v"}, {**base, "phase": "b", "val_fingerprint": "v"}])
    assert comparable_unit(one)[0] == "nats"
    two = one.assign(val_fingerprint=["v1", "v2"], val_text_fingerprint="t")
    unit, why = comparable_unit(two)
    assert unit == "bpb" and "one val text over different vocabularies" in why
    unit, why = comparable_unit(two.assign(best_val_bpb=[1.2, None]))
    assert unit == "nats" and why.startswith("CAUTION")


def test_the_kaplan_bound_is_written_from_its_constants(monkeypatch):
    """The notes and the data table say Kaplan et al.'s eq. 4.4 bound from measure/references.py, not a copy."""
    from gaplab.measure import references
    from gaplab.report import notes

    assert notes.kaplan_bound_text() == "5e3·N^0.74" and notes.kaplan_bound_text("*") == "5e3*N^0.74"
    assert (references.KAPLAN_OVERFIT_COEF, references.KAPLAN_OVERFIT_EXP) == (5e3, 0.74)
    monkeypatch.setattr(notes, "KAPLAN_OVERFIT_EXP", 0.8)
    monkeypatch.setattr(notes, "KAPLAN_OVERFIT_COEF", 2e4)
    assert notes.kaplan_bound_text() == "2e4·N^0.8"
