"""The playground's widgets: knobs, the readout, Train/Stop with live curves and a run history, "Save as phase".

:class:`Playground` wraps :mod:`gaplab.ui.playground`'s logic in ipywidgets and trains with
:func:`gaplab.pipeline.stages.train` in a background thread, drawing the curves
(:func:`gaplab.report.plots.live_figure`) into an Output widget: the current run over the faded val curves of
the earlier runs, each labelled with what it had that the current run does not.  The knobs are locked
while a run trains, so the readout always describes the curves.  When a run ends, its prediction is held
against the verdict of the one verdict function (:func:`gaplab.measure.curves.analyze_run`).
"""

from __future__ import annotations

import re
import threading
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

import pandas as pd

from ..errors import StudyError
from ..pipeline.config import Phase, validate_phase
from .playground import (
    EMBEDDING_NOTE_SHARE,
    Settings,
    as_settings,
    describe_changes,
    outcome_line,
    readout,
    readout_html,
    settings_to_phase,
)
from .playground_save import next_phase_name, run_hint, save_as_phase
from .playground_widgets import (
    CONTROL_COLUMNS,
    CONTROLLED,
    STYLE,
    LivePlot,
    Run,
    history_html,
    live_plot_into,
    make_controls,
    tagged,
)

#: torch threads for a playground run: its models are small, and on a busy 2-core machine two threads wait on
#: each other (measured: a GPT-2-vocabulary step of seed 003's phase 1 took 490 ms with 2 threads, 121 ms with 1)
PLAYGROUND_THREADS = 1
#: earlier runs drawn under the current one (the most recent ones)
HISTORY_CURVES = 4


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
        self.controls: dict[str, Any] = make_controls(self._base)
        for widget in self.controls.values():
            widget.observe(self._on_change, names="value")
        self.readout: dict[str, Any] = {}
        self.readout_panel = tagged(W.HTML(layout=W.Layout(width="100%")), "readout")
        self.embedding_bar = tagged(
            W.FloatProgress(
                value=0.0, min=0.0, max=1.0, description="embeddings", style=STYLE, layout=W.Layout(width="330px")
            ),
            "embedding-bar",
        )
        self.embedding_label = tagged(W.Label(), "embedding-share")
        self._build_run_panel(self._base.max_iters)
        self._build_save_panel(study_path)
        self.ui = tagged(self._layout(), "playground")
        self.last_metrics: Optional[dict[str, Any]] = None
        self.last_run_dir: Optional[Path] = None
        self.runs: list[Run] = []  # the finished runs of this session, oldest first
        self.samples: list[dict[str, Any]] = []
        self.error: Optional[BaseException] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.update()

    def _build_run_panel(self, max_iters: int) -> None:
        """Train and Stop, the progress bar, the status line, the live curves, the outcome, history and log."""
        import ipywidgets as W

        self.train_button = tagged(W.Button(description="Train", button_style="success", icon="play"), "train")
        self.stop_button = tagged(
            W.Button(description="Stop", button_style="danger", icon="stop", disabled=True), "stop"
        )
        self.progress = tagged(
            W.IntProgress(value=0, min=0, max=max_iters, description="progress", style=STYLE), "progress"
        )
        self.status = tagged(W.HTML(value="Press Train to train this configuration."), "status")
        self.curves = tagged(W.Output(layout=W.Layout(min_height="40px")), "curves")
        self.outcome = tagged(W.HTML(), "outcome")
        self.history_panel = tagged(W.HTML(), "history")
        self.log = tagged(W.Output(), "log")
        self.train_button.on_click(lambda _: self._press_train())
        self.stop_button.on_click(lambda _: self.stop())

    def _build_save_panel(self, study_path: Union[str, Path]) -> None:
        """The study file, the phase name (the next free one) and Save as phase."""
        import ipywidgets as W

        self.study_path = tagged(
            W.Text(value=str(study_path), description="study file", style=STYLE, layout=W.Layout(width="420px")),
            "study-path",
        )
        self.phase_name = tagged(
            W.Text(value=next_phase_name(study_path), description="phase name", style=STYLE), "phase-name"
        )
        self.save_button = tagged(W.Button(description="Save as phase", icon="save"), "save")
        self.save_status = tagged(W.HTML(), "save-status")
        self.save_button.on_click(lambda _: self.save())

    def _layout(self):
        """The knobs in three columns, then the readout, the run panel and the save panel, top to bottom."""
        import ipywidgets as W

        columns = [
            W.VBox([W.HTML(f"<b>{title}</b>")] + [self.controls[n] for n in names])
            for title, names in CONTROL_COLUMNS.items()
        ]
        return W.VBox(
            [
                W.HBox(columns, layout=W.Layout(flex_flow="row wrap")),
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
