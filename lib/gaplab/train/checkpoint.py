"""Checkpoints: a :class:`TrainState` saved atomically, loaded safely, and checked before a resume.

A checkpoint holds only tensors and plain Python values, so it loads with
``torch.load(..., weights_only=True)``.  It is the whole state of a run at one
iteration: weights, optimizer and scaler state, every random generator, the
early-stopping counters, the history of the scheduled evaluations so far, the
resolved phase settings and a fingerprint of the token arrays trained on.  So
``resume`` continues exactly: same batches, same dropout masks, same optimizer
state; on CPU a resumed run's history equals an uninterrupted run's.

A resume refuses a phase whose settings changed in a way that would rewrite
what already happened (:func:`resume_problems`): a new learning rate, batch
size, schedule, model or data would make the first part of the history belong
to a different run.  Only settings that decide how far to go or where to run
may change (:data:`RESUMABLE_KEYS`).
"""

from __future__ import annotations

import hashlib
import io
import pickle
import platform
import random
import warnings
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..errors import CheckpointError, TrainingError
from ..files import atomic_write_bytes
from ..model.gpt import GPT
from ..schema import ModelConfig, PhaseParams
from ..versioning import gaplab_version
from .batches import Batches
from .history import HISTORY_COLUMNS


@dataclass
class TrainState:
    """Everything a run needs to continue exactly where it stopped (the keys of a checkpoint file)."""

    model: dict
    optimizer: dict
    scaler: Optional[dict]
    rng: dict
    iter: int
    best_val: float
    best_iter: int
    bad_evals: int
    train_seconds: float
    #: the scheduled evaluations so far, as lists in ``HISTORY_COLUMNS`` order
    history: list
    #: :class:`gaplab.schema.ModelConfig` fields
    model_config: dict
    vocab_size: int
    #: the resolved phase (``PhaseParams.to_dict()``)
    params: dict
    #: sha256 of the train and val token arrays
    data_fingerprint: str
    versions: dict

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


#: settings a resumed run may change: they decide how far training goes or where it runs, not what the
#: iterations already trained did (``max_iters``/``epochs`` only with a constant learning rate, see
#: :func:`resume_problems`)
RESUMABLE_KEYS = (
    "train.max_iters",
    "train.epochs",
    "train.patience",
    "train.min_delta",
    "train.device",
    "train.threads",
    "train.compile",
    "train.save_every",
    "sample",
    "replicates",
)


