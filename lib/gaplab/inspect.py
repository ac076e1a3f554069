"""The data report: what a corpus and a planned model look like before any training.

Each seed project found its data problem only after training: 59% templated
questions and boilerplate in 83% of answers (seed 000), 19 of 20 key examples
sent to validation by a tail split (seed 001), shopping carts whose totals did
not add up (seed 002), and 50,257 embeddings paid for while the data used ~971
token types (seed 003).  Every one of those is a number in this report.

The detectors are pure functions over plain inputs (lists of strings, numpy id
arrays, dicts), so each can be tested on crafted data:

- :func:`length_stats`: document lengths in tokens, percentiles, histogram,
  share longer than ``block_size``, outliers (> Q3 + 3·IQR).
- :func:`exact_duplicates`: documents whose text repeats an earlier document.
- :func:`templated`: documents that share a *skeleton* with a different
  document once numbers and Capitalised words are blanked (see
  :func:`template_skeleton` for the rule and why quoted strings are kept).
- :func:`boilerplate`: word n-grams present in many documents.
- :func:`split_balance`: each source label's share of tokens in validation
  against the split's overall share.
- :func:`ngram_leakage` / :func:`cross_split_duplicates`: validation text that
  also sits in the training split.
- :func:`vocab_usage`: token ids used, embedding rows that never see data.
- :func:`model_vs_data`: tokens per parameter, epochs, Kaplan et al.'s bound.

:func:`build_report` composes them for a prepared phase
(:func:`gaplab.split.prepare_data`) into the JSON object written as
``data_report.json``; :func:`evaluate_checks` turns it into ok / warn / fail
per check, and :func:`raise_on_failures` stops the pipeline on the checks named
in ``data.fail_on``.

Top-level keys of the report: ``settings``, ``size`` (with ``vocab``),
``lengths``, ``duplicates`` (``exact``, ``templated``), ``boilerplate``,
``split``, ``leakage`` (``ngram``, ``cross_split_duplicates``),
``model_vs_data``, ``validators``, ``checks``, ``fail_on``, ``failed``,
``timings_s``.
"""

from __future__ import annotations

import math
import re
import time
from collections import defaultdict
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .config import CHECK_NAMES

# --------------------------------------------------------------------------- references
CHINCHILLA_TOKENS_PER_PARAM = 20.0
CHINCHILLA_REF = ("Hoffmann et al. 2022, 'Training Compute-Optimal Large Language Models': ~20 training tokens "
                  "per parameter is compute-optimal; they count total parameters (Pearce & Song 2024, "
                  "'Reconciling Kaplan and Chinchilla Scaling Laws')")
KAPLAN_COEF, KAPLAN_EXP = 5e3, 0.74
KAPLAN_REF = ("Kaplan et al. 2020, 'Scaling Laws for Neural Language Models', §4: the overfitting penalty stays "
              "small while D ≳ 5×10³ · N^0.74 tokens, N = non-embedding parameters")
TIED_NOTE = ("the output head shares the token-embedding matrix (weight tying, Press & Wolf 2017), so each "
             "token id costs n_embd parameters once, not twice")

#: Default thresholds.  A measured value at or above ``warn`` warns, at or above
#: ``fail`` fails; a measured 0 is always ok; ``None`` disables that level.
DEFAULT_CHECKS: dict[str, dict[str, Optional[float]]] = {
    "exact_duplicates": {"warn": 0.01, "fail": 0.10},
    "templated": {"warn": 0.05, "fail": 0.25},
    "boilerplate": {"warn": 0.10, "fail": 0.50},
    "split_imbalance": {"warn": 0.50, "fail": 0.70},
    "leakage": {"warn": 0.50, "fail": 0.80},
    "cross_split_duplicates": {"warn": 0.0, "fail": 0.05},
    "truncated": {"warn": 0.50, "fail": None},
    "validators": {"warn": 0.0, "fail": 0.01},
}
#: What each check's value measures (shown with the thresholds).
CHECK_MEANING: dict[str, str] = {
    "exact_duplicates": "share of documents that repeat an earlier document exactly",
    "templated": "share of documents that share a template skeleton with a different document",
    "boilerplate": "share of documents that contain a boilerplate phrase",
    "split_imbalance": "largest gap between a source's val share of tokens and the split's overall val share",
    "leakage": "share of val n-grams that also occur in train",
    "cross_split_duplicates": "share of val documents that also appear verbatim in train",
    "truncated": "share of documents longer than block_size",
    "validators": "share of validated documents that fail a validator",
}
MAX_EXAMPLES = 5
PREVIEW = 160


