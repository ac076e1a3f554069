"""The playground's "save as phase": the settings appended to a study file as a new phase, and how to run it.

Split from :mod:`gaplab.ui.playground` (the settings and the readout).  The file is validated whole with
:func:`gaplab.pipeline.config.load_study` before it is written, atomically, keeping its comments.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from ..errors import Problem, StudyError
from ..files import atomic_write_text
from ..pipeline.config import _extend, load_study, name_problem
from .playground import STUDY_NAME, Settings, settings_to_phase


def next_phase_name(study_path: Union[str, Path], base: str = "playground") -> str:
    """``<base>_N`` with the smallest N that the study file does not use yet (``<base>_1`` without a file)."""
    path = Path(study_path).expanduser()
    taken: set[str] = set()
    try:
        taken = {p.name for p in load_study(path).phases} if path.exists() else set()
    except StudyError:  # an invalid file: saving will say why; avoid the names it lists
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            raw = {}
        phases = raw.get("phases") if isinstance(raw, dict) else None
        taken = (
            {str(p.get("name")) for p in phases if isinstance(p, dict)}
            if isinstance(phases, list)
            else set(map(str, phases))
            if isinstance(phases, dict)
            else set()
        )
    n = 1
    while f"{base}_{n}" in taken:
        n += 1
    return f"{base}_{n}"


def run_hint(study_path: Union[str, Path], phase: str) -> tuple[Optional[Path], str]:
    """``(folder, command)`` that runs a saved phase: from the repository root (the folder above ``params/``)
    when the study is in a ``params/`` folder, else (None, a command with the study's absolute path)."""
    path = Path(study_path).expanduser().resolve()
    if path.parent.name == "params":
        return path.parent.parent, f"gaplab run params/{path.name} --phases {phase}"
    return None, f"gaplab run {path} --phases {phase}"


# --------------------------------------------------------------------------- save as phase
def save_as_phase(study_path: Union[str, Path], phase_name: str, settings: Union[Settings, Mapping[str, Any]]) -> Path:
    """Append the settings as phase ``phase_name`` to a study YAML; return its path.

    A missing file is created with ``study`` (from the file name),
    ``description`` and an empty ``defaults``.  An existing phase name (listed
    or made by the study's grid) is refused.  The whole new study is
    validated with :func:`gaplab.pipeline.config.load_study` before anything is
    written, and it is written atomically, so on any error the file is left
    exactly as it was.  The phase is appended as text, keeping the file's
    comments, when ``phases`` is a block mapping; otherwise the study is
    re-dumped.  If the study's defaults set ``train.epochs``, the phase sets
    ``epochs: null`` (the playground counts iterations).
    """
    path = Path(study_path).expanduser()
    file = str(path)
    why = name_problem(phase_name)  # the same rule as a study file's phase names (reserved names too)
    if why:
        raise StudyError([Problem(file, None, "phase name", phase_name, why)])
    overrides = settings_to_phase(settings)
    if path.exists():
        text = path.read_text(encoding="utf-8")
        study = load_study(path)  # the file as it stands must be valid
        names = [p.name for p in study.phases]
        if phase_name in names:
            raise StudyError(
                [
                    Problem(
                        file,
                        phase_name,
                        "phase name",
                        phase_name,
                        f"the study already has a phase with this name; allowed: a new name "
                        f"(taken: {', '.join(names)})",
                    )
                ]
            )
        raw = yaml.safe_load(text)
        merged = _extend(copy.deepcopy(raw), path.resolve())
        if ((merged.get("defaults") or {}).get("train") or {}).get("epochs") is not None:
            overrides["train"]["epochs"] = None
        new_text = _with_phase(text, raw, phase_name, overrides)
    else:
        name = STUDY_NAME.sub("-", path.stem).strip("-.") or "playground"
        if not name[0].isalnum():
            name = "p" + name
        head = {"study": name, "description": "Phases saved from the gaplab playground.", "defaults": {}}
        new_text = yaml.safe_dump(head, sort_keys=False) + "phases:\n" + _phase_block(phase_name, overrides, "  ")
    _validate_text(new_text, path)
    atomic_write_text(path, new_text)
    return path


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False).strip()


def _phase_block(name: str, overrides: dict[str, Any], indent: str) -> str:
    key = yaml.safe_dump({name: 0}, default_flow_style=False).rsplit(":", 1)[0]  # quoted if YAML needs it ('1.5')
    lines = [f"{indent}{key}:"]
    lines += [f"{indent}  {section}: {_flow(values)}" for section, values in overrides.items()]
    return "\n".join(lines) + "\n"


def _with_phase(text: str, raw: Any, name: str, overrides: dict[str, Any]) -> str:
    """``text`` with the phase appended; comments are kept when ``phases`` is a block mapping (checked)."""
    expected = copy.deepcopy(raw)
    if isinstance(expected.get("phases"), list):
        expected["phases"].append({"name": name, **overrides})
    else:
        expected["phases"] = dict(expected.get("phases") or {})
        expected["phases"][name] = overrides
    candidate = _append_text(text, name, overrides)
    if candidate is not None:
        try:
            if yaml.safe_load(candidate) == expected:
                return candidate
        except yaml.YAMLError:
            pass
    return yaml.safe_dump(expected, sort_keys=False, allow_unicode=True)


def _append_text(text: str, name: str, overrides: dict[str, Any]) -> Optional[str]:
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode) or root.flow_style:
        return None
    for key, value in root.value:
        if key.value != "phases":
            continue
        if not isinstance(value, yaml.MappingNode) or value.flow_style or not value.value:
            return None
        indent = " " * value.value[0][0].start_mark.column
        end = value.end_mark
        lines = text.splitlines(keepends=True)
        cut = sum(len(line) for line in lines[: end.line]) if end.column == 0 else len(text)
        before = text[:cut]
        if before and not before.endswith("\n"):
            before += "\n"
        return before + _phase_block(name, overrides, indent) + text[cut:]
    sep = "" if text.endswith("\n") or not text else "\n"
    return text + sep + "phases:\n" + _phase_block(name, overrides, "  ")


def _validate_text(text: str, path: Path) -> None:
    """Validate a whole study text with :func:`load_study`, from a scratch file beside ``path``.

    Beside, so that ``extends:`` and relative data paths resolve as they will
    for the real file; problems name ``path``.  The scratch file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".check.yaml")
    probe = Path(tmp)
    try:
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        load_study(probe)
    except StudyError as exc:
        for problem in exc.problems:
            if problem.file == str(probe):
                problem.file = str(path)
        raise StudyError(exc.problems) from None
    finally:
        probe.unlink(missing_ok=True)
