"""A fine-tuning record's topic, blanked: what lets seed 000's filler be seen as the template it is.

Seed 000's ChatGPT answers were a handful of skeletons with the topic swapped in ("X is a fundamental
concept ... In fault-tolerant settings, X remains essential."); the topic is a lower-case phrase, so
blanking numbers and Capitalised words (:func:`template_skeleton`) leaves every answer different.  A record
names its topic in its prompt and repeats it in its answer: the runs of words the two sides share are the
topic, and blanking them leaves the skeleton.

At scale (:func:`record_bodies`, :func:`skeleton_keys`) a record's words come from the texts' word ids,
read once for the whole report, and a skeleton is computed only where it could equal another's.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Optional

import numpy as np

_WORDS = re.compile(r"\w+")
#: ASCII text's ``\w+`` words, lower-cased, by one C-level pass (upper case to lower, every other
#: character to a space) and a split: the regex's words, ~4x faster
_ASCII_WORDS = str.maketrans({chr(c): chr(c).lower() if chr(c).isalnum() or chr(c) == "_" else " " for c in range(128)})
_IS_WORD = np.array([c < 128 and (chr(c).isalnum() or chr(c) == "_") for c in range(256)])
_NUMBER = re.compile(r"\b\d+(?:[.,]\d+)*\b")
_NAME = re.compile(r"\b[A-Z][a-z]+\b")
#: the only ASCII characters :func:`template_skeleton` changes, adds or drops
_SKELETON_TOUCHES = bytes(c for c in range(128) if chr(c).isalnum() or chr(c).isspace() or chr(c) in ".,")


#: a record's answer needs at least this many words of its own (not the prompt's) for its skeleton to
#: blank the prompt's words (a one-word label is not a template)
MIN_ANSWER_WORDS = 8
#: only an answer's first this many characters are read for its skeleton
MAX_ANSWER_CHARS = 4000
#: one shared word this long is a topic on its own (``asyncio``); shorter ones need a run of 2
LONG_WORD = 5


def text_words(text: str) -> list[str]:
    """``text``'s lower-cased ``\\w+`` words (those of ``re.findall(r"\\w+", text.lower())``)."""
    if text.isascii():
        return text.translate(_ASCII_WORDS).split()
    return _WORDS.findall(text.lower())


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
    return " ".join(text.split())  # the same whitespace as ``\s+`` (both are str.isspace), stripped


def _coarse_key(text: str) -> tuple[Hashable, Optional[str]]:
    """A key that is equal for texts of equal skeleton (what the skeleton keeps of an ASCII text: all but
    its letters, digits, whitespace, ``.`` and ``,``), and the skeleton where it had to be computed."""
    if text.isascii():
        return text.encode("ascii").translate(None, _SKELETON_TOUCHES), None
    skeleton = template_skeleton(text)
    if skeleton.isascii():
        return skeleton.encode("ascii").translate(None, _SKELETON_TOUCHES), skeleton
    return skeleton, skeleton


def skeleton_keys(texts: Sequence[str]) -> list[Hashable]:
    """A key per text, equal exactly when the texts' :func:`template_skeleton` are: the skeleton itself
    where another text shares its coarse key (:func:`_coarse_key`), else a key of its own; a skeleton no
    other text could share is never computed."""
    coarse = [_coarse_key(t) for t in texts]
    shared = Counter(key for key, _ in coarse)
    return [
        (known if known is not None else template_skeleton(t)) if shared[key] > 1 else ("alone", k)
        for k, (t, (key, known)) in enumerate(zip(texts, coarse))
    ]


def _runs(
    where: dict[Any, list[int]], hits: Iterable[tuple[int, Any]], long_words: set[Any]
) -> tuple[set[int], set[int]]:
    """Positions of the prompt's (``where``: word -> its positions) and the answer's words inside runs they
    share: the same words in the same order, at least 2 long (or one of ``long_words``, a topic like
    ``asyncio``).  ``hits``: the answer's words the prompt has, with their positions, in order."""
    in_prompt, in_answer = set(), set()
    run: dict[int, int] = {}  # prompt position -> length of the shared run ending there, at answer word ``last``
    last = -2
    for i, word in hits:
        previous = run if i == last + 1 else {}
        run = {p: previous.get(p - 1, 0) + 1 for p in where[word]}
        last = i
        long = word in long_words
        for p, length in run.items():
            if length >= 2 or long:
                in_prompt.update(range(p - length + 1, p + 1))
                in_answer.update(range(i - length + 1, i + 1))
    return in_prompt, in_answer


def _positions(words: Sequence[Any]) -> dict[Any, list[int]]:
    where: dict[Any, list[int]] = {}
    for p, w in enumerate(words):
        where.setdefault(w, []).append(p)
    return where