class DataCheckFailed(RuntimeError):
    """A check named in ``data.fail_on`` failed; training must not start."""

    def __init__(self, message: str, failed: list[dict[str, Any]]):
        super().__init__(message)
        self.failed = failed


def _preview(text: str, n: int = PREVIEW) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _share(part: float, whole: float) -> float:
    return float(part) / float(whole) if whole else 0.0


# --------------------------------------------------------------------------- hashing
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


def _count_distinct_ids(ids: np.ndarray) -> int:
    ids = np.asarray(ids)
    if ids.size == 0:
        return 0
    if ids.dtype.kind in "iu" and ids.min() >= 0 and ids.max() < 50_000_000:
        return int(np.count_nonzero(np.bincount(ids)))
    return int(sorted_unique(ids).size)


# --------------------------------------------------------------------------- size and vocabulary
def vocab_usage(train_ids: np.ndarray, val_ids: np.ndarray, vocab_size_original: int, vocab_size_model: int,
                n_embd: int, train_model_ids: Optional[np.ndarray] = None) -> dict[str, Any]:
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
    summary = (f"the data uses {used:,} of the tokenizer's {vocab_size_original:,} ids "
               f"({100 * _share(used, vocab_size_original):.2f}%); {unused_rows:,} of the model's "
               f"{vocab_size_model:,} embedding rows {'never sees' if unused_rows == 1 else 'never see'} a "
               f"training token: {unused_rows * int(n_embd):,} parameters (rows × n_embd {n_embd}, counted once: the output head is tied to the embedding)")
    summary += (f"; tokenizer.compact: true would keep {compact_size:,} ids and save {saves:,} parameters"
                if saves else "")
    return {
        "vocab_size_original": int(vocab_size_original),
        "vocab_size_model": int(vocab_size_model),
        "used_ids": used,
        "used_ids_train": used_train,
        "used_share": _share(used, vocab_size_original),
        "unused_rows": unused_rows,
        "wasted_embedding_params": unused_rows * int(n_embd),
        "compact_vocab_size": compact_size,
        "compact_saves_params": saves,
        "n_embd": int(n_embd),
        "note": TIED_NOTE,
        "summary": summary,
    }


# --------------------------------------------------------------------------- lengths
def _bucket_label(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}–{hi}"


def length_stats(lengths: Sequence[int], names: Sequence[str], block_size: int) -> dict[str, Any]:
    """Document lengths in tokens: summary, power-of-two histogram, share longer than ``block_size``, outliers.

    An outlier is longer than Q3 + 3·IQR (Tukey's "far out" fence).
    """
    lens = np.asarray(lengths, dtype=np.int64)
    if lens.size == 0:
        return {"documents": 0, "histogram": [], "outliers": {"documents": 0, "examples": []},
                "truncated": {"block_size": block_size, "documents": 0, "share": 0.0}}
    q1, med, q3, p95, p99 = np.percentile(lens, [25, 50, 75, 95, 99])
    fence = q3 + 3 * (q3 - q1)
    buckets = np.where(lens > 0, np.floor(np.log2(np.maximum(lens, 1))).astype(np.int64) + 1, 0)
    counts = np.bincount(buckets)
    hist = []
    for b in range(int(buckets.min()), int(buckets.max()) + 1):
        lo, hi = (0, 0) if b == 0 else (2 ** (b - 1), 2 ** b - 1)
        hist.append({"lo": lo, "hi": hi, "label": _bucket_label(lo, hi), "documents": int(counts[b])})
    out_idx = np.flatnonzero(lens > fence)
    out_idx = out_idx[np.argsort(-lens[out_idx], kind="stable")]
    long_docs = int((lens > block_size).sum())
    return {
        "documents": int(lens.size),
        "min": int(lens.min()), "max": int(lens.max()), "mean": float(lens.mean()),
        "median": float(med), "q1": float(q1), "q3": float(q3), "p95": float(p95), "p99": float(p99),
        "histogram": hist,
        "truncated": {"block_size": int(block_size), "documents": long_docs, "share": _share(long_docs, lens.size)},
        "outliers": {"fence": float(fence), "documents": int(out_idx.size),
                     "examples": [{"name": names[i], "tokens": int(lens[i])} for i in out_idx[:10]]},
    }


