"""Leakage: validation text that is also in the training split, so val loss looks better than it is.

- :func:`ngram_leakage`: the share of val n-grams (token windows) found in train, the same per val
  document (with the outliers by name), and the longest verbatim spans, exact
  (:func:`gaplab.measure.ngram_index.exact_spans`, the suffix-array index the samples' memorization
  metric uses too).
- :func:`cross_split_duplicates`: val documents whose exact text is a train document.
- Near-twins across the split (another edition, a reformatted copy) are
  :func:`gaplab.datareport.near_duplicates.cross_split_near_duplicates`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from ..measure.ngram_index import exact_spans, index_in, sorted_unique, window_hashes
from .detectors import MAX_EXAMPLES, preview, share_of

#: a val document is *leaked* when at least this share of its n-grams occur in train
LEAKED_DOCUMENT_SHARE = 0.5


def _segments(ids: np.ndarray, mask: np.ndarray, sep: int) -> tuple[np.ndarray, np.ndarray]:
    """The masked tokens, each maximal run followed by ``sep``; and each kept token's original position."""
    pos = np.flatnonzero(mask)
    if not len(pos):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    brk = np.flatnonzero(np.diff(pos) > 1) + 1  # a new run starts here
    out_len = len(pos) + len(brk)
    out = np.empty(out_len, dtype=np.int64)
    origin = np.full(out_len, -1, dtype=np.int64)
    shift = np.zeros(len(pos), dtype=np.int64)
    shift[brk] = 1
    slots = np.arange(len(pos)) + np.cumsum(shift)
    out.fill(sep)
    out[slots] = ids[pos]
    origin[slots] = pos
    return out, origin


