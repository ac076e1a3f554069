"""Generation from a trained model, and measured sample quality.

The seed projects judged samples by eye ("gibberish", "ginggingging",
"memorized actual file paths", "pdf_pdf") or by ad-hoc scripts (keyword match
per category, missing "### Solution" sections).  This module measures each of
those, so a learner can compare phases with numbers instead of adjectives:

- **repetition** — distinct-n (Li et al., 2016, "A Diversity-Promoting
  Objective Function for Neural Conversation Models"), the share of repeated
  n-grams, the longest repeated substring, and a character-level *stutter*
  detector ("ginggingging", "loggingging", "pdf_pdf");
- **memorisation** — the longest span of the sample copied verbatim from the
  training tokens, and the share of the sample's n-grams found in train, only in
  validation, or nowhere (the n-gram overlap idea of Carlini et al., 2021,
  "Extracting Training Data from Large Language Models");
- **code well-formedness** — does the sample parse as a Python *prefix*
  (unfinished blocks and an unfinished last line allowed), are brackets
  balanced, how many tokenizer errors;
- **keyword score** per category and difficulty (seed 000) and **format
  compliance** against required regular expressions (seed 001).

Generation uses temperature, top-k (Fan et al., 2018, "Hierarchical Neural
Story Generation") and nucleus / top-p filtering (Holtzman et al., 2020, "The
Curious Case of Neural Text Degeneration"), each sample drawn with its own
``torch.Generator`` so the result depends only on ``(seed, prompt, sample)``.
"""

from __future__ import annotations

import codeop
import hashlib
import io
import json
import math
import re
import tokenize
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import yaml

from .runs import atomic_write_text

KEYWORDS_DIR = Path(__file__).parent / "keywords"
WORD = re.compile(r"\w+|[^\w\s]")