# --------------------------------------------------------------------------- duplicates and templates
def exact_duplicates(texts: Sequence[str], names: Sequence[str]) -> dict[str, Any]:
    """Documents whose text equals an earlier document's.

    ``documents`` counts the copies after the first (share = of all documents).
    Empty (whitespace-only) documents are counted apart as ``empty``, never as
    duplicates.
    """
    groups: dict[str, list[int]] = defaultdict(list)
    empty = 0
    for i, t in enumerate(texts):
        if t.strip():
            groups[t].append(i)
        else:
            empty += 1
    dup_groups = sorted((g for g in groups.values() if len(g) > 1), key=lambda g: (-len(g), g[0]))
    copies = sum(len(g) - 1 for g in dup_groups)
    return {
        "documents": copies,
        "share": _share(copies, len(texts)),
        "groups": len(dup_groups),
        "empty": empty,
        "examples": [{"count": len(g), "names": [names[i] for i in g[:MAX_EXAMPLES]],
                      "preview": _preview(texts[g[0]])} for g in dup_groups[:MAX_EXAMPLES]],
    }


_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)*\b")
_NAME = re.compile(r"\b[A-Z][a-z]+\b")
_SPACE = re.compile(r"\s+")


def template_skeleton(text: str) -> str:
    """A document's skeleton: numbers → ``0``, Capitalised words → ``Name``, runs of whitespace → one space.

    Two documents with the same skeleton but different text are *templated*: only
    numbers and names were swapped ("Alice has 3 boxes" / "Bruno has 7 boxes",
    seed 000).  Standalone numbers only (``p3f9`` stays).  Quoted strings are
    deliberately *not* blanked: in JSON records every key is a quoted string,
    and blanking them would call any two records with the same keys templated
    even when their ids and contents differ.
    """
    text = _NUMBER.sub("0", text)
    text = _NAME.sub("Name", text)
    return _SPACE.sub(" ", text).strip()


def skeleton_groups(texts: Sequence[str]) -> np.ndarray:
    """A group id per document (equal skeletons, equal id); -1 for empty documents."""
    ids: dict[str, int] = {}
    out = np.full(len(texts), -1, dtype=np.int64)
    for i, t in enumerate(texts):
        if t.strip():
            out[i] = ids.setdefault(template_skeleton(t), len(ids))
    return out


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
    for g, idx in members.items():
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
        "share": _share(count, len(texts)),
        "families": len(families),
        "rule": "numbers -> 0, Capitalised words -> Name, whitespace collapsed; quoted strings kept",
        "examples": [{"count": len(idx), "distinct_texts": len(d),
                      "skeleton": _preview(template_skeleton(texts[idx[0]])),
                      "examples": [{"name": names[i], "preview": _preview(texts[i])} for i in d[:2]]}
                     for idx, d in families[:MAX_EXAMPLES]],
    }


# --------------------------------------------------------------------------- boilerplate
_WORD = re.compile(r"\w+")


