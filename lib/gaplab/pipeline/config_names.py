"""Study and phase names, deep merge and grid expansion (the parts of a study file that make phases).

Split from :mod:`gaplab.pipeline.config`, which loads and validates a study with them.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import re
from typing import Any, Optional

from .runs import STUDY_LEVEL_NAMES

#: a study or phase name: it names a folder, so letters, digits, ``_ - .`` and nothing after them (``\\Z``:
#: ``$`` would let a trailing newline through)
PHASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


#: the longest name a folder gets (file systems allow 255 bytes; staging adds a suffix)
MAX_NAME = 200


def name_problem(name: Any, what: str = "phase") -> Optional[str]:
    """Why ``name`` cannot name a study or phase folder, or None when it can."""
    allowed = f"allowed: letters, digits, '_', '-' or '.', starting with a letter or digit, at most {MAX_NAME} long"
    if not isinstance(name, str) or not PHASE_NAME.match(name) or len(name) > MAX_NAME:
        return f"{allowed} (it names a folder)"
    if what == "phase" and name.casefold() in {n.casefold() for n in STUDY_LEVEL_NAMES}:
        return (
            f"{name!r} is the name of a study-level file or folder in outputs/<study>/ "
            f"({', '.join(STUDY_LEVEL_NAMES)}); allowed: any other name"
        )
    return None


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# --------------------------------------------------------------------------- merging
def deep_merge(base: dict, override: Optional[dict]) -> dict:
    """Return ``base`` with ``override`` merged in; nested dicts merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) and value >= 1000:
        for div, suffix in ((1_000_000, "M"), (1000, "k")):
            if value % div == 0 or value >= div * 10:
                return f"{value / div:g}{suffix}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _grid_label(key: str) -> str:
    return {"data.max_tokens": "d", "data.max_train_tokens": "d", "train.max_iters": "it", "train.epochs": "ep"}.get(
        key, key.split(".")[-1]
    )


def expand_grid(grid: dict[str, list]) -> list[tuple[str, dict]]:
    """Expand ``{key.path: [values]}`` into ``(phase_name, overrides)`` pairs, in order.

    ``model: [small, medium]`` names a size; other keys are dotted paths.
    """
    keys = list(grid)
    out = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        parts, overrides = [], {}
        for key, value in zip(keys, combo):
            if key == "model":
                parts.append(str(value))
                overrides = deep_merge(overrides, {"model": value})
                continue
            parts.append(f"{_grid_label(key)}{_format_value(value)}")
            node: dict = {}
            cursor = node
            path = key.split(".")
            for p in path[:-1]:
                cursor[p] = {}
                cursor = cursor[p]
            cursor[path[-1]] = value
            overrides = deep_merge(overrides, node)
        out.append(("_".join(parts), overrides))
    return out
