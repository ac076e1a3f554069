"""Hugging Face ``trainer_state.json`` (``TrainerState.save_to_json`` in ``transformers/trainer_callback.py``):
its ``log_history`` holds a train entry (``loss``, ``step``, ``epoch``) every ``logging_steps``, an eval entry
(``eval_loss`` or ``eval_<name>_loss`` per eval set) every ``eval_steps``, and one summary entry at the end
(``train_loss``, ``train_runtime``: the mean over the run, never a curve point).

The path may be the file, a ``checkpoint-N/`` folder, or an output folder with several checkpoints (the
state with the highest ``global_step`` is read).  Only ``trainer_state.json`` is opened: a run folder's
``training_args.bin``, ``optimizer.pt``, ``rng_state.pth`` are pickles and stay shut.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from gaplab.errors import DataError
from gaplab.logs.base import Reader, file_head, register
from gaplab.logs.shape import LogShape, Point, build_run_log, to_float

STATE_FILE = "trainer_state.json"
CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
#: a trainer_state.json past this size is not one (a real one is kilobytes to a few megabytes)
MAX_STATE_BYTES = 256 * 1024 * 1024


def is_eval_loss(key: str) -> bool:
    return key.startswith("eval_") and key.endswith("_loss") or key == "eval_loss"


def _looks_like_state(head: str) -> bool:
    return head.lstrip().startswith("{") and '"log_history"' in head


def _states_in(folder: Path) -> list[Path]:
    found = [folder / STATE_FILE] if (folder / STATE_FILE).is_file() else []
    for child in folder.iterdir():
        if child.is_dir() and CHECKPOINT_DIR.match(child.name) and (child / STATE_FILE).is_file():
            found.append(child / STATE_FILE)
    return [f for f in found if _looks_like_state(file_head(f))]


def _load(path: Path) -> dict:
    if path.stat().st_size > MAX_STATE_BYTES:
        raise DataError(f"{path}: {path.stat().st_size} bytes is too big for a trainer_state.json")
    try:
        with open(path, encoding="utf-8") as fh:
            state = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err}); a trainer_state.json is one JSON object") from None
    if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
        raise DataError(f"{path}: no 'log_history' list; this is not a Hugging Face trainer_state.json")
    return state


def _pick_state(path: Path) -> Path:
    """The trainer_state.json to read for ``path`` (a file, a checkpoint folder, an output folder)."""
    if path.is_file():
        return path
    states = _states_in(path)
    if not states:
        raise DataError(f"{path}: no {STATE_FILE} here nor in a checkpoint-N folder")
    return max(states, key=lambda f: (_load(f).get("global_step") or 0, f.parent != path))


def _checkpoints(state_file: Path) -> dict[int, str]:
    folder = state_file.parent
    output = folder.parent if CHECKPOINT_DIR.match(folder.name) else folder
    return {
        int(m.group(1)): str(child)
        for child in sorted(output.iterdir())
        if child.is_dir() and (m := CHECKPOINT_DIR.match(child.name))
    }


def points_of(log_history: list, shape: LogShape) -> list[Point]:
    """One point per entry of ``log_history`` (the summary entry left out, with a note)."""
    points, keys = [], []
    for index, entry in enumerate(log_history):
        if not isinstance(entry, dict):
            continue
        keys.extend(k for k in entry if k not in keys)
        if "train_runtime" in entry or ("train_loss" in entry and "loss" not in entry):
            shape.notes.append(
                f"the summary entry at step {entry.get('step')} (train_loss = {entry.get('train_loss')}, the mean "
                "over the whole run) is not a curve point"
            )
            continue
        step = to_float(entry.get("step"))
        if step is None:
            continue
        train = to_float(entry.get("loss"))
        evals = {k: v for k, value in entry.items() if is_eval_loss(k) and (v := to_float(value)) is not None}
        epoch = to_float(entry.get("epoch"))
        if train is not None or evals:
            points.append(Point(step, f"log_history[{index}]", train, evals, math.nan if epoch is None else epoch))
    shape.keys = keys
    return points


class HfTrainerStateReader(Reader):
    name = "hf_trainer_state"
    reads_folders = True
    describes = "Hugging Face trainer_state.json, a checkpoint-N folder or an output folder"

    def sniff(self, path, head):
        return _looks_like_state(head) if path.is_file() else bool(_states_in(path))

    def read(self, path, val_key=None):
        state_file = _pick_state(Path(path))
        state = _load(state_file)
        shape = LogShape(str(state_file), self.name, "step")
        if state_file != Path(path):
            shape.notes.append(f"read {state_file} (the latest trainer state under {path})")
        shape.checkpoints = _checkpoints(state_file)
        shape.best_checkpoint = state.get("best_model_checkpoint") or None
        return build_run_log(points_of(state["log_history"], shape), shape, val_key)


register(HfTrainerStateReader())
