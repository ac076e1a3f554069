"""Which part of the standard library looks most like a given code corpus.

Seed 003 trained on its own ChromaDB code (31 Python files, 23,028 GPT-2 tokens, 971 distinct tokens,
129 functions); that corpus is not available, so gaplab's seed study needs a stand-in.  The standard
library's packages are real code on every machine.  :func:`python_corpus_stats` measures a set of files
the way the seed did, and :func:`closest_stdlib_package` picks the package (or subpackage) whose
statistics are closest, by the sum of absolute log ratios over the four numbers — so a package with twice
the files counts as far off as one with half — among packages with at least the seed's tokens (so every
phase can train on the seed's data sizes and still keep a validation set).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

from .corpus import TEST_DIRS, read_text_file, stdlib_dir, stdlib_files

#: seed 003's "Dataset Information" table (/work/shared/seeds/003_7affd2229c5bafc6.txt, lines 47-56)
SEED003_CORPUS = {"files": 31, "tokens": 23_028, "unique_tokens": 971, "functions": 129}
STAT_NAMES = ("files", "tokens", "unique_tokens", "functions")


def count_functions(text: str) -> int:
    """``def`` and ``async def`` statements in Python source (0 if it does not parse)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return 0
    return sum(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(tree))


def python_corpus_stats(texts: Iterable[str], tokenizer) -> dict[str, int]:
    """``files, tokens, unique_tokens, functions`` of Python sources, tokens counted with ``tokenizer``."""
    files = tokens = functions = 0
    unique: set[int] = set()
    for text in texts:
        ids = tokenizer.encode(text)
        files += 1
        tokens += len(ids)
        unique.update(ids)
        functions += count_functions(text)
    return {"files": files, "tokens": tokens, "unique_tokens": len(unique), "functions": functions}


def distance(stats: dict[str, int], target: dict[str, int]) -> float:
    """Sum over the four numbers of |log(ours / target)|: 0 is identical; ln 2 per number twice off."""
    return sum(abs(math.log(max(1, stats[k]) / max(1, target[k]))) for k in STAT_NAMES)


def stdlib_packages() -> list[str]:
    """Every package and subpackage of the standard library (dotted names), test folders excluded."""
    root = stdlib_dir()
    out = []
    for init in sorted(root.rglob("__init__.py")):
        rel = init.parent.relative_to(root)
        if rel.parts and not set(rel.parts) & TEST_DIRS:
            out.append(".".join(rel.parts))
    return out


def closest_stdlib_package(
    tokenizer, target: Optional[dict[str, int]] = None, max_tokens_factor: float = 20.0
) -> list[tuple[float, str, dict[str, int]]]:
    """Stdlib packages ranked by :func:`distance` to ``target`` (default: seed 003's corpus), closest first.

    Only packages with at least the target's tokens qualify.  Packages whose source is more than
    ``max_tokens_factor`` times the target's size in bytes (about 4 bytes per token) are skipped before
    tokenizing, which keeps the search to seconds.
    """
    target = dict(target or SEED003_CORPUS)
    budget = target["tokens"] * 4 * max_tokens_factor
    ranked = []
    for name in stdlib_packages():
        items = stdlib_files([name])
        if sum(p.stat().st_size for _, p in items) > budget:
            continue
        texts = [t for t, _ in (read_text_file(Path(p)) for _, p in items) if t is not None]
        stats = python_corpus_stats(texts, tokenizer)
        if stats["tokens"] >= target["tokens"]:
            ranked.append((distance(stats, target), name, stats))
    return sorted(ranked, key=lambda r: r[0])


def stats_beside_seed(stats: dict[str, int], name: str) -> str:
    """One sentence: our corpus's four numbers beside seed 003's."""
    ours = ", ".join(f"{stats[k]:,} {k.replace('_', ' ')}" for k in STAT_NAMES)
    seed = ", ".join(f"{SEED003_CORPUS[k]:,} {k.replace('_', ' ')}" for k in STAT_NAMES)
    return f"Corpus {name}: {ours} (GPT-2 tokens); seed 003's ChromaDB code: {seed}."
