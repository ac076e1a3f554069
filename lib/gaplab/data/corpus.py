"""Corpus sources.  Each document keeps its source label.

Sources (``data.source``):

- ``stdlib``: the running interpreter's standard library source (``data.packages``
  selects packages or modules, in the order given; test folders are excluded;
  files are read in sorted order, so the corpus is the same on every run).
- ``files``: files matching ``data.glob`` under the folder ``data.path``.
- ``text``: one text file, one document.
- ``jsonl`` / ``csv``: one document per record, ``data.fields`` joined by
  ``data.template`` (e.g. ``"Q: {question}\\nA: {answer}"``) or by newlines.
- ``records``: a file or a folder of files of fine-tuning records, format and record kind guessed from
  the content (chat, alpaca, prompt/completion, question/answer, text; :mod:`gaplab.data.records`);
  each document's source is its file's name (or ``data.label_field``'s value).
- ``generated``: ``data.generator`` (``module:function``) called with
  ``data.generator_args``; it returns a list of :class:`Document`.

Binary or undecodable files, and files reached through a symbolic link that
points outside ``data.path``, are skipped and counted (``Corpus.skipped``),
never a crash.  A UTF-8 byte-order mark at the start of a file is dropped, in
every source.  Broken records (a line that is not JSON, a missing field, a csv
row with more or fewer values than the header) are errors that name the file,
the line and the field; with ``data.bad_records: skip`` such a record is
skipped and counted instead.  csv fields may be of any length.

``load_corpus(data, stop=...)`` stops reading as soon as ``stop(document)``
says so (``gaplab.data.split.prepare_data`` stops once ``data.max_tokens`` is
reached): the documents after it are never read.
"""

from __future__ import annotations

import importlib
import re
import sys
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from ..errors import DataError
from .documents import Corpus, Document, fingerprint
from .records import RecordOptions, read_records, read_side

__all__ = ["Corpus", "Document", "fingerprint", "load_corpus", "import_callable", "skipped_summary"]

TEST_DIRS = {"test", "tests", "idle_test", "__pycache__", "site-packages", "dist-packages"}


