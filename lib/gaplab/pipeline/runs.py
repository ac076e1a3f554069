"""Run folders: where a study's results live, how a finished phase is put in place, and its fingerprint.

Layout (``outputs/`` or ``$GAPLAB_OUTPUTS``)::

    outputs/<study>/<phase>/        a finished phase (every stage ran): the files of docs/architecture.md
    outputs/<study>/_previous/<p>/  the finished copy that the latest finished run replaced
    outputs/<study>/_failed/<p>/    the latest failed run of a phase, with the notebook that shows the error
    outputs/<study>/.staging/       phases while they run (never a finished result): ``run-*`` for
                                    ``gaplab run``, ``train-<p>`` for ``gaplab train`` (kept after a
                                    kill, so ``gaplab train --resume`` continues it)
    outputs/<study>/.gaplab.lock    the study's lock (:mod:`gaplab.pipeline.lock`)

A phase's **fingerprint** is what decides whether a finished phase can be reused: its resolved
parameters, the corpus it read and the code that produced it (:func:`gaplab.versioning.code_fingerprint`, a
hash of every file in the installed package), so a bug fix in gaplab re-runs old phases instead of reporting them cached.

A placed phase's ``status.json`` also records the **sha256 of its artifacts** (every file but the executed
notebooks and ``status.json`` itself): the cache reuses a phase only when every recorded file is there with
its hash (:func:`reuse_problem`), so a truncated checkpoint or a row appended to ``history.csv`` re-runs
the phase instead of feeding the report.  An unreadable ``status.json`` means "not done".
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Optional

from ..files import PathLike, atomic_write_json, atomic_write_text, atomic_write_yaml, stable_hash
from ..versioning import code_fingerprint

#: the files and folders of ``outputs/<study>/`` beside its phases: no phase may be named like one of them
STUDY_LEVEL_NAMES = (
    "figures",
    "summary.csv",
    "report.html",
    "study_status.json",
    "05_compare.ipynb",
    "_previous",
    "_failed",
    ".staging",
    ".gaplab.lock",
    ".gaplab.lock.json",
)


#: states of a placed phase folder: every stage ran (``gaplab run``), or only training (``gaplab train``)
PLACED_STATES = ("done", "trained")


#: states a phase's status can hold: ``running`` while it runs, ``done`` (every stage ran), ``failed``,
#: ``interrupted`` (Ctrl-C), ``trained`` (``gaplab train`` alone), ``cached`` (reused by ``gaplab run``; never in
#: a file)
PHASE_STATES = ("running", "done", "failed", "interrupted", "trained", "cached")


@dataclass
class PhaseStatus:
    """A phase's ``status.json``, and what the runner reports for the phase (one record for both).

    Written as the phase runs (:func:`gaplab.pipeline.execute.execute_phase`) or by ``gaplab train``
    (:mod:`gaplab.pipeline.retrain`), and rewritten here with the final folder and the artifacts' sha256 when
    the phase is placed (:func:`place_phase`); read here (:func:`read_status`) by the cache.  A field that is None is left out of the file,
    so the keys are those earlier versions wrote.
    """

    phase: str
    state: str  # one of PHASE_STATES
    fingerprint: Optional[str] = None  # resolved params + corpus + code (gaplab.pipeline.runs.phase_fingerprint)
    gaplab: Optional[str] = None  # gaplab_version() of the code that ran it
    by: Optional[str] = None  # "gaplab train" when only stage 02 ran
    run_dir: Optional[str] = None  # the folder it ran in; its final folder once placed
    stages: Optional[dict[str, float]] = None  # seconds per stage that ran
    seconds: Optional[float] = None  # the whole phase
    stage: Optional[str] = None  # where it failed
    error: Optional[str] = None  # why it failed, one line
    notebook: Optional[str] = None  # the executed notebook with the error (relative to the folder once placed)
    worker: Optional[str] = None  # Dask: the worker's address
    hostname: Optional[str] = None  # Dask: the worker's host
    threads: Optional[int] = None  # Dask: torch threads the phase had
    artifacts: Optional[dict[str, str]] = None  # {relative path: sha256}, recorded when placed

    def to_json(self) -> dict[str, Any]:
        """The ``status.json`` mapping: every field that is set."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PhaseStatus:
        """A status from a ``status.json`` mapping (keys this version does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        given = {k: v for k, v in data.items() if k in known}
        return cls(**{"phase": "", "state": "", **given})  # a status without them reads as not done

    @property
    def elapsed(self) -> float:
        return float(self.seconds or 0.0)


def outputs_root() -> Path:
    """``$GAPLAB_OUTPUTS`` or ``./outputs``."""
    return Path(os.environ.get("GAPLAB_OUTPUTS", "outputs"))


def study_dir(study: str, root: PathLike | None = None) -> Path:
    return Path(root if root is not None else outputs_root()) / study


def phase_dir(study: str, phase: str, root: PathLike | None = None) -> Path:
    return study_dir(study, root) / phase


# --------------------------------------------------------------------------- fingerprints
def phase_fingerprint(resolved: dict[str, Any], corpus_fingerprint: str) -> str:
    """What a finished phase's cache entry must match: resolved params, corpus and code."""
    params = {k: v for k, v in resolved.items() if k != "run_dir"}
    return stable_hash({"params": params, "corpus": corpus_fingerprint, "code": code_fingerprint()})