def _shared_runs(prompt_words: list[str], answer_words: list[str]) -> tuple[set[int], set[int]]:
    """:func:`_runs` of two lists of words."""
    where = _positions(prompt_words)
    hits = [(i, w) for i, w in enumerate(answer_words) if w in where]
    return _runs(where, hits, {w for w in where if len(w) >= LONG_WORD})


def _blank(text: str, spans: list[tuple[int, int]], positions: set[int]) -> str:
    """``text`` with its words (``spans``) at these positions replaced by ``Name``, a run of them (with only
    spaces and punctuation between) one ``Name``."""
    if not positions:
        return text
    pieces, cursor = [], 0
    for k in sorted(positions):
        start, end = spans[k]
        if k - 1 in positions:  # the run goes on: drop what lies between, keep one Name
            cursor = end
            continue
        pieces.append(text[cursor:start])
        pieces.append("Name")
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


def _spans(text: str, words: list[str]) -> list[tuple[int, int]]:
    """Where each of ``text``'s words is (``words``: its lower-cased words, which lower-casing keeps in
    number for nearly every text)."""
    spans = [m.span() for m in _WORDS.finditer(text)]
    if len(spans) != len(words):  # a letter whose lower case is two characters: read the words again
        words[:] = [text[a:b].lower() for a, b in spans]
    return spans


def topic_blanked(prompt: str, answer: str) -> Optional[str]:
    """A record's text with its topic blanked: the runs of words the prompt and the answer share
    (:func:`_shared_runs`: the topic the question names and the answer repeats) become ``Name``, in both;
    its :func:`template_skeleton` groups the record.  Seed 000's filler (a handful of answer skeletons with
    the topic swapped in) is then one skeleton per template.  ``None`` when the answer has fewer than
    :data:`MIN_ANSWER_WORDS` words of its own (the plain skeleton applies: a one-word label is not a
    template)."""
    answer = answer[:MAX_ANSWER_CHARS]
    prompt_words, answer_words = _WORDS.findall(prompt.lower()), _WORDS.findall(answer.lower())
    prompt_spans, answer_spans = _spans(prompt, prompt_words), _spans(answer, answer_words)
    in_prompt, in_answer = _shared_runs(prompt_words, answer_words)
    if len(answer_words) - len(in_answer) < MIN_ANSWER_WORDS:
        return None
    return f"{_blank(prompt, prompt_spans, in_prompt)}\n{_blank(answer, answer_spans, in_answer)}"


class _Prompt:
    """One distinct prompt's words as ids (from a record's text), where each is, and its word spans (read
    when first needed)."""

    def __init__(self, prompt: str, text_ids: np.ndarray, vocab: list[str]) -> None:
        self.prompt, self.count = prompt, len(text_words(prompt))
        self.where = _positions(text_ids[: self.count].tolist())
        self.long_words = {w for w in self.where if len(vocab[w]) >= LONG_WORD}
        self._spans: Optional[list[tuple[int, int]]] = None

    def spans(self) -> list[tuple[int, int]]:
        if self._spans is None:
            self._spans = [m.span() for m in _WORDS.finditer(self.prompt)]
        return self._spans


def _joined(text: str, prompt: str, answer: str) -> bool:
    """Is ``text`` ``prompt + "\\n" + answer`` (so its words are the prompt's, then the answer's)?"""
    return (
        len(text) == len(prompt) + 1 + len(answer)
        and text.startswith(prompt)
        and text.endswith(answer)
        and text[len(prompt)] == "\n"
    )


def _topic_runs(
    by_prompt: dict[str, list[int]], rows: Sequence[np.ndarray], vocab: list[str]
) -> list[tuple[int, _Prompt, set[int], set[int], int]]:
    """Per record (``by_prompt``: prompt -> its records, indices into ``rows``, each the word ids of a text
    that is the prompt and its answer) whose answer shares runs with its prompt and keeps
    :data:`MIN_ANSWER_WORDS` of its own: the record, its prompt, the shared positions on each side and the
    answer's number of words.  The answer words the prompt has are found for all of a prompt's records at once."""
    marks = np.zeros(len(vocab) + 1, dtype=bool)
    long = np.fromiter(map(len, vocab), dtype=np.int64, count=len(vocab)) >= LONG_WORD
    found = []
    for p, members in by_prompt.items():
        prompt = _Prompt(p, rows[members[0]], vocab)
        if not prompt.where:
            continue
        lengths = np.array([len(rows[k]) - prompt.count for k in members], dtype=np.int64)
        flat = np.concatenate([rows[k][prompt.count :] for k in members])
        keys = np.fromiter(prompt.where, dtype=np.int64, count=len(prompt.where))
        marks[keys] = True
        hit = np.flatnonzero(marks[flat])
        marks[keys] = False
        # a hit that is short and has no hit beside it starts and ends a run of 1: it blanks nothing
        beside = np.zeros(hit.size, dtype=bool)
        beside[1:] = hit[1:] == hit[:-1] + 1
        beside[:-1] |= beside[1:]
        hit = hit[beside | long[flat[hit]]]
        if not hit.size:
            continue
        starts = np.cumsum(lengths) - lengths
        owner = np.searchsorted(starts, hit, side="right") - 1
        at, words = (hit - starts[owner]).tolist(), flat[hit].tolist()
        bounds = [0, *(np.flatnonzero(np.diff(owner)) + 1).tolist(), hit.size]
        for o, a, b in zip(owner[bounds[:-1]].tolist(), bounds[:-1], bounds[1:]):
            in_prompt, in_answer = _runs(prompt.where, zip(at[a:b], words[a:b]), prompt.long_words)
            if in_answer and lengths[o] - len(in_answer) >= MIN_ANSWER_WORDS:
                found.append((members[o], prompt, in_prompt, in_answer, int(lengths[o])))
    return found