def _runs(hit: np.ndarray, n: int, min_tokens: int) -> np.ndarray:
    """Token mask of the runs of consecutive hit windows that span at least ``min_tokens`` tokens."""
    edges = np.diff(np.concatenate([[0], hit.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # windows [start, end)
    keep = (ends - starts + n - 1) >= min_tokens
    marks = np.zeros(len(hit) + n, dtype=np.int64)
    np.add.at(marks, starts[keep], 1)
    np.add.at(marks, ends[keep] + n - 1, -1)
    return np.cumsum(marks)[: len(hit) + n - 1] > 0


def longest_spans(
    train_ids: np.ndarray,
    val_ids: np.ndarray,
    n: int,
    train_hashes: np.ndarray,
    val_hashes: np.ndarray,
    hit: np.ndarray,
    top: int = 3,
) -> list[dict[str, int]]:
    """The ``top`` longest val spans that occur verbatim in train, exact, each at least ``n`` tokens.

    Every n-window of a shared span is a shared n-gram, so a span of L tokens lies inside a *run* of
    consecutive shared windows at least L tokens long, in val and in train.  The search starts with a
    length bar λ at the ``top``-th longest val run: the suffix array
    (:func:`gaplab.measure.ngram_index.exact_spans`) is built over the val runs and the train runs (of
    windows with the same hashes) at least λ long, separated by ids that occur nowhere else; that finds
    every span of at least λ tokens exactly.  Until ``top`` spans are found, λ halves, down to ``n``.
    ``train_position`` is where in the train stream the span occurs.
    """
    edges = np.diff(np.concatenate([[0], hit.astype(np.int8), [0]]))
    run_tokens = np.sort(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))[::-1] + n - 1
    if not len(run_tokens):
        return []
    bar = max(n, int(run_tokens[min(top, len(run_tokens)) - 1]))
    top_id = int(max(train_ids.max(), val_ids.max()))
    shared = sorted_unique(val_hashes[hit])
    t_idx = index_in(train_hashes, shared)  # each train window's shared hash (or -1), found once
    v_idx = index_in(val_hashes, shared)
    while True:
        val_mask = _runs(hit, n, bar)
        wanted = np.zeros(shared.size + 1, dtype=bool)  # the last slot stands for -1: not shared
        wanted[v_idx[val_mask[: len(hit)] & hit]] = True
        wanted[-1] = False
        train_mask = _runs(wanted[t_idx], n, bar)
        text, t_origin = _segments(train_ids, train_mask, top_id + 1)
        query, q_origin = _segments(val_ids, val_mask, top_id + 2)
        spans = exact_spans(text, query, min_tokens=bar, top=top)
        if len(spans) >= top or bar <= n:
            break
        bar = max(n, bar // 2)
    return [
        {"start": int(q_origin[s["start"]]), "tokens": s["tokens"], "train_position": int(t_origin[s["text_position"]])}
        for s in spans
    ]


def per_document_leakage(
    hit: np.ndarray, val_owners: np.ndarray, names: Sequence[str], n: int, top: int = 10
) -> dict[str, Any]:
    """For each val document: the share of its val n-grams (windows starting in it) found in train.

    ``leaked`` lists the documents with at least :data:`LEAKED_DOCUMENT_SHARE` of their n-grams in
    train; ``outliers`` those above Tukey's far-out fence (Q3 + 3·IQR of the per-document shares) and
    above the overall share: the documents that leak much more than the rest.
    """
    owners = np.asarray(val_owners)[: len(hit)]
    docs, inverse = np.unique(owners, return_inverse=True)
    windows = np.bincount(inverse, minlength=len(docs))
    found = np.bincount(inverse, weights=hit.astype(np.float64), minlength=len(docs)).astype(np.int64)
    shares = found / np.maximum(windows, 1)
    overall = share_of(int(hit.sum()), len(hit))
    q1, q3 = np.percentile(shares, [25, 75]) if len(shares) else (0.0, 0.0)
    fence = float(q3 + 3 * (q3 - q1))
    rows = [
        {"name": names[int(d)], "val_ngrams": int(w), "in_train": int(f), "share": float(s)}
        for d, w, f, s in zip(docs, windows, found, shares)
    ]
    by_share = sorted(range(len(rows)), key=lambda i: (-rows[i]["share"], -rows[i]["val_ngrams"]))
    leaked = [rows[i] for i in by_share if rows[i]["share"] >= LEAKED_DOCUMENT_SHARE]
    outliers = [rows[i] for i in by_share if rows[i]["share"] > max(fence, overall)]
    return {
        "documents": len(rows),
        "leaked_share_threshold": LEAKED_DOCUMENT_SHARE,
        "leaked": len(leaked),
        "leaked_examples": leaked[:top],
        "fence": fence,
        "outliers": len(outliers),
        "outlier_examples": outliers[:top],
        "top": [rows[i] for i in by_share[:top]],
        "rule": (
            f"per val document: share of its {n}-grams (windows starting in it) found in train; leaked: "
            f"≥ {LEAKED_DOCUMENT_SHARE:.0%}; outliers: above Q3 + 3·IQR of those shares and above the "
            f"overall share"
        ),
    }


# --------------------------------------------------------------------------- leakage
def ngram_leakage(
    train_ids: np.ndarray,
    val_ids: np.ndarray,
    n: int = 8,
    max_spans: int = 3,
    val_owners: Optional[np.ndarray] = None,
    names: Optional[Sequence[str]] = None,
) -> dict[str, Any]:
    """Share of validation ``n``-grams (token windows) that also occur in the training split.

    Hashes every window with :func:`window_hashes` and looks the val hashes up
    in the sorted unique train hashes.  ``spans`` are the longest val spans
    that are verbatim in train, exact (:func:`longest_spans`), as ``start``
    (in the val stream), ``tokens`` and ``train_position``.  With
    ``val_owners`` (the document index of every val token) and ``names``,
    ``documents`` is :func:`per_document_leakage`.
    """
    train_ids = np.asarray(train_ids, dtype=np.int64)
    val_ids = np.asarray(val_ids, dtype=np.int64)
    th_all = window_hashes(train_ids, n)
    th = sorted_unique(th_all)
    vh = window_hashes(val_ids, n)
    if vh.size == 0 or th.size == 0:
        return {
            "n": n,
            "val_ngrams": int(vh.size),
            "in_train": 0,
            "share": None,
            "distinct_share": None,
            "longest_span_tokens": 0,
            "spans": [],
            "documents": None,
        }
    uv = sorted_unique(vh)
    upos = np.minimum(np.searchsorted(th, uv), th.size - 1)
    hit = index_in(vh, uv[th[upos] == uv]) >= 0  # a val window is shared when its hash is in train
    spans = longest_spans(train_ids, val_ids, n, th_all, vh, hit, top=max_spans)
    documents = None
    if val_owners is not None and names is not None:
        documents = per_document_leakage(hit, val_owners, names, n)
    return {
        "n": n,
        "val_ngrams": int(vh.size),
        "in_train": int(hit.sum()),
        "share": float(hit.mean()),
        "distinct_share": float((th[upos] == uv).mean()),
        "longest_span_tokens": spans[0]["tokens"] if spans else 0,
        "spans": spans,
        "documents": documents,
    }


def cross_split_duplicates(texts: Sequence[str], names: Sequence[str], doc_split: Sequence[str]) -> dict[str, Any]:
    """Validation documents whose exact text is also a training document (another one).

    ``doc_split`` is ``"train"``, ``"val"`` or ``"both"`` per document (a tail
    split cuts one document in two; it counts on both sides).  ``share`` is of
    the non-empty val documents.
    """
    train_texts: dict[str, list[int]] = defaultdict(list)
    for i, (t, s) in enumerate(zip(texts, doc_split)):
        if s in ("train", "both") and t.strip():
            train_texts[t].append(i)
    val_idx = [i for i, (t, s) in enumerate(zip(texts, doc_split)) if s in ("val", "both") and t.strip()]
    dups = []
    for i in val_idx:
        others = [j for j in train_texts.get(texts[i], []) if j != i]
        if others:
            dups.append((i, others[0]))
    return {
        "val_documents": len(val_idx),
        "documents": len(dups),
        "share": share_of(len(dups), len(val_idx)),
        "examples": [
            {"val": names[i], "train": names[j], "preview": preview(texts[i])} for i, j in dups[:MAX_EXAMPLES]
        ],
    }
