"""The data report: every detector over one prepared phase, as the JSON object ``data_report.json``.

Top-level keys: ``settings``, ``size`` (with ``vocab``, ``unseen_val_tokens``), ``lengths``,
``duplicates`` (``exact``, ``templated``, ``near``), ``boilerplate``, ``split``, ``leakage`` (``ngram``
with its per-document view ``documents``, ``cross_split_duplicates``, ``cross_split_near_duplicates``),
``model_vs_data``, ``validators``, one section per check that measures itself (``train_val_shift``,
``conflicting_answers``: :data:`gaplab.datareport.check_list.CHECKS`), ``checks`` (one
:class:`gaplab.datareport.check.CheckResult` per check), ``fail_on``, ``failed``, ``timings_s``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .boilerplate import boilerplate, prompt_prefix
from .check_list import CHECKS
from .checks import evaluate_checks, failed_checks
from .detectors import (
    exact_duplicates,
    length_stats,
    model_vs_data,
    preview,
    skeleton_groups,
    split_balance,
    templated,
    unseen_val_tokens,
    vocab_usage,
    word_ids,
)
from .leakage import cross_split_duplicates, ngram_leakage
from .near_duplicates import cross_split_near_duplicates, near_duplicates
from .record_templates import record_words


@dataclass
class ReportInputs:
    """What every detector reads: the prepared phase (``gaplab.data.split.Prepared``), its parameters
    (``gaplab.schema.PhaseParams``) and the documents' texts and names, read once."""

    prepared: Any
    params: Any
    texts: list[str]
    names: list[str]
    train_base: np.ndarray
    val_base: np.ndarray
    corpus: Any = None
    timings: dict[str, float] = field(default_factory=dict)
    _clock: float = field(default_factory=time.perf_counter)

    @classmethod
    def of(cls, prepared: Any, params: Any) -> ReportInputs:
        docs = prepared.documents
        return cls(
            prepared=prepared,
            params=params,
            texts=[d.text for d in docs],
            names=[d.name for d in docs],
            train_base=np.asarray(prepared.train_base),
            val_base=np.asarray(prepared.val_base),
            corpus=getattr(prepared, "corpus", None),
        )

    @property
    def documents(self) -> list[Any]:
        return self.prepared.documents

    @property
    def doc_split(self) -> list[str]:
        return list(self.prepared.doc_split)

    def lap(self, key: str) -> None:
        """Record the seconds since the previous lap as ``timings[key]``."""
        now = time.perf_counter()
        self.timings[key] = round(now - self._clock, 4)
        self._clock = now


# --------------------------------------------------------------------------- sections
def _settings(inputs: ReportInputs) -> dict[str, Any]:
    data, model, prepared, params = inputs.params.data, inputs.params.model, inputs.prepared, inputs.params
    return {
        "tokenizer": getattr(prepared.base_tokenizer, "name", params.tokenizer.name),
        "compact": bool(params.tokenizer.compact),
        "split": data.split,
        "val_fraction": data.val_fraction,
        "ngram": data.ngram,
        "block_size": model.block_size,
        "n_embd": model.n_embd,
        "max_tokens": data.max_tokens,
        "corpus_fingerprint": getattr(inputs.corpus, "fingerprint", ""),
    }


def _unseen(inputs: ReportInputs) -> dict[str, Any]:
    prepared, tokenizer = inputs.prepared, inputs.params.tokenizer
    sources = sorted({d.source for d in inputs.documents})
    code = {s_: i for i, s_ in enumerate(sources)}
    doc_code = np.array([code[d.source] for d in inputs.documents], dtype=np.int64)
    val_owners = getattr(prepared, "val_owners", None)
    if val_owners is not None:
        val_codes = doc_code[np.asarray(val_owners)]
    else:
        val_codes, sources = np.zeros(inputs.val_base.size, np.int64), ["(all)"]
    unseen = unseen_val_tokens(inputs.train_base, inputs.val_base, val_codes, sources, prepared.base_tokenizer)
    unseen["compact"] = bool(tokenizer.compact)
    unseen["compact_from"] = tokenizer.compact_from
    return unseen


def _size(inputs: ReportInputs) -> dict[str, Any]:
    prepared, corpus = inputs.prepared, inputs.corpus
    vocab = vocab_usage(
        inputs.train_base,
        inputs.val_base,
        prepared.vocab_size_original,
        prepared.vocab_size,
        inputs.params.model.n_embd,
        np.asarray(prepared.train),
    )
    skipped = corpus.skipped if corpus is not None else []
    return {
        "documents": len(inputs.texts),
        "documents_read": len(corpus.documents) if corpus is not None else len(inputs.texts),
        "skipped": len(skipped),
        "skipped_examples": [{"name": n, "reason": r} for n, r in skipped[:5]],
        "read_whole_corpus": bool(getattr(corpus, "complete", True)),
        "characters": sum(len(t) for t in inputs.texts),
        "tokens": int(inputs.train_base.size + inputs.val_base.size),
        "document_tokens": int(sum(len(t) for t in prepared.doc_tokens)),
        "train_tokens": int(inputs.train_base.size),
        "val_tokens": int(inputs.val_base.size),
        "unique_tokens": vocab["used_ids"],
        "vocab": vocab,
        "unseen_val_tokens": _unseen(inputs),
    }