def boilerplate(texts: Sequence[str], names: Sequence[str], n: int = 6, min_share: float = 0.10,
                min_documents: int = 3, groups: Optional[np.ndarray] = None, top: int = 10) -> dict[str, Any]:
    """Word ``n``-grams (lower-cased ``\\w+`` words) present in many documents.

    A phrase is boilerplate when it occurs in at least ``min_share`` of the
    documents (and in at least ``min_documents``).  Documents count by
    ``groups`` (template families and exact copies once each, see
    :func:`skeleton_groups`), so a template's fixed words are reported as a
    template, not again as boilerplate.  ``share`` is the share of *all*
    documents that contain any boilerplate phrase.
    """
    groups = skeleton_groups(texts) if groups is None else np.asarray(groups)
    vocab: dict[str, int] = {}
    pieces, owners = [], []
    for i, t in enumerate(texts):
        if groups[i] < 0:
            continue
        words = _WORD.findall(t.lower())
        if len(words) < n:
            continue
        pieces.append(np.fromiter((vocab.setdefault(w, len(vocab)) for w in words), dtype=np.int64,
                                  count=len(words)))
        owners.append(np.full(len(words), i, dtype=np.int64))
    n_units = int(sorted_unique(groups[groups >= 0]).size)
    need = max(int(min_documents), math.ceil(min_share * n_units - 1e-9))
    result: dict[str, Any] = {"ngram": n, "min_share": min_share, "min_documents": need, "documents": 0,
                              "share": 0.0, "phrases": []}
    if not pieces:
        return result
    ids = np.concatenate(pieces)
    doc = np.concatenate(owners)
    h = window_hashes(ids, n)  # window i covers ids[i:i+n]
    valid = doc[: h.size] == doc[n - 1:]  # windows inside one document
    where = np.flatnonzero(valid)
    # document frequency, counting each unit (template family / copies / document) once
    hashes, df = _distinct_owner_counts(h[where], groups[doc[where]])
    frequent = hashes[df >= need]
    if frequent.size == 0:
        return result
    hit = where[np.isin(h[where], frequent)]
    docs_with = sorted_unique(doc[hit])
    result["documents"] = int(docs_with.size)
    result["share"] = _share(docs_with.size, len(texts))
    # documents (not units) per frequent n-gram, and each window's count
    ph, pcount = _distinct_owner_counts(h[hit], doc[hit])
    count_at = np.zeros(h.size, dtype=np.int64)
    count_at[hit] = pcount[np.searchsorted(ph, h[hit])]
    _, first = np.unique(h[hit], return_index=True)  # first window of each frequent n-gram
    order = sorted(range(ph.size), key=lambda k: (-int(pcount[k]), int(hit[first[k]])))
    inverse = {v: k for k, v in vocab.items()}
    covered: set[int] = set()
    phrases = []
    for k in order:
        hv = int(ph[k])
        if hv in covered:
            continue
        target = int(pcount[k])
        lo = hi = int(hit[first[k]])
        # grow over neighbouring frequent windows of (nearly) the same frequency: one phrase, not many n-grams
        while lo > 0 and count_at[lo - 1] >= 0.9 * target and doc[lo - 1] == doc[lo]:
            lo -= 1
        while hi + 1 < h.size and count_at[hi + 1] >= 0.9 * target and doc[hi + 1] == doc[hi]:
            hi += 1
        covered.update(int(x) for x in h[lo: hi + 1])
        words = " ".join(inverse[int(w)] for w in ids[lo: hi + n])
        phrases.append({"phrase": words, "documents": target, "share": _share(target, len(texts)),
                        "example": names[int(doc[lo])]})
        if len(phrases) >= top:
            break
    result["phrases"] = phrases
    return result


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


