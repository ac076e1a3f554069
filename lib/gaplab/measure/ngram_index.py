"""Finding text copied from training: one suffix-array index and n-gram hashing.

The same questions come up before training (how much of the validation text is already in train:
:mod:`gaplab.datareport.leakage`) and after it (how much of a sample is copied from train:
:class:`MemorizationIndex`).  Both are answered here: :func:`suffix_array` gives exact longest
matches with no cap on their length and no hash collisions; :func:`window_hashes` hashes every
n-token window of a stream, and :class:`HashSet` finds millions of those hashes in a set of them
(about one memory read each).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np


# =========================================================================== suffix arrays
def _initial_key(tokens: np.ndarray) -> tuple[np.ndarray, int]:
    """Each suffix's first k tokens packed into one uint64 (ids + 1, 0 past the end), and k.

    GPT-2 and compact ids fit 16 bits, so four tokens sort in the first pass instead of one: prefix doubling
    then starts at k = 4, skipping its two most expensive rounds.
    """
    bits = max(1, (int(tokens.max()) + 1 if len(tokens) else 1).bit_length())
    k = max(1, 64 // bits)
    t = tokens.astype(np.uint64) + np.uint64(1)
    key = np.zeros(len(tokens), dtype=np.uint64)
    for j in range(k):
        shifted = np.zeros(len(tokens), dtype=np.uint64)
        shifted[: max(0, len(tokens) - j)] = t[j:]
        key = (key << np.uint64(bits)) | shifted
    return key, k


def suffix_array(tokens) -> np.ndarray:
    """Start positions of all suffixes of ``tokens`` in lexicographic order (prefix doubling in numpy).

    Suffixes are grouped by their first k tokens; each round orders every group
    that still holds more than one suffix by the group of the suffix k tokens
    later, doubling k, until every group is a single suffix (about log2 of the
    longest repeat rounds; groups already resolved are not touched again).
    A suffix that ends sorts before its longer extensions.  Ids must be
    non-negative.  (Manber & Myers, 1993, "Suffix arrays: a new method for
    on-line string searches"; Lee et al., 2022, "Deduplicating Training Data
    Makes Language Models Better", use suffix arrays the same way to find text
    copied from training data.)
    """
    tokens = np.asarray(tokens).ravel().astype(np.int64)
    n = len(tokens)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    first_key, k = _initial_key(tokens)
    sa = np.argsort(first_key, kind="stable").astype(np.int64)
    first_tokens = first_key[sa]
    starts = np.ones(n, dtype=bool)
    starts[1:] = first_tokens[1:] != first_tokens[:-1]
    slots = np.arange(n, dtype=np.int64)
    rank = np.empty(n, dtype=np.int64)  # rank of a suffix = first slot of its group in sa
    rank[sa] = np.maximum.accumulate(np.where(starts, slots, 0))
    ends = np.append(starts[1:], True)
    open_slots = slots[~(starts & ends)]  # slots in groups of two or more
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


def _common_prefix(a: np.ndarray, i: int, b: np.ndarray, j: int, limit: Optional[int] = None) -> int:
    """Exact length of the common prefix of ``a[i:]`` and ``b[j:]`` (at most ``limit``), by comparing tokens."""
    m = min(len(a) - i, len(b) - j) if limit is None else min(limit, len(a) - i, len(b) - j)
    if m <= 0:
        return 0
    diff = np.flatnonzero(a[i : i + m] != b[j : j + m])
    return int(diff[0]) if len(diff) else m


class _PrefixHashes:
    """Polynomial hashes (mod 2**64) of every prefix, so any substring's hash costs O(1), vectorized.

    ``P[i] = sum(x[j] * B**(i-1-j) for j < i)`` is built without a sequential loop: with B odd it is
    invertible mod 2**64, so ``P[i] = B**i * cumsum(x[j] * B**-(j+1))``.  Equal substrings always hash
    equal; unequal ones collide with negligible probability, and every length reported from these hashes
    is checked token by token (:func:`matching_statistics`).
    """

    def __init__(self, x: np.ndarray):
        n = len(x)
        base = _HASH_BASE
        inv = np.uint64(pow(int(base), -1, 2**64))
        with np.errstate(over="ignore"):
            self.pow = np.ones(n + 1, dtype=np.uint64)
            if n:
                self.pow[1:] = np.multiply.accumulate(np.full(n, base, dtype=np.uint64))
            ipow = np.ones(n + 1, dtype=np.uint64)
            if n:
                ipow[1:] = np.multiply.accumulate(np.full(n, inv, dtype=np.uint64))
            vals = (x.astype(np.uint64) + np.uint64(1)) * ipow[1:]
            self.prefix = np.zeros(n + 1, dtype=np.uint64)
            if n:
                self.prefix[1:] = self.pow[1:] * np.add.accumulate(vals, dtype=np.uint64)

    def substring(self, start: np.ndarray, length: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return self.prefix[start + length] - self.prefix[start] * self.pow[length]


def span_hashes(x: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """The polynomial hash of ``x[s : s + length]`` for each ``s`` of ``starts``, all in O(len(x)) (equal
    spans hash equal in any array; unequal ones collide with probability ~2**-64)."""
    starts = np.asarray(starts, dtype=np.int64)
    if not starts.size:
        return np.zeros(0, dtype=np.uint64)
    return _PrefixHashes(np.asarray(x, dtype=np.int64)).substring(starts, int(length))


def _hashed_lcp(h: _PrefixHashes, a: np.ndarray, b: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Longest common prefix of the suffixes at ``a`` and ``b`` (at most ``limit``), by binary search on
    substring hashes, vectorized over all pairs.  Never below the true value (equal text hashes equal)."""
    lo = np.zeros(len(a), dtype=np.int64)
    hi = np.asarray(limit, dtype=np.int64).copy()
    while True:
        act = np.flatnonzero(lo < hi)
        if not len(act):
            return lo
        mid = (lo[act] + hi[act] + 1) // 2
        same = h.substring(a[act], mid) == h.substring(b[act], mid)
        lo[act] = np.where(same, mid, lo[act])
        hi[act] = np.where(same, hi[act], mid - 1)