def data_fingerprint(train: Any, val: Any) -> str:
    """sha256 over the train and val token arrays (int64), so a resume can tell that the data changed."""
    h = hashlib.sha256()
    for arr in (train, val):
        a = np.ascontiguousarray(np.asarray(arr, dtype=np.int64))
        h.update(str(a.size).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def versions() -> dict[str, str]:
    return {"gaplab": gaplab_version(), "torch": str(torch.__version__), "python": platform.python_version()}


# --------------------------------------------------------------------------- files
def save_checkpoint(path, state: TrainState | dict) -> Path:
    """``torch.save`` into memory, then an atomic write: a reader never sees half a checkpoint."""
    obj = state.to_dict() if isinstance(state, TrainState) else state
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


#: what torch.load raises for an empty, truncated or foreign file
_UNREADABLE = (
    RuntimeError,
    EOFError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
    ValueError,
    KeyError,
    AttributeError,
    ImportError,
    IndexError,
    OSError,
)


def load_checkpoint(path) -> dict:
    """A checkpoint dict, loaded with ``weights_only=True`` (tensors and plain Python values only).

    A missing, empty, truncated or foreign file raises :class:`gaplab.errors.CheckpointError` with one
    sentence naming the file and what to do (never torch's own advice to load untrusted files unsafely).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint; train the phase first (gaplab run, or gaplab train)")
    size = path.stat().st_size
    what = f"{path}: not a readable gaplab checkpoint"
    todo = "delete it and train the phase again (gaplab run --force, or gaplab train without --resume)"
    if size == 0:
        raise CheckpointError(f"{what} (the file is empty); {todo}")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickles before failing on them
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except _UNREADABLE as exc:
        raise CheckpointError(
            f"{what} ({size:,} bytes, truncated or not written by gaplab: {type(exc).__name__}); {todo}"
        ) from None
    need = ("model", "model_config", "vocab_size", "iter")
    if not isinstance(obj, dict) or any(k not in obj for k in need):
        keys = sorted(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{what} (it holds {keys}, a gaplab checkpoint has {', '.join(need)}); {todo}")
    return obj


def load_model(ckpt_path, device: str = "cpu") -> tuple[GPT, dict]:
    """``(model, checkpoint)`` from a checkpoint file; the model is in eval mode on ``device``."""
    ck = load_checkpoint(ckpt_path)
    try:
        model = GPT(ModelConfig(**ck["model_config"]), int(ck["vocab_size"]))
        model.load_state_dict(ck["model"])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{ckpt_path}: its weights do not fit the model it describes "
            f"({type(exc).__name__}); delete it and train the phase again"
        ) from None
    model.to(device).eval()
    return model, ck


# --------------------------------------------------------------------------- random generators
def rng_state(batches: Batches, device: torch.device) -> dict[str, Any]:
    """Every random generator a training step uses, as plain values and tensors."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, state, gauss_next = random.getstate()
    out = {
        "torch": torch.get_rng_state(),
        "batches": batches.gen.get_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "state": list(state), "gauss_next": gauss_next},
    }
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def set_rng_state(st: dict[str, Any], batches: Batches, device: torch.device) -> None:
    torch.set_rng_state(st["torch"])
    batches.gen.set_state(st["batches"])
    n = st["numpy"]
    np.random.set_state(
        (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    p = st["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    if device.type == "cuda" and "cuda" in st:
        torch.cuda.set_rng_state(st["cuda"], device)


# --------------------------------------------------------------------------- resume
def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(_flatten(v, key) if isinstance(v, dict) and v else {key: v})
    return out


def _resumable(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in RESUMABLE_KEYS)


def resume_problems(
    saved: dict[str, Any], current: dict[str, Any], saved_data: Optional[str] = None, current_data: Optional[str] = None
) -> list[str]:
    """What differs between the checkpoint's phase and this one, in words; empty when a resume is exact.

    ``saved``/``current`` are resolved phases (``PhaseParams.to_dict()``); ``*_data`` the
    :func:`data_fingerprint` of each run's token arrays.  A learning-rate schedule that is not
    constant depends on ``max_iters``, so there ``max_iters``/``epochs`` may not change either.
    """
    a, b = _flatten(saved), _flatten(current)
    out = []
    for key in sorted(set(a) | set(b)):
        old, new = a.get(key, "(unset)"), b.get(key, "(unset)")
        if old == new:
            continue
        schedule_bound = key in ("train.max_iters", "train.epochs") and b.get("train.lr_schedule") != "constant"
        if _resumable(key) and not schedule_bound:
            continue
        why = " (the cosine schedule of the iterations already trained depends on it)" if schedule_bound else ""
        out.append(f"{key} {old!r} -> {new!r}{why}")
    if (
        saved_data
        and current_data
        and saved_data != current_data
        and not any(k.startswith(("data.", "tokenizer.")) for k in out)
    ):
        out.append("the training or validation tokens differ (the corpus changed on disk)")
    return out


def check_resumable(ck: dict[str, Any], path: Path, params: PhaseParams, vocab_size: int, data_fp: str) -> None:
    """Refuse (:class:`gaplab.errors.TrainingError`, one sentence) to resume ``path``'s checkpoint ``ck`` with this
    phase: another model or vocabulary, settings or data that would rewrite its history
    (:func:`resume_problems`), or a history.csv of other columns."""
    model_now = params.model.model_dump()
    if ck.get("model_config") != model_now or int(ck.get("vocab_size", -1)) != vocab_size:
        raise TrainingError(
            f"resume: {path} holds a model {ck.get('model_config')} over "
            f"{ck.get('vocab_size')} ids, but this phase builds {model_now} over {vocab_size}; "
            "train from scratch (no resume) or restore the settings"
        )
    changed = resume_problems(ck.get("params") or {}, params.to_dict(), ck.get("data_fingerprint"), data_fp)
    if changed:
        raise TrainingError(
            f"resume: {path} holds a model and optimizer trained with other settings, and "
            f"continuing would mix two runs in one history: {'; '.join(changed)}. Train from "
            "scratch (no resume), or restore these settings"
        )
    if any(len(row) != len(HISTORY_COLUMNS) for row in ck.get("history", [])):
        raise TrainingError(
            f"resume: {path} was written by a gaplab whose history.csv had other columns; train from scratch (no resume)"
        )