# --------------------------------------------------------------------------- split composition
def split_balance(composition: Mapping[str, Any], min_documents: int = 5) -> dict[str, Any]:
    """Each source's share of tokens in validation against the overall val share (seed 001).

    ``composition`` is ``{"train": {source: {"tokens", "documents"}}, "val": {...}}``
    (:func:`gaplab.split.composition`).  A source's *deviation* is
    ``|its val share − the overall val share|``; the check's value is the
    largest deviation among sources with at least ``min_documents`` documents
    (a source of one or two documents cannot be split in proportion; it is
    listed but not scored).
    """
    train, val = composition.get("train", {}), composition.get("val", {})
    sources = sorted(set(train) | set(val))
    total_train = sum(int(v["tokens"]) for v in train.values())
    total_val = sum(int(v["tokens"]) for v in val.values())
    overall = _share(total_val, total_train + total_val)
    rows = []
    for s in sources:
        tt = int(train.get(s, {}).get("tokens", 0))
        vt = int(val.get(s, {}).get("tokens", 0))
        td = int(train.get(s, {}).get("documents", 0))
        vd = int(val.get(s, {}).get("documents", 0))
        vs = _share(vt, tt + vt)
        rows.append({"source": s, "train_tokens": tt, "val_tokens": vt, "train_documents": td,
                     "val_documents": vd, "val_share": vs, "deviation": abs(vs - overall),
                     "scored": (td + vd) >= min_documents})
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
        "share": _share(len(dups), len(val_idx)),
        "examples": [{"val": names[i], "train": names[j], "preview": _preview(texts[i])}
                     for i, j in dups[:MAX_EXAMPLES]],
    }


# --------------------------------------------------------------------------- model vs data
def model_vs_data(param_counts: Mapping[str, int], train_tokens: int, iters: int,
                  tokens_per_iter: int) -> dict[str, Any]:
    """The planned model against its training data.

    ``param_counts`` is :func:`gaplab.model.count_params`'s ``{"total",
    "embedding", "non_embedding"}`` (non-embedding excludes token and position
    embeddings, as Kaplan et al. 2020).  ``tokens_per_iter`` is
    batch_size × grad_accum × block_size; epochs = iters × tokens_per_iter /
    train_tokens.
    """
    total = int(param_counts["total"])
    emb = int(param_counts["embedding"])
    ne = int(param_counts["non_embedding"])
    kaplan_min = KAPLAN_COEF * ne ** KAPLAN_EXP if ne > 0 else 0.0
    seen = int(iters) * int(tokens_per_iter)
    tpp, tpt, epochs = _share(train_tokens, ne), _share(train_tokens, total), _share(seen, train_tokens)
    meets = bool(train_tokens >= kaplan_min)
    summary = (f"{int(train_tokens):,} training tokens for {ne:,} non-embedding parameters: {tpp:.3g} tokens per "
               f"parameter ({tpt:.3g} per parameter counting all {total:,}; Hoffmann et al. 2022 found ~20 "
               f"compute-optimal). The planned {int(iters):,} iterations make {epochs:.3g} epochs. Kaplan et al. "
               f"2020's bound D ≳ 5×10³·N^0.74 asks for {kaplan_min:,.0f} tokens: "
               + ("met." if meets else f"not met ({_share(train_tokens, kaplan_min):.2g}× of it); expect overfitting."))
    return {
        "params": {"total": total, "embedding": emb, "non_embedding": ne},
        "embedding_share": _share(emb, total),
        "train_tokens": int(train_tokens),
        "tokens_per_param": tpp,
        "tokens_per_total_param": tpt,
        "chinchilla_tokens_per_param": CHINCHILLA_TOKENS_PER_PARAM,
        "chinchilla_tokens_for_total": CHINCHILLA_TOKENS_PER_PARAM * total,
        "iters": int(iters),
        "tokens_per_iter": int(tokens_per_iter),
        "tokens_seen": seen,
        "epochs": epochs,
        "kaplan_min_tokens": float(kaplan_min),
        "kaplan_ratio": _share(train_tokens, kaplan_min),
        "meets_kaplan": meets,
        "references": {"chinchilla": CHINCHILLA_REF, "kaplan": KAPLAN_REF},
        "note": ("tokens_per_param divides by non-embedding parameters (Kaplan's N); Chinchilla's ~20 was "
                 "measured with total parameters, so tokens_per_total_param is the like-for-like comparison"),
        "summary": summary,
    }


