"""Sample quality without a reference: repetition, Python well-formedness, keywords and format.

- **repetition** — distinct-n (Li et al., 2016, "A Diversity-Promoting Objective Function for Neural
  Conversation Models"), the share of repeated n-grams, the longest repeated substring, and a
  character-level *stutter* detector ("ginggingging", "loggingging", "pdf_pdf");
- **code well-formedness** — does the sample parse as a Python *prefix* (unfinished blocks and an
  unfinished last line allowed), are brackets balanced, how many tokenizer errors;
- **keyword score** per category and difficulty (seed 000) and **format compliance** against required
  regular expressions (seed 001).
"""

from __future__ import annotations

import codeop
import io
import re
import tokenize
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

KEYWORDS_DIR = Path(__file__).resolve().parents[1] / "keywords"


WORD = re.compile(r"\w+|[^\w\s]")


# =========================================================================== repetition
def words(text: str) -> list[str]:
    """Units for the repetition metrics: identifiers/words/numbers (``\\w+``) and single punctuation marks.

    Words rather than model tokens, so phases with different tokenizers
    (``char`` vs ``gpt2``) compare on the same scale.
    """
    return WORD.findall(text)


def ngrams(units: Sequence, n: int) -> list[tuple]:
    return [tuple(units[i : i + n]) for i in range(len(units) - n + 1)]


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
            piece = text[i : i + length]
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
            unit = text[i : i + u]
            if len(unit) < u or sum(c.isalpha() for c in unit) < 2 or not _is_primitive(unit):
                continue
            reps = 1
            while text[i + reps * u : i + (reps + 1) * u] == unit:
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


def find_stutters(
    text: str,
    *,
    min_unit: int = 2,
    max_unit: int = 6,
    min_repeats: int = 3,
    word_min_unit: int = 3,
    word_min_repeats: int = 2,
) -> list[dict[str, Any]]:
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


_SPACE_RUN = re.compile(r"\s+")
_PUNCT_RUN = re.compile(r"([^\w\s])\1+")


def squeeze_trivial_runs(text: str) -> str:
    """``text`` with every run of whitespace (indentation, blank lines) made one space and every run of one
    repeated punctuation mark (``=====``, ``----``) made one mark: what a repeat must not be made of."""
    return _PUNCT_RUN.sub(r"\1", _SPACE_RUN.sub(" ", text))


def longest_content_repeat(text: str) -> str:
    """The longest repeated substring (:func:`longest_repeated_substring`) of :func:`squeeze_trivial_runs`
    ``(text)``, or ``""`` when it holds no letter or digit: indentation and rulers are not repetition."""
    lrs = longest_repeated_substring(squeeze_trivial_runs(text))
    return lrs if re.search(r"\w", lrs) else ""


def repetition_metrics(text: str, *, repeat_n: int = 3) -> dict[str, Any]:
    """Per-sample repetition metrics over :func:`words` (distinct-1/2/3, repeated n-gram share),
    the longest repeated substring in characters (:func:`longest_content_repeat`: whitespace and
    punctuation runs squeezed first, so indentation is not a repeat), and stutters."""
    units = words(text)
    lrs = longest_content_repeat(text)
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


# =========================================================================== code well-formedness
_INCOMPLETE_FLAGS = getattr(codeop, "PyCF_ALLOW_INCOMPLETE_INPUT", 0x4000) | getattr(
    codeop, "PyCF_DONT_IMPLY_DEDENT", 0x200
)


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
            quote = code[i : i + 3] if code[i : i + 3] in ("'''", '"""') else ch
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
    raise ValueError(
        f"sample.keyword_sets: no such keyword-set file: {path}; allowed: a YAML file "
        f"(a list of {{prompt, keywords, category, difficulty}}) or a built-in name: "
        f"{', '.join(builtin_keyword_sets()) or '(none)'}"
    )


def parse_keyword_set(raw: Any, where: str = "keyword set") -> KeywordSet:
    """Validate a loaded keyword set: a list of mappings ``{prompt, keywords, category, difficulty}``
    (``category`` and ``difficulty`` optional; optional ``case_sensitive``, default false)."""
    if isinstance(raw, dict) and isinstance(raw.get("prompts"), list):
        raw = raw["prompts"]
    if not isinstance(raw, list) or not raw:
        raise ValueError(
            f"{where}: allowed: a non-empty YAML list of {{prompt, keywords, category, difficulty}}; "
            f"got {type(raw).__name__}"
        )
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
        items.append(
            KeywordItem(
                prompt=prompt,
                keywords=list(kws),
                category=str(entry.get("category", "general")),
                difficulty=str(entry.get("difficulty", "unspecified")),
                case_sensitive=case,
            )
        )
    return KeywordSet(items=items, path=where)


def load_keyword_set(spec: Union[str, Path]) -> KeywordSet:
    """Read a keyword-set YAML file, or a built-in one by name (e.g. ``stdlib_code``)."""
    path = _keyword_path(spec)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"sample.keyword_sets ({path}): not valid YAML: {exc}") from None
    return parse_keyword_set(raw, str(path))


def keyword_score(text: str, keywords: Sequence[str], case_sensitive: bool = False) -> dict[str, Any]:
    """Fraction of ``keywords`` that occur in ``text`` as substrings (case-insensitive by default)."""
    hay = text if case_sensitive else text.lower()
    found = [k for k in keywords if (k if case_sensitive else k.lower()) in hay]
    return {
        "keyword_score": len(found) / len(keywords) if keywords else None,
        "keywords_found": found,
        "keywords_missing": [k for k in keywords if k not in found],
    }


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
