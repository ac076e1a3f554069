"""Reading a study file: ``yaml.safe_load`` that refuses what would make the loader or later steps blow up.

A YAML file can be small and still expand to billions of values: anchors and aliases share nodes, and a
few levels of aliases of aliases (the "billion laughs") make every later step that walks the data (the
merge of defaults, validation, fingerprints, an error message) exponentially slow.  :func:`read_yaml`
composes the file, counts what its aliases would add once expanded (linear in the file's size) and
refuses a file over :data:`MAX_ALIAS_NODES`, an alias inside its own anchor, or nesting too deep to read,
each with one sentence naming the file.  Only then is the document built, with PyYAML's safe loader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import Problem, StudyError

#: a study file whose YAML aliases expand to more than this many extra nodes is refused (an alias bomb:
#: 9 anchors of 9 aliases each expand to 9**9 nodes)
MAX_ALIAS_NODES = 100_000


def _alias_expansion(root: Any) -> int:
    """How many nodes the YAML aliases under ``root`` add when expanded (-1 for a recursive alias).

    Computed on the composed node graph, once per distinct node, so it is linear in the file's size
    even when the expansion is exponential.
    """
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        kids = (
            [x for pair in node.value for x in pair]
            if isinstance(node, yaml.MappingNode)
            else list(node.value)
            if isinstance(node, yaml.SequenceNode)
            else []
        )
        if closing:
            open_.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(k)] for k in kids)
            continue
        if id(node) in sizes:
            continue
        open_.add(id(node))
        stack.append((node, True))
        for k in kids:
            if id(k) in open_:
                return -1
            if id(k) not in sizes:
                stack.append((k, False))
    return sizes[id(root)] - len(sizes)


def read_yaml(path: Path, key: str = "(file)") -> Any:
    """``yaml.safe_load`` of a study file, refusing alias bombs, recursive aliases and runaway nesting."""
    file = str(path)
    if not path.is_file():
        raise StudyError([Problem(file, None, key, file, "no such study file")])
    try:
        loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
        try:
            node = loader.get_single_node()
            extra = _alias_expansion(node) if node is not None else 0
            if extra < 0 or extra > MAX_ALIAS_NODES:
                what = (
                    "an alias refers to the node that contains it"
                    if extra < 0
                    else f"its aliases expand to {extra:,} more nodes than the file holds"
                )
                raise StudyError(
                    [
                        Problem(
                            file,
                            None,
                            key,
                            path.name,
                            f"refused: {what} (allowed: at most {MAX_ALIAS_NODES:,}; "
                            "a YAML alias bomb, or a file to write without so many aliases)",
                        )
                    ]
                )
            return loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise StudyError(
            [Problem(file, None, key, path.name, f"not valid YAML{where}: {getattr(exc, 'problem', exc)}")]
        ) from None
    except UnicodeDecodeError:
        raise StudyError([Problem(file, None, key, path.name, "not UTF-8 text")]) from None
    except RecursionError:
        raise StudyError(
            [
                Problem(
                    file,
                    None,
                    key,
                    path.name,
                    "nested too deeply to read; allowed: a study of a few levels of mappings and lists",
                )
            ]
        ) from None