# --------------------------------------------------------------------------- checks
def _thresholds(checks: Optional[Mapping[str, Any]]) -> dict[str, dict[str, Optional[float]]]:
    out = {k: dict(v) for k, v in DEFAULT_CHECKS.items()}
    for name, th in (checks or {}).items():
        if name not in CHECK_NAMES:
            raise ValueError(f"data.checks.{name}: unknown check; allowed: {', '.join(CHECK_NAMES)}")
        if hasattr(th, "model_dump"):  # gaplab.config.Threshold: only the keys the study set
            given = th.model_dump(exclude_unset=True)
        elif isinstance(th, Mapping):
            given = dict(th)
        else:
            raise ValueError(f"data.checks.{name} = {th!r}: allowed: a mapping with warn and/or fail")
        for key in given:
            if key not in ("warn", "fail"):
                raise ValueError(f"data.checks.{name}.{key}: unknown key; allowed: warn, fail")
        out[name].update(given)
    return out


def _check_value(report: Mapping[str, Any], name: str) -> Optional[float]:
    try:
        if name == "exact_duplicates":
            return report["duplicates"]["exact"]["share"]
        if name == "templated":
            return report["duplicates"]["templated"]["share"]
        if name == "boilerplate":
            return report["boilerplate"]["share"]
        if name == "split_imbalance":
            return report["split"]["imbalance"]["value"]
        if name == "leakage":
            return report["leakage"]["ngram"]["share"]
        if name == "cross_split_duplicates":
            return report["leakage"]["cross_split_duplicates"]["share"]
        if name == "truncated":
            return report["lengths"]["truncated"]["share"]
        if name == "validators":
            v = report["validators"]
            return v["share"] if v.get("documents_checked") else None
    except (KeyError, TypeError):
        return None
    return None


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _fmt_threshold(warn: Optional[float], fail: Optional[float]) -> str:
    parts = []
    if warn is not None:
        parts.append(f"warn ≥ {warn:g}")
    if fail is not None:
        parts.append(f"fail ≥ {fail:g}")
    return ", ".join(parts) if parts else "no thresholds"


def _detail(report: Mapping[str, Any], name: str, warn: Optional[float]) -> str:
    """A sentence that says what was found, with an example."""
    if name == "exact_duplicates":
        d = report["duplicates"]["exact"]
        n = report["size"]["documents"]
        text = f"{d['documents']} of {n} documents repeat an earlier one exactly"
        if d["examples"]:
            e = d["examples"][0]
            text += f"; biggest group: {e['count']} copies ({', '.join(map(repr, e['names'][:3]))})"
        return text
    if name == "templated":
        d = report["duplicates"]["templated"]
        n = report["size"]["documents"]
        text = f"{d['documents']} of {n} documents belong to {d['families']} template famil" + \
               ("y" if d["families"] == 1 else "ies")
        if d["examples"]:
            e = d["examples"][0]
            text += f"; biggest: {e['count']} documents like {e['examples'][0]['preview'][:80]!r}"
        return text
    if name == "boilerplate":
        d = report["boilerplate"]
        n = report["size"]["documents"]
        text = (f"{d['documents']} of {n} documents contain a {d['ngram']}-word phrase found in "
                f"≥ {d['min_documents']} different documents")
        if d["phrases"]:
            p = d["phrases"][0]
            text += f", e.g. {p['phrase'][:80]!r} ({p['documents']} documents)"
        return text
    if name == "split_imbalance":
        s = report["split"]
        level = warn if warn is not None else 0.0
        bad = sorted((r for r in s["sources"] if r["scored"] and r["deviation"] >= level and r["deviation"] > 0),
                     key=lambda r: -r["deviation"])
        overall = s["overall_val_share"]
        if not bad:
            return f"every source's val share is within {level:g} of the overall {_pct(overall)}"
        names = "; ".join(f"{r['source']!r}: {_pct(r['val_share'])} of its tokens in val "
                          f"({r['val_documents']} val / {r['train_documents']} train documents)" for r in bad[:4])
        more = f" and {len(bad) - 4} more" if len(bad) > 4 else ""
        return f"the split puts {_pct(overall)} of all tokens in val, but {names}{more}"
    if name == "leakage":
        d = report["leakage"]["ngram"]
        text = f"{d['in_train']:,} of {d['val_ngrams']:,} val {d['n']}-grams also occur in train"
        if d.get("spans"):
            text += f"; longest verbatim span {d['longest_span_tokens']} tokens"
        return text
    if name == "cross_split_duplicates":
        d = report["leakage"]["cross_split_duplicates"]
        text = f"{d['documents']} of {d['val_documents']} val documents are also in train verbatim"
        if d["examples"]:
            e = d["examples"][0]
            text += f", e.g. {e['val']!r} = {e['train']!r}"
        return text
    if name == "truncated":
        d = report["lengths"]["truncated"]
        return (f"{d['documents']} of {report['lengths']['documents']} documents are longer than block_size = "
                f"{d['block_size']} tokens: the model never sees them whole in one context")
    if name == "validators":
        v = report["validators"]
        per = ", ".join(f"{k} {r['failing']}/{r['checked']}" for k, r in v["validators"].items())
        text = f"{v['documents_failing']} of {v['documents_checked']} validated documents fail ({per})"
        for r in v["validators"].values():
            if r["examples"]:
                e = r["examples"][0]
                text += f"; e.g. {e['document']}: {e['problems'][0]}"
                break
        return text
    return ""


