"""``gaplab train``: one phase through the library (no notebooks), staged so a finished result is never damaged.

Training happens in ``outputs/<study>/.staging/train-<phase>/``, never in the phase folder itself.  Only
a run that ends is put in place (:func:`gaplab.pipeline.runs.place_phase`, state ``trained``): the phase
folder it replaces, finished by ``gaplab run`` or by an earlier ``gaplab train``, moves to
``_previous/<phase>``.  A run killed or interrupted on the way leaves the phase folder as it was, and its
staging folder with ``ckpt/last.pt`` (written at every scheduled eval), so ``gaplab train --resume``
continues it (a run killed after its last eval is finished without training: its metrics written, the phase
placed); with nothing staged, ``--resume`` continues from the phase folder's own ``ckpt/last.pt`` (refused when
that run is already at its planned iteration).
A ``trained`` phase ran stage 02 alone, so ``gaplab run`` runs it again whole rather than call it cached.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..errors import TrainingError
from ..files import atomic_write_yaml
from ..schema import planned_iters
from ..versioning import gaplab_version
from .config import load_study
from .lock import study_lock
from .resources import memory_problem
from .runs import PhaseStatus, phase_fingerprint, place_phase, study_dir

if TYPE_CHECKING:
    from ..train.metrics import TrainMetrics


def _resume_source(work: Path, final: Path) -> Optional[Path]:
    """The folder whose ``ckpt/last.pt`` a resume continues: an interrupted ``gaplab train``, else the phase."""
    for folder in (work, final):
        if (folder / "ckpt" / "last.pt").is_file():
            return folder
    return None


def _stage_resume(work: Path, final: Path, ph, prep) -> None:
    """Make ``work`` the folder a resume continues: an interrupted ``gaplab train`` as it is, else a copy of
    the finished phase's checkpoints (refused as the trainer would refuse them, and when that run is already at
    its planned iteration: nothing to do)."""
    source = _resume_source(work, final)
    if source is None:
        raise TrainingError(
            f"resume: nothing to resume for phase {ph.name!r}: neither {work} (an "
            f"interrupted gaplab train) nor {final} holds ckpt/last.pt; train without "
            "--resume first"
        )
    if source == work:  # an interrupted gaplab train: the trainer continues it (or, at its end, finishes it)
        return
    from ..train.checkpoint import check_resumable, data_fingerprint, load_checkpoint

    last = final / "ckpt" / "last.pt"
    ck = load_checkpoint(last)
    check_resumable(ck, last, ph.params, int(prep.vocab_size), data_fingerprint(prep.train, prep.val))
    done = int(ck["iter"])
    planned = planned_iters(ph.params.train, ph.params.model.block_size, len(prep.train))
    if done >= planned:
        raise TrainingError(
            f"resume: phase {ph.name!r} in {final} is already at the planned {planned} iterations "
            f"(ckpt/last.pt is at iter {done}); raise train.max_iters (or train.epochs) to train on"
        )
    shutil.rmtree(work, ignore_errors=True)  # continue the finished phase's run in a fresh staging folder
    (work / "ckpt").mkdir(parents=True)
    for name in ("last.pt", "best.pt"):
        if (final / "ckpt" / name).is_file():
            shutil.copy2(final / "ckpt" / name, work / "ckpt" / name)


def _stage_fresh(work: Path) -> None:
    if (work / "ckpt" / "last.pt").is_file():
        print(
            f"note: starting afresh; the interrupted gaplab train in {work} is discarded (--resume continues one)",
            file=sys.stderr,
        )
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)


def _trained_status(ph, resolved: dict, corpus_fingerprint: str, seconds: float) -> PhaseStatus:
    """``status.json`` of a phase that ``gaplab train`` trained (stage 02 only)."""
    return PhaseStatus(
        ph.name,
        "trained",
        by="gaplab train",
        fingerprint=phase_fingerprint(resolved, corpus_fingerprint),
        gaplab=gaplab_version(),
        stages={"02_train": round(seconds, 3)},
        seconds=seconds,
    )


def train_one(
    study_path: str,
    phase: str,
    outputs: Optional[str] = None,
    resume: bool = False,
    wait: bool = False,
    memory_check: bool = True,
    progress: bool = True,
) -> tuple[TrainMetrics, Path]:
    """Train ``phase`` of the study into its staging folder, then put it in place; ``(metrics, phase folder)``."""
    from ..data.split import prepare_data
    from ..errors import StudyError
    from ..train.replicates import train_replicates
    from .stages import replicate_plan_for

    study = load_study(study_path)
    ph = study.phase(phase)
    prep = prepare_data(ph.params, ph.name, str(study.path))
    if memory_check:
        too_big = memory_problem(ph.params, int(prep.vocab_size), str(study.path), ph.name)
        if too_big is not None:
            raise StudyError([too_big])
    sdir = study_dir(study.name, outputs).resolve()
    final = sdir / ph.name
    resolved = ph.resolved(study.name, str(final))
    with study_lock(sdir, f"gaplab train {study.path} --phase {ph.name}", wait=wait):
        work = sdir / ".staging" / f"train-{ph.name}"
        if resume:
            _stage_resume(work, final, ph, prep)
        else:
            _stage_fresh(work)
        atomic_write_yaml(work / "params.yaml", resolved)
        start = time.time()
        plan = replicate_plan_for(ph.params, int(prep.vocab_size))
        try:
            metrics = train_replicates(ph.params, prep, work, progress=progress, resume=resume, plan=plan)[0]
        except KeyboardInterrupt:
            print(
                f"interrupted: {final} is as it was; continue with gaplab train {study.path} --phase {ph.name} "
                "--resume",
                file=sys.stderr,
            )
            raise
        status = _trained_status(ph, resolved, prep.corpus.fingerprint, time.time() - start)
        target = place_phase(work, final, ph.name, resolved, status)
    return metrics, target
