"""The playground's logic: settings, the readout before training, the prediction, "save as phase".

Everything a learner sees before pressing Train is computed here from the settings alone
(:func:`readout`): the parameter count split into embedding and non-embedding parameters, the size of
the training split, tokens per parameter, the epochs the run will make, and a one-line prediction
(:func:`predict_risk`).  The widgets are in :mod:`gaplab.ui.playground_view`; the logic is plain
functions so it is tested without a browser.

Token counts are exact, not estimated: the corpus is read and tokenized once per (corpus, tokenizer)
and cached in the process (:func:`corpus_stats`), and the split is computed by the same function
:func:`gaplab.data.split.prepare_data` uses, so the readout shows the sizes the trainer will get.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Union

import numpy as np

from ..data.split import val_token_count
from ..errors import StudyError
from ..measure.references import (
    CHINCHILLA_TOKENS_PER_PARAM,
    REPEAT_EXHAUSTED_EPOCHS,
    REPEAT_SAFE_EPOCHS,
    SOURCES,
    chinchilla_tokens,
    kaplan_overfit_min_tokens,
)
from ..pipeline.config import validate_phase
from ..schema import ModelConfig

#: Corpus choices: stdlib packages read in this order (see :mod:`gaplab.data.corpus`).
CORPORA: dict[str, list[str]] = {
    "json": ["json"],
    "logging": ["logging"],
    "email": ["email"],
    "json+logging": ["json", "logging"],
    "json+logging+email": ["json", "logging", "email"],
}


TOKENIZERS = ("gpt2", "char")


#: Teaching default: a model trained from scratch at learning rates of 1e-4 to 3e-3 is still in its steep
#: early descent for the first couple of hundred steps (seed 003, phase 2: val loss 10.6 -> 4.7 in 200 steps).
MIN_STEPS = 200


#: An embedding share at or above this gets a note in the readout.
EMBEDDING_NOTE_SHARE = 0.5


STUDY_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


# --------------------------------------------------------------------------- settings
#: the model knobs: fields of the one model configuration, :class:`gaplab.schema.ModelConfig`
MODEL_KNOBS = ("n_layer", "n_head", "n_embd", "block_size", "dropout")


def _seed_phase1_model() -> ModelConfig:
    return ModelConfig.model_construct(
        **{**ModelConfig().model_dump(), "n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 16}
    )


@dataclass(frozen=True)
class Settings:
    """The playground's knobs.  The defaults are seed 003's phase 1 (the model that was 98 % embeddings with
    GPT-2's vocabulary) with a compact vocabulary and a learning rate of 3e-3: the same non-embedding model
    on the same 900 training tokens, which shows the same lesson (val loss turns up while train loss keeps
    falling) in seconds instead of minutes on a 2-core CPU; the readout still names the 98 %
    (:func:`readout`'s ``compact_note``).

    The model's knobs are one :class:`gaplab.schema.ModelConfig` (``settings.model``), the same class a
    study file and the GPT use; :func:`as_settings` takes them flat (``n_embd=64``), as the sliders do.
    Values are validated when a readout or a phase is made (:func:`readout`, :func:`settings_to_phase`).
    """

    corpus: str = "json+logging"
    max_tokens: int = 1000
    tokenizer: str = "gpt2"
    compact: bool = True
    model: ModelConfig = field(default_factory=_seed_phase1_model)
    max_iters: int = 500
    batch_size: int = 4
    learning_rate: float = 3e-3
    val_fraction: float = 0.1
    eval_iters: int = 10
    evals: int = 20
    seed: int = 1337

    @property
    def eval_interval(self) -> int:
        """About ``evals`` evaluations per run (plus the one at iteration 0)."""
        return max(1, self.max_iters // max(1, self.evals))

    @property
    def n_layer(self) -> int:
        return self.model.n_layer

    @property
    def n_head(self) -> int:
        return self.model.n_head

    @property
    def n_embd(self) -> int:
        return self.model.n_embd

    @property
    def block_size(self) -> int:
        return self.model.block_size

    @property
    def dropout(self) -> float:
        return self.model.dropout

    def knobs(self) -> dict[str, Any]:
        """Every knob by its flat name (``n_embd``, not ``model.n_embd``)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}
        out.update({k: getattr(self.model, k) for k in MODEL_KNOBS})
        return out


SETTING_NAMES = tuple(f.name for f in fields(Settings) if f.name != "model") + MODEL_KNOBS


def as_settings(settings: Union[Settings, Mapping[str, Any], None] = None, **overrides: Any) -> Settings:
    """:class:`Settings` from a Settings, a mapping of knob -> value, or keywords; unknown knobs are errors."""
    if settings is None:
        base: dict[str, Any] = Settings().knobs()
    elif isinstance(settings, Settings):
        base = settings.knobs()
    elif isinstance(settings, Mapping):
        base = {**Settings().knobs(), **dict(settings)}
    else:
        raise TypeError(
            f"settings = {settings!r}: allowed: a gaplab.ui.playground.Settings or a mapping of knob -> value"
        )
    base.update(overrides)
    unknown = [k for k in base if k not in SETTING_NAMES]
    if unknown:
        raise ValueError(f"unknown playground setting(s) {unknown}; allowed: {', '.join(SETTING_NAMES)}")
    model = ModelConfig.model_construct(**{**ModelConfig().model_dump(), **{k: base.pop(k) for k in MODEL_KNOBS}})
    s = Settings(model=model, **base)
    if s.corpus not in CORPORA:
        raise ValueError(f"corpus = {s.corpus!r}: allowed: {', '.join(CORPORA)}")
    if s.tokenizer not in TOKENIZERS:
        raise ValueError(f"tokenizer = {s.tokenizer!r}: allowed: {', '.join(TOKENIZERS)}")
    return s


def settings_to_phase(settings: Union[Settings, Mapping[str, Any]], validate: bool = True) -> dict[str, Any]:
    """The settings as a phase override dict for a study (sections ``data``, ``tokenizer``, ``model``, ``train``, ``sample``).

    Keys the playground does not set (weight decay, schedule, ...) come from
    the study's ``defaults`` or the schema's defaults.  With ``validate`` a
    phase that :mod:`gaplab.pipeline.config` would reject raises :class:`StudyError`.
    """
    s = as_settings(settings)
    phase = {
        "data": {
            "source": "stdlib",
            "packages": list(CORPORA[s.corpus]),
            "max_tokens": int(s.max_tokens),
            "split": "tail",
            "val_fraction": float(s.val_fraction),
        },
        "tokenizer": {"name": s.tokenizer, "compact": bool(s.compact)},
        "model": {k: getattr(s.model, k) for k in MODEL_KNOBS},
        "train": {
            "max_iters": int(s.max_iters),
            "batch_size": int(s.batch_size),
            "learning_rate": float(s.learning_rate),
            "eval_interval": s.eval_interval,
            "eval_iters": int(s.eval_iters),
            "seed": int(s.seed),
        },
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
        """``(train, val)`` token counts of the tail split, exactly as :func:`gaplab.data.split.prepare_data` cuts."""
        n = self.tokens if max_tokens is None else min(int(max_tokens), self.tokens)
        n_val = val_token_count(n, val_fraction)
        return n - n_val, n_val

    def compact_vocab(self, n_train: int) -> int:
        """The compact vocabulary: distinct ids in the training split, plus one unknown id."""
        return int(len(np.unique(self.stream[:n_train]))) + 1


@functools.lru_cache(maxsize=16)
def corpus_stats(corpus: str, tokenizer: str) -> CorpusStats:
    """Read and tokenize a corpus choice once (cached): the stream :func:`gaplab.data.split.prepare_data` builds."""
    from ..data.split import prepare_data
    from ..schema import PhaseParams

    if corpus not in CORPORA:
        raise ValueError(f"corpus = {corpus!r}: allowed: {', '.join(CORPORA)}")
    params = PhaseParams.model_validate(
        {
            "data": {"source": "stdlib", "packages": CORPORA[corpus], "split": "tail"},
            "tokenizer": {"name": tokenizer, "compact": False},
            "model": {"block_size": 1},
        }
    )
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

    ``tokens_per_param`` is training tokens per parameter, all parameters
    counted (embeddings included), as Hoffmann et al. 2022 count them for
    their ~20; ``epochs`` the passes the run makes over the training split,
    ``iters`` its optimizer steps.  The first rule that holds wins:

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
    nums = f"{_num(tpp)} tokens per parameter (all counted; Chinchilla ~{CHINCHILLA_TOKENS_PER_PARAM:g}) and {_num(ep)} epochs"
    if ep >= REPEAT_EXHAUSTED_EPOCHS and tpp < CHINCHILLA_TOKENS_PER_PARAM:
        return Risk(
            "overfitting-high",
            f"High risk of overfitting: {nums}. The model sees each training token "
            f"{_num(ep)} times with parameters to spare; expect train loss to keep "
            f"falling while val loss turns up.",
        )
    if ep > REPEAT_SAFE_EPOCHS and tpp < CHINCHILLA_TOKENS_PER_PARAM:
        return Risk(
            "overfitting",
            f"Some risk of overfitting: {nums}. More than {REPEAT_SAFE_EPOCHS:g} passes over "
            f"the same tokens; watch for val loss flattening while train loss keeps falling.",
        )
    if ep < 1 or iters < MIN_STEPS:
        why = f"the run sees only {ep:.0%} of the training tokens once" if ep < 1 else f"only {iters} optimizer steps"
        return Risk(
            "underfitting",
            f"Likely underfitting: {why} ({nums}). Both losses will still be falling when it stops; train longer.",
        )
    return Risk(
        "balanced",
        f"Balanced: {nums}. Expect train and val loss to fall together with a small gap; "
        f"if both level off high, the model is too small.",
    )


def readout(settings: Union[Settings, Mapping[str, Any]], stats: Optional[CorpusStats] = None) -> dict[str, Any]:
    """Everything the playground shows about a configuration before training.

    Keys: ``params_total``, ``params_embedding``, ``params_non_embedding``
    (:func:`gaplab.model.gpt.count_params`; embedding = token + position
    embeddings, Kaplan et al. 2020), ``embedding_share``, ``vocab_size``,
    ``corpus_tokens``, ``train_tokens``, ``val_tokens``, ``tokens_per_param``
    (train tokens per parameter, all counted: Hoffmann et al. 2022's convention),
    ``tokens_per_param_non_emb`` (per non-embedding parameter: Kaplan et al. 2020's N),
    ``chinchilla_tokens`` (20 x all parameters), ``kaplan_tokens`` (Kaplan's bound
    for the non-embedding parameters), ``tokens_per_iter``
    (batch x block), ``iters``, ``tokens_seen``, ``epochs`` (iters x batch x
    block / train tokens), ``risk`` and ``prediction`` (:func:`predict_risk`),
    ``embedding_note``, ``compact_note`` (with a compact vocabulary: the full vocabulary's count) and
    ``problems`` (what the config's cross-checks or
    the split would reject; a value outside the schema's bounds raises
    :class:`StudyError`).  ``stats`` defaults to :func:`corpus_stats` for the settings'
    corpus and tokenizer (exact sizes).
    """
    from ..model.gpt import count_params

    s = as_settings(settings)
    model, problems = _validated_model(s)
    stats = stats if stats is not None else corpus_stats(s.corpus, s.tokenizer)
    n_train, n_val = stats.split(s.max_tokens, s.val_fraction)
    vocab = stats.compact_vocab(n_train) if s.compact else stats.vocab_size
    counts = count_params(model, vocab)
    non_emb = counts["non_embedding"]
    share = counts["embedding"] / counts["total"]
    tokens_per_iter = s.batch_size * s.block_size
    tokens_seen = s.max_iters * tokens_per_iter
    tpp = n_train / max(1, counts["total"])
    epochs = tokens_seen / max(1, n_train)
    risk = predict_risk(tpp, epochs, s.max_iters)
    problems += _split_problems(n_train, n_val, s.block_size)
    return {
        "params_total": counts["total"],
        "params_embedding": counts["embedding"],
        "params_non_embedding": non_emb,
        "embedding_share": share,
        "vocab_size": vocab,
        "corpus": s.corpus,
        "corpus_tokens": stats.tokens,
        "train_tokens": n_train,
        "val_tokens": n_val,
        "tokens_per_param": tpp,
        "tokens_per_param_non_emb": n_train / max(1, non_emb),
        "chinchilla_tokens": chinchilla_tokens(counts["total"]),
        "kaplan_tokens": kaplan_overfit_min_tokens(max(1, non_emb)),
        "tokens_per_iter": tokens_per_iter,
        "iters": s.max_iters,
        "tokens_seen": tokens_seen,
        "epochs": epochs,
        "risk": risk.category,
        "prediction": risk.text,
        "embedding_note": _embedding_note(s, stats, vocab, share, non_emb, n_train),
        "compact_note": _compact_note(model, stats, vocab, non_emb) if s.compact else "",
        "problems": problems,
    }


def _validated_model(s: Settings) -> tuple[ModelConfig, list[str]]:
    """The settings' model, and what the config's cross-checks say (e.g. n_embd % n_head) as sentences; a value
    outside its schema's range (e.g. max_tokens <= 0) raises :class:`StudyError`: nothing to compute."""
    parsed, cfg_problems = validate_phase(settings_to_phase(s, validate=False), "(playground)", "playground")
    if parsed is None:
        raise StudyError(cfg_problems)
    return parsed.model, [f"{p.key} = {p.value!r}: {p.message}" for p in cfg_problems]


def _split_problems(n_train: int, n_val: int, block_size: int) -> list[str]:
    """A split too small for one training window of ``block_size + 1`` tokens."""
    need = block_size + 1
    return [
        f"the {split} split has {n} tokens but needs at least block_size + 1 = {need}; "
        f"allowed: a smaller block_size or more data"
        for split, n in (("train", n_train), ("val", n_val))
        if n < need
    ]


def _embedding_note(s: Settings, stats: CorpusStats, vocab: int, share: float, non_emb: int, n_train: int) -> str:
    """When embeddings are most of the parameters: which count Chinchilla and Kaplan use, and what compact keeps."""
    if share < EMBEDDING_NOTE_SHARE:
        return ""
    note = (
        f"{share:.0%} of the parameters are embeddings ({vocab:,} vocabulary rows x {s.n_embd} + "
        f"{s.block_size} positions x {s.n_embd}). Chinchilla's ~{CHINCHILLA_TOKENS_PER_PARAM:g} tokens per "
        f"parameter counts them all; Kaplan's data bound counts only the {non_emb:,} non-embedding "
        f"parameters, the ones that model the text."
    )
    if s.tokenizer == "gpt2" and not s.compact:
        used = stats.compact_vocab(n_train) - 1
        note += (
            f" Only {used:,} of GPT-2's {vocab:,} tokens occur in the training split; 'compact vocab' keeps just those."
        )
    return note


def _compact_note(model: ModelConfig, stats: CorpusStats, vocab: int, non_emb: int) -> str:
    """With a compact vocabulary: what the same model would count with the tokenizer's full table."""
    from ..model.gpt import count_params

    full = count_params(model, stats.vocab_size)
    return (
        f"Compact vocab: {vocab:,} ids, those of the training split plus one unknown. With the "
        f"tokenizer's full {stats.vocab_size:,}-row table the same model would have "
        f"{full['total']:,} parameters, {full['embedding'] / full['total']:.0%} of them embeddings; "
        f"the {non_emb:,} non-embedding parameters that model the text are the same."
    )


def _num(x: float) -> str:
    """A readable number: 3 significant digits below 100, thousands separators above."""
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


_RISK_COLOURS = {
    "overfitting-high": "#b00020",
    "overfitting": "#b35c00",
    "underfitting": "#1f5fa8",
    "balanced": "#1b7a32",
}


def readout_html(r: dict[str, Any]) -> str:
    """The readout as a small HTML table (the playground's text panel)."""
    from html import escape

    rows = [
        (
            "parameters",
            f"<span class='gaplab-params-total'>{r['params_total']:,}</span> total = "
            f"{r['params_embedding']:,} embedding ({r['embedding_share']:.1%}) + "
            f"{r['params_non_embedding']:,} non-embedding",
        ),
        ("vocabulary", f"{r['vocab_size']:,} ids"),
        (
            "data",
            f"{r['train_tokens']:,} train + {r['val_tokens']:,} val tokens "
            f"(corpus {escape(r['corpus'])}: {r['corpus_tokens']:,} tokens)",
        ),
        (
            "tokens / param",
            f"{_num(r['tokens_per_param'])} train tokens per parameter, all counted "
            f"(Chinchilla ~{CHINCHILLA_TOKENS_PER_PARAM:g}, {SOURCES['chinchilla'].authors}: "
            f"{r['chinchilla_tokens']:,.0f} tokens); {_num(r['tokens_per_param_non_emb'])} per "
            f"non-embedding parameter ({SOURCES['kaplan'].authors}'s bound asks for "
            f"{r['kaplan_tokens']:,.0f} tokens)",
        ),
        (
            "epochs",
            f"{_num(r['epochs'])} = {r['iters']:,} iters x {r['tokens_per_iter']:,} tokens / "
            f"{r['train_tokens']:,} train tokens",
        ),
    ]
    body = "".join(f"<tr><td style='padding-right:1em'><b>{k}</b></td><td>{v}</td></tr>" for k, v in rows)
    colour = _RISK_COLOURS.get(r["risk"], "#333")
    html = (
        f"<table class='gaplab-readout-table'>{body}</table>"
        f"<p class='gaplab-prediction' style='color:{colour}'><b>{escape(r['prediction'])}</b></p>"
    )
    for key in ("embedding_note", "compact_note"):
        if r.get(key):
            html += f"<p class='gaplab-{key.replace('_', '-')}'>{escape(r[key])}</p>"
    for problem in r.get("problems", []):
        html += f"<p class='gaplab-problem' style='color:#b00020'>&#9888; {escape(problem)}</p>"
    return html


# --------------------------------------------------------------------------- prediction vs outcome
#: the prediction in words, and the verdicts (:func:`gaplab.measure.curves.analyze_run`) that bear it out
PREDICTIONS = {
    "overfitting-high": ("high risk of overfitting", ("overfitting", "memorizing")),
    "overfitting": ("some risk of overfitting", ("overfitting", "memorizing")),
    "underfitting": ("likely underfitting", ("underfitting",)),
    "balanced": ("balanced", ("healthy",)),
}


def outcome_line(risk: str, analysis: Mapping[str, Any]) -> str:
    """``predicted: high risk of overfitting → observed: overfitting from iter 250 (as predicted)``.

    ``risk`` is the readout's category before training; ``analysis`` the run's verdict, from the one
    verdict function (:func:`gaplab.measure.curves.analyze_run` on the run's folder).
    """
    words, bears_out = PREDICTIONS.get(risk, (risk, ()))
    verdict = analysis.get("verdict") or "no verdict"
    onset = analysis.get("onset_iter")
    observed = (
        f"{verdict} from iter {onset}" if onset is not None and verdict in ("overfitting", "memorizing") else verdict
    )
    return (
        f"predicted: {words} → observed: {observed} ({'as predicted' if verdict in bears_out else 'not as predicted'})"
    )


def describe_changes(before: Union[Settings, Mapping[str, Any]], after: Union[Settings, Mapping[str, Any]]) -> str:
    """What ``before`` had that ``after`` does not, knob by knob (``n_embd 32, compact off``), or ``same settings``."""
    old, new = as_settings(before).knobs(), as_settings(after).knobs()

    def show(v: Any) -> str:
        return ("on" if v else "off") if isinstance(v, bool) else f"{v:g}" if isinstance(v, float) else str(v)

    diff = [f"{k} {show(old[k])}" for k in SETTING_NAMES if old[k] != new[k]]
    return ", ".join(diff) if diff else "same settings"