def _duplicates_and_boilerplate(inputs: ReportInputs, report: dict[str, Any]) -> dict[str, Any]:
    """``duplicates`` and ``boilerplate`` into ``report``; returns the near-twin pairs for the leakage.

    The texts' words are read once (:func:`word_ids`) and shared by the record skeletons, the near-twins and
    the boilerplate (the prompts' and answers' words cut from them); the skeleton groups are computed once."""
    data, texts, names = inputs.params.data, inputs.texts, inputs.names
    docs = inputs.documents
    prompts, answers = [d.prompt for d in docs], [d.answer for d in docs]
    words = word_ids(texts)
    groups = skeleton_groups(texts, prompts, answers, words=words)
    dups = {"exact": exact_duplicates(texts, names), "templated": templated(texts, names, groups)}
    inputs.lap("duplicates")
    doc_split = inputs.doc_split
    train_first = [i for i, s in enumerate(doc_split) if s != "val"] + [
        i for i, s in enumerate(doc_split) if s == "val"
    ]
    near = near_duplicates(
        texts,
        names,
        threshold=data.near_duplicate_threshold,
        shingle=data.near_duplicate_shingle,
        words=words,
        order=train_first,
    )
    dups["near"] = {k: v for k, v in near.items() if not k.startswith("_")}
    report["duplicates"] = dups
    inputs.lap("near_duplicates")
    report["boilerplate"] = _boilerplate(texts, names, prompts, answers, groups, words)
    inputs.lap("boilerplate")
    return near


def _boilerplate(
    texts: list[str],
    names: list[str],
    prompts: list[Optional[str]],
    answers: list[Optional[str]],
    groups: np.ndarray,
    words: tuple[list[np.ndarray], list[str]],
) -> dict[str, Any]:
    """Boilerplate in what the model learns to write: the answers of records (and the prompts' shared
    prefix), else the texts."""
    if all(a is None for a in answers):
        return boilerplate(texts, names, groups=groups, words=words)
    cut = record_words(texts, prompts, answers, words)
    prompt_words, answer_words = cut if cut is not None else (None, None)
    out = boilerplate([a or "" for a in answers], names, groups=groups, words=answer_words)
    out["prompt_prefix"] = prompt_prefix([p or "" for p in prompts], names, words=prompt_words)
    return out


def _split(inputs: ReportInputs) -> dict[str, Any]:
    data, doc_split = inputs.params.data, inputs.doc_split
    split = split_balance(inputs.prepared.composition)
    split["strategy"] = data.split
    split["val_fraction"] = data.val_fraction
    split["documents"] = {k: sum(1 for s in doc_split if s == k) for k in ("train", "val", "both")}
    if "unused" in doc_split:
        split["documents"]["unused"] = sum(1 for s in doc_split if s == "unused")
    return split


def _leakage(inputs: ReportInputs, near: Mapping[str, Any]) -> dict[str, Any]:
    val_base, names = inputs.val_base, inputs.names
    val_owners = getattr(inputs.prepared, "val_owners", None)
    leak = ngram_leakage(inputs.train_base, val_base, inputs.params.data.ngram, val_owners=val_owners, names=names)
    for span in leak["spans"]:
        piece = val_base[span["start"] : span["start"] + span["tokens"]]
        if val_owners is not None:
            span["document"] = names[int(val_owners[span["start"]])]
        try:
            span["text"] = preview(inputs.prepared.base_tokenizer.decode(piece.tolist()), 200)
        except Exception:  # decoding is a convenience; never fail the report on it
            span["text"] = None
    return {
        "ngram": leak,
        "cross_split_duplicates": cross_split_duplicates(inputs.texts, names, inputs.doc_split),
        "cross_split_near_duplicates": cross_split_near_duplicates(near, names, inputs.doc_split),
    }


def _model_vs_data(inputs: ReportInputs, param_counts: Optional[Mapping[str, int]]) -> dict[str, Any]:
    from ..schema import planned_iters, tokens_per_iter

    params, model = inputs.params, inputs.params.model
    if param_counts is None:
        from ..model.gpt import count_params

        param_counts = count_params(model, inputs.prepared.vocab_size)
    train_tokens = int(np.asarray(inputs.prepared.train).size)
    iters = planned_iters(params.train, model.block_size, train_tokens)
    return model_vs_data(param_counts, train_tokens, iters, tokens_per_iter(params.train, model.block_size))


# --------------------------------------------------------------------------- the report
def build_report(prepared: Any, params: Any, param_counts: Optional[Mapping[str, int]] = None) -> dict[str, Any]:
    """The whole data report for a prepared phase (``gaplab.data.split.Prepared``, ``gaplab.schema.PhaseParams``).

    ``param_counts`` defaults to :func:`gaplab.model.gpt.count_params` for the
    phase's model and the model's vocabulary size.
    """
    from ..data.validators import run_validators

    inputs = ReportInputs.of(prepared, params)
    report: dict[str, Any] = {"settings": _settings(inputs), "size": _size(inputs)}
    inputs.lap("size")
    report["lengths"] = length_stats([len(t) for t in prepared.doc_tokens], inputs.names, params.model.block_size)
    inputs.lap("lengths")
    near = _duplicates_and_boilerplate(inputs, report)
    report["split"] = _split(inputs)
    inputs.lap("split")
    report["leakage"] = _leakage(inputs, near)
    inputs.lap("leakage")
    report["model_vs_data"] = _model_vs_data(inputs, param_counts)
    inputs.lap("model_vs_data")
    report["validators"] = run_validators(prepared.documents, list(params.data.validators))
    inputs.lap("validators")
    for check in CHECKS:  # the checks that bring their own detector
        if check.measure is not None:
            report[check.section] = check.measure(inputs)
            inputs.lap(check.section)
    report["checks"] = evaluate_checks(report, params.data.checks, params.data.fail_on)
    report["fail_on"] = list(params.data.fail_on)
    report["failed"] = [c["name"] for c in failed_checks(report)]
    inputs.lap("checks")
    report["timings_s"] = inputs.timings
    return report
