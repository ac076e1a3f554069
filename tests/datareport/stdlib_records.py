"""Fine-tuning records made from real text at test time: the running interpreter's standard library.

- :func:`docstring_code`: (docstring, function source) pairs of a stdlib module's functions, read with
  ``ast``: a prompt ("what this function does") and its answer (the code).
- :func:`module_topics`: (module name, first line of its docstring) for stdlib modules: the topics seed
  000's filler generator swapped into a handful of answer skeletons.
Nothing here is committed text: it is read from the interpreter's own files on every run.
"""

from __future__ import annotations

import ast
import sysconfig
import textwrap
from functools import cache
from pathlib import Path

from gaplab.data.corpus import Document

STDLIB = Path(sysconfig.get_paths()["stdlib"])


@cache
def docstring_code(module: str) -> tuple[tuple[str, str], ...]:
    """``(first docstring paragraph, source without the docstring)`` of every documented function of a
    stdlib module or package, in file order."""
    root = STDLIB / module
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root.with_suffix(".py")]
    pairs = []
    for path in files:
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            doc = ast.get_docstring(node)
            if not doc or len(doc) < 20:
                continue
            body = node.body[0]
            code = lines[node.lineno - 1 : body.lineno - 1] + lines[body.end_lineno : node.end_lineno]
            pairs.append((" ".join(doc.split("\n\n")[0].split()), textwrap.dedent("\n".join(code))))
    return tuple(pairs)


def records(modules: list[str], per_module: int = 10_000, kind: str = "") -> list[Document]:
    """Docstring → code records of these modules (at most ``per_module`` each), source = module."""
    out = []
    for module in modules:
        for k, (doc, code) in enumerate(docstring_code(module)[:per_module]):
            out.append(
                Document(
                    text=f"{doc}\n{code}",
                    source=kind or module,
                    name=f"{module}:{k}",
                    prompt=doc,
                    answer=code,
                )
            )
    return out


def module_topics(limit: int = 80) -> list[tuple[str, str]]:
    """(module name, first line of its docstring) of the stdlib's top-level modules, in name order."""
    out = []
    for path in sorted(STDLIB.glob("*.py")):
        try:
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        except (SyntaxError, UnicodeDecodeError):
            continue
        if doc and not path.stem.startswith("_"):
            line = doc.strip().splitlines()[0].strip().rstrip(".")
            if 10 <= len(line) <= 100:
                out.append((path.stem, line))
        if len(out) >= limit:
            break
    return out
