"""The playground's widgets: knobs, the readout, Train/Stop with live curves and a run history, "Save as phase".

:class:`Playground` wraps :mod:`gaplab.ui.playground`'s logic in ipywidgets and trains with
:func:`gaplab.pipeline.stages.train` in a background thread, drawing the curves
(:func:`gaplab.report.plots.live_figure`) into an Output widget: the current run over the faded val curves of
the earlier runs, each labelled with what it had that the current run does not.  The knobs are locked
while a run trains, so the readout always describes the curves.  When a run ends, its prediction is held
against the verdict of the one verdict function (:func:`gaplab.measure.curves.analyze_run`).
"""

from __future__ import annotations

import base64
import re
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import pandas as pd

from ..errors import StudyError
from ..pipeline.config import Phase, validate_phase
from .playground import (
    CORPORA,
    EMBEDDING_NOTE_SHARE,
    PREDICTIONS,
    TOKENIZERS,
    Settings,
    as_settings,
    describe_changes,
    next_phase_name,
    outcome_line,
    readout,
    readout_html,
    run_hint,
    save_as_phase,
    settings_to_phase,
)

#: torch threads for a playground run: its models are small, and on a busy 2-core machine two threads wait on
#: each other (measured: a GPT-2-vocabulary step of seed 003's phase 1 took 490 ms with 2 threads, 121 ms with 1)
PLAYGROUND_THREADS = 1
#: earlier runs drawn under the current one (the most recent ones)
HISTORY_CURVES = 4


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


def _stem(name: str) -> str:
    """``playground_1`` -> ``playground``; ``x`` -> ``x`` (the next free name is ``<stem>_N``)."""
    m = re.match(r"^(.*?)_(\d+)$", name)
    return m.group(1) if m else name


