"""Boilerplate: phrases repeated verbatim across documents that are boilerplate, not phrases of the language.

A word n-gram that recurs in many documents is only a *candidate*: "how now what s the matter" recurs in
14 of 77 plays, and is English, not boilerplate.  A candidate counts as boilerplate when, in the documents
that hold it, it also

- **sits at the same place**: at the start (a header, a licence) or at the end (a footer, a signature, a
  sign-off) of at least :data:`SAME_PLACE_SHARE` of them; or
- **covers a real share of them**: the run of repeated words it belongs to covers at least
  ``min_coverage`` of a document's words, in the median document that holds it.

Seed 000's answers that all end in the same sentence, the teaching set's sign-off, a licence header on
every file, a disclaimer paragraph: boilerplate.  A phrase of the genre scattered through long documents:
a *natural phrase*, listed apart so the learner sees what was set aside and why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from ..measure.ngram_index import sorted_unique, window_hashes
from .detectors import share_of, skeleton_groups, word_ids

#: a phrase run "sits at the start / end" when it begins (ends) within this share of the document's words
#: from its start (end), or within 2 n-grams' worth of words, whichever is more
EDGE_SHARE = 0.05
#: ... in at least this share of the documents that hold it, at the same end
SAME_PLACE_SHARE = 0.8
#: a phrase run covering at least this share of the words of the median document that holds it counts
MIN_COVERAGE = 0.10


def _distinct_owner_counts(keys: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique ``keys`` and, for each, how many distinct ``owners`` have it."""
    if keys.size == 0:
        return keys, np.zeros(0, dtype=np.int64)
    order = np.lexsort((owners, keys))
    k, o = keys[order], owners[order]
    new = np.ones(k.size, dtype=bool)
    new[1:] = (k[1:] != k[:-1]) | (o[1:] != o[:-1])
    k = k[new]  # sorted; one entry per (key, owner)
    starts = np.flatnonzero(np.concatenate([[True], k[1:] != k[:-1]]))
    return k[starts], np.diff(np.append(starts, k.size))


#: windows are first counted in 2**this many buckets of their hash (high bits): a window in a bucket of
#: fewer windows than a phrase needs documents cannot be frequent, and is never sorted
_BUCKET_BITS = 22


def _frequent(keys: np.ndarray, owners: np.ndarray, need: int) -> np.ndarray:
    """The sorted distinct ``keys`` held by at least ``need`` distinct ``owners``."""
    buckets = (keys >> np.uint64(64 - _BUCKET_BITS)).astype(np.int64)
    crowded = np.bincount(buckets, minlength=1 << _BUCKET_BITS)[buckets] >= need
    hashes, df = _distinct_owner_counts(keys[crowded], owners[crowded])
    return hashes[df >= need]