def _blanked(answers: list[str], found: list[tuple[int, _Prompt, set[int], set[int], int]]) -> list[str]:
    """Each found record's (:func:`_topic_runs`) blanked text, its ASCII answers' word spans read at once."""
    if not found:
        return []
    is_word = np.zeros(sum(map(len, answers)) + len(answers) + 1, dtype=bool)  # a non-word on either side
    is_word[1:-1] = _IS_WORD[np.frombuffer("\n".join(answers).encode("ascii"), dtype=np.uint8)]
    starts = np.flatnonzero(is_word[1:] & ~is_word[:-1]).tolist()
    ends = np.flatnonzero(is_word[:-1] & ~is_word[1:]).tolist()
    out, word_at, char_at = [], 0, 0
    for answer, (_, prompt, in_prompt, in_answer, n_words) in zip(answers, found):
        spans = {j: (starts[word_at + j] - char_at, ends[word_at + j] - char_at) for j in in_answer}
        out.append(f"{_blank(prompt.prompt, prompt.spans(), in_prompt)}\n{_blank(answer, spans, in_answer)}")
        word_at, char_at = word_at + n_words, char_at + len(answer) + 1
    if word_at != len(starts):
        raise AssertionError("the answers' words and their spans disagree")
    return out


def record_bodies(
    texts: Sequence[str],
    prompts: Sequence[Optional[str]],
    answers: Sequence[Optional[str]],
    which: Sequence[int],
    words: tuple[list[np.ndarray], list[str]],
) -> list[str]:
    """For each record in ``which``: the text whose skeleton groups it (its :func:`topic_blanked` text, or
    its text where that is ``None`` or blanks nothing).  ``words`` is
    :func:`gaplab.datareport.detectors.word_ids` of ``texts``: an ASCII record whose text is its prompt and
    answer is blanked from its word ids (the same words), each distinct prompt read once; any other by
    :func:`topic_blanked`."""
    per_doc, vocab = words
    out = [texts[i] for i in which]
    by_prompt: dict[str, list[int]] = {}
    for k, i in enumerate(which):
        t, p, a = texts[i], prompts[i], answers[i]
        if p is None or a is None:
            continue
        if t.isascii() and len(a) <= MAX_ANSWER_CHARS and _joined(t, p, a):
            by_prompt.setdefault(p, []).append(k)
        else:
            blanked = topic_blanked(p, a)
            out[k] = t if blanked is None else blanked
    found = _topic_runs(by_prompt, [per_doc[i] for i in which], vocab)
    for (k, *_), body in zip(found, _blanked([answers[which[k]] for k, *_ in found], found)):
        out[k] = body
    return out


def record_words(
    texts: Sequence[str],
    prompts: Sequence[Optional[str]],
    answers: Sequence[Optional[str]],
    words: tuple[list[np.ndarray], list[str]],
) -> Optional[tuple[tuple[list[np.ndarray], list[str]], tuple[list[np.ndarray], list[str]]]]:
    """The prompts' and the answers' word ids (a record without either: no words), cut from the texts'
    (``words``: :func:`gaplab.datareport.detectors.word_ids` of ``texts``) where each text is its prompt
    and its answer; ``None`` where one is not (the caller reads them apart)."""
    per_doc, vocab = words
    empty = np.zeros(0, dtype=np.int64)
    counts: dict[str, int] = {}  # a distinct prompt -> its number of words
    prompt_ids, answer_ids = [], []
    for t, p, a, ids in zip(texts, prompts, answers, per_doc):
        if p is None and a is None:
            prompt_ids.append(empty)
            answer_ids.append(empty)
            continue
        if p is None or a is None or not _joined(t, p, a):
            return None
        k = counts.get(p)
        if k is None:
            k = counts[p] = len(text_words(p))
        prompt_ids.append(ids[:k])
        answer_ids.append(ids[k:])
    return (prompt_ids, vocab), (answer_ids, vocab)
