"""Checks: each measured share against its thresholds (ok / warn / fail), and stopping on ``data.fail_on``.

A measured value at or above ``warn`` warns, at or above ``fail`` fails; a measured 0 is always ok.  The
defaults are :data:`DEFAULT_CHECKS`; a study overrides them key by key in ``data.checks``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

from .check import CheckResult
from .check_list import BY_NAME, CHECK_NAMES, CHECKS

#: Default thresholds, from :data:`gaplab.datareport.check_list.CHECKS`.  A measured value at or above
#: ``warn`` warns, at or above ``fail`` fails; a measured 0 is always ok; ``None`` disables that level.
DEFAULT_CHECKS: dict[str, dict[str, Optional[float]]] = {c.name: {"warn": c.warn, "fail": c.fail} for c in CHECKS}

#: What each check's value measures (shown with the thresholds), from the same list.
CHECK_MEANING: dict[str, str] = {c.name: c.meaning for c in CHECKS}


class DataCheckFailed(RuntimeError):
    """A check named in ``data.fail_on`` failed; training must not start."""

    def __init__(self, message: str, failed: list[dict[str, Any]]):
        super().__init__(message)
        self.failed = failed


# --------------------------------------------------------------------------- checks
def _thresholds(checks: Optional[Mapping[str, Any]]) -> dict[str, dict[str, Optional[float]]]:
    out = {k: dict(v) for k, v in DEFAULT_CHECKS.items()}
    for name, th in (checks or {}).items():
        if name not in BY_NAME:
            raise ValueError(f"data.checks.{name}: unknown check; allowed: {', '.join(CHECK_NAMES)}")
        if hasattr(th, "model_dump"):  # gaplab.schema.Threshold: only the keys the study set
            given = th.model_dump(exclude_unset=True)
        elif isinstance(th, Mapping):
            given = dict(th)
        else:
            raise ValueError(f"data.checks.{name} = {th!r}: allowed: a mapping with warn and/or fail")
        for key in given:
            if key not in ("warn", "fail"):
                raise ValueError(f"data.checks.{name}.{key}: unknown key; allowed: warn, fail")
        out[name].update(given)
    return out


def run_checks(
    report: Mapping[str, Any], checks: Optional[Mapping[str, Any]] = None, fail_on: Sequence[str] = ()
) -> list[CheckResult]:
    """One :class:`CheckResult` per check of :data:`gaplab.datareport.check_list.CHECKS`, in its order.

    ``checks`` (a study's ``data.checks``) overrides each check's default thresholds key by key.  Status:
    ``fail`` if value ≥ fail, else ``warn`` if value ≥ warn, else ``ok``; a value of 0, or a check that
    could not be measured, is ok.  ``in_fail_on`` marks the checks that stop the pipeline when they fail.
    """
    bad = [n for n in fail_on if n not in BY_NAME]
    if bad:
        raise ValueError(f"data.fail_on: unknown check(s) {bad}; allowed: {', '.join(CHECK_NAMES)}")
    limits = _thresholds(checks)
    return [c.evaluate(report, limits[c.name]["warn"], limits[c.name]["fail"], c.name in fail_on) for c in CHECKS]


def evaluate_checks(
    report: Mapping[str, Any], checks: Optional[Mapping[str, Any]] = None, fail_on: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """:func:`run_checks` as the JSON rows of ``data_report.json``'s ``checks`` (:class:`CheckResult`'s fields:
    name, status, value, warn, fail, message, detail, meaning, in_fail_on)."""
    return [row.to_json() for row in run_checks(report, checks, fail_on)]


def failed_checks(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The checks that failed and are named in the report's ``fail_on``."""
    fail_on = set(report.get("fail_on", []))
    return [c for c in report.get("checks", []) if c["status"] == "fail" and c["name"] in fail_on]


def raise_on_failures(report: Mapping[str, Any]) -> None:
    """Raise :class:`DataCheckFailed` if a check listed in ``data.fail_on`` failed."""
    failed = failed_checks(report)
    if not failed:
        return
    rows = [CheckResult.from_json(c) for c in failed]  # the report's rows, read as their record
    lines = [
        f"  - {r.name}: measured {r.value:.4g} ≥ fail threshold {r.fail:g} "
        f"({r.meaning or CHECK_MEANING.get(r.name, '')}): {r.detail or r.message}"
        for r in rows
    ]
    raise DataCheckFailed(
        f"{len(failed)} data check{'s' if len(failed) != 1 else ''} named in data.fail_on failed, so training "
        "will not start:\n"
        + "\n".join(lines)
        + "\nFix the data, raise the threshold in data.checks, or remove the name from data.fail_on.",
        failed,
    )