class Playground:
    """The interactive playground: knobs, a live readout, Train/Stop with live curves, and "Save as phase".

    ``Playground(run_dir, study_path, **settings)``; ``settings`` are
    :class:`Settings` fields (the knobs start there).  Each Train run goes to
    a new folder ``run_dir/run-NNN`` (the files of :func:`gaplab.pipeline.stages.train`).
    Widgets carry CSS classes ``gaplab-<name>`` (e.g. ``gaplab-train``,
    ``gaplab-n-embd``, ``gaplab-readout``, ``gaplab-curves``) for browser tests.
    """

    STUDY = "playground"

    def __init__(
        self,
        run_dir: Union[str, Path] = "../outputs/playground",
        study_path: Union[str, Path] = "../params/playground.yaml",
        settings: Union[Settings, Mapping[str, Any], None] = None,
        **overrides: Any,
    ):
        import ipywidgets as W

        self.run_dir = Path(run_dir)
        self._base = as_settings(settings, **overrides)
        s = self._base
        style = {"description_width": "100px"}
        wide = W.Layout(width="330px")

        def sel(options, value, description):
            return W.SelectionSlider(
                options=_with(options, value),
                value=value,
                description=description,
                continuous_update=False,
                style=style,
                layout=wide,
            )

        lr_options = [(f"{v:g}", v) for v in _with(LEARNING_RATES, s.learning_rate)]
        self.controls: dict[str, Any] = {
            "corpus": W.Dropdown(options=list(CORPORA), value=s.corpus, description="corpus", style=style, layout=wide),
            "max_tokens": sel(DATA_TOKENS, s.max_tokens, "data tokens"),
            "tokenizer": W.ToggleButtons(
                options=list(TOKENIZERS),
                value=s.tokenizer,
                description="tokenizer",
                style={**style, "button_width": "70px"},
            ),
            "compact": W.Checkbox(value=s.compact, description="compact vocab", style=style),
            "n_layer": W.IntSlider(
                value=s.n_layer,
                min=1,
                max=max(12, s.n_layer),
                description="n_layer",
                continuous_update=False,
                style=style,
                layout=wide,
            ),
            "n_head": W.IntSlider(
                value=s.n_head,
                min=1,
                max=max(8, s.n_head),
                description="n_head",
                continuous_update=False,
                style=style,
                layout=wide,
            ),
            "n_embd": sel(N_EMBD, s.n_embd, "n_embd"),
            "block_size": sel(BLOCK_SIZES, s.block_size, "block_size"),
            "dropout": W.FloatSlider(
                value=s.dropout,
                min=0.0,
                max=0.5,
                step=0.05,
                description="dropout",
                continuous_update=False,
                style=style,
                layout=wide,
            ),
            "max_iters": sel(ITERS, s.max_iters, "iterations"),
            "batch_size": sel(BATCH_SIZES, s.batch_size, "batch size"),
            "learning_rate": W.SelectionSlider(
                options=lr_options,
                value=s.learning_rate,
                description="learning rate",
                continuous_update=False,
                style=style,
                layout=wide,
            ),
        }
        for name, widget in self.controls.items():
            widget.add_class("gaplab-control")
            widget.add_class("gaplab-" + name.replace("_", "-"))
            widget.observe(self._on_change, names="value")

        self.readout: dict[str, Any] = {}
        self.readout_panel = W.HTML(layout=W.Layout(width="100%"))
        self.readout_panel.add_class("gaplab-readout")
        self.embedding_bar = W.FloatProgress(
            value=0.0, min=0.0, max=1.0, description="embeddings", style=style, layout=W.Layout(width="330px")
        )
        self.embedding_bar.add_class("gaplab-embedding-bar")
        self.embedding_label = W.Label()
        self.embedding_label.add_class("gaplab-embedding-share")

        self.train_button = W.Button(description="Train", button_style="success", icon="play")
        self.train_button.add_class("gaplab-train")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.stop_button.add_class("gaplab-stop")
        self.progress = W.IntProgress(value=0, min=0, max=s.max_iters, description="progress", style=style)
        self.progress.add_class("gaplab-progress")
        self.status = W.HTML(value="Press Train to train this configuration.")
        self.status.add_class("gaplab-status")
        self.curves = W.Output(layout=W.Layout(min_height="40px"))
        self.curves.add_class("gaplab-curves")
        self.outcome = W.HTML()
        self.outcome.add_class("gaplab-outcome")
        self.history_panel = W.HTML()
        self.history_panel.add_class("gaplab-history")
        self.log = W.Output()
        self.log.add_class("gaplab-log")
        self.train_button.on_click(lambda _: self._press_train())
        self.stop_button.on_click(lambda _: self.stop())

        self.study_path = W.Text(
            value=str(study_path), description="study file", style=style, layout=W.Layout(width="420px")
        )
        self.study_path.add_class("gaplab-study-path")
        self.phase_name = W.Text(value=next_phase_name(study_path), description="phase name", style=style)
        self.phase_name.add_class("gaplab-phase-name")
        self.save_button = W.Button(description="Save as phase", icon="save")
        self.save_button.add_class("gaplab-save")
        self.save_status = W.HTML()
        self.save_status.add_class("gaplab-save-status")
        self.save_button.on_click(lambda _: self.save())

        def column(title: str, names: list[str]):
            return W.VBox([W.HTML(f"<b>{title}</b>")] + [self.controls[n] for n in names])

        self.ui = W.VBox(
            [
                W.HBox(
                    [
                        column("data", ["corpus", "max_tokens", "tokenizer", "compact"]),
                        column("model", ["n_layer", "n_head", "n_embd", "block_size", "dropout"]),
                        column("training", ["max_iters", "batch_size", "learning_rate"]),
                    ],
                    layout=W.Layout(flex_flow="row wrap"),
                ),
                W.HBox([self.embedding_bar, self.embedding_label]),
                self.readout_panel,
                W.HBox([self.train_button, self.stop_button, self.progress]),
                self.status,
                self.outcome,
                self.curves,
                self.history_panel,
                self.log,
                W.HBox([self.study_path, self.phase_name, self.save_button]),
                self.save_status,
            ]
        )
        self.ui.add_class("gaplab-playground")

        self.last_metrics: Optional[dict[str, Any]] = None
        self.last_run_dir: Optional[Path] = None
        self.runs: list[Run] = []  # the finished runs of this session, oldest first
        self.samples: list[dict[str, Any]] = []
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.update()

    # ------------------------------------------------------------------ state
    @property
    def settings(self) -> Settings:
        """The current knob values (plus the fixed ones: val_fraction, eval_iters, evals, seed)."""
        return as_settings(self._base, **{n: self.controls[n].value for n in CONTROLLED})

    def set(self, **values: Any) -> None:
        """Set knobs from Python (same as moving them); the readout updates."""
        for name, value in values.items():
            if name not in self.controls:
                raise ValueError(f"unknown knob {name!r}; allowed: {', '.join(self.controls)}")
            self.controls[name].value = value

    @property
    def training(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _on_change(self, _change: Any) -> None:
        self.update()

    def update(self) -> dict[str, Any]:
        """Recompute the readout from the knobs and redraw the text and the embedding bar."""
        from html import escape

        try:
            self.readout = readout(self.settings)
        except Exception as exc:  # e.g. the GPT-2 ranks are not provisioned: show it, never break the UI
            self.readout = {}
            self.readout_panel.value = (
                f"<p class='gaplab-problem' style='color:#b00020'>&#9888; "
                f"{escape(type(exc).__name__)}: {escape(str(exc))}</p>"
            )
            self.train_button.disabled = True
            return self.readout
        share = self.readout["embedding_share"]
        self.readout_panel.value = readout_html(self.readout)
        self.embedding_bar.value = share
        self.embedding_bar.bar_style = "danger" if share >= EMBEDDING_NOTE_SHARE else "info"
        self.embedding_label.value = f"{share:.1%} of the parameters are embeddings"
        self.train_button.disabled = self.training or bool(self.readout["problems"])
        return self.readout

    def _lock(self, locked: bool) -> None:
        """Lock the knobs while a run trains (the readout then describes the curves being drawn)."""
        for widget in self.controls.values():
            widget.disabled = locked

    # ------------------------------------------------------------------ training
    def _next_run_dir(self) -> Path:
        n = 1
        while (self.run_dir / f"run-{n:03d}").exists():
            n += 1
        return self.run_dir / f"run-{n:03d}"

    def phase_params(self, run_dir: Union[str, Path]) -> dict[str, Any]:
        """The current settings as a resolved phase dict (what :func:`gaplab.pipeline.stages.train` takes);
        it trains with :data:`PLAYGROUND_THREADS` torch threads."""
        phase = settings_to_phase(self.settings, validate=False)
        phase["train"]["threads"] = PLAYGROUND_THREADS
        parsed, problems = validate_phase(phase, "(playground)", Path(run_dir).name)
        if problems or parsed is None:
            raise StudyError(problems)
        return Phase(Path(run_dir).name, parsed).resolved(self.STUDY, str(Path(run_dir).resolve()))

    def earlier_curves(self, settings: Optional[Settings] = None) -> list[tuple[str, pd.DataFrame]]:
        """The last :data:`HISTORY_CURVES` runs as ``(label, history)``, each labelled with what it had that
        ``settings`` (the run about to be drawn; default: the current knobs) does not."""
        now = settings or self.settings
        return [(f"{r.name}: {describe_changes(r.settings, now)}", r.history) for r in self.runs[-HISTORY_CURVES:]]

    def _press_train(self) -> None:
        from html import escape

        try:
            self.train()
        except Exception as exc:
            self.status.value = f"<span style='color:#b00020'>{escape(type(exc).__name__)}: {escape(str(exc))}</span>"

    def train(self, wait: bool = False) -> threading.Thread:
        """Train the current settings in a background thread (``wait``: block until it ends)."""
        if self.training:
            raise RuntimeError("a run is already training; press Stop first")
        problems = (self.readout or self.update()).get("problems", ["the readout failed"])
        if problems:
            raise ValueError("cannot train these settings: " + "; ".join(problems))
        run_dir = self._next_run_dir()
        params = self.phase_params(run_dir)
        settings, risk = self.settings, self.readout["risk"]
        self.last_run_dir, self.last_metrics, self.samples, self.error = run_dir, None, [], None
        self._stop.clear()
        self.progress.max = params["train"]["max_iters"]
        self.progress.value = 0
        self.progress.bar_style = ""
        self.log.outputs = ()
        self.outcome.value = ""
        self.status.value = (
            f"training into {run_dir} ... (the knobs are locked until the run ends; the readout describes this run)"
        )
        self.train_button.disabled = True
        self._stop_button_state("ready")
        self._lock(True)
        on_plot = live_plot_into(
            self.curves, earlier=self.earlier_curves(settings), max_iters=params["train"]["max_iters"]
        )
        self._thread = threading.Thread(
            target=self._run, args=(params, on_plot, settings, risk), name="gaplab-playground", daemon=True
        )
        self._thread.start()
        if wait:
            self._thread.join()
        return self._thread

    def _stop_button_state(self, state: str) -> None:
        """``ready`` (red, pressable), ``stopping`` (greyed, says so) or ``idle`` (greyed)."""
        b = self.stop_button
        b.description, b.button_style, b.icon = (
            ("Stop", "danger", "stop")
            if state == "ready"
            else ("Stopping ...", "", "hourglass-half")
            if state == "stopping"
            else ("Stop", "", "stop")
        )
        b.disabled = state != "ready"

    def stop(self) -> None:
        """Ask the running training to stop after the current iteration (what it learned is kept)."""
        if self.training:
            self._stop.set()
            self._stop_button_state("stopping")
            self.status.value = "stopping after this iteration ..."

    def wait(self, timeout: Optional[float] = None) -> Optional[dict[str, Any]]:
        """Block until the running training ends; return its metrics."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.last_metrics

    def _run(self, params: dict[str, Any], on_plot: LivePlot, settings: Settings, risk: str) -> None:
        from html import escape

        from ..measure.curves import analyze_run
        from ..pipeline import stages
        from ..train.history import load_history

        total = params["train"]["max_iters"]

        def on_eval(row: dict) -> None:
            on_plot(row)
            self.progress.value = int(row["iter"])
            self.status.value = (
                f"iter {int(row['iter'])}/{total}: train {row['train_loss']:.3f}, "
                f"val {row['val_loss']:.3f}, gap {row['gap']:+.3f}"
            )

        try:
            metrics = stages.train(params, progress=False, on_eval=on_eval, should_stop=self._stop.is_set)
            on_plot.flush()
            self.last_metrics = metrics
            summary = (
                f"({escape(str(metrics['stop_reason']))}) after {metrics['iters']} iters: best val "
                f"{metrics['best_val_loss']:.3f} at iter {metrics['best_iter']}, final train "
                f"{metrics['final_train_loss']:.3f}, val {metrics['final_val_loss']:.3f}, gap "
                f"{metrics['final_gap']:+.3f}; files in {escape(params['run_dir'])}"
            )
            run = Run(
                Path(params["run_dir"]).name, Path(params["run_dir"]), settings, risk, load_history(params["run_dir"])
            )
            run.analysis = analyze_run(params["run_dir"])  # the one verdict function, on the run's folder
            run.outcome = outcome_line(risk, run.analysis)
            self.runs.append(run)
            self.outcome.value = (
                f"<p class='gaplab-outcome-line' style='font-size:1.1em'><b>{escape(run.outcome)}"
                f"</b><br><span style='color:#555'>{escape(str(run.analysis.get('reason', '')))}"
                f"</span></p>"
            )
            self.history_panel.value = history_html(self.runs)
            self.status.value = f"sampling from the best checkpoint {summary}"
            self._sample(params)
            self.progress.bar_style = "success"
            self.status.value = f"<b>done</b> {summary}"
        except Exception as exc:
            self.error = exc
            on_plot.flush()
            self.progress.bar_style = "danger"
            self.status.value = (
                f"<span style='color:#b00020'>failed: {escape(type(exc).__name__)}: {escape(str(exc))}</span>"
            )
            self.log.append_stderr(traceback.format_exc())
        finally:
            self._stop_button_state("idle")
            self._lock(False)
            self.train_button.disabled = bool(self.readout.get("problems", True))

    def _sample(self, params: dict[str, Any]) -> None:
        """Print a few samples from the best checkpoint into the log."""
        from ..data.split import prepare_data
        from ..measure.generate import generate
        from ..pipeline.config import phase_from_dict
        from ..train.checkpoint import load_model

        p = phase_from_dict(params)
        ckpt = Path(params["run_dir"]) / "ckpt" / "best.pt"
        prep = prepare_data(p, params["phase"], params["run_dir"])
        model, ck = load_model(ckpt)
        s = p.sample
        prompts = s.prompts if isinstance(s.prompts, list) else [s.prompts]
        self.samples = generate(
            model,
            prep.tokenizer,
            prompts,
            max_new_tokens=s.max_new_tokens,
            temperature=s.temperature,
            top_k=s.top_k,
            top_p=s.top_p,
            num_samples=1,
            seed=s.seed,
        )
        lines = [f"Samples from the best checkpoint (iter {ck.get('iter')}), temperature {s.temperature:g}:"]
        for row in self.samples:
            lines += [f"--- prompt {row['prompt']!r}", row["prompt"] + row["text"]]
        self.log.append_stdout("\n".join(lines) + "\n")

    # ------------------------------------------------------------------ saving
    def save(self) -> Optional[Path]:
        """Append the current settings as a phase to the study file named in the text boxes."""
        from html import escape

        name = self.phase_name.value.strip()
        try:
            path = save_as_phase(self.study_path.value.strip(), name, self.settings)
        except (StudyError, ValueError, OSError) as exc:
            self.save_status.value = f"<pre style='color:#b00020'>{escape(str(exc))}</pre>"
            return None
        where, command = run_hint(path, name)
        place = f" from the repository root (<code>{escape(str(where))}</code>)" if where is not None else ""
        self.save_status.value = (
            f"Saved phase <b>{escape(name)}</b> to <code>{escape(str(path))}</code>; run "
            f"it{place} with <code>{escape(command)}</code>."
        )
        self.phase_name.value = next_phase_name(path, _stem(name))
        return path

    # ------------------------------------------------------------------ display
    def _repr_mimebundle_(self, **kwargs: Any):
        return self.ui._repr_mimebundle_(**kwargs)
