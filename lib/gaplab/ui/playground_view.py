"""The playground's widgets: knobs, the readout, Train/Stop with live curves, "Save as phase".

:class:`Playground` wraps :mod:`gaplab.ui.playground`'s logic in ipywidgets and trains with
:func:`gaplab.pipeline.stages.train` in a background thread, drawing the curves into an Output widget.
"""

from __future__ import annotations

import base64
import io
import re
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union


from ..pipeline.config import Phase, validate_phase
from ..errors import StudyError
from .playground import CORPORA, EMBEDDING_NOTE_SHARE, Settings, TOKENIZERS, as_settings, readout, readout_html, save_as_phase, settings_to_phase

# --------------------------------------------------------------------------- live curves in a widget
def _png_output(fig) -> dict[str, Any]:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"), "text/plain": "<loss curves>"}}


class _OutputHandle:
    """Stands in for IPython's display handle: ``update(fig)`` re-renders the figure into an Output widget.

    Rendering a PNG takes ~0.1 s, so updates closer together than
    ``min_interval`` seconds only mark the figure as changed; :meth:`flush`
    renders the latest state (call it when training ends).
    """

    def __init__(self, out, min_interval: float = 0.5):
        self.out = out
        self.min_interval = min_interval
        self._fig = None
        self._last = float("-inf")
        self._pending = False

    def update(self, obj, **_: Any) -> None:
        self._fig = obj
        if time.monotonic() - self._last >= self.min_interval:
            self.flush(force=True)
        else:
            self._pending = True

    def flush(self, force: bool = False) -> None:
        if self._fig is not None and (force or self._pending):
            self.out.outputs = (_png_output(self._fig),)
            self._last = time.monotonic()
            self._pending = False


class LivePlot:
    """``on_eval`` of :func:`gaplab.ui.show.live_plot` drawing into an Output widget, plus :meth:`flush`."""

    def __init__(self, on_eval: Callable[[dict], None], handle: _OutputHandle):
        self._on_eval, self.handle = on_eval, handle

    def __call__(self, row: dict) -> None:
        self._on_eval(row)

    def flush(self) -> None:
        """Render the latest curves now (redraws may have been skipped to save time)."""
        self.handle.flush()


def live_plot_into(out, min_interval: float = 0.5) -> LivePlot:
    """:func:`gaplab.ui.show.live_plot`, drawing into the ipywidgets Output ``out``; call it with each eval row.

    ``live_plot`` shows its figure with a display handle and redraws it with
    ``handle.update``; JupyterLab's Output widget drops such update messages,
    so while ``live_plot`` sets up, IPython's ``display`` is swapped for one
    whose handle re-renders the figure as PNG into ``out.outputs`` (at most
    every ``min_interval`` seconds; ``flush()`` draws the last state).
    Setting a trait is safe from the training thread.  Call this from the
    main thread.
    """
    import IPython.display as ipd

    from . import show

    handle = _OutputHandle(out, min_interval)
    real = ipd.display

    def display(obj, *args: Any, **kwargs: Any) -> _OutputHandle:
        handle.update(obj)
        return handle

    ipd.display = display
    try:
        return LivePlot(show.live_plot(), handle)
    finally:
        ipd.display = real


# --------------------------------------------------------------------------- the playground
DATA_TOKENS = (500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000)


N_EMBD = (8, 16, 32, 48, 64, 96, 128, 192, 256, 384)


BLOCK_SIZES = (8, 16, 32, 64, 128, 256)


ITERS = (20, 50, 100, 200, 300, 500, 1000, 2000, 5000)


BATCH_SIZES = (1, 2, 4, 8, 16, 32)


LEARNING_RATES = (1e-4, 3e-4, 5e-4, 1e-3, 2e-3, 3e-3, 1e-2)


CONTROLLED = ("corpus", "max_tokens", "tokenizer", "compact", "n_layer", "n_head", "n_embd", "block_size",
              "dropout", "max_iters", "batch_size", "learning_rate")


def _with(options: tuple, value: Any) -> list:
    return sorted(set(options) | {value})


def _bump(name: str) -> str:
    """``playground_1`` -> ``playground_2``; ``x`` -> ``x_2``."""
    m = re.match(r"^(.*?)(\d+)$", name)
    return f"{m.group(1)}{int(m.group(2)) + 1}" if m else f"{name}_2"


