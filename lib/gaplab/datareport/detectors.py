"""The data report's detectors: pure functions over plain inputs (strings, id arrays, dicts).

Each seed project found its data problem only after training: 59% templated questions and boilerplate
in 83% of answers (seed 000), 19 of 20 key examples sent to validation by a tail split (seed 001),
shopping carts whose totals did not add up (seed 002), and 50,257 embeddings paid for while the data
used ~971 token types (seed 003).  Every one of those is a number here, and each detector can be
tested on crafted data:

- :func:`length_stats`: document lengths in tokens, percentiles, histogram, share longer than
  ``block_size``, outliers (> Q3 + 3·IQR).
- :func:`exact_duplicates`: documents whose text repeats an earlier document.
- :func:`templated`: documents that share a *skeleton* with a different document once numbers and
  Capitalised words are blanked (see :func:`template_skeleton`).
- boilerplate (phrases repeated across documents that are not phrases of the language) is
  :mod:`gaplab.datareport.boilerplate`; near-duplicate documents :mod:`gaplab.datareport.near_duplicates`.
- :func:`split_balance`: each source label's share of tokens in validation against the overall share.
- :func:`vocab_usage`: token ids used, embedding rows that never see data.
- :func:`unseen_val_tokens`: val tokens whose id never occurs in train (one unknown id under a compact
  vocabulary), overall and per source.
- :func:`model_vs_data`: tokens per parameter, epochs, Kaplan et al.'s bound.

Leakage between the splits is :mod:`gaplab.datareport.leakage`; thresholds and verdicts per check
:mod:`gaplab.datareport.checks`; the whole report :mod:`gaplab.datareport.build`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from itertools import chain, count
from typing import Any, Optional

import numpy as np

from ..measure.ngram_index import sorted_unique
from ..measure.references import (
    CHINCHILLA_TOKENS_PER_PARAM,
    KAPLAN_OVERFIT_COEF,
    KAPLAN_OVERFIT_EXP,
    KAPLAN_OVERFIT_TEXT,
    SOURCES,
    cite,
    kaplan_overfit_min_tokens,
)
from .record_templates import record_bodies, skeleton_keys, template_skeleton, text_words  # noqa: F401 (re-exported)

TIED_NOTE = (
    "the output head shares the token-embedding matrix (weight tying, Press & Wolf 2017), so each "
    "token id costs n_embd parameters once, not twice"
)


MAX_EXAMPLES = 5


PREVIEW = 160


def preview(text: str, n: int = PREVIEW) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def share_of(part: float, whole: float) -> float:
    return float(part) / float(whole) if whole else 0.0


def _count_distinct_ids(ids: np.ndarray) -> int:
    ids = np.asarray(ids)
    if ids.size == 0:
        return 0
    if ids.dtype.kind in "iu" and ids.min() >= 0 and ids.max() < 50_000_000:
        return int(np.count_nonzero(np.bincount(ids)))
    return int(sorted_unique(ids).size)


#: how many distinct texts' words are numbered at a time (one C-level pass per chunk, not per text)
_WORD_CHUNK = 4096


def _number_words(chunk: list[list[str]], vocab: defaultdict[str, int]) -> list[np.ndarray]:
    """Each document's words as ids into ``vocab`` (a word not in it yet takes the next id: first-occurrence
    order)."""
    flat = list(chain.from_iterable(chunk))
    ids = np.fromiter(map(vocab.__getitem__, flat), dtype=np.int64, count=len(flat))
    return np.split(ids, np.cumsum([len(words) for words in chunk])[:-1]) if chunk else []


def word_ids(texts: Sequence[str]) -> tuple[list[np.ndarray], list[str]]:
    """Each document's lower-cased ``\\w+`` words as ids into one vocabulary (ids in first-occurrence
    order, so the same on every run), and the vocabulary: read once, shared by the record skeletons, the
    boilerplate and near-duplicate detectors.  Exact copies of a text are read once and share its array
    (treat the arrays as read-only)."""
    vocab: defaultdict[str, int] = defaultdict(count().__next__)  # a new word gets the next id
    first: dict[str, int] = {}  # a distinct text -> the first document with it
    out: list[Any] = [None] * len(texts)
    pending: list[int] = []

    def flush() -> None:
        for i, ids in zip(pending, _number_words([text_words(texts[i]) for i in pending], vocab)):
            out[i] = ids
        pending.clear()

    for i, t in enumerate(texts):
        if first.setdefault(t, i) == i:
            pending.append(i)
            if len(pending) >= _WORD_CHUNK:
                flush()
    flush()
    for i, t in enumerate(texts):
        if out[i] is None:
            out[i] = out[first[t]]
    return out, list(vocab)


# --------------------------------------------------------------------------- size and vocabulary
def vocab_usage(
    train_ids: np.ndarray,
    val_ids: np.ndarray,
    vocab_size_original: int,
    vocab_size_model: int,
    n_embd: int,
    train_model_ids: Optional[np.ndarray] = None,
) -> dict[str, Any]:
    """Token ids the data uses against the vocabulary the model pays for (seed 003).

    ``train_ids``/``val_ids`` are in the base tokenizer's ids; ``train_model_ids``
    in the model's id space (the same array unless ``tokenizer.compact``).  An
    embedding row is *unused* when its id never occurs in the training split
    (it gets no input gradient).  ``tokenizer.compact: true`` keeps the ids seen
    in training plus one unknown id.
    """
    train_ids, val_ids = np.asarray(train_ids), np.asarray(val_ids)
    model_ids = train_ids if train_model_ids is None else np.asarray(train_model_ids)
    used = _count_distinct_ids(np.concatenate([train_ids, val_ids]))
    used_train = _count_distinct_ids(train_ids)
    rows_used = _count_distinct_ids(model_ids)
    unused_rows = max(0, vocab_size_model - rows_used)
    compact_size = used_train + 1
    saves = max(0, vocab_size_model - compact_size) * int(n_embd)
    summary = (
        f"the data uses {used:,} of the tokenizer's {vocab_size_original:,} ids "
        f"({100 * share_of(used, vocab_size_original):.2f}%); {unused_rows:,} of the model's "
        f"{vocab_size_model:,} embedding rows {'never sees' if unused_rows == 1 else 'never see'} a "
        f"training token: {unused_rows * int(n_embd):,} parameters (rows × n_embd {n_embd}, counted once: the output head is tied to the embedding)"
    )
    summary += (
        f"; tokenizer.compact: true would keep {compact_size:,} ids and save {saves:,} parameters" if saves else ""
    )
    return {
        "vocab_size_original": int(vocab_size_original),
        "vocab_size_model": int(vocab_size_model),
        "used_ids": used,
        "used_ids_train": used_train,
        "used_share": share_of(used, vocab_size_original),
        "unused_rows": unused_rows,
        "wasted_embedding_params": unused_rows * int(n_embd),
        "compact_vocab_size": compact_size,
        "compact_saves_params": saves,
        "n_embd": int(n_embd),
        "note": TIED_NOTE,
        "summary": summary,
    }


def token_bytes(tokenizer: Any, ids: np.ndarray) -> np.ndarray:
    """UTF-8 bytes of each token id in ``ids``: tiktoken's own bytes when it has them, else the length
    of the decoded id (a byte-level BPE piece that is not whole UTF-8 would decode to U+FFFD)."""
    enc = getattr(tokenizer, "enc", None)
    single = getattr(enc, "decode_single_token_bytes", None)
    out = np.zeros(len(ids), dtype=np.int64)
    for k, i in enumerate(np.asarray(ids).tolist()):
        try:
            out[k] = len(single(int(i))) if single is not None else len(tokenizer.decode([int(i)]).encode("utf-8"))
        except Exception:  # an id the tokenizer cannot decode alone: count it as one byte
            out[k] = 1
    return out


def _unseen_by_source(
    codes: np.ndarray, unseen: np.ndarray, nbytes: Optional[np.ndarray], source_names: Sequence[str]
) -> list[dict[str, Any]]:
    """Per source label with val tokens: its val tokens, the unseen ones and their share (and bytes)."""
    k = len(source_names)
    tok_all = np.bincount(codes, minlength=k)
    tok_unseen = np.bincount(codes[unseen], minlength=k)
    if nbytes is not None:
        b_all = np.bincount(codes, weights=nbytes, minlength=k)
        b_unseen = np.bincount(codes[unseen], weights=nbytes[unseen], minlength=k)
    rows = []
    for c in np.flatnonzero(tok_all).tolist():
        row = {
            "source": source_names[c],
            "val_tokens": int(tok_all[c]),
            "unseen_tokens": int(tok_unseen[c]),
            "share": share_of(int(tok_unseen[c]), int(tok_all[c])),
        }
        if nbytes is not None:
            row.update(
                val_bytes=int(b_all[c]),
                unseen_bytes=int(b_unseen[c]),
                byte_share=share_of(float(b_unseen[c]), float(b_all[c])),
            )
        rows.append(row)
    rows.sort(key=lambda r: (-r["share"], r["source"]))
    return rows


def _unseen_examples(ids: np.ndarray, counts: np.ndarray, tokenizer: Any, top: int) -> list[dict[str, Any]]:
    """The ``top`` most frequent unseen ids, decoded when a tokenizer is given."""
    examples = []
    for k in np.argsort(-counts, kind="stable")[:top]:
        text = None
        if tokenizer is not None:
            try:
                text = tokenizer.decode([int(ids[k])])
            except Exception:  # decoding is a convenience
                text = None
        examples.append({"id": int(ids[k]), "count": int(counts[k]), "text": text})
    return examples


def unseen_val_tokens(
    train_ids: np.ndarray,
    val_ids: np.ndarray,
    val_sources: np.ndarray,
    source_names: Sequence[str],
    tokenizer: Any = None,
    top: int = 10,
) -> dict[str, Any]:
    """Validation tokens whose id never occurs in the training split, overall and per source label.

    Ids are the base tokenizer's (``Prepared.train_base`` / ``val_base``), so the number means the same
    with and without a compact vocabulary.  Such a token's embedding row never gets an input gradient,
    and the model never learns to predict it; under ``tokenizer.compact: true, compact_from: train``
    every one of them becomes the single unknown id, which is never a training target either.
    ``val_sources`` holds, for every val token, the index of its source label in ``source_names``.  Byte shares weigh each token by its UTF-8
    bytes (:func:`token_bytes`; ``None`` without a tokenizer).
    """
    train_ids, val_ids = np.asarray(train_ids, dtype=np.int64), np.asarray(val_ids, dtype=np.int64)
    top_id = int(max(train_ids.max(initial=0), val_ids.max(initial=0))) + 1
    seen = np.zeros(top_id, dtype=bool)
    seen[train_ids] = True
    unseen = ~seen[val_ids]
    distinct = np.unique(val_ids)
    nbytes = None
    if tokenizer is not None and len(distinct):
        per_id = np.zeros(top_id, dtype=np.int64)
        per_id[distinct] = token_bytes(tokenizer, distinct)
        nbytes = per_id[val_ids]
    rows = _unseen_by_source(np.asarray(val_sources, dtype=np.int64), unseen, nbytes, source_names)
    ids, counts = np.unique(val_ids[unseen], return_counts=True)
    examples = _unseen_examples(ids, counts, tokenizer, top)
    out = {
        "val_tokens": int(val_ids.size),
        "unseen_tokens": int(unseen.sum()),
        "share": share_of(int(unseen.sum()), int(val_ids.size)),
        "distinct_unseen_ids": int(ids.size),
        "distinct_val_ids": int(distinct.size),
        "sources": rows,
        "examples": examples,
    }
    if nbytes is not None:
        out.update(
            val_bytes=int(nbytes.sum()),
            unseen_bytes=int(nbytes[unseen].sum()),
            byte_share=share_of(int(nbytes[unseen].sum()), int(nbytes.sum())),
        )
    return out


# --------------------------------------------------------------------------- lengths
def _bucket_label(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}–{hi}"


def length_stats(lengths: Sequence[int], names: Sequence[str], block_size: int) -> dict[str, Any]:
    """Document lengths in tokens: summary, power-of-two histogram, share longer than ``block_size``, outliers.

    An outlier is longer than Q3 + 3·IQR (Tukey's "far out" fence).
    """
    lens = np.asarray(lengths, dtype=np.int64)
    if lens.size == 0:
        return {
            "documents": 0,
            "histogram": [],
            "outliers": {"documents": 0, "examples": []},
            "truncated": {"block_size": block_size, "documents": 0, "share": 0.0},
        }
    q1, med, q3, p95, p99 = np.percentile(lens, [25, 50, 75, 95, 99])
    fence = q3 + 3 * (q3 - q1)
    buckets = np.where(lens > 0, np.floor(np.log2(np.maximum(lens, 1))).astype(np.int64) + 1, 0)
    counts = np.bincount(buckets)
    hist = []
    for b in range(int(buckets.min()), int(buckets.max()) + 1):
        lo, hi = (0, 0) if b == 0 else (2 ** (b - 1), 2**b - 1)
        hist.append({"lo": lo, "hi": hi, "label": _bucket_label(lo, hi), "documents": int(counts[b])})
    out_idx = np.flatnonzero(lens > fence)
    out_idx = out_idx[np.argsort(-lens[out_idx], kind="stable")]
    long_docs = int((lens > block_size).sum())
    return {
        "documents": int(lens.size),
        "min": int(lens.min()),
        "max": int(lens.max()),
        "mean": float(lens.mean()),
        "median": float(med),
        "q1": float(q1),
        "q3": float(q3),
        "p95": float(p95),
        "p99": float(p99),
        "histogram": hist,
        "truncated": {"block_size": int(block_size), "documents": long_docs, "share": share_of(long_docs, lens.size)},
        "outliers": {
            "fence": float(fence),
            "documents": int(out_idx.size),
            "examples": [{"name": names[i], "tokens": int(lens[i])} for i in out_idx[:10]],
        },
    }


# --------------------------------------------------------------------------- duplicates and templates
def exact_duplicates(texts: Sequence[str], names: Sequence[str]) -> dict[str, Any]:
    """Documents whose text equals an earlier document's.

    ``documents`` counts the copies after the first (share = of all documents).
    Empty (whitespace-only) documents are counted apart as ``empty``, never as
    duplicates.
    """
    first: dict[str, int] = {}  # a distinct text -> its first document
    repeats: dict[int, list[int]] = {}  # a repeated text's first document -> every document with it
    empty = 0
    for i, t in enumerate(texts):
        if not t or t.isspace():
            empty += 1
        elif (j := first.setdefault(t, i)) != i:
            repeats.setdefault(j, [j]).append(i)
    dup_groups = sorted(repeats.values(), key=lambda g: (-len(g), g[0]))
    copies = sum(len(g) - 1 for g in dup_groups)
    return {
        "documents": copies,
        "share": share_of(copies, len(texts)),
        "groups": len(dup_groups),
        "empty": empty,
        "examples": [
            {"count": len(g), "names": [names[i] for i in g[:MAX_EXAMPLES]], "preview": preview(texts[g[0]])}
            for g in dup_groups[:MAX_EXAMPLES]
        ],
    }


def skeleton_groups(
    texts: Sequence[str],
    prompts: Optional[Sequence[Optional[str]]] = None,
    answers: Optional[Sequence[Optional[str]]] = None,
    words: Optional[tuple[list[np.ndarray], list[str]]] = None,
) -> np.ndarray:
    """A group id per document (equal skeletons, equal id, ids in first-occurrence order); -1 for empty
    documents.  A record with a prompt and an answer is grouped by the skeleton of its topic-blanked text
    (:func:`gaplab.datareport.record_templates.topic_blanked`) when it applies, else by :func:`template_skeleton`.

    Each distinct text (record: text, prompt and answer) is read once; ``words`` is :func:`word_ids` of
    ``texts`` when the caller has it (records only; read here when not given).  Skeletons are computed only
    where they can match another's (:func:`gaplab.datareport.record_templates.skeleton_keys`)."""
    records = prompts is not None and answers is not None
    first: dict[Any, int] = {}  # a distinct text (record) -> its index in ``which``
    which: list[int] = []  # the first document of each distinct text
    of_doc = np.full(len(texts), -1, dtype=np.int64)
    for i, t in enumerate(texts):
        if not t or t.isspace():
            continue
        k = first.setdefault((t, prompts[i], answers[i]) if records else t, len(which))
        if k == len(which):
            which.append(i)
        of_doc[i] = k
    if records:
        bodies = record_bodies(texts, prompts, answers, which, word_ids(texts) if words is None else words)
    else:
        bodies = [texts[i] for i in which]
    ids: dict[Any, int] = {}
    group = np.array([ids.setdefault(key, len(ids)) for key in skeleton_keys(bodies)] + [-1], dtype=np.int64)
    return group[of_doc]


def templated(texts: Sequence[str], names: Sequence[str], groups: Optional[np.ndarray] = None) -> dict[str, Any]:
    """Template families: skeletons shared by at least two *different* texts.

    A document is templated when its skeleton (:func:`template_skeleton`) is
    shared with a document of different text; exact copies alone are
    :func:`exact_duplicates`, not a template.  ``share`` is of all documents.
    """
    groups = skeleton_groups(texts) if groups is None else groups
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(groups.tolist()):
        if g >= 0:
            members[g].append(i)
    families = []
    for idx in members.values():
        if len(idx) < 2:
            continue
        distinct: dict[str, int] = {}
        for i in idx:
            distinct.setdefault(texts[i], i)
        if len(distinct) >= 2:
            families.append((idx, list(distinct.values())))
    families.sort(key=lambda f: (-len(f[0]), f[0][0]))
    count = sum(len(idx) for idx, _ in families)
    return {
        "documents": count,
        "share": share_of(count, len(texts)),
        "families": len(families),
        "rule": "numbers -> 0, Capitalised words -> Name, whitespace collapsed; quoted strings kept",
        "examples": [
            {
                "count": len(idx),
                "distinct_texts": len(d),
                "skeleton": preview(template_skeleton(texts[idx[0]])),
                "examples": [{"name": names[i], "preview": preview(texts[i])} for i in d[:2]],
            }
            for idx, d in families[:MAX_EXAMPLES]
        ],
    }


# --------------------------------------------------------------------------- split composition
def split_balance(composition: Mapping[str, Any], min_documents: int = 5) -> dict[str, Any]:
    """Each source's share of tokens in validation against the overall val share (seed 001).

    ``composition`` is ``{"train": {source: {"tokens", "documents"}}, "val": {...}}``
    (:func:`gaplab.data.split.composition`).  A source's *deviation* is
    ``|its val share − the overall val share|``; the check's value is the
    largest deviation among sources with at least ``min_documents`` documents
    (a source of one or two documents cannot be split in proportion; it is
    listed but not scored).
    """
    train, val = composition.get("train", {}), composition.get("val", {})
    sources = sorted(set(train) | set(val))
    total_train = sum(int(v["tokens"]) for v in train.values())
    total_val = sum(int(v["tokens"]) for v in val.values())
    overall = share_of(total_val, total_train + total_val)
    rows = []
    for s in sources:
        tt = int(train.get(s, {}).get("tokens", 0))
        vt = int(val.get(s, {}).get("tokens", 0))
        td = int(train.get(s, {}).get("documents", 0))
        vd = int(val.get(s, {}).get("documents", 0))
        vs = share_of(vt, tt + vt)
        rows.append(
            {
                "source": s,
                "train_tokens": tt,
                "val_tokens": vt,
                "train_documents": td,
                "val_documents": vd,
                "val_share": vs,
                "deviation": abs(vs - overall),
                "scored": (td + vd) >= min_documents,
            }
        )
    scored = [r for r in rows if r["scored"]]
    worst = max(scored, key=lambda r: r["deviation"], default=None)
    return {
        "overall_val_share": overall,
        "train_tokens": total_train,
        "val_tokens": total_val,
        "min_documents": min_documents,
        "sources": rows,
        "imbalance": {"value": worst["deviation"] if worst else 0.0, "source": worst["source"] if worst else None},
    }


# --------------------------------------------------------------------------- model vs data
_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def kaplan_bound() -> str:
    """Kaplan et al.'s overfitting bound as shown, from its constants in :mod:`gaplab.measure.references`:
    ``D ≳ 5×10³·N^0.74``."""
    mantissa, exponent = f"{KAPLAN_OVERFIT_COEF:e}".split("e")
    mantissa = f"{float(mantissa):g}"
    power = f"10{str(int(exponent)).translate(_SUPERSCRIPT)}"
    coef = power if mantissa == "1" else f"{mantissa}×{power}"
    return f"D ≳ {coef}·N^{KAPLAN_OVERFIT_EXP:g}"


def model_vs_data(
    param_counts: Mapping[str, int], train_tokens: int, iters: int, tokens_per_iter: int
) -> dict[str, Any]:
    """The planned model against its training data.

    ``param_counts`` is :func:`gaplab.model.gpt.count_params`'s ``{"total",
    "embedding", "non_embedding"}`` (non-embedding excludes token and position
    embeddings, as Kaplan et al. 2020).  ``tokens_per_iter`` is
    batch_size × grad_accum × block_size; epochs = iters × tokens_per_iter /
    train_tokens.
    """
    total = int(param_counts["total"])
    emb = int(param_counts["embedding"])
    ne = int(param_counts["non_embedding"])
    kaplan_min = kaplan_overfit_min_tokens(ne) if ne > 0 else 0.0
    seen = int(iters) * int(tokens_per_iter)
    tpp, tpt, epochs = share_of(train_tokens, ne), share_of(train_tokens, total), share_of(seen, train_tokens)
    meets = bool(train_tokens >= kaplan_min)
    summary = (
        f"{int(train_tokens):,} training tokens for {total:,} parameters, embeddings included: {tpt:.3g} "
        f"tokens per parameter, against the ~{CHINCHILLA_TOKENS_PER_PARAM:g} that "
        f"{SOURCES['chinchilla'].authors} found compute-optimal counting every parameter; {tpp:.3g} per "
        f"non-embedding parameter ({ne:,}, Kaplan's N). The planned {int(iters):,} iterations make {epochs:.3g} epochs. Kaplan et al. "
        f"2020's bound {kaplan_bound()} asks for {kaplan_min:,.0f} tokens: "
        + ("met." if meets else f"not met ({share_of(train_tokens, kaplan_min):.2g}× of it); expect overfitting.")
    )
    return {
        "params": {"total": total, "embedding": emb, "non_embedding": ne},
        "embedding_share": share_of(emb, total),
        "train_tokens": int(train_tokens),
        "tokens_per_param_total": tpt,
        "tokens_per_param_non_emb": tpp,
        "chinchilla_tokens_per_param": CHINCHILLA_TOKENS_PER_PARAM,
        "chinchilla_tokens_for_total": CHINCHILLA_TOKENS_PER_PARAM * total,
        "iters": int(iters),
        "tokens_per_iter": int(tokens_per_iter),
        "tokens_seen": seen,
        "epochs": epochs,
        "kaplan_min_tokens": float(kaplan_min),
        "kaplan_ratio": share_of(train_tokens, kaplan_min),
        "meets_kaplan": meets,
        "references": {
            "chinchilla": f"{cite('chinchilla')}: {SOURCES['chinchilla'].what}",
            "kaplan": f"{cite('kaplan')}: {KAPLAN_OVERFIT_TEXT}",
        },
        "note": (
            "tokens_per_param_total counts every parameter, as Hoffmann et al. 2022 do for their ~20; "
            "tokens_per_param_non_emb divides by the non-embedding parameters (Kaplan's N), which their "
            "overfitting bound uses"
        ),
        "summary": summary,
    }