def matching_statistics(text, query) -> tuple[np.ndarray, np.ndarray]:
    """For every position i of ``query``: the length of the longest prefix of ``query[i:]`` that occurs in
    ``text``, and one position in ``text`` where it does (-1 when the length is 0).

    One suffix array over ``text + [separator] + query``: the longest match of a query suffix is with the
    nearest ``text`` suffix before or after it in suffix order, and the common prefix with each is found
    by binary search on substring hashes (:class:`_PrefixHashes`), all positions at once.  Lengths from
    hashes can only be too long (on a collision, ~2**-64 per comparison); :func:`exact_spans` re-checks
    the spans it reports token by token.
    """
    text = np.asarray(text, dtype=np.int64).ravel()
    query = np.asarray(query, dtype=np.int64).ravel()
    nt, nq = len(text), len(query)
    lengths = np.zeros(nq, dtype=np.int64)
    where = np.full(nq, -1, dtype=np.int64)
    if nt == 0 or nq == 0:
        return lengths, where
    sep = int(max(text.max(), query.max())) + 1
    joined = np.concatenate([text, [sep], query])
    sa = suffix_array(joined)
    is_text = sa < nt
    idx = np.arange(len(sa))
    left = np.maximum.accumulate(np.where(is_text, idx, -1))  # nearest text suffix at or before each slot
    right = np.minimum.accumulate(np.where(is_text, idx, len(sa))[::-1])[::-1]
    qslots = np.flatnonzero(~is_text & (sa > nt))
    qpos = sa[qslots]  # positions in joined
    hashes = _PrefixHashes(joined)
    best = np.zeros(len(qslots), dtype=np.int64)
    best_at = np.full(len(qslots), -1, dtype=np.int64)
    for nb in (left[qslots], right[qslots]):
        ok = (nb >= 0) & (nb < len(sa))
        t = sa[np.where(ok, nb, 0)]
        limit = np.where(ok, np.minimum(len(joined) - qpos, nt - t), 0)
        lcp = _hashed_lcp(hashes, qpos, t, limit)
        better = lcp > best
        best = np.where(better, lcp, best)
        best_at = np.where(better, t, best_at)
    lengths[qpos - nt - 1] = best
    where[qpos - nt - 1] = np.where(best > 0, best_at, -1)
    return lengths, where


