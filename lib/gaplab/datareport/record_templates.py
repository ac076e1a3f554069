"""A fine-tuning record's topic, blanked: what lets seed 000's filler be seen as the template it is.

Seed 000's ChatGPT answers were a handful of skeletons with the topic swapped in ("X is a fundamental
concept ... In fault-tolerant settings, X remains essential."); the topic is a lower-case phrase, so
blanking numbers and Capitalised words (:func:`gaplab.datareport.detectors.template_skeleton`) leaves every
answer different.  A record names its topic in its prompt and repeats it in its answer: the runs of words
the two sides share are the topic, and blanking them leaves the skeleton.
"""

from __future__ import annotations

import re
from typing import Optional

_WORDS = re.compile(r"\w+")


#: a record's answer needs at least this many words of its own (not the prompt's) for its skeleton to
#: blank the prompt's words (a one-word label is not a template)
MIN_ANSWER_WORDS = 8
#: only an answer's first this many characters are read for its skeleton
MAX_ANSWER_CHARS = 4000


def _shared_runs(prompt_words: list[str], answer_words: list[str]) -> tuple[set[int], set[int]]:
    """Positions of the prompt's and the answer's words inside runs they share: the same words in the same
    order, at least 2 long (or one word of at least 5 characters, a topic like ``asyncio``)."""
    where: dict[str, list[int]] = {}
    for p, w in enumerate(prompt_words):
        where.setdefault(w, []).append(p)
    in_prompt, in_answer = set(), set()
    run: dict[int, int] = {}  # prompt position -> length of the shared run ending there, at answer word ``last``
    last = -2
    for i in [i for i, w in enumerate(answer_words) if w in where]:  # only the answer's words the prompt has
        previous = run if i == last + 1 else {}
        run = {p: previous.get(p - 1, 0) + 1 for p in where[answer_words[i]]}
        last = i
        for p, length in run.items():
            if length >= 2 or len(answer_words[i]) >= 5:
                in_prompt.update(range(p - length + 1, p + 1))
                in_answer.update(range(i - length + 1, i + 1))
    return in_prompt, in_answer


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
    its :func:`gaplab.datareport.detectors.template_skeleton` groups the record.  Seed 000's filler (a
    handful of answer skeletons with the topic swapped in) is then one skeleton per template.  ``None`` when the answer has fewer than :data:`MIN_ANSWER_WORDS` words of its own (the plain
    skeleton applies: a one-word label is not a template)."""
    answer = answer[:MAX_ANSWER_CHARS]
    prompt_words, answer_words = _WORDS.findall(prompt.lower()), _WORDS.findall(answer.lower())
    prompt_spans, answer_spans = _spans(prompt, prompt_words), _spans(answer, answer_words)
    in_prompt, in_answer = _shared_runs(prompt_words, answer_words)
    if len(answer_words) - len(in_answer) < MIN_ANSWER_WORDS:
        return None
    return f"{_blank(prompt, prompt_spans, in_prompt)}\n{_blank(answer, answer_spans, in_answer)}"
