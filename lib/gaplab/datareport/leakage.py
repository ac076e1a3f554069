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

from ..measure.ngram_index import HashSet, exact_spans, sorted_unique, span_hashes, window_hashes
from .detectors import MAX_EXAMPLES, preview, share_of

#: a val document is *leaked* when at least this share of its n-grams occur in train
LEAKED_DOCUMENT_SHARE = 0.5


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``arange(s, s + c)`` for each start and count, concatenated."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    return np.repeat(np.asarray(starts, dtype=np.int64) - (np.cumsum(counts) - counts), counts) + np.arange(total)


def _merge(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The union of the intervals ``[start, end)`` (sorted by start) as disjoint maximal intervals; touching
    ones join."""
    if not len(starts):
        return starts, ends
    reach = np.maximum.accumulate(ends)
    first = np.ones(len(starts), dtype=bool)
    first[1:] = starts[1:] > reach[:-1]
    last = np.append(np.flatnonzero(first)[1:] - 1, len(starts) - 1)
    return starts[first], reach[last]


def _long_runs(flag: np.ndarray, n: int, min_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """Token intervals ``[start, end)`` covered by runs of consecutive flagged n-windows that span at least
    ``min_tokens`` tokens (overlapping or touching ones joined)."""
    edges = np.diff(flag.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) + n - 1
    keep = ends - starts >= min_tokens
    return _merge(starts[keep], ends[keep])


def _concat(ids: np.ndarray, starts: np.ndarray, ends: np.ndarray, sep: int) -> tuple[np.ndarray, np.ndarray]:
    """The tokens of each interval, each followed by ``sep``; and each token's original position (-1: ``sep``)."""
    lengths = ends - starts
    total = int(lengths.sum()) + len(starts)
    out = np.full(total, sep, dtype=np.int64)
    origin = np.full(total, -1, dtype=np.int64)
    slots = _ranges(np.cumsum(lengths + 1) - (lengths + 1), lengths)
    origin[slots] = _ranges(starts, lengths)
    out[slots] = ids[origin[slots]]
    return out, origin


def _window_hashes_in(ids: np.ndarray, starts: np.ndarray, ends: np.ndarray, length: int):
    """Every window of ``length`` tokens inside the intervals: its hash and its start (original position)."""
    lengths = ends - starts
    counts = np.maximum(lengths - length + 1, 0)
    joined = ids[_ranges(starts, lengths)]
    inside = _ranges(np.cumsum(lengths) - lengths, counts)  # the window starts in ``joined``
    return span_hashes(joined, inside, length), _ranges(starts, counts)


def _verbatim_stretches(train_ids, train_runs, val_ids, val_runs, length: int):
    """Of the candidate intervals of train and of val: the parts covered by windows of ``length`` tokens that
    occur on both sides (by hash: a collision can only keep too much).  Every span of at least ``length``
    tokens that is verbatim in both lies inside them, whole, on both sides."""
    t_hash, t_start = _window_hashes_in(train_ids, *train_runs, length)
    v_hash, v_start = _window_hashes_in(val_ids, *val_runs, length)
    if not t_hash.size or not v_hash.size:
        empty = np.zeros(0, dtype=np.int64)
        return (empty, empty), (empty, empty)
    t_ok = HashSet(sorted_unique(v_hash)).find(t_hash) >= 0
    v_ok = HashSet(sorted_unique(t_hash)).find(v_hash) >= 0
    return (
        _merge(t_start[t_ok], t_start[t_ok] + length),
        _merge(v_start[v_ok], v_start[v_ok] + length),
    )


def longest_spans(
    train_ids: np.ndarray,
    val_ids: np.ndarray,
    n: int,
    train_keys: np.ndarray,
    val_keys: np.ndarray,
    top: int = 3,
) -> list[dict[str, int]]:
    """The ``top`` longest val spans that occur verbatim in train, exact, each at least ``n`` tokens.

    ``train_keys`` and ``val_keys`` name each n-window (equal keys: the same window; -1 in val: not in
    train, in train: not in val).  Every n-window of a shared span is a shared n-gram, so a span of L
    tokens lies inside a *run* of consecutive shared windows at least L tokens long, in val and in train.
    The search starts with a length bar λ at the ``top``-th longest val run: it takes the val runs at
    least λ long and the train runs (of windows with their keys) at least λ long, keeps of them only what
    windows of λ tokens found on both sides cover (:func:`_verbatim_stretches`), and builds the suffix
    array (:func:`gaplab.measure.ngram_index.exact_spans`) over what is left, separated by ids that occur
    nowhere else; that finds every span of at least λ tokens exactly.  Until ``top`` spans are found, λ
    halves, down to ``n``.  ``train_position`` is where in the train stream the span first occurs.
    """
    hit = val_keys >= 0
    edges = np.diff(np.concatenate([[0], hit.astype(np.int8), [0]]))
    run_tokens = np.sort(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))[::-1] + n - 1
    if not len(run_tokens):
        return []
    bar = max(n, int(run_tokens[min(top, len(run_tokens)) - 1]))
    top_id = int(max(train_ids.max(), val_ids.max()))
    wanted = np.zeros(int(max(train_keys.max(), val_keys.max())) + 2, dtype=bool)  # the last slot: key -1
    while True:
        val_runs = _long_runs(hit, n, bar)
        wanted[:] = False
        wanted[val_keys[_ranges(val_runs[0], val_runs[1] - val_runs[0] - n + 1)]] = True
        wanted[-1] = False
        train_runs = _long_runs(wanted[train_keys], n, bar)
        train_runs, val_runs = _verbatim_stretches(train_ids, train_runs, val_ids, val_runs, bar)
        text, t_origin = _concat(train_ids, *train_runs, top_id + 1)
        query, q_origin = _concat(val_ids, *val_runs, top_id + 2)
        spans = exact_spans(text, query, min_tokens=bar, top=top)
        if len(spans) >= top or bar <= n:
            break
        bar = max(n, bar // 2)
    return [
        {
            "start": int(q_origin[s["start"]]),
            "tokens": s["tokens"],
            "train_position": int(t_origin[_first_occurrence(text, query[s["start"] : s["start"] + s["tokens"]])]),
        }
        for s in spans
    ]


def _first_occurrence(text: np.ndarray, piece: np.ndarray) -> int:
    """Where ``piece`` first occurs in ``text`` (it must occur): one occurrence of a span repeated in train
    is named, the first, whatever order the suffix array met them in."""
    length = len(piece)
    hashes = span_hashes(text, np.arange(len(text) - length + 1), length)
    for p in np.flatnonzero(hashes == span_hashes(piece, np.zeros(1, np.int64), length)[0]).tolist():
        if np.array_equal(text[p : p + length], piece):
            return p
    raise ValueError("the span does not occur in the text")


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

    Hashes every window with :func:`window_hashes` and looks each train window up in the distinct val
    hashes (one :class:`gaplab.measure.ngram_index.HashSet`).  ``spans`` are the longest val spans
    that are verbatim in train, exact (:func:`longest_spans`), as ``start``
    (in the val stream), ``tokens`` and ``train_position``.  With
    ``val_owners`` (the document index of every val token) and ``names``,
    ``documents`` is :func:`per_document_leakage`.
    """
    train_ids = np.asarray(train_ids, dtype=np.int64)
    val_ids = np.asarray(val_ids, dtype=np.int64)
    vh = window_hashes(val_ids, n)
    if vh.size == 0 or len(train_ids) < n:
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
    val_set = sorted_unique(vh)
    index = HashSet(val_set)
    val_keys = index.find(vh)  # each window's distinct val n-gram
    train_keys = index.find(window_hashes(train_ids, n))  # the same, or -1: not a val n-gram
    in_train = np.zeros(val_set.size + 1, dtype=bool)
    in_train[train_keys] = True  # -1 lands in the last slot
    in_train = in_train[:-1]
    hit = in_train[val_keys]  # a val window is shared when its hash is in train
    val_keys[~hit] = -1
    spans = longest_spans(train_ids, val_ids, n, train_keys, val_keys, top=max_spans)
    documents = None
    if val_owners is not None and names is not None:
        documents = per_document_leakage(hit, val_owners, names, n)
    return {
        "n": n,
        "val_ngrams": int(vh.size),
        "in_train": int(hit.sum()),
        "share": float(hit.mean()),
        "distinct_share": float(in_train.mean()),
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
        same = train_texts.get(texts[i], [])
        other = next((j for j in same[:2] if j != i), None)  # the first train copy that is another document
        if other is not None:
            dups.append((i, other))
    return {
        "val_documents": len(val_idx),
        "documents": len(dups),
        "share": share_of(len(dups), len(val_idx)),
        "examples": [
            {"val": names[i], "train": names[j], "preview": preview(texts[i])} for i, j in dups[:MAX_EXAMPLES]
        ],
    }
