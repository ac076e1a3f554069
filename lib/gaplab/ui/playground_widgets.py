"""The playground's widgets below the :class:`~gaplab.ui.playground_view.Playground` itself: the knobs, live
curves in an Output widget, and the session's run history.

Split from :mod:`gaplab.ui.playground_view`.  Every widget carries the CSS class ``gaplab-<name>`` (e.g.
``gaplab-n-embd``) for the browser tests.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from .playground import CORPORA, PREDICTIONS, TOKENIZERS, Settings, describe_changes


# --------------------------------------------------------------------------- live curves in a widget
def _png_output(fig) -> dict[str, Any]:
    from ..report.figure_kit import png_bytes

    return {
        "output_type": "display_data",
        "metadata": {},
        "data": {"image/png": base64.b64encode(png_bytes(fig)).decode("ascii"), "text/plain": "<loss curves>"},
    }


def _text_output(html: str, text: str) -> dict[str, Any]:
    return {"output_type": "display_data", "metadata": {}, "data": {"text/html": html, "text/plain": text}}


WAITING = _text_output(
    "<p class='gaplab-waiting'><i>Training: the curves appear at the first evaluation (iter 0) ...</i></p>",
    "waiting for the first evaluation ...",
)


class LivePlot:
    """``on_eval`` for the trainer: collects eval rows and redraws :func:`gaplab.report.plots.live_figure`
    (this run over the faded ``earlier`` runs) into an Output widget.

    Nothing is drawn before the first eval (the Output says it is waiting).  Rendering a PNG takes ~0.2 s,
    so redraws closer together than ``min_interval`` seconds only mark the figure as changed;
    :meth:`flush` draws the latest state (call it when training ends).  Setting the Output's outputs is
    safe from the training thread.
    """

    def __init__(
        self,
        out,
        earlier: Sequence[tuple[str, pd.DataFrame]] = (),
        max_iters: Optional[int] = None,
        min_interval: float = 0.5,
    ):
        self.out, self.earlier, self.max_iters, self.min_interval = out, list(earlier), max_iters, min_interval
        self.rows: list[dict] = []
        self._last = float("-inf")
        self._pending = False
        out.outputs = (WAITING,)

    def __call__(self, row: dict) -> None:
        self.rows.append(dict(row))
        if time.monotonic() - self._last >= self.min_interval:
            self._draw()
        else:
            self._pending = True

    def _draw(self) -> None:
        from ..report.plots import live_figure

        self.out.outputs = (_png_output(live_figure(pd.DataFrame(self.rows), self.earlier, self.max_iters)),)
        self._last = time.monotonic()
        self._pending = False

    def flush(self) -> None:
        """Draw the latest curves now (redraws may have been skipped to save time)."""
        if self._pending and self.rows:
            self._draw()


def live_plot_into(
    out, min_interval: float = 0.5, earlier: Sequence[tuple[str, pd.DataFrame]] = (), max_iters: Optional[int] = None
) -> LivePlot:
    """A :class:`LivePlot` drawing into the ipywidgets Output ``out``; call it with each eval row."""
    return LivePlot(out, earlier, max_iters, min_interval)


@dataclass
class Run:
    """One finished playground run: its folder, settings, prediction, curves and verdict."""

    name: str
    folder: Path
    settings: Settings
    risk: str
    history: pd.DataFrame
    analysis: dict[str, Any] = field(default_factory=dict)
    outcome: str = ""


def history_html(runs: Sequence[Run]) -> str:
    """The session's runs as a table: what changed from the run before, prediction, outcome, best val."""
    from html import escape

    if not runs:
        return ""
    rows = []
    for i, r in enumerate(runs):
        changed = "first run" if i == 0 else "changed: " + describe_changes(r.settings, runs[i - 1].settings)
        a = r.analysis
        best = f"{a['best_val']:.3f} @ {a.get('best_iter')}" if a.get("best_val") is not None else "n/a"
        words = PREDICTIONS.get(r.risk, (r.risk,))[0]
        rows.append(
            f"<tr><td>{escape(r.name)}</td><td>{escape(changed)}</td><td>{escape(words)}</td>"
            f"<td>{escape(r.outcome.split('observed: ', 1)[-1])}</td><td>{escape(best)}</td></tr>"
        )
    head = "".join(
        f"<th style='text-align:left;padding-right:1em'>{h}</th>"
        for h in ("run", "settings (vs the run before)", "predicted", "observed", "best val @ iter")
    )
    return (
        f"<details open><summary><b>Run history</b> (faded curves above: earlier runs, labelled with what they "
        f"had)</summary><table class='gaplab-history-table'><tr>{head}</tr>{''.join(rows)}</table></details>"
    )


