"""The errors a person can fix: every one names the file, the key or line, the value and what is allowed.

:class:`UsageError` is the base of everything caused by input (a study file, a data file, a checkpoint,
a missing tokenizer): the command line prints its message as one sentence and exits with code 2, never
a traceback.  Each room raises its own subclass, defined here so that the command line and the rooms
agree on one list.
"""

from __future__ import annotations

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


MISSING = object()
#: the longest value (as repr) a message prints whole; longer ones are cut, so a huge value never floods
SHOW_LIMIT = 80


def show_value(value: Any) -> str:
    """A value for an error message: its repr, cut to :data:`SHOW_LIMIT` characters."""
    if value is MISSING:
        return "(missing)"
    text = repr(value)
    return text if len(text) <= SHOW_LIMIT else text[: SHOW_LIMIT - 3] + "..."