def exact_spans(text, query, min_tokens: int = 1, top: int = 3) -> list[dict[str, int]]:
    """The ``top`` longest spans of ``query`` that occur verbatim in ``text``, exactly, longest first.

    A span is maximal: one token more on either side is not in ``text``.  A span that lies inside a
    longer reported one is left out.  Each is checked token by token, so a hash collision can never
    inflate a length.  Returns ``[{"start", "tokens", "text_position"}]`` (positions in ``query`` and
    ``text``) for spans of at least ``min_tokens`` tokens.
    """
    text = np.asarray(text, dtype=np.int64).ravel()
    query = np.asarray(query, dtype=np.int64).ravel()
    lengths, where = matching_statistics(text, query)
    if not len(lengths):
        return []
    prev = np.concatenate([[0], lengths[:-1]])
    starts = np.flatnonzero((lengths >= max(1, min_tokens)) & (prev <= lengths))  # left-maximal
    if not len(starts):
        return []
    ends = starts + lengths[starts]
    reach = np.concatenate([[-1], np.maximum.accumulate(ends)[:-1]])
    starts = starts[reach < ends]  # not inside a span that starts earlier
    order = starts[np.argsort(-lengths[starts], kind="stable")]
    out: list[dict[str, int]] = []
    for i in order.tolist():
        if len(out) >= top and lengths[i] <= out[-1]["tokens"]:
            break  # lengths are upper bounds: nothing later can enter the list
        true = _common_prefix(query, i, text, int(where[i]))
        if true >= max(1, min_tokens):
            out.append({"start": i, "tokens": true, "text_position": int(where[i])})
            out.sort(key=lambda s: (-s["tokens"], s["start"]))
            out = out[:top]
    return out


class SuffixIndex:
    """Longest-prefix lookups of a query in one token stream (binary search over its suffix array).

    The one index for copy detection: :class:`MemorizationIndex` (samples vs train) and
    :func:`gaplab.datareport.leakage.ngram_leakage` (val vs train, through :func:`exact_spans`, which
    builds the same suffix array over both streams at once) use it.
    """

    def __init__(self, tokens: np.ndarray):
        self.tokens = np.asarray(tokens, dtype=np.int64)
        self.sa = suffix_array(self.tokens)
        # big-endian 4-byte ids: byte order equals token order, so bytes compare like token sequences
        self.data = self.tokens.astype(">u4").tobytes()

    def longest_prefix(self, query: np.ndarray, qbytes: Optional[bytes] = None) -> tuple[int, int]:
        """``(length, position)`` of the longest prefix of ``query`` that occurs in the stream."""
        query = np.asarray(query, dtype=np.int64)
        if qbytes is None:
            qbytes = query.astype(">u4").tobytes()
        sa, data, m = self.sa, self.data, len(qbytes)
        if len(sa) == 0 or len(query) == 0:
            return 0, -1
        lo, hi = 0, len(sa)
        while lo < hi:
            mid = (lo + hi) // 2
            p = int(sa[mid]) * 4
            if data[p : p + m] < qbytes:
                lo = mid + 1
            else:
                hi = mid
        best, pos = 0, -1
        for j in (lo - 1, lo):  # the best match is next to the insertion point
            if 0 <= j < len(sa):
                p = int(sa[j])
                length = _common_prefix(query, 0, self.tokens, p)
                if length > best:
                    best, pos = length, p
        return best, pos

    def matching_lengths(self, query) -> tuple[np.ndarray, np.ndarray]:
        """Per position i of ``query``: the longest span starting at i found in the stream, and where."""
        q = np.asarray(query, dtype=np.int64).ravel()
        lengths = np.zeros(len(q), dtype=np.int64)
        where = np.full(len(q), -1, dtype=np.int64)
        qb = q.astype(">u4").tobytes()
        for i in range(len(q)):
            lengths[i], where[i] = self.longest_prefix(q[i:], qb[4 * i :])
        return lengths, where


