"""Run folders: where a study's results live, how a finished phase is put in place, and its fingerprint.

Layout (``outputs/`` or ``$GAPLAB_OUTPUTS``)::

    outputs/<study>/<phase>/        a finished phase (every stage ran): the files of docs/architecture.md
    outputs/<study>/_previous/<p>/  the finished copy that the latest finished run replaced
    outputs/<study>/_failed/<p>/    the latest failed run of a phase, with the notebook that shows the error
    outputs/<study>/.staging/       phases while they run (never a finished result)

A phase's **fingerprint** is what decides whether a finished phase can be reused: its resolved
parameters, the corpus it read and the code that produced it (:func:`gaplab.versioning.code_fingerprint`, a
hash of every file in the installed package), so a bug fix in gaplab re-runs old phases instead of reporting them cached.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ..files import PathLike, atomic_write_json, atomic_write_yaml, stable_hash
from ..versioning import code_fingerprint

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


# --------------------------------------------------------------------------- placing a phase
def place_phase(staged: Path, final_dir: PathLike, name: str, params: dict[str, Any], status: dict) -> Path:
    """Move a staged phase folder into place (done) or into ``_failed/`` (failed), keeping old results.

    ``params.yaml`` and ``status.json`` are rewritten with the folder's final path first.  A finished
    phase replaces the previous finished copy, which moves to ``_previous/<name>``; a failed one replaces
    only an older failure.  Nothing finished is ever deleted.
    """
    final_dir = Path(final_dir)
    sdir = final_dir.parent
    done = status.get("state") == "done"
    target = final_dir if done else sdir / "_failed" / name
    atomic_write_yaml(staged / "params.yaml", dict(params, run_dir=str(target)))
    atomic_write_json(staged / "status.json", dict(status, run_dir=str(target)))
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
