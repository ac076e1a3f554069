"""One data check as one object (:class:`DataCheck`), and the typed row it gives in the report (:class:`CheckResult`).

A check knows its name, its default thresholds, what its value means, whether it needs a validation split,
how its value and its one-sentence detail are read from the data report, and, for a check that brings its
own detector, how it measures its section of the report.  Every check is one instance in
:data:`gaplab.datareport.check_list.CHECKS`; the report's ``checks`` rows, the names ``data.checks`` and
``data.fail_on`` may use, and the docs are built from that list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Optional

#: the report so far (plain JSON: nested dicts), as the check reads it
Report = Mapping[str, Any]


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def plural(n: int, one: str, many: str) -> str:
    return one if n == 1 else many


@dataclass(frozen=True)
class DataCheck:
    """A data check: thresholds, meaning, and how it reads (and, optionally, measures) the report.

    ``value(report)`` is the measured value, or ``None`` when the check could not be measured (then it
    is ``ok`` with the message ``not_measured``); a measured value at or above ``warn`` warns, at or
    above ``fail`` fails, and a measured 0 is always ok (``None`` disables a level).  ``detail(report,
    warn)`` is a sentence that says what was found, with an example.  ``shown`` is how the value is
    written in the message: ``"share"`` (a percentage) or ``"number"`` (two decimals).  A check with a
    ``measure`` computes its own section of the report, ``report[section] = measure(inputs)``, from a
    :class:`gaplab.datareport.build.ReportInputs`; the others read sections the report always has.
    ``needs_split``: the check needs a validation split (not measured on one file); ``needs_records``:
    it needs records with a prompt and an answer side (not measured on plain text).
    """

    name: str
    meaning: str
    warn: Optional[float]
    fail: Optional[float]
    value: Callable[[Report], Optional[float]]
    detail: Callable[[Report, Optional[float]], str]
    shown: str = "share"
    needs_split: bool = False
    needs_records: bool = False
    not_measured: str = "not measured: too little data for this check"
    section: Optional[str] = None
    measure: Optional[Callable[[Any], dict[str, Any]]] = None

    def read(self, report: Report) -> Optional[float]:
        """The measured value, ``None`` when the report does not hold it (a section missing or empty)."""
        try:
            value = self.value(report)
        except (KeyError, TypeError, IndexError):
            return None
        return None if value is None else float(value)

    def format(self, value: float) -> str:
        return f"{value:.2f}" if self.shown == "number" else pct(value)

    def status(self, value: Optional[float], warn: Optional[float], fail: Optional[float]) -> str:
        if value is None or value <= 0:
            return "ok"
        if fail is not None and value >= fail:
            return "fail"
        if warn is not None and value >= warn:
            return "warn"
        return "ok"

    def evaluate(self, report: Report, warn: Optional[float], fail: Optional[float], in_fail_on: bool) -> CheckResult:
        """This check's row of the report, with the thresholds in force."""
        value = self.read(report)
        if value is None:
            detail = message = self.not_measured
        else:
            detail = self.detail(report, warn)
            message = f"{self.format(value)} — {detail} [{self.meaning}; {format_thresholds(warn, fail)}]"
        return CheckResult(
            name=self.name,
            status=self.status(value, warn, fail),
            value=value,
            warn=warn,
            fail=fail,
            message=message,
            detail=detail,
            meaning=self.meaning,
            in_fail_on=in_fail_on,
        )


def format_thresholds(warn: Optional[float], fail: Optional[float]) -> str:
    parts = []
    if warn is not None:
        parts.append(f"warn ≥ {warn:g}")
    if fail is not None:
        parts.append(f"fail ≥ {fail:g}")
    return ", ".join(parts) if parts else "no thresholds"


@dataclass
class CheckResult:
    """One row of ``data_report.json``'s ``checks`` (the JSON keys are these fields)."""

    name: str
    status: str  # "ok", "warn" or "fail"
    value: Optional[float]  # None: not measured
    warn: Optional[float]
    fail: Optional[float]
    message: str
    detail: str = ""
    meaning: str = ""
    in_fail_on: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> CheckResult:
        """A row read back from ``data_report.json`` (keys it does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in known})
