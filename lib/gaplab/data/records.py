"""Fine-tuning records, read by their content rather than their file name: one reader per format.

Formats (:func:`sniff_format`, from the file's first bytes): ``parquet`` (the ``PAR1`` magic), ``json``
(a JSON array of records, read element by element), ``jsonl`` (one JSON object per line), ``csv`` and
``tsv`` (a header row of names, then rows with as many values), and ``text`` (anything else: the whole
file is one record).

Record kinds (:func:`guess_kind`, from the first record's keys):

- ``chat``: ``messages`` (or ShareGPT's ``conversations``), a list of turns ``{"role", "content"}``
  (``{"from", "value"}``).  Every system, user and tool turn goes on the prompt side, every assistant
  turn on the answer side, each side its turns in order joined by newlines; a multi-turn conversation is
  one record whose answer is all its assistant turns.
- ``alpaca``: ``instruction`` and ``output`` (``input`` optional): instruction + input is the prompt.
- ``prompt_completion``, ``question_answer``: the two fields are the two sides.
- ``text``: one ``text`` field, no sides.
- ``fields``: the fields a study or ``--fields`` names, joined by newlines (or by the template): all but
  the last are the prompt, the last is the answer.

A document's text is the record's contents, sides in order joined by newlines, never its JSON keys; a
``template`` (``str.format`` over the record's top-level fields and ``{prompt}``, ``{answer}``) overrides
it.  Files are read as they go, never whole.  A broken record (a line that is not JSON, a chat turn
without ``content``, a record without the kind's fields, a csv row with more or fewer values than the
header) is a :class:`BadRecord` naming the file and line; :func:`read_records` raises it as a
:class:`gaplab.errors.DataError`, or skips and counts it with ``bad_records="skip"``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import DataError
from .documents import Corpus, Document

FORMATS = ("jsonl", "json", "csv", "tsv", "parquet", "text")
#: the record kinds by the fields that make them, in the order they are tried
KIND_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("chat", ("messages",)),
    ("chat", ("conversations",)),
    ("alpaca", ("instruction", "output")),
    ("prompt_completion", ("prompt", "completion")),
    ("question_answer", ("question", "answer")),
    ("text", ("text",)),
)
ANSWER_ROLES = frozenset({"assistant", "gpt", "model", "bot"})
ALLOWED_FORMATS = "allowed: jsonl, a JSON array of records, csv or tsv with a header row, parquet, or plain text"
ALLOWED_KINDS = (
    "allowed: chat 'messages', alpaca 'instruction'/'input'/'output', 'prompt'/'completion', "
    "'question'/'answer' or 'text' records, or name the fields with --fields (data.fields)"
)
_SNIFF_BYTES = 1 << 16
_NOT_SPACE = re.compile(r"\S")
#: a column name in a csv/tsv header: a short name without leading or trailing spaces
_NAME = re.compile(r"[\w.\-]([\w .\-]{0,62}[\w.\-])?")
_CHUNK = 1 << 20


class BadRecord(Exception):
    """A record that is an error, or a counted skip with ``bad_records: skip``."""


@dataclass(frozen=True)
class RecordShape:
    """What the reader guessed (or was told) about a file: its format, record kind and fields."""

    format: str
    kind: str
    fields: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.format}, {self.kind} records ({', '.join(self.fields)})"


# --------------------------------------------------------------------------- formats
def sniff_format(path: Path) -> str:
    """The file's format, from its first 64 KiB (see the module docstring); a missing or empty file is an error."""
    if not path.is_file():
        raise DataError(f"{path}: no such file; {ALLOWED_FORMATS}")
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if head.startswith(b"PAR1"):
        return "parquet"
    text = head.decode("utf-8-sig", errors="replace").lstrip()
    if not text.strip():
        raise DataError(f"{path}: the file is empty (no records); {ALLOWED_FORMATS}")
    if text.startswith("["):
        return "json"
    if text.startswith("{"):
        return "jsonl"
    lines = text.splitlines()
    whole = len(head) < _SNIFF_BYTES
    for delimiter, name in (("\t", "tsv"), (",", "csv")):
        if _looks_tabular(lines, delimiter, whole):
            return name
    return "text"


def _looks_tabular(lines: list[str], delimiter: str, whole: bool) -> bool:
    """A header of two or more distinct short names, and every row of the sample with as many values (but
    the last, when the sample is not the whole file)."""
    header = next(csv.reader(lines[:1], delimiter=delimiter), [])
    names = [h.strip() for h in header]
    if len(set(names)) < 2 or len(set(names)) != len(names) or not all(_NAME.fullmatch(h) for h in header):
        return False
    try:
        rows = [r for r in csv.reader(io.StringIO("\n".join(lines[1:])), delimiter=delimiter) if r]
    except csv.Error:
        return False
    full = rows if whole else rows[:-1]
    return bool(full) and all(len(r) == len(names) for r in full)