def read_text_file(path: Path) -> tuple[Optional[str], Optional[str]]:
    """``(text, None)`` or ``(None, reason)`` for binary or undecodable files."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, f"unreadable ({exc.strerror})"
    if b"\0" in raw[:8192]:
        return None, "binary (NUL bytes)"
    try:
        return raw.decode("utf-8-sig"), None  # a leading byte-order mark is not text
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 (byte {exc.start})"


# --------------------------------------------------------------------------- sources
def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(packages: list[str]) -> list[tuple[str, Path]]:
    """``(label, path)`` of stdlib source files, packages in the order given, files sorted."""
    root = stdlib_dir()
    if not packages:
        names = sorted(
            {
                p.stem if p.suffix == ".py" else p.name
                for p in root.iterdir()
                if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())) and p.name not in TEST_DIRS
            }
        )
    else:
        names = list(packages)
    out: list[tuple[str, Path]] = []
    missing = []
    for name in names:
        rel = Path(*name.split("."))
        pkg, mod = root / rel, (root / rel).with_suffix(".py")
        if pkg.is_dir():
            files = sorted(p for p in pkg.rglob("*.py") if not (set(p.relative_to(root).parts[:-1]) & TEST_DIRS))
            out.extend((name, p) for p in files)
        elif mod.is_file():
            out.append((name, mod))
        else:
            missing.append(name)
    if missing:
        import difflib

        avail = sorted({p.stem for p in root.glob("*.py")} | {p.name for p in root.iterdir() if p.is_dir()})
        hints = [
            f"{m!r}"
            + (
                f" (did you mean {difflib.get_close_matches(m, avail, 1)[0]!r}?)"
                if difflib.get_close_matches(m, avail, 1)
                else ""
            )
            for m in missing
        ]
        raise DataError(
            f"data.packages: no stdlib package or module named {', '.join(hints)} "
            f"under {root}; allowed: names such as 'json', 'logging', 'email.mime'"
        )
    return out


Stop = Optional[Callable[[Document], bool]]


def _files_documents(root: Path, items: list[tuple[str, Path]], stop: Stop = None) -> Corpus:
    docs, skipped = [], []
    inside = root.resolve()
    for label, path in items:
        name = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        target = path.resolve()
        if not target.is_relative_to(inside):
            skipped.append((name, f"a symbolic link to {target}, outside {inside}"))
            continue
        text, reason = read_text_file(path)
        if text is None:
            skipped.append((name, reason))
        else:
            docs.append(Document(text=text, source=label, name=name))
            if stop is not None and stop(docs[-1]):
                return Corpus(docs, skipped, complete=False)
    return Corpus(docs, skipped)


def _record_documents(data: Any, stop: Stop = None) -> Corpus:
    """``jsonl`` / ``csv``: the named format and ``data.fields``; ``records``: format and kind by content."""
    named = data.source in ("jsonl", "csv")
    options = RecordOptions(
        fmt=data.source if named else None,
        fields=tuple(data.fields),
        template=data.template,
        label_field=data.label_field,
        bad_records=getattr(data, "bad_records", "error"),
        stop=stop,
    )
    path = Path(data.path)
    if named:
        if not path.is_file():
            raise DataError(f"data.path: no such {data.source} file: {path}")
        return read_records(path, options)[0]
    return read_side(path, options, data.glob)[0]


#: modules whose callables a study may never name: the interpreter's own (``os:system``,
#: ``subprocess:run``, ``builtins:exec``, ...) and the script being run
_NEVER_CALLED = frozenset(sys.stdlib_module_names) | frozenset(sys.builtin_module_names) | {"builtins", "__main__"}


def refused_module(module_name: Optional[str]) -> bool:
    """True when ``module_name`` belongs to the standard library or the builtins (never called from a study)."""
    return not module_name or module_name.split(".")[0] in _NEVER_CALLED


def import_callable(spec: str, key: str, error: type = DataError, allowed: Optional[str] = None) -> Callable:
    """The function a study names as ``'package.module:function'`` (a generator, a validator), imported, not called.

    Standard-library and builtin callables are refused by the spec's module and again by the module that
    defines the object (``jupyter_client.launcher:Popen`` is ``subprocess.Popen``), so a study file cannot
    run a shell command, write or delete files through them.  Every other name runs as code when the data
    is prepared; ``gaplab check`` lists them and imports them only to see that they exist.  A bad name
    raises ``error`` (a :class:`gaplab.errors.UsageError`) with one sentence naming ``key``, the spec and
    what is ``allowed``.
    """
    allowed = allowed or "allowed: 'package.module:function' from your own code or gaplab (never the standard library)"
    module_name, sep, attr = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if (
        not sep
        or not module_name
        or not attr
        or not re.fullmatch(r"[A-Za-z_][\w.]*", module_name)
        or not attr.isidentifier()
    ):
        raise error(f"{key}: {spec!r} is not 'module:function'; {allowed}")
    if refused_module(module_name):
        raise error(
            f"{key}: {spec!r}: names the standard library or a builtin ({module_name.split('.')[0]}), "
            f"whose functions a study may not call; {allowed}"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"{key}: {spec!r}: module {module_name!r} does not import ({exc}); {allowed}") from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise error(f"{key}: {spec!r}: module {module_name!r} has no attribute {attr!r}; {allowed}")
    if not callable(fn):
        raise error(f"{key}: {spec!r} is a {type(fn).__name__}, not a function; {allowed}")
    defined_in = getattr(fn, "__module__", None)
    if refused_module(defined_in if isinstance(defined_in, str) else None):
        raise error(
            f"{key}: {spec!r}: it is {defined_in or 'a builtin'}'s {getattr(fn, '__name__', attr)}, "
            f"from the standard library, which a study may not call; {allowed}"
        )
    return fn


def load_corpus(data: Any, stop: Stop = None) -> Corpus:
    """Read the documents a :class:`gaplab.schema.DataConfig` names, with a fingerprint.

    ``stop`` (optional) is called with each document read; when it returns True, reading stops there
    (``Corpus.complete`` is then False and the fingerprint covers the documents read).
    """
    src = data.source
    if src == "stdlib":
        corpus = _files_documents(stdlib_dir(), stdlib_files(list(data.packages)), stop)
    elif src == "files":
        root = Path(data.path)
        if not root.is_dir():
            raise DataError(f"data.path: no such folder: {root}")
        items = [
            (p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else root.name, p)
            for p in sorted(root.glob(data.glob))
            if p.is_file()
        ]
        if not items:
            raise DataError(
                f"data.glob: {data.glob!r} matches no files under {root}; allowed: a glob such as '**/*.py' or '*.txt'"
            )
        corpus = _files_documents(root, items, stop)
    elif src == "text":
        path = Path(data.path)
        if not path.is_file():
            raise DataError(f"data.path: no such text file: {path}")
        corpus = _files_documents(path.parent, [(path.stem, path)])
    elif src in ("jsonl", "csv", "records"):
        corpus = _record_documents(data, stop)
    elif src == "generated":
        fn = import_callable(data.generator, "data.generator")
        docs = fn(**dict(data.generator_args))
        if not isinstance(docs, list) or not all(isinstance(d, Document) for d in docs):
            raise DataError(f"data.generator: {data.generator!r} must return a list of gaplab.data.corpus.Document")
        corpus = Corpus(list(docs))
    else:  # pragma: no cover - the schema allows only the names above
        raise DataError(f"data.source: unknown source {src!r}")
    if not corpus.documents:
        where = data.path or (", ".join(data.packages) if src == "stdlib" else src)
        skipped = f" ({len(corpus.skipped)} skipped: {corpus.skipped[:3]})" if corpus.skipped else ""
        raise DataError(f"data.source {src!r}: the corpus from {where} is empty{skipped}")
    corpus.fingerprint = fingerprint(corpus.documents)
    return corpus


def skipped_summary(corpus: Corpus, limit: int = 3) -> str:
    """One line for a person: how many files or records were skipped and why (empty when none)."""
    if not corpus.skipped:
        return ""
    eg = "; ".join(f"{name}: {reason}" for name, reason in corpus.skipped[:limit])
    more = f"; and {len(corpus.skipped) - limit} more" if len(corpus.skipped) > limit else ""
    return f"{len(corpus.skipped)} skipped ({eg}{more})"
