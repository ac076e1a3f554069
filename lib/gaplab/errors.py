"""The errors a person can fix: every one names the file, the key or line, the value and what is allowed.

:class:`UsageError` is the base of everything caused by input (a study file, a data file, a checkpoint,
a missing tokenizer): the command line prints its message as one sentence and exits with code 2, never
a traceback.  Each room raises its own subclass, defined here so that the command line and the rooms
agree on one list.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from typing import Any, Optional


class UsageError(ValueError):
    """Bad input: the message says which file, key or line, the value, and what is allowed."""


@dataclass
class Problem:
    """One problem in a study file: where (file, phase, key), the value found and what is allowed."""

    file: str
    phase: Optional[str]
    key: str
    value: Any
    message: str

    def __str__(self) -> str:
        where = f"phase {self.phase!r}, " if self.phase else ""
        return f"{self.file}: {where}{self.key} = {show_value(self.value)}: {self.message}"


class StudyError(UsageError):
    """Every problem found in a study file, reported together."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        head = f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in the study:"
        super().__init__("\n".join([head] + [f"  - {p}" for p in problems]))


class DataError(UsageError):
    """Bad data input; the message names the file, line or key and what is allowed."""


class TokenizerError(UsageError):
    """The tokenizer cannot be built; the message says what to do."""


class ValidatorError(UsageError):
    """A validator spec that cannot be loaded, or a validator that returned something other than problems."""


class TrainingError(UsageError):
    """Training cannot start or resume; the message says why and what to change."""


class CheckpointError(UsageError):
    """A checkpoint file that cannot be read (empty, truncated, not a gaplab checkpoint)."""


class CorruptFileError(UsageError):
    """A file gaplab wrote (status.json, metrics.json, ...) that no longer reads; the message names it."""


class StudyLocked(UsageError):
    """Another gaplab command holds the study folder's lock; the message says who, since when, and ``--wait``."""


MISSING = object()
#: the longest value (as repr) a message prints whole; longer ones are cut, so a huge value never floods
SHOW_LIMIT = 80


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxset = 3, 4, 6, 6, 6
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = SHOW_LIMIT, SHOW_LIMIT, 40


def show_value(value: Any) -> str:
    """A value for an error message: its repr, cut to :data:`SHOW_LIMIT` characters.

    Built with :mod:`reprlib` (a few levels and items of a container, never the whole), so a huge
    value, or one that YAML aliases make exponentially large, costs no more than a small one.
    """
    if value is MISSING:
        return "(missing)"
    text = _SHORT.repr(value)
    return text if len(text) <= SHOW_LIMIT else text[: SHOW_LIMIT - 3] + "..."