def _open_text(path: Path, newline: Optional[str] = None):
    if not path.is_file():
        raise DataError(f"{path}: no such file; {ALLOWED_FORMATS}")
    return open(path, encoding="utf-8-sig", newline=newline)


def _jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    with _open_text(path) as handle:
        for i, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield f"{path}:{i}", json.loads(line)
            except json.JSONDecodeError as exc:
                yield (
                    f"{path}:{i}",
                    BadRecord(
                        f"{path}:{i}: line is not JSON ({exc.msg} at column {exc.colno}): {line[:60]!r}; "
                        f"allowed: one JSON object per line"
                    ),
                )


class _ArrayReader:
    """A JSON array's elements, decoded as the file is read 1 MiB at a time, each with its line number."""

    def __init__(self, handle, path: Path):
        self.handle, self.path, self.buf, self.pos, self.line, self.eof = handle, path, "", 0, 1, False
        self.decoder = json.JSONDecoder()

    def _more(self, at_least: int = 0) -> bool:
        chunk = self.handle.read(max(at_least, _CHUNK))
        self.eof = not chunk
        self.buf, self.pos = self.buf[self.pos :] + chunk, 0
        return bool(chunk)

    def _advance(self, end: int) -> None:
        self.line += self.buf.count("\n", self.pos, end)
        self.pos = end

    def peek(self) -> str:
        """The next character that is not white space ("" at the end of the file)."""
        while True:
            found = _NOT_SPACE.search(self.buf, self.pos)
            if found:
                self._advance(found.start())
                return self.buf[self.pos]
            self._advance(len(self.buf))
            if not self._more():
                return ""

    def take(self) -> None:
        self._advance(self.pos + 1)

    def decode(self) -> Any:
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
                if end < len(self.buf) or self.eof:
                    self._advance(end)
                    return value
            except json.JSONDecodeError as exc:
                if self.eof:
                    raise DataError(
                        f"{self.path}:{self.line}: the JSON array breaks here ({exc.msg}); "
                        f"allowed: a JSON array of objects"
                    ) from None
            self._more(len(self.buf))

    def elements(self) -> Iterator[tuple[str, Any]]:
        if self.peek() != "[":
            raise DataError(f"{self.path}:{self.line}: not a JSON array; {ALLOWED_FORMATS}")
        self.take()
        if self.peek() == "]":
            return
        while True:
            where = f"{self.path}:{self.line}"
            yield where, self.decode()
            after = self.peek()
            if after == "]":
                return
            if after != ",":
                raise DataError(
                    f"{where}: the JSON array breaks after this record ({after or 'end of file'!r} where ',' or ']' "
                    f"belongs); allowed: a JSON array of objects"
                )
            self.take()
            self.peek()


def _json_array(path: Path) -> Iterator[tuple[str, Any]]:
    with _open_text(path) as handle:
        yield from _ArrayReader(handle, path).elements()


def _tabular(path: Path, delimiter: str) -> Iterator[tuple[str, Any]]:
    """``(where, record or BadRecord)`` for each csv/tsv row; a row must have as many values as the header."""
    old = csv.field_size_limit()
    csv.field_size_limit(max(old, 2**31 - 1))  # a long answer is data, not an error
    try:
        with _open_text(path, newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            try:
                yield from _tabular_rows(path, reader)
            except csv.Error as exc:
                raise DataError(
                    f"{path}:{reader.line_num}: not valid csv ({exc}); allowed: a csv file with a header row"
                ) from None
    finally:
        csv.field_size_limit(old)


def _tabular_rows(path: Path, reader) -> Iterator[tuple[str, Any]]:
    header = next(reader, None)
    if header is None:
        return
    line = reader.line_num
    for row in reader:
        where, line = f"{path}:{line + 1}", reader.line_num
        if not any(v.strip() for v in row):
            continue
        if len(row) != len(header):
            yield (
                where,
                BadRecord(
                    f"{where}: the row has {len(row)} value{'s' if len(row) != 1 else ''} but the header "
                    f"has {len(header)} ({', '.join(header)}); allowed: one value per column (quote values "
                    f"that contain commas or line breaks)"
                ),
            )
            continue
        yield where, dict(zip(header, row))


def _parquet(path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises its own errors for a broken file
        raise DataError(f"{path}: not a readable parquet file ({exc}); {ALLOWED_FORMATS}") from None
    row = 0
    for batch in table.iter_batches(batch_size=2048):
        for record in batch.to_pylist():
            row += 1
            yield f"{path}: row {row}", record


def _text(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        with _open_text(path) as handle:
            yield str(path), {"text": handle.read()}
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); {ALLOWED_FORMATS}") from None


def raw_records(path: Path, fmt: str) -> Iterator[tuple[str, Any]]:
    """``(where, record)`` for each record of a file in ``fmt``; a broken one is a :class:`BadRecord`."""
    readers: dict[str, Callable[[], Iterator[tuple[str, Any]]]] = {
        "jsonl": lambda: _jsonl(path),
        "json": lambda: _json_array(path),
        "csv": lambda: _tabular(path, ","),
        "tsv": lambda: _tabular(path, "\t"),
        "parquet": lambda: _parquet(path),
        "text": lambda: _text(path),
    }
    try:
        for where, record in readers[fmt]():
            if not isinstance(record, (dict, BadRecord)):
                record = BadRecord(f"{where}: a JSON {type(record).__name__} where a JSON object is required")
            yield where, record
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start} of a block); {ALLOWED_FORMATS}") from None