# --------------------------------------------------------------------------- artifacts and the cache
def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _artifacts(folder: Path) -> list[Path]:
    """The files of a phase folder the cache vouches for: all but ``status.json``, notebooks and dotfiles."""
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if (
            path.is_file()
            and not path.is_symlink()
            and rel.as_posix() != "status.json"
            and path.suffix != ".ipynb"
            and not any(part.startswith(".") for part in rel.parts)
        ):
            out.append(path)
    return out


def artifact_hashes(folder: PathLike) -> dict[str, str]:
    """``{relative path: sha256}`` of a phase folder's artifacts."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): file_sha256(p) for p in _artifacts(folder)}


def read_status(folder: PathLike) -> tuple[Optional[PhaseStatus], Optional[str]]:
    """``(status, None)``, or ``(None, why)`` when ``status.json`` is missing or does not read as a JSON object."""
    path = Path(folder) / "status.json"
    if not path.is_file():
        return None, "status.json is missing"
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, f"{path} does not read as JSON ({type(exc).__name__}); treated as not done"
    if not isinstance(status, dict):
        return None, f"{path} holds a JSON {type(status).__name__}, not a status; treated as not done"
    return PhaseStatus.from_json(status), None


def reuse_problem(folder: PathLike, fingerprint: str) -> Optional[str]:
    """Why the finished phase in ``folder`` cannot be reused for ``fingerprint``, or None when it can."""
    folder = Path(folder)
    if not folder.is_dir():
        return "not run yet"
    status, why = read_status(folder)
    if status is None:
        return why
    if status.state == "trained":
        return "it was trained by `gaplab train` alone (stages 01, 03 and 04 did not run there)"
    if status.state != "done":
        return f"its last run is {status.state or 'unfinished'!s}, not done"
    if status.fingerprint != fingerprint:
        return "its settings, data or gaplab's code changed"
    return files_problem(folder, status.artifacts, "status.json")


def files_problem(folder: Path, recorded: Any, record: str) -> Optional[str]:
    """Why the files ``recorded`` (``{relative path: sha256}``) are not all in ``folder`` with their hash, or None."""
    if not isinstance(recorded, dict) or not recorded:
        return f"{record} records no artifact hashes (written by an older gaplab)"
    for rel, digest in recorded.items():
        path = folder / rel
        if not path.is_file():
            return f"{rel} is missing"
        if file_sha256(path) != digest:
            return f"{rel} does not match its recorded hash"
    return None


# --------------------------------------------------------------------------- placing a phase
#: the ``run_dir`` line of the parameters papermill injected into an executed notebook
INJECTED_RUN_DIR = re.compile(r"^run_dir = .*$", re.MULTILINE)


def point_notebooks_here(folder: Path) -> None:
    """Make each executed notebook in ``folder`` read the folder it sits in: its injected ``run_dir`` (the
    staging folder it ran in, gone once the phase is placed) becomes ``"."``, relative to the notebook, so a
    learner who runs it again in JupyterLab, or in a copy of the study folder, reads this phase's files."""
    for path in sorted(folder.glob("*.ipynb")):
        try:
            notebook = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):  # not a notebook papermill finished writing: left as is
            continue
        changed = False
        for cell in notebook.get("cells", []):
            if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
                source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                cell["source"], n = INJECTED_RUN_DIR.subn('run_dir = "."', source)
                changed = changed or n > 0
        if changed:
            atomic_write_text(path, json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


def place_phase(staged: Path, final_dir: PathLike, name: str, params: dict[str, Any], status: PhaseStatus) -> Path:
    """Move a staged phase folder into place (done/trained) or into ``_failed/`` (failed), keeping old results.

    ``params.yaml`` and ``status.json`` are rewritten with the folder's final path first, the executed notebooks
    read the folder they sit in (:func:`point_notebooks_here`), and the status
    records the sha256 of every artifact (:func:`artifact_hashes`).  A placed phase replaces the previous
    one, which moves to ``_previous/<name>``; a failed one replaces only an older failure.  Nothing
    finished is ever deleted.
    """
    final_dir = Path(final_dir)
    sdir = final_dir.parent
    done = status.state in PLACED_STATES
    target = final_dir if done else sdir / "_failed" / name
    atomic_write_yaml(staged / "params.yaml", dict(params, run_dir=str(target)))
    point_notebooks_here(staged)
    placed = replace(status, run_dir=str(target), artifacts=artifact_hashes(staged))
    atomic_write_json(staged / "status.json", placed.to_json())
    if target.exists():
        if done:
            keep = sdir / "_previous" / name
            if keep.exists():
                shutil.rmtree(keep)
            keep.parent.mkdir(parents=True, exist_ok=True)
            os.replace(target, keep)
        else:
            shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staged, target)
    if done:  # an older failure of this phase no longer describes it
        old_fail = sdir / "_failed" / name
        if old_fail.exists():
            shutil.rmtree(old_fail)
    return target
