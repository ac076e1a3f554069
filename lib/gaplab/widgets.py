"""The playground: knobs, a live readout, training in the background, and "save as phase".

Everything a learner sees before pressing Train is computed here from the
settings alone (:func:`readout`): the parameter count split into embedding and
non-embedding parameters (Kaplan et al. 2020 count only the latter), the size
of the training split, training tokens per non-embedding parameter (against
Chinchilla's ~20, Hoffmann et al. 2022), the epochs the run will make, and a
one-line prediction (:func:`predict_risk`).  :class:`Playground` wraps these in
ipywidgets; the logic is plain functions so it is tested without a browser.

Token counts are exact, not estimated: the corpus is read and tokenized once
per (corpus, tokenizer) and cached in the process (:func:`corpus_stats`,
about 0.2 s for the largest choice), and the tail split is applied to that
stream exactly as :func:`gaplab.split.prepare_data` does, so the readout shows
the same train/val sizes and compact vocabulary the trainer will get.
"""

from __future__ import annotations

import base64
import copy
import functools
import io
import re
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

import numpy as np
import yaml

from .config import PHASE_NAME, ModelConfig, Phase, Problem, StudyError, _extend, load_study, validate_phase
from .runs import atomic_write_text

#: Corpus choices: stdlib packages read in this order (see :mod:`gaplab.corpus`).
CORPORA: dict[str, list[str]] = {
    "json": ["json"],
    "logging": ["logging"],
    "email": ["email"],
    "json+logging": ["json", "logging"],
    "json+logging+email": ["json", "logging", "email"],
}
TOKENIZERS = ("gpt2", "char")
#: Hoffmann et al. 2022 ("Training Compute-Optimal Large Language Models", Chinchilla):
#: compute-optimal training uses about 20 tokens per parameter.
CHINCHILLA_TOKENS_PER_PARAM = 20.0
#: Muennighoff et al. 2023 ("Scaling Data-Constrained Language Models"): up to about 4 epochs,
#: repeated tokens are worth almost as much as new ones ...
REPEAT_SAFE_EPOCHS = 4.0
#: ... and past about 16 epochs further repetitions add little (their fitted decay constant R*_D is ~15).
REPEAT_EXHAUSTED_EPOCHS = 16.0
#: Teaching default: a model trained from scratch at learning rates of 1e-4 to 3e-3 is still in its steep
#: early descent for the first couple of hundred steps (seed 003, phase 2: val loss 10.6 -> 4.7 in 200 steps).
MIN_STEPS = 200
#: An embedding share at or above this gets a note in the readout.
EMBEDDING_NOTE_SHARE = 0.5
STUDY_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Settings:
    """The playground's knobs.  The defaults are seed 003's phase 1 (the 98 %-embeddings model)."""

    corpus: str = "json+logging"
    max_tokens: int = 1000
    tokenizer: str = "gpt2"
    compact: bool = False
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 32
    block_size: int = 16
    dropout: float = 0.0
    max_iters: int = 500
    batch_size: int = 4
    learning_rate: float = 1e-3
    val_fraction: float = 0.1
    eval_iters: int = 10
    evals: int = 20
    seed: int = 1337

    @property
    def eval_interval(self) -> int:
        """About ``evals`` evaluations per run (plus the one at iteration 0)."""
        return max(1, self.max_iters // max(1, self.evals))


SETTING_NAMES = tuple(f.name for f in fields(Settings))


def as_settings(settings: Union[Settings, Mapping[str, Any], None] = None, **overrides: Any) -> Settings:
    """:class:`Settings` from a Settings, a mapping of knob -> value, or keywords; unknown knobs are errors."""
    if settings is None:
        base: dict[str, Any] = {}
    elif isinstance(settings, Settings):
        base = asdict(settings)
    elif isinstance(settings, Mapping):
        base = dict(settings)
    else:
        raise TypeError(f"settings = {settings!r}: allowed: a gaplab.widgets.Settings or a mapping of knob -> value")
    base.update(overrides)
    unknown = [k for k in base if k not in SETTING_NAMES]
    if unknown:
        raise ValueError(f"unknown playground setting(s) {unknown}; allowed: {', '.join(SETTING_NAMES)}")
    s = Settings(**base)
    if s.corpus not in CORPORA:
        raise ValueError(f"corpus = {s.corpus!r}: allowed: {', '.join(CORPORA)}")
    if s.tokenizer not in TOKENIZERS:
        raise ValueError(f"tokenizer = {s.tokenizer!r}: allowed: {', '.join(TOKENIZERS)}")
    return s


def settings_to_phase(settings: Union[Settings, Mapping[str, Any]], validate: bool = True) -> dict[str, Any]:
    """The settings as a phase override dict for a study (sections ``data``, ``tokenizer``, ``model``, ``train``, ``sample``).

    Keys the playground does not set (weight decay, schedule, ...) come from
    the study's ``defaults`` or the schema's defaults.  With ``validate`` a
    phase that :mod:`gaplab.config` would reject raises :class:`StudyError`.
    """
    s = as_settings(settings)
    phase = {
        "data": {"source": "stdlib", "packages": list(CORPORA[s.corpus]), "max_tokens": int(s.max_tokens),
                 "split": "tail", "val_fraction": float(s.val_fraction)},
        "tokenizer": {"name": s.tokenizer, "compact": bool(s.compact)},
        "model": {"n_layer": int(s.n_layer), "n_head": int(s.n_head), "n_embd": int(s.n_embd),
                  "block_size": int(s.block_size), "dropout": float(s.dropout)},
        "train": {"max_iters": int(s.max_iters), "batch_size": int(s.batch_size),
                  "learning_rate": float(s.learning_rate), "eval_interval": s.eval_interval,
                  "eval_iters": int(s.eval_iters), "seed": int(s.seed)},
        "sample": {"prompts": ["import ", "def ", "class "], "max_new_tokens": 48, "num_samples": 1},
    }
    if validate:
        _, problems = validate_phase(phase, "(playground)", "playground")
        if problems:
            raise StudyError(problems)
    return phase


# --------------------------------------------------------------------------- data sizes
@dataclass(frozen=True)
class CorpusStats:
    """A corpus's whole token stream (documents and separators, base tokenizer ids) and vocabulary size."""

    corpus: str
    tokenizer: str
    stream: np.ndarray
    vocab_size: int

    @property
    def tokens(self) -> int:
        return int(len(self.stream))

    def split(self, max_tokens: Optional[int], val_fraction: float) -> tuple[int, int]:
        """``(train, val)`` token counts of the tail split, exactly as :func:`gaplab.split.prepare_data` cuts."""
        n = self.tokens if max_tokens is None else min(int(max_tokens), self.tokens)
        n_val = max(1, int(round(n * val_fraction)))
        return n - n_val, n_val

    def compact_vocab(self, n_train: int) -> int:
        """The compact vocabulary: distinct ids in the training split, plus one unknown id."""
        return int(len(np.unique(self.stream[:n_train]))) + 1


@functools.lru_cache(maxsize=16)
def corpus_stats(corpus: str, tokenizer: str) -> CorpusStats:
    """Read and tokenize a corpus choice once (cached): the stream :func:`gaplab.split.prepare_data` builds."""
    from .config import PhaseParams
    from .split import prepare_data

    if corpus not in CORPORA:
        raise ValueError(f"corpus = {corpus!r}: allowed: {', '.join(CORPORA)}")
    params = PhaseParams.model_validate({
        "data": {"source": "stdlib", "packages": CORPORA[corpus], "split": "tail"},
        "tokenizer": {"name": tokenizer, "compact": False},
        "model": {"block_size": 1},
    })
    prep = prepare_data(params, "playground", "(playground)")
    stream = np.concatenate([prep.train_base, prep.val_base])  # tail split: train then val is the stream
    stream.setflags(write=False)
    return CorpusStats(corpus, tokenizer, stream, prep.base_tokenizer.vocab_size)


# --------------------------------------------------------------------------- readout
@dataclass(frozen=True)
class Risk:
    category: str  # "overfitting-high", "overfitting", "underfitting" or "balanced"
    text: str


def predict_risk(tokens_per_param: float, epochs: float, iters: int) -> Risk:
    """A one-line prediction of the run's regime from three numbers known before training.

    ``tokens_per_param`` is training tokens per non-embedding parameter,
    ``epochs`` the passes the run makes over the training split, ``iters`` its
    optimizer steps.  The first rule that holds wins:

    1. **overfitting-high**: at least 16 epochs and fewer than 20 tokens per
       parameter.  The model sees the same tokens so often that repeating
       them adds little (Muennighoff et al. 2023: repeats are nearly as good
       as new data up to ~4 epochs, and worth little past ~16), and it has
       parameters to spare for memorizing them (below Chinchilla's ~20
       tokens per parameter, Hoffmann et al. 2022).
    2. **overfitting** (some risk): more than 4 epochs and fewer than 20 tokens
       per parameter.
    3. **underfitting**: less than one epoch, or fewer than 200 steps (a
       from-scratch model is still in its steep early descent; a teaching
       default): both losses will still be falling when the run stops.
    4. **balanced**: otherwise.

    These thresholds are teaching defaults, not laws: learning rate, dropout
    and the data itself move the real curves.  Every number used is in the text.
    """
    tpp, ep = float(tokens_per_param), float(epochs)
    nums = f"{_num(tpp)} tokens/param (Chinchilla ~20) and {_num(ep)} epochs"
    if ep >= REPEAT_EXHAUSTED_EPOCHS and tpp < CHINCHILLA_TOKENS_PER_PARAM:
        return Risk("overfitting-high", f"High risk of overfitting: {nums}. The model sees each training token "
                                        f"{_num(ep)} times with parameters to spare; expect train loss to keep "
                                        f"falling while val loss turns up.")
    if ep > REPEAT_SAFE_EPOCHS and tpp < CHINCHILLA_TOKENS_PER_PARAM:
        return Risk("overfitting", f"Some risk of overfitting: {nums}. More than {REPEAT_SAFE_EPOCHS:g} passes over "
                                   f"the same tokens; watch for val loss flattening while train loss keeps falling.")
    if ep < 1 or iters < MIN_STEPS:
        why = (f"the run sees only {ep:.0%} of the training tokens once" if ep < 1
               else f"only {iters} optimizer steps")
        return Risk("underfitting", f"Likely underfitting: {why} ({nums}). Both losses will still be falling when "
                                    f"it stops; train longer.")
    return Risk("balanced", f"Balanced: {nums}. Expect train and val loss to fall together with a small gap; "
                            f"if both level off high, the model is too small.")


def readout(settings: Union[Settings, Mapping[str, Any]], stats: Optional[CorpusStats] = None) -> dict[str, Any]:
    """Everything the playground shows about a configuration before training.

    Keys: ``params_total``, ``params_embedding``, ``params_non_embedding``
    (:func:`gaplab.model.count_params`; embedding = token + position
    embeddings, Kaplan et al. 2020), ``embedding_share``, ``vocab_size``,
    ``corpus_tokens``, ``train_tokens``, ``val_tokens``, ``tokens_per_param``
    (train tokens per non-embedding parameter), ``chinchilla_tokens`` (20 x
    non-embedding parameters, Hoffmann et al. 2022), ``tokens_per_iter``
    (batch x block), ``iters``, ``tokens_seen``, ``epochs`` (iters x batch x
    block / train tokens), ``risk`` and ``prediction`` (:func:`predict_risk`),
    ``embedding_note`` and ``problems`` (what the config's cross-checks or
    the split would reject; a value outside the schema's bounds raises
    :class:`StudyError`).  ``stats`` defaults to :func:`corpus_stats` for the settings'
    corpus and tokenizer (exact sizes).
    """
    from .model import count_params

    s = as_settings(settings)
    parsed, cfg_problems = validate_phase(settings_to_phase(s, validate=False), "(playground)", "playground")
    if parsed is None:  # a value out of its schema's range (e.g. max_tokens <= 0): nothing to compute
        raise StudyError(cfg_problems)
    problems = [f"{p.key} = {p.value!r}: {p.message}" for p in cfg_problems]  # e.g. n_embd % n_head
    if stats is None:
        stats = corpus_stats(s.corpus, s.tokenizer)
    n_train, n_val = stats.split(s.max_tokens, s.val_fraction)
    vocab = stats.compact_vocab(n_train) if s.compact else stats.vocab_size
    model_cfg = ModelConfig.model_construct(n_layer=s.n_layer, n_head=s.n_head, n_embd=s.n_embd,
                                            block_size=s.block_size, dropout=s.dropout, bias=True)
    counts = count_params(model_cfg, vocab)
    non_emb = counts["non_embedding"]
    share = counts["embedding"] / counts["total"]
    tokens_per_iter = s.batch_size * s.block_size
    tokens_seen = s.max_iters * tokens_per_iter
    tpp = n_train / max(1, non_emb)
    epochs = tokens_seen / max(1, n_train)
    risk = predict_risk(tpp, epochs, s.max_iters)

    need = s.block_size + 1
    for split, n in (("train", n_train), ("val", n_val)):
        if n < need:
            problems.append(f"the {split} split has {n} tokens but needs at least block_size + 1 = {need}; "
                            f"allowed: a smaller block_size or more data")
    note = ""
    if share >= EMBEDDING_NOTE_SHARE:
        note = (f"{share:.0%} of the parameters are embeddings ({vocab:,} vocabulary rows x {s.n_embd} + "
                f"{s.block_size} positions x {s.n_embd}); the tokens/param rule counts only the "
                f"{non_emb:,} non-embedding parameters.")
        if s.tokenizer == "gpt2" and not s.compact:
            used = stats.compact_vocab(n_train) - 1
            note += (f" Only {used:,} of GPT-2's {vocab:,} tokens occur in the training split; "
                     f"'compact vocab' keeps just those.")
    return {
        "params_total": counts["total"], "params_embedding": counts["embedding"], "params_non_embedding": non_emb,
        "embedding_share": share, "vocab_size": vocab, "corpus": s.corpus, "corpus_tokens": stats.tokens,
        "train_tokens": n_train, "val_tokens": n_val, "tokens_per_param": tpp,
        "chinchilla_tokens": CHINCHILLA_TOKENS_PER_PARAM * non_emb, "tokens_per_iter": tokens_per_iter,
        "iters": s.max_iters, "tokens_seen": tokens_seen, "epochs": epochs, "risk": risk.category,
        "prediction": risk.text, "embedding_note": note, "problems": problems,
    }


def _num(x: float) -> str:
    """A readable number: 3 significant digits below 100, thousands separators above."""
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


_RISK_COLOURS = {"overfitting-high": "#b00020", "overfitting": "#b35c00", "underfitting": "#1f5fa8",
                 "balanced": "#1b7a32"}


def readout_html(r: dict[str, Any]) -> str:
    """The readout as a small HTML table (the playground's text panel)."""
    from html import escape

    rows = [
        ("parameters", f"<span class='gaplab-params-total'>{r['params_total']:,}</span> total = "
                       f"{r['params_embedding']:,} embedding ({r['embedding_share']:.1%}) + "
                       f"{r['params_non_embedding']:,} non-embedding"),
        ("vocabulary", f"{r['vocab_size']:,} ids"),
        ("data", f"{r['train_tokens']:,} train + {r['val_tokens']:,} val tokens "
                 f"(corpus {escape(r['corpus'])}: {r['corpus_tokens']:,} tokens)"),
        ("tokens / param", f"{_num(r['tokens_per_param'])} train tokens per non-embedding parameter "
                           f"(Chinchilla ~20, Hoffmann et al. 2022: {r['chinchilla_tokens']:,.0f} tokens)"),
        ("epochs", f"{_num(r['epochs'])} = {r['iters']:,} iters x {r['tokens_per_iter']:,} tokens / "
                   f"{r['train_tokens']:,} train tokens"),
    ]
    body = "".join(f"<tr><td style='padding-right:1em'><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows)
    colour = _RISK_COLOURS.get(r["risk"], "#333")
    html = (f"<table class='gaplab-readout-table'>{body}</table>"
            f"<p class='gaplab-prediction' style='color:{colour}'><b>{escape(r['prediction'])}</b></p>")
    if r.get("embedding_note"):
        html += f"<p class='gaplab-embedding-note'>{escape(r['embedding_note'])}</p>"
    for problem in r.get("problems", []):
        html += f"<p class='gaplab-problem' style='color:#b00020'>&#9888; {escape(problem)}</p>"
    return html


# --------------------------------------------------------------------------- save as phase
def save_as_phase(study_path: Union[str, Path], phase_name: str,
                  settings: Union[Settings, Mapping[str, Any]]) -> Path:
    """Append the settings as phase ``phase_name`` to a study YAML; return its path.

    A missing file is created with ``study`` (from the file name),
    ``description`` and an empty ``defaults``.  An existing phase name (listed
    or made by the study's grid) is refused.  The whole new study is
    validated with :func:`gaplab.config.load_study` before anything is
    written, and it is written atomically, so on any error the file is left
    exactly as it was.  The phase is appended as text, keeping the file's
    comments, when ``phases`` is a block mapping; otherwise the study is
    re-dumped.  If the study's defaults set ``train.epochs``, the phase sets
    ``epochs: null`` (the playground counts iterations).
    """
    path = Path(study_path).expanduser()
    file = str(path)
    if not isinstance(phase_name, str) or not PHASE_NAME.match(phase_name):
        raise StudyError([Problem(file, None, "phase name", phase_name,
                                  "allowed: letters, digits, '_', '-' or '.', starting with a letter or digit "
                                  "(it names a folder)")])
    overrides = settings_to_phase(settings)
    if path.exists():
        text = path.read_text(encoding="utf-8")
        study = load_study(path)  # the file as it stands must be valid
        names = [p.name for p in study.phases]
        if phase_name in names:
            raise StudyError([Problem(file, phase_name, "phase name", phase_name,
                                      f"the study already has a phase with this name; allowed: a new name "
                                      f"(taken: {', '.join(names)})")])
        raw = yaml.safe_load(text)
        merged = _extend(copy.deepcopy(raw), path.resolve())
        if ((merged.get("defaults") or {}).get("train") or {}).get("epochs") is not None:
            overrides["train"]["epochs"] = None
        new_text = _with_phase(text, raw, phase_name, overrides)
    else:
        name = STUDY_NAME.sub("-", path.stem).strip("-.") or "playground"
        if not name[0].isalnum():
            name = "p" + name
        head = {"study": name, "description": "Phases saved from the gaplab playground.", "defaults": {}}
        new_text = yaml.safe_dump(head, sort_keys=False) + "phases:\n" + _phase_block(phase_name, overrides, "  ")
    _validate_text(new_text, path)
    atomic_write_text(path, new_text)
    return path


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()


def _phase_block(name: str, overrides: dict[str, Any], indent: str) -> str:
    key = yaml.safe_dump({name: 0}, default_flow_style=False).rsplit(":", 1)[0]  # quoted if YAML needs it ('1.5')
    lines = [f"{indent}{key}:"]
    lines += [f"{indent}  {section}: {_flow(values)}" for section, values in overrides.items()]
    return "\n".join(lines) + "\n"


def _with_phase(text: str, raw: Any, name: str, overrides: dict[str, Any]) -> str:
    """``text`` with the phase appended; comments are kept when ``phases`` is a block mapping (checked)."""
    expected = copy.deepcopy(raw)
    if isinstance(expected.get("phases"), list):
        expected["phases"].append({"name": name, **overrides})
    else:
        expected["phases"] = dict(expected.get("phases") or {})
        expected["phases"][name] = overrides
    candidate = _append_text(text, name, overrides)
    if candidate is not None:
        try:
            if yaml.safe_load(candidate) == expected:
                return candidate
        except yaml.YAMLError:
            pass
    return yaml.safe_dump(expected, sort_keys=False, allow_unicode=True)


def _append_text(text: str, name: str, overrides: dict[str, Any]) -> Optional[str]:
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode) or root.flow_style:
        return None
    for key, value in root.value:
        if key.value != "phases":
            continue
        if not isinstance(value, yaml.MappingNode) or value.flow_style or not value.value:
            return None
        indent = " " * value.value[0][0].start_mark.column
        end = value.end_mark
        lines = text.splitlines(keepends=True)
        cut = sum(len(line) for line in lines[:end.line]) if end.column == 0 else len(text)
        before = text[:cut]
        if before and not before.endswith("\n"):
            before += "\n"
        return before + _phase_block(name, overrides, indent) + text[cut:]
    sep = "" if text.endswith("\n") or not text else "\n"
    return text + sep + "phases:\n" + _phase_block(name, overrides, "  ")


def _validate_text(text: str, path: Path) -> None:
    """Validate a whole study text with :func:`load_study`, from a scratch file beside ``path``.

    Beside, so that ``extends:`` and relative data paths resolve as they will
    for the real file; problems name ``path``.  The scratch file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".check.yaml")
    probe = Path(tmp)
    try:
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        load_study(probe)
    except StudyError as exc:
        for problem in exc.problems:
            if problem.file == str(probe):
                problem.file = str(path)
        raise StudyError(exc.problems) from None
    finally:
        probe.unlink(missing_ok=True)


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
    """``on_eval`` of :func:`gaplab.show.live_plot` drawing into an Output widget, plus :meth:`flush`."""

    def __init__(self, on_eval: Callable[[dict], None], handle: _OutputHandle):
        self._on_eval, self.handle = on_eval, handle

    def __call__(self, row: dict) -> None:
        self._on_eval(row)

    def flush(self) -> None:
        """Render the latest curves now (redraws may have been skipped to save time)."""
        self.handle.flush()


def live_plot_into(out, min_interval: float = 0.5) -> LivePlot:
    """:func:`gaplab.show.live_plot`, drawing into the ipywidgets Output ``out``; call it with each eval row.

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
    a new folder ``run_dir/run-NNN`` (the files of :func:`gaplab.stages.train`).
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
        """The current settings as a resolved phase dict (what :func:`gaplab.stages.train` takes)."""
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

        from . import stages

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
        from .config import phase_from_dict
        from .sample import generate
        from .split import prepare_data
        from .train import load_model

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
