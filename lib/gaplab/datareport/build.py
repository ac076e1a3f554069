"""The data report: every detector over one prepared phase, as the JSON object ``data_report.json``.

Top-level keys: ``settings``, ``size`` (with ``vocab``, ``unseen_val_tokens``), ``lengths``,
``duplicates`` (``exact``, ``templated``, ``near``), ``boilerplate``, ``split``, ``leakage`` (``ngram``
with its per-document view ``documents``, ``cross_split_duplicates``, ``cross_split_near_duplicates``),
``model_vs_data``, ``validators``, ``checks``, ``fail_on``, ``failed``, ``timings_s``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np

from .boilerplate import boilerplate
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


# --------------------------------------------------------------------------- the report
def build_report(prepared: Any, params: Any, param_counts: Optional[Mapping[str, int]] = None) -> dict[str, Any]:
    """The whole data report for a prepared phase (``gaplab.data.split.Prepared``, ``gaplab.schema.PhaseParams``).

    ``param_counts`` defaults to :func:`gaplab.model.gpt.count_params` for the
    phase's model and the model's vocabulary size.
    """
    from ..data.validators import run_validators
    from ..schema import planned_iters, tokens_per_iter

    data, model = params.data, params.model
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(key: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        timings[key] = round(now - t0, 4)
        t0 = now

    docs = prepared.documents
    texts = [d.text for d in docs]
    names = [d.name for d in docs]
    train_base = np.asarray(prepared.train_base)
    val_base = np.asarray(prepared.val_base)
    corpus = getattr(prepared, "corpus", None)

    vocab = vocab_usage(
        train_base,
        val_base,
        prepared.vocab_size_original,
        prepared.vocab_size,
        model.n_embd,
        np.asarray(prepared.train),
    )
    sources = sorted({d.source for d in docs})
    code = {s_: i for i, s_ in enumerate(sources)}
    doc_code = np.array([code[d.source] for d in docs], dtype=np.int64)
    val_owners = getattr(prepared, "val_owners", None)
    val_codes = doc_code[np.asarray(val_owners)] if val_owners is not None else np.zeros(val_base.size, np.int64)
    unseen = unseen_val_tokens(
        train_base, val_base, val_codes, sources if val_owners is not None else ["(all)"], prepared.base_tokenizer
    )
    unseen["compact"] = bool(params.tokenizer.compact)
    unseen["compact_from"] = params.tokenizer.compact_from
    size = {
        "documents": len(docs),
        "documents_read": len(corpus.documents) if corpus is not None else len(docs),
        "skipped": len(corpus.skipped) if corpus is not None else 0,
        "skipped_examples": [{"name": n, "reason": r} for n, r in (corpus.skipped if corpus is not None else [])[:5]],
        "read_whole_corpus": bool(getattr(corpus, "complete", True)),
        "characters": sum(len(t) for t in texts),
        "tokens": int(train_base.size + val_base.size),
        "document_tokens": int(sum(len(t) for t in prepared.doc_tokens)),
        "train_tokens": int(train_base.size),
        "val_tokens": int(val_base.size),
        "unique_tokens": vocab["used_ids"],
        "vocab": vocab,
        "unseen_val_tokens": unseen,
    }
    lap("size")
    lengths = length_stats([len(t) for t in prepared.doc_tokens], names, model.block_size)
    lap("lengths")
    groups = skeleton_groups(texts)
    dups = {"exact": exact_duplicates(texts, names), "templated": templated(texts, names, groups)}
    lap("duplicates")
    words = word_ids(texts)  # read once for near-twins and boilerplate
    near = near_duplicates(
        texts, names, threshold=data.near_duplicate_threshold, shingle=data.near_duplicate_shingle, words=words
    )
    dups["near"] = {k: v for k, v in near.items() if not k.startswith("_")}
    lap("near_duplicates")
    boiler = boilerplate(texts, names, groups=groups, words=words)
    lap("boilerplate")
    split = split_balance(prepared.composition)
    split["strategy"] = data.split
    split["val_fraction"] = data.val_fraction
    split["documents"] = {k: sum(1 for s in prepared.doc_split if s == k) for k in ("train", "val", "both")}
    if "unused" in prepared.doc_split:
        split["documents"]["unused"] = sum(1 for s in prepared.doc_split if s == "unused")
    lap("split")
    leak = ngram_leakage(train_base, val_base, data.ngram, val_owners=val_owners, names=names)
    for span in leak["spans"]:
        piece = val_base[span["start"] : span["start"] + span["tokens"]]
        if val_owners is not None:
            span["document"] = names[int(val_owners[span["start"]])]
        try:
            span["text"] = preview(prepared.base_tokenizer.decode(piece.tolist()), 200)
        except Exception:  # decoding is a convenience; never fail the report on it
            span["text"] = None
    leakage = {
        "ngram": leak,
        "cross_split_duplicates": cross_split_duplicates(texts, names, prepared.doc_split),
        "cross_split_near_duplicates": cross_split_near_duplicates(near, names, prepared.doc_split),
    }
    lap("leakage")
    if param_counts is None:
        from ..model.gpt import count_params

        param_counts = count_params(model, prepared.vocab_size)
    iters = planned_iters(params.train, model.block_size, int(np.asarray(prepared.train).size))
    per_iter = tokens_per_iter(params.train, model.block_size)
    mvd = model_vs_data(param_counts, int(np.asarray(prepared.train).size), iters, per_iter)
    lap("model_vs_data")
    validators = run_validators(docs, list(data.validators))
    lap("validators")

    report: dict[str, Any] = {
        "settings": {
            "tokenizer": getattr(prepared.base_tokenizer, "name", params.tokenizer.name),
            "compact": bool(params.tokenizer.compact),
            "split": data.split,
            "val_fraction": data.val_fraction,
            "ngram": data.ngram,
            "block_size": model.block_size,
            "n_embd": model.n_embd,
            "max_tokens": data.max_tokens,
            "corpus_fingerprint": getattr(corpus, "fingerprint", ""),
        },
        "size": size,
        "lengths": lengths,
        "duplicates": dups,
        "boilerplate": boiler,
        "split": split,
        "leakage": leakage,
        "model_vs_data": mvd,
        "validators": validators,
    }
    report["checks"] = evaluate_checks(report, data.checks, data.fail_on)
    report["fail_on"] = list(data.fail_on)
    report["failed"] = [c["name"] for c in failed_checks(report)]
    lap("checks")
    report["timings_s"] = timings
    return report