class Playground:
    """The interactive playground: knobs, a live readout, Train/Stop with live curves, and "Save as phase".

    ``Playground(run_dir, study_path, **settings)``; ``settings`` are
    :class:`Settings` fields (the knobs start there).  Each Train run goes to
    a new folder ``run_dir/run-NNN`` (the files of :func:`gaplab.pipeline.stages.train`).
    Widgets carry CSS classes ``gaplab-<name>`` (e.g. ``gaplab-train``,
    ``gaplab-n-embd``, ``gaplab-readout``, ``gaplab-curves``) for browser tests.
    """

    STUDY = "playground"

    def __init__(self, run_dir: Union[str, Path] = "../outputs/playground",
                 study_path: Union[str, Path] = "../params/playground.yaml",
                 settings: Union[Settings, Mapping[str, Any], None] = None, **overrides: Any):
        import ipywidgets as W

        self.run_dir = Path(run_dir)
        self._base = as_settings(settings, **overrides)
        s = self._base
        style = {"description_width": "100px"}
        wide = W.Layout(width="330px")

        def sel(options, value, description):
            return W.SelectionSlider(options=_with(options, value), value=value, description=description,
                                     continuous_update=False, style=style, layout=wide)

        lr_options = [(f"{v:g}", v) for v in _with(LEARNING_RATES, s.learning_rate)]
        self.controls: dict[str, Any] = {
            "corpus": W.Dropdown(options=list(CORPORA), value=s.corpus, description="corpus", style=style,
                                 layout=wide),
            "max_tokens": sel(DATA_TOKENS, s.max_tokens, "data tokens"),
            "tokenizer": W.ToggleButtons(options=list(TOKENIZERS), value=s.tokenizer, description="tokenizer",
                                         style={**style, "button_width": "70px"}),
            "compact": W.Checkbox(value=s.compact, description="compact vocab", style=style),
            "n_layer": W.IntSlider(value=s.n_layer, min=1, max=max(12, s.n_layer), description="n_layer",
                                   continuous_update=False, style=style, layout=wide),
            "n_head": W.IntSlider(value=s.n_head, min=1, max=max(8, s.n_head), description="n_head",
                                  continuous_update=False, style=style, layout=wide),
            "n_embd": sel(N_EMBD, s.n_embd, "n_embd"),
            "block_size": sel(BLOCK_SIZES, s.block_size, "block_size"),
            "dropout": W.FloatSlider(value=s.dropout, min=0.0, max=0.5, step=0.05, description="dropout",
                                     continuous_update=False, style=style, layout=wide),
            "max_iters": sel(ITERS, s.max_iters, "iterations"),
            "batch_size": sel(BATCH_SIZES, s.batch_size, "batch size"),
            "learning_rate": W.SelectionSlider(options=lr_options, value=s.learning_rate,
                                               description="learning rate", continuous_update=False,
                                               style=style, layout=wide),
        }
        for name, widget in self.controls.items():
            widget.add_class("gaplab-control")
            widget.add_class("gaplab-" + name.replace("_", "-"))
            widget.observe(self._on_change, names="value")

        self.readout: dict[str, Any] = {}
        self.readout_panel = W.HTML(layout=W.Layout(width="100%"))
        self.readout_panel.add_class("gaplab-readout")
        self.embedding_bar = W.FloatProgress(value=0.0, min=0.0, max=1.0, description="embeddings",
                                             style=style, layout=W.Layout(width="330px"))
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
        self.log = W.Output()
        self.log.add_class("gaplab-log")
        self.train_button.on_click(lambda _: self._press_train())
        self.stop_button.on_click(lambda _: self.stop())

        self.study_path = W.Text(value=str(study_path), description="study file", style=style,
                                 layout=W.Layout(width="420px"))
        self.study_path.add_class("gaplab-study-path")
        self.phase_name = W.Text(value="playground_1", description="phase name", style=style)
        self.phase_name.add_class("gaplab-phase-name")
        self.save_button = W.Button(description="Save as phase", icon="save")
        self.save_button.add_class("gaplab-save")
        self.save_status = W.HTML()
        self.save_status.add_class("gaplab-save-status")
        self.save_button.on_click(lambda _: self.save())

        def column(title: str, names: list[str]):
            return W.VBox([W.HTML(f"<b>{title}</b>")] + [self.controls[n] for n in names])

        self.ui = W.VBox([
            W.HBox([column("data", ["corpus", "max_tokens", "tokenizer", "compact"]),
                    column("model", ["n_layer", "n_head", "n_embd", "block_size", "dropout"]),
                    column("training", ["max_iters", "batch_size", "learning_rate"])],
                   layout=W.Layout(flex_flow="row wrap")),
            W.HBox([self.embedding_bar, self.embedding_label]),
            self.readout_panel,
            W.HBox([self.train_button, self.stop_button, self.progress]),
            self.status, self.curves, self.log,
            W.HBox([self.study_path, self.phase_name, self.save_button]),
            self.save_status,
        ])
        self.ui.add_class("gaplab-playground")

        self.last_metrics: Optional[dict[str, Any]] = None
        self.last_run_dir: Optional[Path] = None
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
            self.readout_panel.value = (f"<p class='gaplab-problem' style='color:#b00020'>&#9888; "
                                        f"{escape(type(exc).__name__)}: {escape(str(exc))}</p>")
            self.train_button.disabled = True
            return self.readout
        share = self.readout["embedding_share"]
        self.readout_panel.value = readout_html(self.readout)
        self.embedding_bar.value = share
        self.embedding_bar.bar_style = "danger" if share >= EMBEDDING_NOTE_SHARE else "info"
        self.embedding_label.value = f"{share:.1%} of the parameters are embeddings"
        self.train_button.disabled = self.training or bool(self.readout["problems"])
        return self.readout

    # ------------------------------------------------------------------ training
    def _next_run_dir(self) -> Path:
        n = 1
        while (self.run_dir / f"run-{n:03d}").exists():
            n += 1
        return self.run_dir / f"run-{n:03d}"

    def phase_params(self, run_dir: Union[str, Path]) -> dict[str, Any]:
        """The current settings as a resolved phase dict (what :func:`gaplab.pipeline.stages.train` takes)."""
        parsed, problems = validate_phase(settings_to_phase(self.settings, validate=False), "(playground)",
                                          Path(run_dir).name)
        if problems or parsed is None:
            raise StudyError(problems)
        return Phase(Path(run_dir).name, parsed).resolved(self.STUDY, str(Path(run_dir).resolve()))

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
        self.last_run_dir, self.last_metrics, self.samples, self.error = run_dir, None, [], None
        self._stop.clear()
        self.progress.max = params["train"]["max_iters"]
        self.progress.value = 0
        self.progress.bar_style = ""
        self.log.outputs = ()
        self.status.value = f"training into {run_dir} ..."
        self.train_button.disabled = True
        self.stop_button.disabled = False
        on_plot = live_plot_into(self.curves)
        self._thread = threading.Thread(target=self._run, args=(params, on_plot), name="gaplab-playground",
                                        daemon=True)
        self._thread.start()
        if wait:
            self._thread.join()
        return self._thread

    def stop(self) -> None:
        """Ask the running training to stop after the current iteration (what it learned is kept)."""
        if self.training:
            self._stop.set()
            self.status.value = "stopping after this iteration ..."

    def wait(self, timeout: Optional[float] = None) -> Optional[dict[str, Any]]:
        """Block until the running training ends; return its metrics."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.last_metrics

    def _run(self, params: dict[str, Any], on_plot: LivePlot) -> None:
        from html import escape

        from ..pipeline import stages

        total = params["train"]["max_iters"]

        def on_eval(row: dict) -> None:
            on_plot(row)
            self.progress.value = int(row["iter"])
            self.status.value = (f"iter {int(row['iter'])}/{total}: train {row['train_loss']:.3f}, "
                                 f"val {row['val_loss']:.3f}, gap {row['gap']:+.3f}")

        try:
            metrics = stages.train(params, progress=False, on_eval=on_eval, should_stop=self._stop.is_set)
            on_plot.flush()
            self.last_metrics = metrics
            summary = (f"({escape(str(metrics['stop_reason']))}) after {metrics['iters']} iters: best val "
                       f"{metrics['best_val_loss']:.3f} at iter {metrics['best_iter']}, final train "
                       f"{metrics['final_train_loss']:.3f}, val {metrics['final_val_loss']:.3f}, gap "
                       f"{metrics['final_gap']:+.3f}; files in {escape(params['run_dir'])}")
            self.status.value = f"sampling from the best checkpoint {summary}"
            self._sample(params)
            self.progress.bar_style = "success"
            self.status.value = f"<b>done</b> {summary}"
        except Exception as exc:
            self.error = exc
            on_plot.flush()
            self.progress.bar_style = "danger"
            self.status.value = (f"<span style='color:#b00020'>failed: {escape(type(exc).__name__)}: "
                                 f"{escape(str(exc))}</span>")
            self.log.append_stderr(traceback.format_exc())
        finally:
            self.stop_button.disabled = True
            self.train_button.disabled = bool(self.readout.get("problems", True))

    def _sample(self, params: dict[str, Any]) -> None:
        """Print a few samples from the best checkpoint into the log."""
        from ..pipeline.config import phase_from_dict
        from ..measure.generate import generate
        from ..data.split import prepare_data
        from ..train.checkpoint import load_model

        p = phase_from_dict(params)
        ckpt = Path(params["run_dir"]) / "ckpt" / "best.pt"
        prep = prepare_data(p, params["phase"], params["run_dir"])
        model, ck = load_model(ckpt)
        s = p.sample
        prompts = s.prompts if isinstance(s.prompts, list) else [s.prompts]
        self.samples = generate(model, prep.tokenizer, prompts, max_new_tokens=s.max_new_tokens,
                                temperature=s.temperature, top_k=s.top_k, top_p=s.top_p, num_samples=1, seed=s.seed)
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
        self.save_status.value = (f"Saved phase <b>{escape(name)}</b> to <code>{escape(str(path))}</code>; "
                                  f"run it with <code>gaplab run {escape(str(path))} --phases {escape(name)}</code>.")
        self.phase_name.value = _bump(name)
        return path

    # ------------------------------------------------------------------ display
    def _repr_mimebundle_(self, **kwargs: Any):
        return self.ui._repr_mimebundle_(**kwargs)