# --------------------------------------------------------------------------- the playground
DATA_TOKENS = (500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000)


N_EMBD = (8, 16, 32, 48, 64, 96, 128, 192, 256, 384)


BLOCK_SIZES = (8, 16, 32, 64, 128, 256)


ITERS = (20, 50, 100, 200, 300, 500, 1000, 2000, 5000)


BATCH_SIZES = (1, 2, 4, 8, 16, 32)


LEARNING_RATES = (1e-4, 3e-4, 5e-4, 1e-3, 2e-3, 3e-3, 1e-2)


CONTROLLED = (
    "corpus",
    "max_tokens",
    "tokenizer",
    "compact",
    "n_layer",
    "n_head",
    "n_embd",
    "block_size",
    "dropout",
    "max_iters",
    "batch_size",
    "learning_rate",
)


def _with(options: tuple, value: Any) -> list:
    return sorted(set(options) | {value})


def tagged(widget: Any, name: str) -> Any:
    """``widget`` with the CSS class ``gaplab-<name>`` (underscores as dashes)."""
    widget.add_class("gaplab-" + name.replace("_", "-"))
    return widget


STYLE = {"description_width": "100px"}


def _layout():
    import ipywidgets as W

    return W.Layout(width="330px")


def _choice(options: tuple, value: Any, description: str):
    """A slider over ``options`` (``value`` added when it is not one of them)."""
    import ipywidgets as W

    return W.SelectionSlider(
        options=_with(options, value),
        value=value,
        description=description,
        continuous_update=False,
        style=STYLE,
        layout=_layout(),
    )


def _data_controls(s: Settings) -> dict[str, Any]:
    import ipywidgets as W

    return {
        "corpus": W.Dropdown(
            options=list(CORPORA), value=s.corpus, description="corpus", style=STYLE, layout=_layout()
        ),
        "max_tokens": _choice(DATA_TOKENS, s.max_tokens, "data tokens"),
        "tokenizer": W.ToggleButtons(
            options=list(TOKENIZERS),
            value=s.tokenizer,
            description="tokenizer",
            style={**STYLE, "button_width": "70px"},
        ),
        "compact": W.Checkbox(value=s.compact, description="compact vocab", style=STYLE),
    }


def _int_slider(value: int, top: int, description: str):
    import ipywidgets as W

    return W.IntSlider(
        value=value,
        min=1,
        max=max(top, value),
        description=description,
        continuous_update=False,
        style=STYLE,
        layout=_layout(),
    )


def _model_controls(s: Settings) -> dict[str, Any]:
    import ipywidgets as W

    return {
        "n_layer": _int_slider(s.n_layer, 12, "n_layer"),
        "n_head": _int_slider(s.n_head, 8, "n_head"),
        "n_embd": _choice(N_EMBD, s.n_embd, "n_embd"),
        "block_size": _choice(BLOCK_SIZES, s.block_size, "block_size"),
        "dropout": W.FloatSlider(
            value=s.dropout,
            min=0.0,
            max=0.5,
            step=0.05,
            description="dropout",
            continuous_update=False,
            style=STYLE,
            layout=_layout(),
        ),
    }


def _training_controls(s: Settings) -> dict[str, Any]:
    import ipywidgets as W

    return {
        "max_iters": _choice(ITERS, s.max_iters, "iterations"),
        "batch_size": _choice(BATCH_SIZES, s.batch_size, "batch size"),
        "learning_rate": W.SelectionSlider(
            options=[(f"{v:g}", v) for v in _with(LEARNING_RATES, s.learning_rate)],
            value=s.learning_rate,
            description="learning rate",
            continuous_update=False,
            style=STYLE,
            layout=_layout(),
        ),
    }


#: the knobs in the columns they are shown in
CONTROL_COLUMNS = {
    "data": ("corpus", "max_tokens", "tokenizer", "compact"),
    "model": ("n_layer", "n_head", "n_embd", "block_size", "dropout"),
    "training": ("max_iters", "batch_size", "learning_rate"),
}


def make_controls(s: Settings) -> dict[str, Any]:
    """One widget per knob of :data:`CONTROLLED`, starting at ``s``, each with its CSS classes."""
    controls = {**_data_controls(s), **_model_controls(s), **_training_controls(s)}
    for name, widget in controls.items():
        widget.add_class("gaplab-control")
        tagged(widget, name)
    return controls
