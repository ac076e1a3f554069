"""Finding text copied from training: one suffix-array index and n-gram hashing.

The same questions come up before training (how much of the validation text is already in train:
:mod:`gaplab.datareport.leakage`) and after it (how much of a sample is copied from train:
:class:`MemorizationIndex`).  Both are answered here: :func:`suffix_array` gives exact longest
matches with no cap on their length and no hash collisions; :func:`window_hashes` hashes every
n-token window of a stream for fast set membership over millions of windows.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


# =========================================================================== memorisation
def suffix_array(tokens) -> np.ndarray:
    """Start positions of all suffixes of ``tokens`` in lexicographic order (prefix doubling in numpy).

    Suffixes are grouped by their first k tokens; each round orders every group
    that still holds more than one suffix by the group of the suffix k tokens
    later, doubling k, until every group is a single suffix (about log2 of the
    longest repeat rounds; groups already resolved are not touched again).
    A suffix that ends sorts before its longer extensions.  (Manber & Myers,
    1993, "Suffix arrays: a new method for on-line string searches"; Lee et al.,
    2022, "Deduplicating Training Data Makes Language Models Better", use suffix
    arrays the same way to find text copied from training data.)
    """
    tokens = np.asarray(tokens).ravel()
    n = len(tokens)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    sa = np.argsort(tokens, kind="stable").astype(np.int64)
    first_tokens = tokens[sa]
    starts = np.ones(n, dtype=bool)
    starts[1:] = first_tokens[1:] != first_tokens[:-1]
    slots = np.arange(n, dtype=np.int64)
    rank = np.empty(n, dtype=np.int64)  # rank of a suffix = first slot of its group in sa
    rank[sa] = np.maximum.accumulate(np.where(starts, slots, 0))
    ends = np.append(starts[1:], True)
    open_slots = slots[~(starts & ends)]  # slots in groups of two or more
    k = 1
    while len(open_slots):
        members = sa[open_slots]
        later = members + k
        second = np.where(later < n, rank[np.minimum(later, n - 1)] + 1, 0)  # 0: past the end
        key = rank[members] * (n + 1) + second
        order = np.argsort(key)
        key = key[order]
        sa[open_slots] = members[order]  # groups are contiguous, so sorting keeps them in their slots
        starts = np.ones(len(key), dtype=bool)
        starts[1:] = key[1:] != key[:-1]
        first = np.maximum.accumulate(np.where(starts, np.arange(len(key)), 0))
        rank[sa[open_slots]] = open_slots[first]
        ends = np.append(starts[1:], True)
        open_slots = open_slots[~(starts & ends)]
        k *= 2
    return sa


class _SuffixIndex:
    """Longest-prefix lookups of a query in one token stream (binary search over its suffix array)."""

    def __init__(self, tokens: np.ndarray):
        self.tokens = np.asarray(tokens, dtype=np.int64)
        self.sa = suffix_array(self.tokens)
        # big-endian 4-byte ids: byte order equals token order, so bytes compare like token sequences
        self.data = self.tokens.astype(">u4").tobytes()

    def longest_prefix(self, query: np.ndarray, qbytes: bytes) -> tuple[int, int]:
        """``(length, position)`` of the longest prefix of ``query`` that occurs in the stream."""
        sa, data, m = self.sa, self.data, len(qbytes)
        if len(sa) == 0 or len(query) == 0:
            return 0, -1
        lo, hi = 0, len(sa)
        while lo < hi:
            mid = (lo + hi) // 2
            p = int(sa[mid]) * 4
            if data[p:p + m] < qbytes:
                lo = mid + 1
            else:
                hi = mid
        best, pos = 0, -1
        for j in (lo - 1, lo):  # the best match is next to the insertion point
            if 0 <= j < len(sa):
                p = int(sa[j])
                seg = self.tokens[p:p + len(query)]
                diff = np.flatnonzero(seg != query[:len(seg)])
                length = int(diff[0]) if len(diff) else len(seg)
                if length > best:
                    best, pos = length, p
        return best, pos


class MemorizationIndex:
    """An index of the training (and validation) token streams, built once, for copy detection.

    Built once on suffix arrays (about a second for a million tokens), so lengths
    are exact, with no hash collisions and no cap on span length: for each
    position of a sample it finds the longest span starting there that occurs
    verbatim in train (and in val).  A sample n-gram is "in train" when that
    span is at least ``n`` tokens long.  Token ids must be in the model's id
    space (``Prepared.train`` / ``.val``); ``tokenizer`` (optional) decodes the
    copied span.
    """

    def __init__(self, train_tokens, val_tokens=None, n: int = 8, tokenizer=None):
        if n <= 0:
            raise ValueError(f"sample.ngram = {n!r}: allowed: > 0")
        self.n = int(n)
        self.tokenizer = tokenizer
        self.train = self._as_ids(train_tokens, "train_tokens")
        self.val = None if val_tokens is None else self._as_ids(val_tokens, "val_tokens")
        self._train = _SuffixIndex(self.train)
        self._val = None if self.val is None else _SuffixIndex(self.val)

    @staticmethod
    def _as_ids(tokens, name: str) -> np.ndarray:
        arr = np.asarray(tokens).ravel()
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"MemorizationIndex: {name} must be integer token ids; got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= 2 ** 32):
            raise ValueError(f"MemorizationIndex: {name} holds ids outside 0..2**32-1 "
                             f"(min {arr.min()}, max {arr.max()})")
        return arr

    def matching_lengths(self, token_ids: Sequence[int], which: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """Per position i of the sample: the longest span starting at i found in train (or val), and where."""
        index = self._train if which == "train" else self._val
        q = self._as_ids(list(token_ids), "token_ids")
        lengths = np.zeros(len(q), dtype=np.int64)
        where = np.full(len(q), -1, dtype=np.int64)
        if index is None:
            return lengths, where
        qb = q.astype(">u4").tobytes()
        for i in range(len(q)):
            lengths[i], where[i] = index.longest_prefix(q[i:], qb[4 * i:])
        return lengths, where

    def measure(self, token_ids: Sequence[int], tokenizer=None) -> dict[str, Any]:
        """Memorisation metrics of one sample's generated ids.

        ``mem_longest_tokens`` (longest verbatim span from train), its
        ``mem_longest_chars`` and ``mem_longest_text`` (when a tokenizer is
        known), ``mem_train_position``; ``train_ngram_share`` (share of the
        sample's n-grams that occur in train), ``val_only_ngram_share`` (in val
        but not in train) and ``novel_ngram_share`` (in neither).  Shares are
        ``None`` when the sample is shorter than ``n`` tokens.
        """
        tokenizer = tokenizer if tokenizer is not None else self.tokenizer
        ids = [int(t) for t in token_ids]
        train_len, train_pos = self.matching_lengths(ids, "train")
        out: dict[str, Any] = {"mem_longest_tokens": 0, "mem_longest_start": None, "mem_train_position": None,
                               "mem_longest_chars": None, "mem_longest_text": None}
        if len(ids) and train_len.max() > 0:
            i = int(np.argmax(train_len))
            length = int(train_len[i])
            out.update(mem_longest_tokens=length, mem_longest_start=i, mem_train_position=int(train_pos[i]))
            if tokenizer is not None:
                span = tokenizer.decode(ids[i:i + length])
                out.update(mem_longest_chars=len(span), mem_longest_text=span)
        windows = len(ids) - self.n + 1
        if windows <= 0:
            out.update(train_ngram_share=None, val_only_ngram_share=None, novel_ngram_share=None)
            return out
        in_train = train_len[:windows] >= self.n
        if self._val is not None:
            val_len, _ = self.matching_lengths(ids, "val")
            in_val = val_len[:windows] >= self.n
            val_only = float(np.mean(in_val & ~in_train))
            novel = float(np.mean(~in_val & ~in_train))
        else:
            val_only, novel = None, float(np.mean(~in_train))
        out.update(train_ngram_share=float(np.mean(in_train)), val_only_ngram_share=val_only,
                   novel_ngram_share=novel)
        return out


# --------------------------------------------------------------------------- n-gram hashing
_HASH_BASE = np.uint64(0x9E3779B97F4A7C15)  # an odd 64-bit constant; arithmetic wraps mod 2**64


def window_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """Polynomial hash (mod 2**64) of every window of ``n`` consecutive ids; ``len(ids) - n + 1`` values.

    Distinct windows collide with probability ~2**-64 each, negligible for
    millions of windows; the windows are never built as Python tuples.
    """
    ids = np.asarray(ids)
    m = len(ids) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    x = ids.astype(np.uint64) + np.uint64(1)
    h = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            h = h * _HASH_BASE + x[k:k + m]
    return h


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values, by one sort.

    Plain ``np.unique`` took ~20× longer than this for 2M distinct uint64
    hashes with numpy 2.4 (it no longer always sorts).
    """
    s = np.sort(np.asarray(values))
    if s.size == 0:
        return s
    keep = np.empty(s.size, dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]