# --------------------------------------------------------------------------- kinds
def guess_kind(record: dict, where: str) -> tuple[str, tuple[str, ...]]:
    """The record kind and its fields, from the keys of ``record`` (see the module docstring)."""
    for kind, needed in KIND_FIELDS:
        if all(f in record for f in needed):
            return kind, ("instruction", "input", "output") if kind == "alpaca" else needed
    raise DataError(f"{where}: the record has fields {sorted(record)} but none of the known kinds; {ALLOWED_KINDS}")


def _value(value: Any) -> str:
    """A field's value as text: strings as they are, objects and lists as JSON, nothing as empty."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _turn_text(content: Any) -> str:
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "\n".join(_value(p.get("text")) if isinstance(p, dict) else _value(p) for p in content)
    return _value(content)


def _chat_sides(turns: Any, key: str, where: str) -> tuple[str, str, list[str]]:
    allowed = 'allowed: turns such as {"role": "user", "content": "..."}'
    if not isinstance(turns, list):
        raise BadRecord(f"{where}: {key!r} is a {type(turns).__name__}; {allowed}")
    prompt, answer, contents = [], [], []
    for i, turn in enumerate(turns):
        if type(turn) is dict and "from" not in turn and type(turn.get("content")) is str and "role" in turn:
            role, text = turn["role"], turn["content"]  # the common turn, read without the general checks
        else:
            role, text = _turn(turn, key, i, where, allowed)
        (answer if str(role).lower() in ANSWER_ROLES else prompt).append(text)
        contents.append(text)
    return "\n".join(prompt), "\n".join(answer), [c for c in contents if c]


def _turn(turn: Any, key: str, i: int, where: str, allowed: str) -> tuple[Any, str]:
    """A chat turn's role and text (``role``/``content`` or ``from``/``value``), or why it is a bad record."""
    if not isinstance(turn, dict):
        raise BadRecord(f"{where}: {key}[{i}] is a {type(turn).__name__}; {allowed}")
    role_key, content_key = ("from", "value") if "from" in turn else ("role", "content")
    for needed in (role_key, content_key):
        if needed not in turn:
            raise BadRecord(f"{where}: {key}[{i}] has no {needed!r} (it has {sorted(turn)}); {allowed}")
    return turn[role_key], _turn_text(turn[content_key])


def record_sides(record: dict, shape: RecordShape, where: str) -> tuple[Optional[str], Optional[str], list[str]]:
    """``(prompt, answer, parts)``: the record's two sides (None without roles) and its contents in order."""
    missing = [f for f in shape.fields if f not in record and not (shape.kind == "alpaca" and f == "input")]
    if missing:
        guessed = "" if shape.kind == "fields" else f" ({shape.kind} records, guessed from the first record)"
        raise BadRecord(f"{where}: missing field {missing[0]!r}{guessed}; the record has fields {sorted(record)}")
    if shape.kind == "chat":
        return _chat_sides(record[shape.fields[0]], shape.fields[0], where)
    values = [_value(record.get(f)) for f in shape.fields]
    if shape.kind == "text":
        return None, None, values
    if shape.kind == "alpaca":
        prompt = "\n".join(v for v in values[:2] if v)
        return prompt, values[2], [prompt, values[2]]
    if len(values) < 2:
        return None, None, values
    return "\n".join(values[:-1]), values[-1], values


