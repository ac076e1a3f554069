"""``outputs/<study>/study_status.json``: the latest ``gaplab run`` of a study, and what its 05_compare wrote.

Written by the runner (:mod:`gaplab.pipeline.runner`) as phases finish; read by the report
(``05_compare``: the phases' order, the study's description, the phases that failed).

It also records what ``05_compare`` last wrote: the sha256 of the study's files (``summary.csv``,
``report.html``, ``05_compare.ipynb``, ``figures/``), as a phase's ``status.json`` records its artifacts,
and a hash of what it read (each phase's state, fingerprint and artifact hashes, the study's description,
gaplab's code).  A run in which no phase changed skips 05_compare when both still match
(:func:`compare_problem`); a changed or missing study file runs it again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..files import atomic_write_json, stable_hash
from ..versioning import code_fingerprint
from .runs import PhaseStatus, file_sha256, files_problem, read_status

STUDY_STATUS = "study_status.json"

#: what 05_compare writes into the study folder (figures/ is every file under it)
STUDY_FILES = ("summary.csv", "report.html", "05_compare.ipynb")
STUDY_FIGURES = "figures"


@dataclass
class CompareRecord:
    """What the last successful 05_compare read (``inputs``, a hash) and wrote (``artifacts``: path -> sha256)."""

    inputs: str
    artifacts: dict[str, str]


@dataclass
class StudyStatus:
    """``study_status.json``: each phase's latest state in this study, in the study's order."""

    study: str
    description: str
    study_file: str
    phases_order: list[str]
    phases: dict[str, PhaseStatus] = field(default_factory=dict)
    compare: Optional[CompareRecord] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "study": self.study,
            "description": self.description,
            "study_file": self.study_file,
            "phases_order": self.phases_order,
            "phases": {name: _phase_entry(status) for name, status in self.phases.items()},
        }
        if self.compare is not None:
            out["compare"] = asdict(self.compare)
        return out

    def write(self, sdir: Path) -> None:
        atomic_write_json(sdir / STUDY_STATUS, self.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StudyStatus:
        phases = {
            str(name): PhaseStatus.from_json(dict(entry, phase=str(name)))
            for name, entry in (data.get("phases") or {}).items()
            if isinstance(entry, dict)
        }
        compare = data.get("compare")
        return cls(
            study=str(data.get("study", "")),
            description=str(data.get("description", "")),
            study_file=str(data.get("study_file", "")),
            phases_order=[str(name) for name in data.get("phases_order") or []],
            phases=phases,
            compare=CompareRecord(str(compare["inputs"]), dict(compare["artifacts"])) if _is_record(compare) else None,
        )

    @classmethod
    def read(cls, sdir: Path) -> Optional[StudyStatus]:
        """The study's ``study_status.json``, or None when it is missing or does not read as a JSON object."""
        try:
            data = json.loads((sdir / STUDY_STATUS).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        return cls.from_json(data) if isinstance(data, dict) else None


def _is_record(compare: Any) -> bool:
    return (
        isinstance(compare, dict)
        and isinstance(compare.get("inputs"), str)
        and isinstance(compare.get("artifacts"), dict)
    )


def _phase_entry(status: PhaseStatus) -> dict[str, Any]:
    """A phase in ``study_status.json``: always these five keys."""
    return {
        "state": status.state,
        "seconds": status.elapsed,
        "stage": status.stage,
        "error": status.error,
        "notebook": status.notebook,
    }


def read_compare_record(sdir: Path) -> Optional[CompareRecord]:
    """The 05_compare record of ``study_status.json``, or None (no file, an older one, or unreadable)."""
    status = StudyStatus.read(sdir)
    return status.compare if status is not None else None


# --------------------------------------------------------------------------- 05_compare's cache
def study_file_hashes(sdir: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of the study files 05_compare wrote that are there."""
    paths = [sdir / name for name in STUDY_FILES]
    figures = sdir / STUDY_FIGURES
    if figures.is_dir():
        paths += sorted(p for p in figures.rglob("*") if p.is_file() and not p.is_symlink())
    return {p.relative_to(sdir).as_posix(): file_sha256(p) for p in paths if p.is_file()}


def compare_inputs(sdir: Path, description: str, order: list[str], results: dict[str, PhaseStatus]) -> str:
    """A hash of what 05_compare reads: each phase's outcome and files (by their recorded hashes), the order,
    the study's description and folder, and gaplab's code (the report's code and notebook are in the package)."""
    phases = []
    for name in order:
        result = results.get(name)
        state = "done" if result is not None and result.state == "cached" else getattr(result, "state", None)
        placed, _ = read_status(sdir / name)
        recorded = (placed.fingerprint, placed.artifacts) if placed is not None else None
        phases.append([name, state, getattr(result, "error", None), recorded])
    return stable_hash(
        {"phases": phases, "description": description, "study_dir": str(sdir), "code": code_fingerprint()}
    )


def compare_problem(sdir: Path, inputs: str) -> Optional[str]:
    """Why 05_compare must run again although no phase changed, or None when its files are as it left them."""
    record = read_compare_record(sdir)
    if record is None:
        return f"{STUDY_STATUS} records no earlier 05_compare"
    if record.inputs != inputs:
        return "the phases it compared, or gaplab's code, changed since it last ran"
    return files_problem(sdir, record.artifacts, STUDY_STATUS)