def _group_reduce(keys: np.ndarray, values: np.ndarray, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Per distinct key (sorted): the sum, or the median, of its values."""
    order = np.lexsort((values, keys))
    k, v = keys[order], values[order]
    starts = np.flatnonzero(np.concatenate([[True], k[1:] != k[:-1]]))
    counts = np.diff(np.append(starts, k.size))
    if how == "sum":
        return k[starts], np.add.reduceat(v, starts)
    lo = starts + (counts - 1) // 2
    hi = starts + counts // 2
    return k[starts], (v[lo] + v[hi]) / 2.0


def _word_stream(per_doc: Sequence[np.ndarray], groups: np.ndarray, n: int):
    """Every counted document's word ids end to end (documents of fewer than ``n`` words left out), with
    each word's document and offset in it; and every counted document's length in words."""
    lengths = np.fromiter(map(len, per_doc), dtype=np.int64, count=len(per_doc))
    lengths[np.asarray(groups) < 0] = 0
    take = np.flatnonzero(lengths >= max(n, 1))
    if not take.size:
        return None, lengths
    counts = lengths[take]
    ids = np.concatenate([per_doc[i] for i in take.tolist()]).astype(np.int64, copy=False)
    owners = np.repeat(take.astype(np.int64), counts)
    offsets = np.arange(ids.size, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return (ids, owners, offsets), lengths


def _run_places(h, hit, doc, offset, lengths, n):
    """For each frequent window: does its run of frequent windows sit at its document's start, at its end,
    and what share of the document's words does the run cover."""
    new_run = np.ones(hit.size, dtype=bool)
    new_run[1:] = (hit[1:] != hit[:-1] + 1) | (doc[hit[1:]] != doc[hit[:-1]])
    run_id = np.cumsum(new_run) - 1
    run_first = hit[new_run]
    run_last = hit[np.append(np.flatnonzero(new_run)[1:] - 1, hit.size - 1)]
    dlen = lengths[doc[hit]]
    edge = np.maximum(2 * n, np.ceil(EDGE_SHARE * dlen)).astype(np.int64)
    begin = offset[run_first[run_id]]
    end = offset[run_last[run_id]] + n  # one past the run's last word
    return begin <= edge, (dlen - end) <= edge, (end - begin) / np.maximum(dlen, 1)


def _per_ngram(h, hit, doc, at_start, at_end, cover):
    """Per distinct frequent n-gram (sorted hashes): the documents holding it, how many hold it at their
    start and at their end, and the median coverage of its run in them."""
    hdoc = doc[hit]
    pair = np.lexsort((hdoc, h[hit]))
    ph, pd = h[hit][pair], hdoc[pair]
    first = np.ones(pair.size, dtype=bool)
    first[1:] = (ph[1:] != ph[:-1]) | (pd[1:] != pd[:-1])
    starts = np.flatnonzero(first)
    key = ph[starts]
    any_start = np.maximum.reduceat(at_start[pair].astype(np.int64), starts)
    any_end = np.maximum.reduceat(at_end[pair].astype(np.int64), starts)
    best_cover = np.maximum.reduceat(cover[pair], starts)
    uh, docs_with = _group_reduce(key, np.ones(key.size, dtype=np.int64), "sum")
    _, n_start = _group_reduce(key, any_start, "sum")
    _, n_end = _group_reduce(key, any_end, "sum")
    _, med_cover = _group_reduce(key, best_cover, "median")
    return uh, docs_with, n_start, n_end, med_cover


def _coverage(bhit, doc, ids_size, lengths, n, names) -> tuple[np.ndarray, dict[str, Any]]:
    """The documents holding boilerplate, and how much of them it is: per document, the share of its words
    inside boilerplate n-grams."""
    docs_bp = sorted_unique(doc[bhit])
    covered = np.zeros(ids_size + 1, dtype=np.int64)
    np.add.at(covered, bhit, 1)
    np.add.at(covered, bhit + n, -1)
    in_bp = np.cumsum(covered[:-1]) > 0
    per_doc = np.bincount(doc[in_bp], minlength=len(lengths)) / np.maximum(lengths, 1)
    if not docs_bp.size:
        return docs_bp, {"mean_in_documents": 0.0, "max": 0.0, "of_all_words": 0.0, "top": []}
    top_docs = docs_bp[np.argsort(-per_doc[docs_bp], kind="stable")][:5]
    return docs_bp, {
        "mean_in_documents": float(per_doc[docs_bp].mean()),
        "max": float(per_doc[docs_bp].max()),
        "of_all_words": share_of(int(in_bp.sum()), int(lengths.sum())),
        "top": [{"name": names[int(d)], "coverage": float(per_doc[d]), "words": int(lengths[d])} for d in top_docs],
    }


def _empty_result(n: int, min_share: float, need: int, min_coverage: float) -> dict[str, Any]:
    return {
        "ngram": n,
        "min_share": min_share,
        "min_documents": need,
        "documents": 0,
        "share": 0.0,
        "coverage": {"mean_in_documents": 0.0, "max": 0.0, "of_all_words": 0.0, "top": []},
        "phrases": [],
        "natural_phrases": [],
        "rule": (
            f"a {n}-word phrase in ≥ {need} documents (≥ {min_share:.0%}) is boilerplate when it sits "
            f"at the start or the end of ≥ {SAME_PLACE_SHARE:.0%} of them (within {EDGE_SHARE:.0%} "
            f"of their words) or its run covers ≥ {min_coverage:.0%} of the median one's words"
        ),
    }


def boilerplate(
    texts: Sequence[str],
    names: Sequence[str],
    n: int = 6,
    min_share: float = 0.10,
    min_documents: int = 3,
    groups: Optional[np.ndarray] = None,
    top: int = 10,
    min_coverage: float = MIN_COVERAGE,
    words: Optional[tuple[list[np.ndarray], list[str]]] = None,
) -> dict[str, Any]:
    """Word ``n``-grams (lower-cased ``\\w+`` words) repeated across documents that are boilerplate.

    A candidate occurs in at least ``min_share`` of the documents (and in at least ``min_documents``).
    Documents count by ``groups`` (template families and exact copies once each, see
    :func:`gaplab.datareport.detectors.skeleton_groups`), so a template's fixed words are reported as a
    template, not again as boilerplate.  A candidate is boilerplate when it sits at the same place or
    covers a real share of its documents (module docstring).

    ``share`` is the share of *all* documents that contain a boilerplate phrase; ``coverage`` says how
    much of them it is: per document, the share of its words inside boilerplate n-grams.  ``phrases``
    are the boilerplate phrases (``where``: ``start``, ``end`` or ``throughout``; ``coverage``: the
    median share of a holding document's words in the phrase's run); ``natural_phrases`` the candidates
    set aside as phrases of the language.  ``words`` is :func:`gaplab.datareport.detectors.word_ids`
    of ``texts`` when the caller has it already.
    """
    groups = skeleton_groups(texts) if groups is None else np.asarray(groups)
    per_doc, vocab_list = word_ids(texts) if words is None else words
    stream, lengths = _word_stream(per_doc, groups, n)
    n_units = int(sorted_unique(groups[groups >= 0]).size)
    need = max(int(min_documents), math.ceil(min_share * n_units - 1e-9))
    result = _empty_result(n, min_share, need, min_coverage)
    if stream is None:
        return result
    ids, doc, offset = stream
    h = window_hashes(ids, n)  # window i covers ids[i:i+n]
    where = np.flatnonzero(doc[: h.size] == doc[n - 1 :])  # windows inside one document
    frequent = _frequent(h[where], groups[doc[where]], need)
    if frequent.size == 0:
        return result
    hit = where[np.isin(h[where], frequent)]
    # runs of consecutive frequent windows inside a document: one occurrence of a (longer) phrase
    at_start, at_end, cover = _run_places(h, hit, doc, offset, lengths, n)
    uh, docs_with, n_start, n_end, med_cover = _per_ngram(h, hit, doc, at_start, at_end, cover)
    place = np.maximum(n_start, n_end) / docs_with
    is_boiler = (place >= SAME_PLACE_SHARE) | (med_cover >= min_coverage)
    boiler_hashes = uh[is_boiler]
    bhit = hit[np.isin(h[hit], boiler_hashes)]
    docs_bp, result["coverage"] = _coverage(bhit, doc, ids.size, lengths, n, names)
    result["documents"] = int(docs_bp.size)
    result["share"] = share_of(docs_bp.size, len(texts))
    info = {
        int(x): (int(c), float(p), float(m), int(s_), int(e_))
        for x, c, p, m, s_, e_ in zip(uh, docs_with, place, med_cover, n_start, n_end)
    }
    stream_info = (h, hit, ids, doc, n)
    result["phrases"] = _phrases(*stream_info, boiler_hashes, info, vocab_list, names, len(texts), top)
    result["natural_phrases"] = _phrases(*stream_info, uh[~is_boiler], info, vocab_list, names, len(texts), 5)
    return result


def _phrases(h, hit, ids, doc, n, chosen, info, inverse, names, n_docs, top) -> list[dict[str, Any]]:
    """The chosen n-grams as phrases: neighbouring chosen windows of (nearly) the same frequency are
    grown into one phrase, most frequent first."""
    sel = hit[np.isin(h[hit], chosen)]
    if not sel.size:
        return []
    count_at = np.zeros(h.size, dtype=np.int64)
    count_at[sel] = [info[int(x)][0] for x in h[sel]]
    _, first = np.unique(h[sel], return_index=True)
    firsts = sel[first]
    order = sorted(firsts.tolist(), key=lambda w: (-int(count_at[w]), w))
    covered: set[int] = set()
    out = []
    for w in order:
        hv = int(h[w])
        if hv in covered:
            continue
        target = int(count_at[w])
        lo = hi = w
        while lo > 0 and count_at[lo - 1] >= 0.9 * target and doc[lo - 1] == doc[lo]:
            lo -= 1
        while hi + 1 < h.size and count_at[hi + 1] >= 0.9 * target and doc[hi + 1] == doc[hi]:
            hi += 1
        covered.update(int(x) for x in h[lo : hi + 1])
        c, place, med, n_start, n_end = info[hv]
        where = ("start" if n_start >= n_end else "end") if place >= SAME_PLACE_SHARE else "throughout"
        out.append(
            {
                "phrase": " ".join(inverse[int(x)] for x in ids[lo : hi + n]),
                "documents": c,
                "share": share_of(c, n_docs),
                "where": where,
                "same_place_share": round(place, 4),
                "coverage": round(med, 4),
                "example": names[int(doc[lo])],
            }
        )
        if len(out) >= top:
            break
    return out


def prompt_prefix(
    prompts: Sequence[str],
    names: Sequence[str],
    n: int = 6,
    words: Optional[tuple[list[np.ndarray], list[str]]] = None,
) -> Optional[dict[str, Any]]:
    """The phrase most prompts start with (an instruction template such as "Below is an instruction that
    describes a task"), or ``None``: reported as a shared prompt prefix, never counted as boilerplate (the
    model is given it, it does not learn to write it).  ``words``: the prompts' word ids, when the caller
    has them (:func:`boilerplate`)."""
    found = boilerplate(prompts, names, n=n, words=words)
    starts = [p for p in found["phrases"] if p["where"] == "start"]
    if not starts:
        return None
    top = max(starts, key=lambda p: (p["documents"], len(p["phrase"])))
    return {"phrase": top["phrase"], "documents": top["documents"], "share": top["share"]}
