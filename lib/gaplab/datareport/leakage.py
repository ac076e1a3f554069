"""Leakage: validation text that is also in the training split, so val loss looks better than it is."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from .detectors import MAX_EXAMPLES, preview, share_of
from ..measure.ngram_index import sorted_unique, window_hashes

# --------------------------------------------------------------------------- leakage
def ngram_leakage(train_ids: np.ndarray, val_ids: np.ndarray, n: int = 8, max_spans: int = 3) -> dict[str, Any]:
    """Share of validation ``n``-grams (token windows) that also occur in the training split.

    Hashes every window with :func:`window_hashes` and looks the val hashes up
    in the sorted unique train hashes.  ``spans`` are the longest runs of val
    text that are verbatim in train, as ``(start, tokens)`` in the val stream.
    """
    th = sorted_unique(window_hashes(train_ids, n))
    vh = window_hashes(val_ids, n)
    if vh.size == 0 or th.size == 0:
        return {"n": n, "val_ngrams": int(vh.size), "in_train": 0, "share": None, "distinct_share": None,
                "longest_span_tokens": 0, "spans": []}
    pos = np.minimum(np.searchsorted(th, vh), th.size - 1)
    hit = th[pos] == vh
    uv = sorted_unique(vh)
    upos = np.minimum(np.searchsorted(th, uv), th.size - 1)
    # runs of consecutive leaked windows -> spans of val tokens present in train
    edges = np.diff(np.concatenate([[0], hit.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    lengths = ends - starts + n - 1
    order = np.argsort(-lengths, kind="stable")[:max_spans]
    return {
        "n": n,
        "val_ngrams": int(vh.size),
        "in_train": int(hit.sum()),
        "share": float(hit.mean()),
        "distinct_share": float((th[upos] == uv).mean()),
        "longest_span_tokens": int(lengths.max()) if lengths.size else 0,
        "spans": [{"start": int(starts[i]), "tokens": int(lengths[i])} for i in order],
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
        "examples": [{"val": names[i], "train": names[j], "preview": preview(texts[i])}
                     for i, j in dups[:MAX_EXAMPLES]],
    }