def evaluate_checks(report: Mapping[str, Any], checks: Optional[Mapping[str, Any]] = None,
                    fail_on: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One row per check in :data:`gaplab.config.CHECK_NAMES`: name, status, value, warn, fail, message.

    ``checks`` (a study's ``data.checks``) overrides :data:`DEFAULT_CHECKS` key
    by key.  Status: ``fail`` if value ≥ fail, else ``warn`` if value ≥ warn,
    else ``ok``; a value of 0, or a check that could not be measured, is ok.
    ``in_fail_on`` marks the checks that stop the pipeline when they fail.
    """
    bad = [n for n in fail_on if n not in CHECK_NAMES]
    if bad:
        raise ValueError(f"data.fail_on: unknown check(s) {bad}; allowed: {', '.join(CHECK_NAMES)}")
    limits = _thresholds(checks)
    rows = []
    for name in CHECK_NAMES:
        warn, fail = limits[name]["warn"], limits[name]["fail"]
        value = _check_value(report, name)
        if value is None:
            status = "ok"
            detail = ("not measured: no validators configured (data.validators)" if name == "validators"
                      else "not measured: too little data for this check")
            message = detail
        else:
            value = float(value)
            status = "ok"
            if value > 0 and fail is not None and value >= fail:
                status = "fail"
            elif value > 0 and warn is not None and value >= warn:
                status = "warn"
            detail = _detail(report, name, warn)
            shown = f"{value:.2f}" if name == "split_imbalance" else _pct(value)
            message = f"{shown} — {detail} [{CHECK_MEANING[name]}; {_fmt_threshold(warn, fail)}]"
        rows.append({"name": name, "status": status, "value": value, "warn": warn, "fail": fail,
                     "message": message, "detail": detail, "meaning": CHECK_MEANING[name],
                     "in_fail_on": name in fail_on})
    return rows


def failed_checks(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The checks that failed and are named in the report's ``fail_on``."""
    fail_on = set(report.get("fail_on", []))
    return [c for c in report.get("checks", []) if c["status"] == "fail" and c["name"] in fail_on]


def raise_on_failures(report: Mapping[str, Any]) -> None:
    """Raise :class:`DataCheckFailed` if a check listed in ``data.fail_on`` failed."""
    failed = failed_checks(report)
    if not failed:
        return
    lines = [f"  - {c['name']}: measured {c['value']:.4g} ≥ fail threshold {c['fail']:g} "
             f"({c.get('meaning') or CHECK_MEANING.get(c['name'], '')}): {c.get('detail') or c['message']}"
             for c in failed]
    raise DataCheckFailed(
        f"{len(failed)} data check{'s' if len(failed) != 1 else ''} named in data.fail_on failed, so training "
        "will not start:\n" + "\n".join(lines) +
        "\nFix the data, raise the threshold in data.checks, or remove the name from data.fail_on.",
        failed)


# --------------------------------------------------------------------------- the report
def build_report(prepared: Any, params: Any, param_counts: Optional[Mapping[str, int]] = None) -> dict[str, Any]:
    """The whole data report for a prepared phase (``gaplab.split.Prepared``, ``gaplab.config.PhaseParams``).

    ``param_counts`` defaults to :func:`gaplab.model.count_params` for the
    phase's model and the model's vocabulary size.
    """
    from .config import planned_iters
    from .validators import run_validators

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

    vocab = vocab_usage(train_base, val_base, prepared.vocab_size_original, prepared.vocab_size, model.n_embd,
                        np.asarray(prepared.train))
    size = {
        "documents": len(docs),
        "documents_read": len(corpus.documents) if corpus is not None else len(docs),
        "skipped": len(corpus.skipped) if corpus is not None else 0,
        "skipped_examples": [{"name": n, "reason": r} for n, r in (corpus.skipped if corpus is not None else [])[:5]],
        "characters": sum(len(t) for t in texts),
        "tokens": int(train_base.size + val_base.size),
        "document_tokens": int(sum(len(t) for t in prepared.doc_tokens)),
        "train_tokens": int(train_base.size),
        "val_tokens": int(val_base.size),
        "unique_tokens": vocab["used_ids"],
        "vocab": vocab,
    }
    lap("size")
    lengths = length_stats([len(t) for t in prepared.doc_tokens], names, model.block_size)
    lap("lengths")
    groups = skeleton_groups(texts)
    dups = {"exact": exact_duplicates(texts, names), "templated": templated(texts, names, groups)}
    lap("duplicates")
    boiler = boilerplate(texts, names, groups=groups)
    lap("boilerplate")
    split = split_balance(prepared.composition)
    split["strategy"] = data.split
    split["val_fraction"] = data.val_fraction
    split["documents"] = {k: sum(1 for s in prepared.doc_split if s == k) for k in ("train", "val", "both")}
    if "unused" in prepared.doc_split:
        split["documents"]["unused"] = sum(1 for s in prepared.doc_split if s == "unused")
    lap("split")
    leak = ngram_leakage(train_base, val_base, data.ngram)
    for span in leak["spans"]:
        piece = val_base[span["start"]: span["start"] + span["tokens"]]
        try:
            span["text"] = _preview(prepared.base_tokenizer.decode(piece.tolist()), 200)
        except Exception:  # decoding is a convenience; never fail the report on it
            span["text"] = None
    leakage = {"ngram": leak, "cross_split_duplicates": cross_split_duplicates(texts, names, prepared.doc_split)}
    lap("leakage")
    if param_counts is None:
        from .model import count_params

        param_counts = count_params(model, prepared.vocab_size)
    iters = planned_iters(params.train, model.block_size, int(np.asarray(prepared.train).size))
    per_iter = params.train.batch_size * params.train.grad_accum * model.block_size
    mvd = model_vs_data(param_counts, int(np.asarray(prepared.train).size), iters, per_iter)
    lap("model_vs_data")
    validators = run_validators(docs, list(data.validators))
    lap("validators")

    report: dict[str, Any] = {
        "settings": {
            "tokenizer": getattr(prepared.base_tokenizer, "name", params.tokenizer.name),
            "compact": bool(params.tokenizer.compact),
            "split": data.split, "val_fraction": data.val_fraction, "ngram": data.ngram,
            "block_size": model.block_size, "n_embd": model.n_embd, "max_tokens": data.max_tokens,
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
