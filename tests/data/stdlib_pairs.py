"""Real text for the record tests: (docstring, code) pairs of functions in the running interpreter's
standard library, read with ``ast`` at test time (nothing is committed)."""

from __future__ import annotations

import ast
import textwrap

from gaplab.data.corpus import stdlib_dir


def docstring_code_pairs(module: str, limit: int = 40, min_doc: int = 20) -> list[tuple[str, str]]:
    """``(first docstring paragraph, the function's source without its docstring)`` for the functions of a
    stdlib module (a file or a package), in file order."""
    root = stdlib_dir() / module
    files = sorted(root.rglob("*.py")) if root.is_dir() else [root.with_suffix(".py")]
    pairs: list[tuple[str, str]] = []
    for path in files:
        source = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            doc = ast.get_docstring(node)
            if not doc or len(doc) < min_doc:
                continue
            lines = source.splitlines()[node.lineno - 1 : node.end_lineno]
            first, last = node.body[0].lineno - node.lineno, node.body[0].end_lineno - node.lineno
            code = textwrap.dedent("\n".join(lines[:first] + lines[last + 1 :]))
            pairs.append((doc.split("\n\n")[0].strip(), code))
            if len(pairs) >= limit:
                return pairs
    return pairs


def chat(doc: str, code: str) -> dict:
    return {
        "messages": [
            {"role": "system", "content": "You write Python."},
            {"role": "user", "content": doc},
            {"role": "assistant", "content": code},
        ]
    }