def record_document(record: dict, shape: RecordShape, template: Optional[str], where: str, label: str) -> Document:
    """One :class:`Document` from a record: its contents (or the template filled), its sides, its label."""
    prompt, answer, parts = record_sides(record, shape, where)
    if template:
        values = {k: _value(v) for k, v in record.items()}
        values.update(prompt=prompt or "", answer=answer or "")
        try:
            text = template.format(**values)
        except (KeyError, IndexError, ValueError) as exc:
            raise DataError(
                f"data.template = {template!r} cannot be filled at {where} ({type(exc).__name__}: {exc}); "
                f"allowed: placeholders among the record's fields {sorted(record)}, {{prompt}} and {{answer}}"
            ) from None
    else:
        text = "\n".join(parts)
    return Document(text, label, where.rsplit("/", 1)[-1], prompt=prompt, answer=answer)


# --------------------------------------------------------------------------- reading
@dataclass
class RecordOptions:
    """How to read records: the format (None: by content), the fields (None: by the first record), the
    template, the label field, what to do with a bad record, and when to stop (see :func:`read_records`)."""

    fmt: Optional[str] = None
    fields: tuple[str, ...] = ()
    template: Optional[str] = None
    label_field: Optional[str] = None
    bad_records: str = "error"
    stop: Optional[Callable[[Document], bool]] = None


def _label(record: dict, options: RecordOptions, default: str, where: str) -> str:
    if not options.label_field:
        return default
    if options.label_field not in record:
        raise BadRecord(
            f"{where}: missing label field {options.label_field!r} (data.label_field); "
            f"the record has fields {sorted(record)}"
        )
    return _value(record[options.label_field])


def read_records(path: Path, options: RecordOptions, label: Optional[str] = None) -> tuple[Corpus, RecordShape]:
    """Every record of one file as a document labelled ``label`` (default: the file's stem), and its shape."""
    fmt = options.fmt or sniff_format(path)
    label = label if label is not None else path.stem
    shape = RecordShape(fmt, "fields", tuple(options.fields)) if options.fields else None
    docs, skipped = [], []
    for where, record in raw_records(path, fmt):
        try:
            if isinstance(record, BadRecord):
                raise record
            if shape is None:
                shape = RecordShape(fmt, *guess_kind(record, where))
            docs.append(record_document(record, shape, options.template, where, _label(record, options, label, where)))
        except BadRecord as exc:
            if options.bad_records != "skip":
                raise DataError(f"{exc} (data.bad_records: skip would skip such records and count them)") from None
            skipped.append((where.rsplit("/", 1)[-1], str(exc).replace(f"{where}: ", "", 1)))
            continue
        if options.stop is not None and options.stop(docs[-1]):
            return Corpus(docs, skipped, complete=False, shape=shape.describe()), shape
    if shape is None:
        why = f" ({len(skipped)} skipped: {skipped[0][1]})" if skipped else ""
        raise DataError(f"{path}: the file has no records{why}; {ALLOWED_FORMATS}")
    return Corpus(docs, skipped, shape=shape.describe()), shape


def side_files(path: Path, glob: str = "**/*") -> list[tuple[str, Path]]:
    """``(label, file)`` for a file (its name) or a folder (each file under it, by its path inside; hidden
    files and folders left out), in sorted order."""
    if path.is_file():
        return [(path.name, path)]
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder; {ALLOWED_FORMATS}")
    files = sorted(
        p for p in path.glob(glob) if p.is_file() and not any(x.startswith(".") for x in p.relative_to(path).parts)
    )
    if not files:
        raise DataError(f"{path}: the folder has no files matching {glob!r}; {ALLOWED_FORMATS}")
    return [(str(p.relative_to(path)), p) for p in files]


def same_shape_problem(first: tuple[Path, RecordShape], other: tuple[Path, RecordShape]) -> Optional[str]:
    """One sentence when two files hold records of another format or kind, else None."""
    (path_a, a), (path_b, b) = first, other
    if (a.format, a.kind) == (b.format, b.kind):
        return None
    return (
        f"{path_b} holds {b.describe()} but {path_a} holds {a.describe()}; allowed: one format and one kind of "
        f"record on both sides (convert one file, or name the fields with --fields to read both alike)"
    )


def read_side(path: Path, options: RecordOptions, glob: str = "**/*") -> tuple[Corpus, RecordShape]:
    """Every record of a file or a folder of files (one format and kind throughout), each labelled by its file."""
    docs: list[Document] = []
    skipped: list[tuple[str, str]] = []
    first: Optional[tuple[Path, RecordShape]] = None
    for label, file in side_files(path, glob):
        corpus, shape = read_records(file, options, label)
        problem = same_shape_problem(first, (file, shape)) if first else None
        if problem:
            raise DataError(problem)
        first = first or (file, shape)
        docs.extend(corpus.documents)
        skipped.extend(corpus.skipped)
        if not corpus.complete:
            return Corpus(docs, skipped, complete=False, shape=first[1].describe()), first[1]
    assert first is not None  # side_files returns at least one file
    return Corpus(docs, skipped, shape=first[1].describe()), first[1]