_SuffixIndex = SuffixIndex


_CONTENT = re.compile(r"\w")


class MemorizationIndex:
    """An index of the training (and validation) token streams, built once, for copy detection.

    Built once on suffix arrays (:class:`SuffixIndex`; about a second for a million tokens), so lengths
    are exact, with no hash collisions and no cap on span length: for each position of a sample it
    finds the longest span starting there that occurs verbatim in train (and in val).  Token ids must
    be in the model's id space (``Prepared.train`` / ``.val``); ``tokenizer`` (optional) decodes them.

    Whitespace, indentation and punctuation are not copying: a token is a *content* token when its text
    holds a letter or a digit (a ``\\w`` character).  Copied spans and n-grams count only with at least
    ``min_content`` content tokens (default: half of ``n``, rounded up); a span is trimmed of the
    trivial tokens at its ends.  Without a tokenizer every token counts as content.
    """

    def __init__(self, train_tokens, val_tokens=None, n: int = 8, tokenizer=None, min_content: Optional[int] = None):
        if n <= 0:
            raise ValueError(f"sample.ngram = {n!r}: allowed: > 0")
        self.n = int(n)
        self.min_content = max(1, -(-self.n // 2)) if min_content is None else int(min_content)
        if self.min_content < 1:
            raise ValueError(f"min_content = {min_content!r}: allowed: ≥ 1")
        self.tokenizer = tokenizer
        self.train = self._as_ids(train_tokens, "train_tokens")
        self.val = None if val_tokens is None else self._as_ids(val_tokens, "val_tokens")
        self._train = SuffixIndex(self.train)
        self._val = None if self.val is None else SuffixIndex(self.val)
        self._content: dict[tuple[int, int], bool] = {}

    @staticmethod
    def _as_ids(tokens, name: str) -> np.ndarray:
        arr = np.asarray(tokens).ravel()
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"MemorizationIndex: {name} must be integer token ids; got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= 2**32):
            raise ValueError(
                f"MemorizationIndex: {name} holds ids outside 0..2**32-1 (min {arr.min()}, max {arr.max()})"
            )
        return arr

    def matching_lengths(self, token_ids: Sequence[int], which: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """Per position i of the sample: the longest span starting at i found in train (or val), and where."""
        index = self._train if which == "train" else self._val
        q = self._as_ids(list(token_ids), "token_ids")
        if index is None:
            return np.zeros(len(q), dtype=np.int64), np.full(len(q), -1, dtype=np.int64)
        return index.matching_lengths(q)

    def content_mask(self, token_ids: Sequence[int], tokenizer=None) -> np.ndarray:
        """True for each token whose text holds a letter or digit (all True without a tokenizer)."""
        tokenizer = tokenizer if tokenizer is not None else self.tokenizer
        ids = [int(t) for t in token_ids]
        if tokenizer is None:
            return np.ones(len(ids), dtype=bool)
        out = np.zeros(len(ids), dtype=bool)
        for k, i in enumerate(ids):
            key = (id(tokenizer), i)
            if key not in self._content:
                try:
                    self._content[key] = bool(_CONTENT.search(tokenizer.decode([i])))
                except Exception:  # an id that does not decode alone: not trivial
                    self._content[key] = True
            out[k] = self._content[key]
        return out

    def measure(self, token_ids: Sequence[int], tokenizer=None) -> dict[str, Any]:
        """Memorisation metrics of one sample's generated ids.

        ``mem_longest_tokens``: the longest span copied verbatim from train that holds at least
        ``min_content`` content tokens, trimmed of whitespace/punctuation tokens at its ends (0 when
        none), with ``mem_longest_content_tokens``, ``mem_longest_start``, ``mem_train_position`` and,
        with a tokenizer, ``mem_longest_chars`` and ``mem_longest_text``; ``mem_longest_any_tokens`` is
        the longest copied span of any tokens (indentation runs included), for comparison.
        ``train_ngram_share`` (share of the sample's content n-grams — n-grams with at least
        ``min_content`` content tokens — found in train), ``val_only_ngram_share`` (in val but not
        in train) and ``novel_ngram_share`` (in neither); ``content_ngrams`` counts them.  Shares are
        ``None`` when the sample has no content n-gram.
        """
        tokenizer = tokenizer if tokenizer is not None else self.tokenizer
        ids = [int(t) for t in token_ids]
        train_len, train_pos = self.matching_lengths(ids, "train")
        content = self.content_mask(ids, tokenizer)
        csum = np.concatenate([[0], np.cumsum(content)])
        out: dict[str, Any] = {
            "mem_longest_tokens": 0,
            "mem_longest_content_tokens": 0,
            "mem_longest_start": None,
            "mem_train_position": None,
            "mem_longest_chars": None,
            "mem_longest_text": None,
            "mem_longest_any_tokens": int(train_len.max()) if len(ids) else 0,
            "mem_min_content_tokens": self.min_content,
        }
        length, lo, hi, i = self._longest_copy(train_len, content, csum)
        if length > 0:
            out.update(
                mem_longest_tokens=length,
                mem_longest_content_tokens=int(csum[hi] - csum[lo]),
                mem_longest_start=lo,
                mem_train_position=int(train_pos[i]) + (lo - i),
            )
            if tokenizer is not None:
                span = tokenizer.decode(ids[lo:hi])
                out.update(mem_longest_chars=len(span), mem_longest_text=span)
        out.update(self._ngram_shares(ids, train_len, csum))
        return out

    def _longest_copy(self, train_len: np.ndarray, content: np.ndarray, csum: np.ndarray) -> tuple[int, int, int, int]:
        """The longest match with ``min_content`` content tokens, trimmed to content tokens at both ends:
        ``(trimmed length, start, end, start of the match it was trimmed from)``; length 0 when none."""
        best = (0, -1, -1, -1)
        for i in np.flatnonzero(train_len > 0).tolist():
            j = i + int(train_len[i])
            if csum[j] - csum[i] < self.min_content:
                continue
            lo = i + int(np.argmax(content[i:j]))
            hi = j - int(np.argmax(content[i:j][::-1]))
            if hi - lo > best[0]:
                best = (hi - lo, lo, hi, i)
        return best

    def _ngram_shares(self, ids: list[int], train_len: np.ndarray, csum: np.ndarray) -> dict[str, Any]:
        """``content_ngrams`` and the shares of them found in train, in val only, and in neither."""
        windows = len(ids) - self.n + 1
        counted = np.zeros(max(windows, 0), dtype=bool)
        if windows > 0:
            counted = (csum[self.n : self.n + windows] - csum[:windows]) >= min(self.min_content, self.n)
        out: dict[str, Any] = {"content_ngrams": int(counted.sum())}
        if not counted.any():
            out.update(train_ngram_share=None, val_only_ngram_share=None, novel_ngram_share=None)
            return out
        in_train = (train_len[:windows] >= self.n)[counted]
        if self._val is not None:
            val_len, _ = self.matching_lengths(ids, "val")
            in_val = (val_len[:windows] >= self.n)[counted]
            val_only = float(np.mean(in_val & ~in_train))
            novel = float(np.mean(~in_val & ~in_train))
        else:
            val_only, novel = None, float(np.mean(~in_train))
        out.update(train_ngram_share=float(np.mean(in_train)), val_only_ngram_share=val_only, novel_ngram_share=novel)
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
    x = ids.astype(np.uint64)
    x += np.uint64(1)
    h = x[:m].copy()
    with np.errstate(over="ignore"):
        for k in range(1, n):  # in place: no new array per step
            np.multiply(h, _HASH_BASE, out=h)
            np.add(h, x[k : k + m], out=h)
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


_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: the top bits of value * _MIX pick a slot
_CHUNK = 1 << 20  # values looked up at a time: the temporaries stay small


class HashSet:
    """A sorted set of distinct uint64 values as an open-addressing hash table, for finding millions of values.

    ``find(values)`` gives each value's index in the set (or -1) with about one random read per value:
    for 34 M train windows looked up in a million val hashes that is ~1 s where a binary search
    (``np.searchsorted``) took ~8 s.  The table has at least four slots per member (linear probing,
    built in rounds: each round places one member per free slot, the rest move one slot on), so a
    member is always found before an empty slot.
    """

    def __init__(self, sorted_set: np.ndarray):
        self.members = np.asarray(sorted_set, dtype=np.uint64)
        m = self.members.size
        bits = max(4, m.bit_length() + 2)
        self.size = 1 << bits
        self.shift = np.uint64(64 - bits)
        self.keys = np.zeros(self.size, dtype=np.uint64)
        self.index = np.full(self.size, -1, dtype=np.int32 if m < 2**31 else np.int64)
        pending = np.arange(m, dtype=np.int64)
        slot = self._home(self.members)
        while pending.size:
            free = np.flatnonzero(self.index[slot] < 0)
            taken, first = np.unique(slot[free], return_index=True)  # one member per free slot
            winners = pending[free[first]]
            self.index[taken] = winners
            self.keys[taken] = self.members[winners]
            moved = np.ones(pending.size, dtype=bool)
            moved[free[first]] = False
            pending, slot = pending[moved], (slot[moved] + 1) & (self.size - 1)

    def _home(self, values: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            slot = np.multiply(values, _MIX)
        np.right_shift(slot, self.shift, out=slot)
        return slot.view(np.int64)

    def find(self, values: np.ndarray) -> np.ndarray:
        """Each value's index in the set, or -1 (int32 for sets under 2**31 members)."""
        values = np.asarray(values, dtype=np.uint64).ravel()
        out = np.empty(values.size, dtype=self.index.dtype)
        for lo in range(0, values.size, _CHUNK):
            out[lo : lo + _CHUNK] = self._find(values[lo : lo + _CHUNK])
        return out

    def _find(self, values: np.ndarray) -> np.ndarray:
        slot = self._home(values)
        index = np.take(self.index, slot)
        found = (np.take(self.keys, slot) == values) & (index >= 0)
        out = np.where(found, index, -1)
        rest = np.flatnonzero(~found & (index >= 0))  # the slot holds another member: probe on
        slot = slot[rest]
        while rest.size:
            slot = (slot + 1) & (self.size - 1)
            index = np.take(self.index, slot)
            found = (np.take(self.keys, slot) == values[rest]) & (index >= 0)
            out[rest[found]] = index[found]
            keep = ~found & (index >= 0)
            rest, slot = rest[keep], slot[keep]
        return out


def index_in(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """For each of ``values`` (uint64 hashes): its index in ``sorted_set`` (sorted, distinct), or -1
    (through a :class:`HashSet`)."""
    values = np.asarray(values)
    if not sorted_set.size or not values.size:
        return np.full(values.size, -1, dtype=np.int64)
    return HashSet(sorted_set).find(values).astype(np.int64)