# =========================================================================== prompts
def _unescape_line(line: str) -> str:
    r"""``\n``, ``\t`` and ``\\`` in a one-prompt-per-line file become a newline, a tab and a backslash."""
    out, i = [], 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line) and line[i + 1] in "nt\\":
            out.append({"n": "\n", "t": "\t", "\\": "\\"}[line[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def load_prompts(spec: Union[str, Path, Sequence[str]]) -> list[str]:
    r"""The prompts ``sample.prompts`` names: a list as is, or a file.

    A ``.yaml``/``.yml``/``.json`` file holds a list of strings (or of mappings
    with a ``prompt`` key, so a keyword-set file works too).  Any other file has
    one prompt per line; blank lines are skipped and ``\n``, ``\t``, ``\\`` in a
    line are unescaped (so ``def f():\n    return`` is a two-line prompt).
    """
    if isinstance(spec, (list, tuple)):
        prompts = list(spec)
        where = "sample.prompts"
    elif isinstance(spec, (str, Path)):
        path = Path(spec).expanduser()
        where = f"sample.prompts ({path})"
        if not path.is_file():
            raise ValueError(f"sample.prompts: no such prompts file: {path}; allowed: a list of prompts, "
                             "or a file with one prompt per line, or a YAML/JSON list")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{where}: not UTF-8 text (byte {exc.start})") from None
        if path.suffix.lower() in (".yaml", ".yml", ".json"):
            try:
                raw = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ValueError(f"{where}: not valid YAML/JSON: {exc}") from None
            if not isinstance(raw, list):
                raise ValueError(f"{where}: the file holds {type(raw).__name__}; allowed: a list of prompts")
            prompts = [item.get("prompt") if isinstance(item, dict) else item for item in raw]
        else:
            prompts = [_unescape_line(line) for line in text.splitlines() if line.strip()]
    else:
        raise ValueError(f"sample.prompts = {spec!r}: allowed: a list of prompts or a file path")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or p == "":
            raise ValueError(f"{where}: prompt #{i} = {p!r}: allowed: a non-empty string")
    if not prompts:
        raise ValueError(f"{where}: no prompts; allowed: at least one non-empty prompt")
    return prompts


# =========================================================================== generation
def derive_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    """The generator seed for one sample: a hash of ``(seed, prompt_index, sample_index)`` (63 bits)."""
    digest = hashlib.sha256(f"gaplab-sample:{seed}:{prompt_index}:{sample_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def filter_logits(logits, *, temperature: float = 1.0, top_k: Optional[int] = None,
                  top_p: Optional[float] = None):
    """Scale by ``1/temperature``, keep the ``top_k`` largest, then the nucleus of mass ``top_p``.

    Removed entries become ``-inf``.  Ties with the k-th largest logit are kept.
    Top-p keeps the smallest set of most likely tokens whose probability reaches
    ``top_p`` (the most likely token is always kept).  Works on ``(..., V)``.
    """
    import torch

    if temperature <= 0:
        raise ValueError(f"sample.temperature = {temperature!r}: allowed: > 0")
    out = logits.float() / float(temperature)
    if top_k is not None:
        if top_k <= 0:
            raise ValueError(f"sample.top_k = {top_k!r}: allowed: > 0 or null")
        k = min(int(top_k), out.shape[-1])
        kth = torch.topk(out, k, dim=-1).values[..., -1:]
        out = out.masked_fill(out < kth, float("-inf"))
    if top_p is not None:
        if not 0 < top_p <= 1:
            raise ValueError(f"sample.top_p = {top_p!r}: allowed: 0 < top_p <= 1 or null")
        sorted_logits, order = torch.sort(out, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = torch.cumsum(probs, dim=-1) - probs
        drop_sorted = mass_before >= top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        out = out.masked_fill(drop, float("-inf"))
    return out


def _block_size(model) -> int:
    cfg = getattr(model, "config", None)
    size = getattr(cfg, "block_size", None)
    if not isinstance(size, int) or size <= 0:
        raise ValueError("generate(): the model needs a `config.block_size` (a positive int); "
                         f"got {size!r} on {type(model).__name__}")
    return size


def generate(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int = 64, temperature: float = 0.8,
             top_k: Optional[int] = 50, top_p: Optional[float] = None, num_samples: int = 2, seed: int = 1337,
             device: Optional[str] = None) -> list[dict[str, Any]]:
    """Sample ``num_samples`` continuations of each prompt.

    Returns one dict per sample: ``prompt, prompt_index, sample_index, seed,
    text`` (the generated continuation only), ``full_text`` (prompt and
    continuation decoded together), ``token_ids`` (generated ids only),
    ``prompt_tokens`` and ``new_tokens``.  The context is cropped to the
    model's ``block_size``; a model with ``next_logits``/``new_cache`` (gaplab's
    GPT) reuses the keys and values of earlier positions, so each new token
    costs one position's forward pass instead of the whole context's.  Each
    sample has its own CPU ``torch.Generator`` seeded with
    :func:`derive_seed`, so it does not depend on other random number use, on
    ``num_samples`` or on the other prompts.  ``device``
    defaults to the model's.
    """
    import torch

    if max_new_tokens <= 0:
        raise ValueError(f"sample.max_new_tokens = {max_new_tokens!r}: allowed: > 0")
    if num_samples <= 0:
        raise ValueError(f"sample.num_samples = {num_samples!r}: allowed: > 0")
    if isinstance(prompts, str):
        prompts = [prompts]
    block = _block_size(model)
    if device is None:
        param = next(iter(model.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    cached = callable(getattr(model, "next_logits", None)) and callable(getattr(model, "new_cache", None))
    rows: list[dict[str, Any]] = []
    try:
        with torch.no_grad():
            for pi, prompt in enumerate(prompts):
                prompt_ids = [int(t) for t in tokenizer.encode(prompt)]
                if not prompt_ids:
                    raise ValueError(f"sample.prompts: prompt #{pi} = {prompt!r} encodes to no tokens; "
                                     "allowed: a prompt with at least one token, e.g. '\\n'")
                for si in range(num_samples):
                    s = derive_seed(seed, pi, si)
                    gen = torch.Generator(device="cpu").manual_seed(s)
                    ids = list(prompt_ids)
                    cache = None
                    for _ in range(max_new_tokens):
                        if cached:  # keys/values of earlier positions are reused: one new token per step
                            if cache is None or len(ids) > block:
                                cache = model.new_cache()
                                feed = ids[-block:]
                            else:
                                feed = ids[-1:]
                            idx = torch.tensor([feed], dtype=torch.long, device=device)
                            next_logits = model.next_logits(idx, cache)
                        else:
                            idx = torch.tensor([ids[-block:]], dtype=torch.long, device=device)
                            next_logits = model(idx)[0][:, -1, :]
                        last = filter_logits(next_logits.detach().to("cpu"), temperature=temperature,
                                             top_k=top_k, top_p=top_p)
                        probs = torch.softmax(last, dim=-1)
                        ids.append(int(torch.multinomial(probs, 1, generator=gen)[0, 0]))
                    new = ids[len(prompt_ids):]
                    rows.append({
                        "prompt": prompt,
                        "prompt_index": pi,
                        "sample_index": si,
                        "seed": s,
                        "text": tokenizer.decode(new),
                        "full_text": tokenizer.decode(ids),
                        "token_ids": new,
                        "prompt_tokens": len(prompt_ids),
                        "new_tokens": len(new),
                    })
    finally:
        model.train(was_training)
    return rows


# =========================================================================== repetition
def words(text: str) -> list[str]:
    """Units for the repetition metrics: identifiers/words/numbers (``\\w+``) and single punctuation marks.

    Words rather than model tokens, so phases with different tokenizers
    (``char`` vs ``gpt2``) compare on the same scale.
    """
    return WORD.findall(text)


def ngrams(units: Sequence, n: int) -> list[tuple]:
    return [tuple(units[i:i + n]) for i in range(len(units) - n + 1)]


def distinct_n(units: Sequence, n: int) -> Optional[float]:
    """Distinct n-grams / all n-grams (Li et al., 2016); ``None`` if there is no n-gram."""
    grams = ngrams(units, n)
    return len(set(grams)) / len(grams) if grams else None


def repeated_ngram_share(units: Sequence, n: int) -> Optional[float]:
    """Share of n-gram positions whose n-gram occurs more than once in the sequence; ``None`` if none.

    ``a b a b a b`` with n=2: every bigram (ab, ba, ab, ba, ab) repeats, so 1.0.
    """
    grams = ngrams(units, n)
    if not grams:
        return None
    counts: dict[tuple, int] = {}
    for g in grams:
        counts[g] = counts.get(g, 0) + 1
    return sum(1 for g in grams if counts[g] > 1) / len(grams)


def longest_repeated_substring(text: str) -> str:
    """The longest substring that occurs at least twice (occurrences may overlap: ``aaaa`` -> ``aaa``).

    Binary search on the length, with a set of the substrings of that length.
    Among equally long repeats, the one whose second occurrence ends first.
    """
    def first_repeat(length: int) -> Optional[str]:
        seen: set[str] = set()
        for i in range(len(text) - length + 1):
            piece = text[i:i + length]
            if piece in seen:
                return piece
            seen.add(piece)
        return None

    lo, hi, best = 1, len(text) - 1, ""
    while lo <= hi:
        mid = (lo + hi) // 2
        found = first_repeat(mid)
        if found is not None:
            best, lo = found, mid + 1
        else:
            hi = mid - 1
    return best


def _is_primitive(unit: str) -> bool:
    """True unless ``unit`` is a shorter string repeated (``abab``, ``==``)."""
    return (unit + unit).find(unit, 1) == len(unit)


def _runs(text: str, min_unit: int, max_unit: int, min_repeats: int) -> list[tuple[int, str, int]]:
    """``(start, unit, repeats)`` of non-overlapping runs of a primitive unit with two letters, left to right."""
    out, i, n = [], 0, len(text)
    while i < n:
        found = None
        for u in range(min_unit, max_unit + 1):
            unit = text[i:i + u]
            if len(unit) < u or sum(c.isalpha() for c in unit) < 2 or not _is_primitive(unit):
                continue
            reps = 1
            while text[i + reps * u:i + (reps + 1) * u] == unit:
                reps += 1
            if reps >= min_repeats:
                found = (i, unit, reps)
                break
        if found:
            out.append(found)
            i += len(found[1]) * found[2]
        else:
            i += 1
    return out


def find_stutters(text: str, *, min_unit: int = 2, max_unit: int = 6, min_repeats: int = 3,
                  word_min_unit: int = 3, word_min_repeats: int = 2) -> list[dict[str, Any]]:
    """Character-level stutters: a short unit repeated back to back.

    Two kinds, each unit *primitive* (not itself a repetition, so ``====`` and
    indentation never count) and holding at least two letters (so ``%s%s%s``
    and ``\\n\\n\\n`` do not count):

    - ``run``: a unit of ``min_unit``..``max_unit`` characters repeated at least
      ``min_repeats`` times anywhere (``defginggingging`` -> ``ging`` x 3);
    - ``word``: inside one identifier (``\\w+``), a unit of ``word_min_unit``..
      ``max_unit`` characters repeated at least ``word_min_repeats`` times
      (``loggingging`` -> ``ging`` x 2, ``get_pdf_pdf_x`` -> ``_pdf`` x 2).
      Genuine doubled names (``_read_ready``, ``murmur``) count too: in the
      stdlib's own code about one line in 1,500 has one, so check the examples.

    Each stutter: ``kind, unit, repeats, start`` (character offset) and
    ``example`` (the enclosing identifier, or the run itself).
    """
    out: list[dict[str, Any]] = []
    word_spans = [(m.start(), m.end()) for m in re.finditer(r"\w+", text)]

    def enclosing(start: int, end: int) -> str:
        for a, b in word_spans:
            if a <= start and end <= b:
                return text[a:b]
        return text[start:end]

    covered: list[tuple[int, int]] = []
    for start, unit, reps in _runs(text, min_unit, max_unit, min_repeats):
        end = start + len(unit) * reps
        covered.append((start, end))
        out.append({"kind": "run", "unit": unit, "repeats": reps, "start": start, "example": enclosing(start, end)})
    for a, b in word_spans:
        if any(s < b and a < e for s, e in covered):
            continue  # already reported as a run
        for start, unit, reps in _runs(text[a:b], word_min_unit, max_unit, word_min_repeats):
            out.append({"kind": "word", "unit": unit, "repeats": reps, "start": a + start, "example": text[a:b]})
    out.sort(key=lambda s: s["start"])
    return out


def repetition_metrics(text: str, *, repeat_n: int = 3) -> dict[str, Any]:
    """Per-sample repetition metrics over :func:`words` (distinct-1/2/3, repeated n-gram share),
    the longest repeated substring in characters, and stutters."""
    units = words(text)
    lrs = longest_repeated_substring(text)
    stutters = find_stutters(text)
    return {
        "words": len(units),
        "distinct_1": distinct_n(units, 1),
        "distinct_2": distinct_n(units, 2),
        "distinct_3": distinct_n(units, 3),
        f"repeated_{repeat_n}gram_share": repeated_ngram_share(units, repeat_n),
        "longest_repeat_chars": len(lrs),
        "longest_repeat": lrs,
        "stutter_count": len(stutters),
        "stutters": stutters,
    }


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


# =========================================================================== code well-formedness
_INCOMPLETE_FLAGS = (getattr(codeop, "PyCF_ALLOW_INCOMPLETE_INPUT", 0x4000)
                     | getattr(codeop, "PyCF_DONT_IMPLY_DEDENT", 0x200))


def _compile_error(source: str) -> Optional[SyntaxError]:
    """``None`` if ``source`` compiles or is valid so far but incomplete (open block, bracket or
    triple-quoted string); otherwise the ``SyntaxError``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(source, "<sample>", "exec", _INCOMPLETE_FLAGS)
        return None
    except SyntaxError as exc:
        if exc.msg == "incomplete input" or type(exc).__name__ == "_IncompleteInputError":
            return None
        return exc
    except (ValueError, OverflowError, RecursionError, MemoryError) as exc:  # e.g. NUL bytes, deep nesting
        return SyntaxError(str(exc))


def _ok_up_to_the_cut(source: str, depth: int = 3) -> bool:
    """Parseable, or only broken by where generation stopped.

    Text that does not end in a newline was cut mid-line.  The cut is to blame
    when the error sits past the last character (``x = foo.``, ``if x``), in a
    single-quoted string left open on the last line (``print(f"Page``: checked
    without the string), or in a last word cut short (``exce``: checked
    without it).  An error earlier on the last line is the model's.
    """
    err = _compile_error(source)
    if err is None:
        return True
    if depth == 0 or source.endswith("\n"):
        return False
    lines = source.split("\n")
    last = lines[-1]
    if err.lineno != len(lines):
        return False
    offset = err.offset or 0
    if offset > len(last):
        return True
    if str(err.msg).startswith("unterminated string literal") and offset >= 1:
        return _ok_up_to_the_cut(source[: len(source) - len(last) + offset - 1], depth - 1)
    word = re.search(r"\w+$", source)
    return bool(word) and _ok_up_to_the_cut(source[: word.start()], depth - 1)


def _as_fragment(code: str) -> list[str]:
    """``code``, and if its first line is indented (a piece of a block), ``code`` under made-up
    ``def`` / ``async def`` headers, one per indentation level below the first line's."""
    lines = [line for line in code.splitlines() if line.strip()]
    if not lines or not lines[0][:1].isspace():
        return [code]
    prefixes = [line[: len(line) - len(line.lstrip())] for line in lines]
    first = len(prefixes[0])
    levels = {0: ""} | {len(p): p for p in prefixes if len(p) < first}
    out = [code]
    for keyword in ("def", "async def"):  # async def allows await; def allows yield from
        header = "".join(f"{levels[n]}{keyword} _fragment():\n" for n in sorted(levels))
        out.append(header + code)
    return out


def is_parseable_prefix(code: str) -> bool:
    """Could ``code`` be the beginning of a valid Python file?

    Accepts complete code, open blocks, open brackets and unterminated
    triple-quoted strings ("incomplete input"), and an unfinished last line
    whose only fault is where generation stopped (see :func:`_ok_up_to_the_cut`).
    Code whose first line is indented (a piece of a function, as after the
    prompt ``"    def emit(self, record):\n"``) is checked inside made-up
    function headers, so ``return``, ``yield`` and ``await`` are allowed there.
    """
    if not code.strip():
        return True
    return any(_ok_up_to_the_cut(candidate) for candidate in _as_fragment(code))


def parseable_lines(code: str) -> int:
    """How many leading lines form a parseable prefix (a last line counts only if it is fine so far)."""
    lines = code.splitlines(keepends=True)
    ok = 0
    for k in range(1, len(lines) + 1):
        if is_parseable_prefix("".join(lines[:k])):
            ok = k
        else:
            break
    return ok


_CLOSE = {")": "(", "]": "[", "}": "{"}


def bracket_balance(code: str) -> dict[str, int]:
    """Brackets outside strings and comments: ``errors`` (a closer that matches nothing or the wrong
    opener) and ``open`` (openers still open at the end, normal for a truncated prefix).

    A small scanner, not ``tokenize``, so it keeps going after broken code.
    Strings: single/double and triple quotes, with backslash escapes; ``#`` to
    the end of the line is a comment.  A single-quoted string ends at a newline.
    """
    stack: list[str] = []
    errors, i, n = 0, 0, len(code)
    while i < n:
        ch = code[i]
        if ch == "#":
            j = code.find("\n", i)
            i = n if j < 0 else j
            continue
        if ch in "'\"":
            quote = code[i:i + 3] if code[i:i + 3] in ("'''", '"""') else ch
            i += len(quote)
            while i < n:
                if code[i] == "\\":
                    i += 2
                    continue
                if code.startswith(quote, i):
                    i += len(quote)
                    break
                if len(quote) == 1 and code[i] == "\n":
                    break
                i += 1
            continue
        if ch in "([{":
            stack.append(ch)
        elif ch in _CLOSE:
            if stack and stack[-1] == _CLOSE[ch]:
                stack.pop()
            else:
                errors += 1
                if _CLOSE[ch] in stack:  # close the matching opener, dropping those left inside it
                    while stack.pop() != _CLOSE[ch]:
                        pass
        i += 1
    return {"errors": errors, "open": len(stack)}


def tokenize_errors(code: str) -> int:
    """Errors the ``tokenize`` module reports: ``ERRORTOKEN`` tokens (not whitespace), plus one if it
    stops with an error other than "EOF in multi-line ..." (which only means the prefix is unfinished).

    On Python 3.12+ tokenize stops at the first error, so the count is at most 1 there.
    """
    count = 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.ERRORTOKEN and tok.string.strip():
                count += 1
    except tokenize.TokenError as exc:
        if "EOF in multi-line" not in str(exc):
            count += 1
    except (SyntaxError, ValueError):
        count += 1
    return count


def code_metrics(code: str) -> dict[str, Any]:
    """Well-formedness of one sample as Python (see :func:`is_parseable_prefix`)."""
    lines = len(code.splitlines())
    ok_lines = parseable_lines(code)
    brackets = bracket_balance(code)
    return {
        "parse_ok": is_parseable_prefix(code),
        "parse_lines_ok": ok_lines,
        "parse_line_share": ok_lines / lines if lines else 1.0,
        "bracket_errors": brackets["errors"],
        "brackets_open": brackets["open"],
        "brackets_balanced": brackets["errors"] == 0 and brackets["open"] == 0,
        "tokenize_errors": tokenize_errors(code),
    }


def is_python_corpus(data_cfg: Any) -> bool:
    """For ``sample.python: auto``: the stdlib source, or files/text whose glob or path ends in ``.py``."""
    get = (lambda k: data_cfg.get(k)) if isinstance(data_cfg, Mapping) else (lambda k: getattr(data_cfg, k, None))
    source = get("source")
    if source == "stdlib":
        return True
    if source == "files":
        return str(get("glob") or "").endswith(".py")
    if source == "text":
        return str(get("path") or "").endswith(".py")
    return False


# =========================================================================== keywords and format
@dataclass
class KeywordItem:
    prompt: str
    keywords: list[str]
    category: str = "general"
    difficulty: str = "unspecified"
    case_sensitive: bool = False


@dataclass
class KeywordSet:
    """Prompts with the keywords a good continuation should contain (seed 000's evaluation)."""

    items: list[KeywordItem]
    path: str = ""
    by_prompt: dict[str, KeywordItem] = field(init=False)

    def __post_init__(self) -> None:
        self.by_prompt = {item.prompt: item for item in self.items}

    @property
    def prompts(self) -> list[str]:
        return [item.prompt for item in self.items]


def builtin_keyword_sets() -> list[str]:
    """Names of the keyword sets shipped in ``gaplab/keywords/``."""
    return sorted(p.stem for p in KEYWORDS_DIR.glob("*.yaml"))


def _keyword_path(spec: Union[str, Path]) -> Path:
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    builtin = KEYWORDS_DIR / (path.stem + ".yaml")
    if path.suffix in ("", ".yaml") and builtin.is_file():
        return builtin
    raise ValueError(f"sample.keyword_sets: no such keyword-set file: {path}; allowed: a YAML file "
                     f"(a list of {{prompt, keywords, category, difficulty}}) or a built-in name: "
                     f"{', '.join(builtin_keyword_sets()) or '(none)'}")


def parse_keyword_set(raw: Any, where: str = "keyword set") -> KeywordSet:
    """Validate a loaded keyword set: a list of mappings ``{prompt, keywords, category, difficulty}``
    (``category`` and ``difficulty`` optional; optional ``case_sensitive``, default false)."""
    if isinstance(raw, dict) and isinstance(raw.get("prompts"), list):
        raw = raw["prompts"]
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where}: allowed: a non-empty YAML list of {{prompt, keywords, category, difficulty}}; "
                         f"got {type(raw).__name__}")
    allowed = {"prompt", "keywords", "category", "difficulty", "case_sensitive"}
    items, seen = [], set()
    for i, entry in enumerate(raw):
        at = f"{where}: item #{i}"
        if not isinstance(entry, dict):
            raise ValueError(f"{at} = {entry!r}: allowed: a mapping with prompt and keywords")
        unknown = sorted(set(entry) - allowed)
        if unknown:
            raise ValueError(f"{at}: unknown key(s) {unknown}; allowed: {', '.join(sorted(allowed))}")
        prompt = entry.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise ValueError(f"{at}: prompt = {prompt!r}: allowed: a non-empty string")
        if prompt in seen:
            raise ValueError(f"{at}: prompt {prompt!r} appears twice; allowed: each prompt once")
        seen.add(prompt)
        kws = entry.get("keywords")
        if not isinstance(kws, list) or not kws or not all(isinstance(k, str) and k for k in kws):
            raise ValueError(f"{at} ({prompt!r}): keywords = {kws!r}: allowed: a non-empty list of non-empty strings")
        for key in ("category", "difficulty"):
            if key in entry and not isinstance(entry[key], (str, int)):
                raise ValueError(f"{at} ({prompt!r}): {key} = {entry[key]!r}: allowed: a short label")
        case = entry.get("case_sensitive", False)
        if not isinstance(case, bool):
            raise ValueError(f"{at} ({prompt!r}): case_sensitive = {case!r}: allowed: true or false")
        items.append(KeywordItem(prompt=prompt, keywords=list(kws), category=str(entry.get("category", "general")),
                                 difficulty=str(entry.get("difficulty", "unspecified")), case_sensitive=case))
    return KeywordSet(items=items, path=where)


def load_keyword_set(spec: Union[str, Path]) -> KeywordSet:
    """Read a keyword-set YAML file, or a built-in one by name (e.g. ``stdlib_code``)."""
    path = _keyword_path(spec)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"sample.keyword_sets ({path}): not valid YAML: {exc}") from None
    return parse_keyword_set(raw, str(path))


def collect_prompts(prompts_spec: Union[str, Path, Sequence[str]], keyword_set: Optional[KeywordSet] = None) -> list[str]:
    """``sample.prompts`` followed by the keyword set's prompts that are not already there."""
    prompts = load_prompts(prompts_spec)
    if keyword_set is not None:
        prompts += [p for p in keyword_set.prompts if p not in prompts]
    return prompts


def keyword_score(text: str, keywords: Sequence[str], case_sensitive: bool = False) -> dict[str, Any]:
    """Fraction of ``keywords`` that occur in ``text`` as substrings (case-insensitive by default)."""
    hay = text if case_sensitive else text.lower()
    found = [k for k in keywords if (k if case_sensitive else k.lower()) in hay]
    return {"keyword_score": len(found) / len(keywords) if keywords else None,
            "keywords_found": found,
            "keywords_missing": [k for k in keywords if k not in found]}


def compile_patterns(patterns: Iterable[str]) -> list[re.Pattern]:
    out = []
    for pat in patterns:
        try:
            out.append(re.compile(pat, re.MULTILINE))
        except re.error as exc:
            raise ValueError(f"sample.format_patterns: {pat!r} is not a valid regular expression ({exc})") from None
    return out


def format_compliance(text: str, patterns: Sequence[Union[str, re.Pattern]]) -> dict[str, Any]:
    """Does ``text`` match every required pattern (``re.search``, multiline)?  ``format_ok`` is
    ``None`` when there are no patterns; ``format_missing`` lists those not found."""
    compiled = [p if isinstance(p, re.Pattern) else compile_patterns([p])[0] for p in patterns]
    if not compiled:
        return {"format_ok": None, "format_missing": []}
    missing = [p.pattern for p in compiled if not p.search(text)]
    return {"format_ok": not missing, "format_missing": missing}


# =========================================================================== evaluation
def _mean(values: Iterable[Any]) -> Optional[float]:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else None


def _clip(text: Optional[str], limit: int = 200) -> Optional[str]:
    """Text for a summary table: at most ``limit`` characters, marked with " [...]" when cut."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + " [...]"


def _max(values: Iterable[Any]) -> Optional[float]:
    vals = [v for v in values if v is not None]
    return max(vals) if vals else None


def evaluate_samples(samples: Sequence[Mapping[str, Any]], *, index: Optional[MemorizationIndex] = None,
                     tokenizer=None, python: bool = False, format_patterns: Sequence[str] = (),
                     keyword_set: Optional[KeywordSet] = None,
                     repeat_n: int = 3) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Add per-sample metrics to each sample (a copy) and aggregate them.

    What is measured on what: repetition, stutters, keywords and format on the
    generated continuation (``text``) — the prompt is not the model's output;
    Python well-formedness on ``full_text`` (prompt + continuation), since
    ``def get_`` + continuation is the code; memorisation on the generated ids
    (``token_ids``).  Aggregates are means over samples (``*_share`` of a
    yes/no metric is the share of samples where it holds; ``None`` when no
    sample has the metric), plus keyword scores per category and difficulty.
    """
    patterns = compile_patterns(format_patterns)
    rows: list[dict[str, Any]] = []
    for s in samples:
        row = dict(s)
        text = str(row.get("text", ""))
        row.update(repetition_metrics(text, repeat_n=repeat_n))
        if index is not None:
            ids = row.get("token_ids")
            row.update(index.measure([] if ids is None else ids, tokenizer=tokenizer))
        if python:
            row.update(code_metrics(str(row.get("full_text", text))))
        if patterns:
            row.update(format_compliance(text, patterns))
        if keyword_set is not None:
            item = keyword_set.by_prompt.get(row.get("prompt"))
            if item is not None:
                row.update(keyword_score(text, item.keywords, item.case_sensitive),
                           keyword_category=item.category, keyword_difficulty=item.difficulty)
        rows.append(row)
    return rows, aggregate_rows(rows, repeat_n=repeat_n, format_patterns=[p.pattern for p in patterns])


def aggregate_rows(rows: Sequence[Mapping[str, Any]], *, repeat_n: int = 3,
                   format_patterns: Sequence[str] = ()) -> dict[str, Any]:
    """Means and shares over evaluated rows (see :func:`evaluate_samples`)."""
    def col(key: str) -> list[Any]:
        return [r.get(key) for r in rows]

    def share(key: str) -> Optional[float]:
        vals = [r[key] for r in rows if r.get(key) is not None]
        return sum(1 for v in vals if v) / len(vals) if vals else None

    agg: dict[str, Any] = {
        "n_samples": len(rows),
        "new_tokens": _mean(col("new_tokens")),
        "distinct_1": _mean(col("distinct_1")),
        "distinct_2": _mean(col("distinct_2")),
        "distinct_3": _mean(col("distinct_3")),
        f"repeated_{repeat_n}gram_share": _mean(col(f"repeated_{repeat_n}gram_share")),
        "longest_repeat_chars": _mean(col("longest_repeat_chars")),
        "stutter_share": share("stutter_count"),
        "stutters_per_sample": _mean(col("stutter_count")),
    }
    examples: list[str] = []
    for r in rows:
        for st in r.get("stutters") or []:
            if st["example"] not in examples:
                examples.append(st["example"])
    agg["stutter_examples"] = examples[:10]
    if any("mem_longest_tokens" in r for r in rows):
        longest = max(rows, key=lambda r: r.get("mem_longest_tokens") or 0)
        agg.update({
            "mem_longest_tokens": _mean(col("mem_longest_tokens")),
            "mem_longest_tokens_max": _max(col("mem_longest_tokens")),
            "mem_longest_chars_max": _max(col("mem_longest_chars")),
            "mem_longest_text": _clip(longest.get("mem_longest_text")),
            "train_ngram_share": _mean(col("train_ngram_share")),
            "val_only_ngram_share": _mean(col("val_only_ngram_share")),
            "novel_ngram_share": _mean(col("novel_ngram_share")),
        })
    if any("parse_ok" in r for r in rows):
        agg.update({
            "parse_ok_share": share("parse_ok"),
            "parse_line_share": _mean(col("parse_line_share")),
            "brackets_balanced_share": share("brackets_balanced"),
            "bracket_errors": _mean(col("bracket_errors")),
            "tokenize_errors": _mean(col("tokenize_errors")),
        })
    if format_patterns:
        agg["format_ok_share"] = share("format_ok")
        agg["format_by_pattern"] = {
            p: _mean([0.0 if p in (r.get("format_missing") or []) else 1.0 for r in rows if "format_ok" in r])
            for p in format_patterns}
    scored = [r for r in rows if r.get("keyword_score") is not None]
    if scored:
        agg["keyword_score"] = _mean(r["keyword_score"] for r in scored)
        agg["keyword_samples"] = len(scored)
        for key, name in (("keyword_category", "keyword_by_category"), ("keyword_difficulty", "keyword_by_difficulty")):
            groups: dict[str, list[float]] = {}
            for r in scored:
                groups.setdefault(r[key], []).append(r["keyword_score"])
            agg[name] = {g: sum(v) / len(v) for g, v in groups.items()}
    return agg


# =========================================================================== files
def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to samples.jsonl")


def write_samples(run_dir: Union[str, Path], rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``run_dir/samples.jsonl`` (one JSON object per sample) atomically."""
    text = "".join(json.dumps(dict(r), ensure_ascii=False, default=_jsonable) + "\n" for r in rows)
    return atomic_write_text(Path(run_dir) / "samples.jsonl", text)


def read_samples(run_dir: Union[str, Path]) -> list[dict[str, Any]]:
    """The rows of ``run_dir/samples.jsonl`` (empty if the file is missing)."""
    path = Path(run_dir) / "samples.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
