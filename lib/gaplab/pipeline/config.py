"""Studies: loading, deep merge, grid expansion and validation.

A study is one YAML file with ``study``, ``description``, ``defaults`` and
``phases`` (and optionally ``grid``, ``sizes`` and ``extends``).  Every phase is
``defaults`` deep-merged with the phase's own overrides and validated against
:mod:`gaplab.schema`.  All problems in a file are collected and reported at once
(:class:`gaplab.errors.StudyError`), each naming the file, the phase, the key
path, the bad value and what is allowed, before anything runs.

This module loads a study (``extends``, the top-level keys, the phases); names, merging and grids are in
:mod:`gaplab.pipeline.config_names`, the checks of one phase in :mod:`gaplab.pipeline.config_checks`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from pydantic import ValidationError

from ..errors import MISSING, Problem, StudyError
from ..schema import NAMED_SIZES, PHASE_KEYS, SECTIONS, PhaseParams
from .config_checks import cross_checks, pydantic_problems, template_problem
from .config_names import deep_merge, expand_grid, name_problem
from .config_names import did_you_mean as _did_you_mean
from .study_file import read_yaml as _read_yaml

__all__ = [
    "Phase",
    "Study",
    "cross_checks",
    "deep_merge",
    "expand_grid",
    "load_study",
    "name_problem",
    "parse_study",
    "phase_from_dict",
    "template_problem",
    "validate_phase",
]

TOP_LEVEL_KEYS = ("study", "description", "extends", "defaults", "phases", "grid", "sizes")


# --------------------------------------------------------------------------- the study
@dataclass
class Phase:
    name: str
    params: PhaseParams

    def resolved(self, study: str, run_dir: str) -> dict[str, Any]:
        """The phase as papermill parameters: every key filled in."""
        return {"study": study, "phase": self.name, "run_dir": run_dir, **self.params.to_dict()}


@dataclass
class Study:
    name: str
    description: str
    path: Path
    phases: list[Phase] = field(default_factory=list)

    def phase(self, name: str) -> Phase:
        for ph in self.phases:
            if ph.name == name:
                return ph
        raise StudyError(
            [
                Problem(
                    str(self.path),
                    None,
                    "--phase",
                    name,
                    f"no such phase; allowed: {', '.join(p.name for p in self.phases)}"
                    + _did_you_mean(name, [p.name for p in self.phases]),
                )
            ]
        )

    def select(self, names: Optional[list[str]]) -> list[Phase]:
        if not names:
            return list(self.phases)
        return [self.phase(n) for n in names]


def _resolve_paths(raw: dict, base_dir: Path) -> None:
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("path"), str):
        p = Path(data["path"]).expanduser()
        data["path"] = str(p if p.is_absolute() else (base_dir / p).resolve())
    sample = raw.get("sample")
    if isinstance(sample, dict):
        for key in ("prompts", "keyword_sets"):
            val = sample.get(key)
            if key == "keyword_sets" and isinstance(val, str) and "/" not in val and not Path(val).suffix:
                continue  # a built-in set's name, e.g. ``stdlib_code``
            if isinstance(val, str):
                p = Path(val).expanduser()
                sample[key] = str(p if p.is_absolute() else (base_dir / p).resolve())


def _apply_size(raw: dict, sizes: dict, file: str, phase: str, problems: list[Problem]) -> None:
    """``model: small`` (a name) becomes that size's fields."""
    model = raw.get("model")
    if isinstance(model, str):
        if model in sizes:
            raw["model"] = dict(sizes[model])
        else:
            problems.append(
                Problem(
                    file,
                    phase,
                    "model",
                    model,
                    f"unknown model size; allowed: {', '.join(sizes)}" + _did_you_mean(model, sizes),
                )
            )
            raw["model"] = {}
    elif isinstance(model, dict) and isinstance(model.get("size"), str):
        name = model.pop("size")
        if name in sizes:
            raw["model"] = deep_merge(sizes[name], model)
        else:
            problems.append(
                Problem(
                    file,
                    phase,
                    "model.size",
                    name,
                    f"unknown model size; allowed: {', '.join(sizes)}" + _did_you_mean(name, sizes),
                )
            )


def validate_phase(
    raw: Any, file: str, phase: str, sizes: Optional[dict] = None
) -> tuple[Optional[PhaseParams], list[Problem]]:
    problems: list[Problem] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return None, [Problem(file, phase, "(phase)", raw, "a phase must be a mapping of sections")]
    raw = copy.deepcopy(raw)
    _apply_size(raw, sizes if sizes is not None else NAMED_SIZES, file, phase, problems)
    try:
        params = PhaseParams.model_validate(raw)
    except ValidationError as err:
        problems += pydantic_problems(err, raw, file, phase)
        # Cross-field checks on what is valid, so every problem is reported in one pass.
        bad = {tuple(str(x) for x in e["loc"][:2]) for e in err.errors()}
        pruned = copy.deepcopy(raw)
        for loc in bad:
            node = pruned
            for part in loc[:-1]:
                node = node.get(part, {}) if isinstance(node, dict) else {}
            if isinstance(node, dict):
                node.pop(loc[-1], None)
        try:
            partial = PhaseParams.model_validate(pruned)
        except ValidationError:
            return None, problems
        bad_keys = {".".join(loc) for loc in bad}
        return None, problems + [p for p in cross_checks(partial, file, phase) if p.key not in bad_keys]
    return params, problems + cross_checks(params, file, phase)


def parse_study(raw: Any, file: str, base_dir: Optional[Path] = None) -> Study:
    """Validate a loaded study mapping; raise :class:`StudyError` listing every problem."""
    if not isinstance(raw, dict):
        raise StudyError(
            [
                Problem(
                    file, None, "(file)", raw, "a study must be a YAML mapping with keys " + ", ".join(TOP_LEVEL_KEYS)
                )
            ]
        )
    problems = _top_level_problems(raw, file)
    name = raw.get("study", MISSING)
    description, defaults, sizes = _study_settings(raw, file, problems)
    entries = _phase_entries(raw, file, problems) + _grid_entries(raw, file, problems)
    if not entries and not any(p.key in ("phases", "grid") for p in problems):
        problems.append(
            Problem(file, None, "phases", raw.get("phases") or {}, "a study needs at least one phase (or a grid)")
        )
    phases = _validate_phases(entries, defaults, sizes, file, base_dir, problems)
    if problems:
        raise StudyError(problems)
    return Study(name=name, description=description.strip(), path=Path(file), phases=phases)


def _top_level_problems(raw: dict, file: str) -> list[Problem]:
    """Unknown top-level keys, and a study name that cannot name its folder."""
    problems: list[Problem] = []
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            problems.append(
                Problem(
                    file,
                    None,
                    str(key),
                    raw[key],
                    "unknown top-level key; allowed: " + ", ".join(TOP_LEVEL_KEYS) + _did_you_mean(key, TOP_LEVEL_KEYS),
                )
            )
    name = raw.get("study", MISSING)
    if name_problem(name, "study"):
        problems.append(
            Problem(
                file,
                None,
                "study",
                name,
                name_problem(name, "study").replace("(it names a folder)", "(it names outputs/<study>/)"),
            )
        )
    return problems


def _study_settings(raw: dict, file: str, problems: list[Problem]) -> tuple[str, dict, dict]:
    """``(description, defaults, model sizes)``, each replaced by an empty one (and a problem) when malformed."""
    description = raw.get("description", "")
    if not isinstance(description, str):
        problems.append(Problem(file, None, "description", description, "allowed: text"))
        description = ""
    defaults = raw.get("defaults") or {}
    if not isinstance(defaults, dict):
        problems.append(Problem(file, None, "defaults", defaults, "allowed: a mapping of sections"))
        defaults = {}
    sizes = dict(NAMED_SIZES)
    user_sizes = raw.get("sizes") or {}
    if not isinstance(user_sizes, dict) or not all(isinstance(v, dict) for v in user_sizes.values()):
        problems.append(Problem(file, None, "sizes", user_sizes, "allowed: a mapping of name -> model fields"))
    else:
        sizes.update(user_sizes)
    return description, defaults, sizes


def _phase_entries(raw: dict, file: str, problems: list[Problem]) -> list[tuple[str, Any]]:
    """``(name, overrides)`` of the ``phases`` key, whether a mapping or a list of mappings with a name."""
    phases_raw = raw.get("phases") or {}
    entries: list[tuple[str, Any]] = []
    if isinstance(phases_raw, dict):
        entries = [(str(k), v) for k, v in phases_raw.items()]
    elif isinstance(phases_raw, list):
        for i, item in enumerate(phases_raw):
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                entries.append((item["name"], {k: v for k, v in item.items() if k != "name"}))
            else:
                problems.append(Problem(file, None, f"phases[{i}]", item, "allowed: a mapping with a 'name' key"))
    else:
        problems.append(Problem(file, None, "phases", phases_raw, "allowed: a mapping of phase name -> overrides"))
    return entries


def _grid_entries(raw: dict, file: str, problems: list[Problem]) -> list[tuple[str, Any]]:
    """``(name, overrides)`` of the ``grid`` key's combinations (none when it is absent or malformed)."""
    grid = raw.get("grid")
    if grid is None:
        return []
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        problems.append(Problem(file, None, "grid", grid, "allowed: a mapping of key path -> non-empty list of values"))
        return []
    for key in grid:
        head = key.split(".")[0]
        if head not in SECTIONS:
            problems.append(
                Problem(
                    file,
                    None,
                    f"grid.{key}",
                    grid[key],
                    "the key must start with a section: " + ", ".join(SECTIONS) + _did_you_mean(head, SECTIONS),
                )
            )
    if any(p.file == file and p.key.startswith("grid") for p in problems):
        return []
    return expand_grid(grid)


def _validate_phases(
    entries: list[tuple[str, Any]],
    defaults: dict,
    sizes: dict,
    file: str,
    base_dir: Optional[Path],
    problems: list[Problem],
) -> list[Phase]:
    """Each named phase: defaults merged with its overrides, paths resolved, validated; problems collected."""
    phases: list[Phase] = []
    seen: set[str] = set()
    for pname, overrides in entries:
        why = name_problem(pname)
        if why:
            problems.append(Problem(file, None, "(phase name)", pname, why))
            continue
        if pname in seen:
            problems.append(Problem(file, pname, "(phase name)", pname, "phase names must be unique"))
            continue
        seen.add(pname)
        if overrides is not None and not isinstance(overrides, dict):
            problems.append(Problem(file, pname, "(phase)", overrides, "a phase must be a mapping of sections"))
            continue
        merged = deep_merge(defaults, overrides)
        if base_dir is not None:
            _resolve_paths(merged, base_dir)
        params, probs = validate_phase(merged, file, pname, sizes)
        problems.extend(probs)
        if params is not None:
            phases.append(Phase(pname, params))
    return phases


def _phases_mapping(phases: Any, file: str) -> dict:
    """A study's ``phases`` as a mapping (name -> overrides), whether the file wrote a mapping or a list."""
    if phases is None:
        return {}
    if isinstance(phases, dict):
        return dict(phases)
    if isinstance(phases, list):
        out: dict = {}
        for i, item in enumerate(phases):
            if not (isinstance(item, dict) and isinstance(item.get("name"), str)):
                raise StudyError([Problem(file, None, f"phases[{i}]", item, "allowed: a mapping with a 'name' key")])
            if item["name"] in out:
                raise StudyError(
                    [Problem(file, item["name"], "(phase name)", item["name"], "phase names must be unique")]
                )
            out[item["name"]] = {k: v for k, v in item.items() if k != "name"}
        return out
    raise StudyError(
        [
            Problem(
                file,
                None,
                "phases",
                phases,
                "allowed: a mapping of phase name -> overrides, or a list of mappings with a 'name' key",
            )
        ]
    )


def _extend(raw: dict, path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """Apply ``extends: other.yaml``: the base study's defaults and phases, overridden by this file's."""
    if not isinstance(raw, dict) or "extends" not in raw:
        return raw
    if not isinstance(raw["extends"], str) or not raw["extends"].strip():
        raise StudyError([Problem(str(path), None, "extends", raw["extends"], "allowed: the path of a study file")])
    base_path = (path.parent / raw["extends"]).resolve()
    if base_path in seen:
        raise StudyError([Problem(str(path), None, "extends", raw["extends"], "studies extend each other in a loop")])
    base = _extend(_read_yaml(base_path, "extends"), base_path, seen + (base_path,))
    if not isinstance(base, dict):
        raise StudyError([Problem(str(path), None, "extends", raw["extends"], "the base study is not a mapping")])
    out = {k: v for k, v in base.items() if k not in ("study", "description")}
    out.update({k: v for k, v in raw.items() if k not in ("extends", "defaults", "phases")})
    base_defaults, own_defaults = base.get("defaults") or {}, raw.get("defaults") or {}
    for file, d in ((str(base_path), base_defaults), (str(path), own_defaults)):
        if not isinstance(d, dict):
            raise StudyError([Problem(file, None, "defaults", d, "allowed: a mapping of sections")])
    out["defaults"] = deep_merge(base_defaults, own_defaults)
    phases = _phases_mapping(base.get("phases"), str(base_path))
    for name, over in _phases_mapping(raw.get("phases"), str(path)).items():
        old = phases.get(name)
        both = isinstance(old, dict) or old is None
        phases[name] = deep_merge(old or {}, over or {}) if both and (isinstance(over, dict) or over is None) else over
    out["phases"] = phases
    return out


def load_study(path: Union[str, Path]) -> Study:
    """Read and validate a study file (``yaml.safe_load`` only); ``extends:`` names a base study."""
    path = Path(path)
    raw = _extend(_read_yaml(path), path.resolve())
    return parse_study(raw, str(path), base_dir=path.resolve().parent)


def phase_from_dict(params: dict[str, Any]) -> PhaseParams:
    """Rebuild validated phase params from a resolved dict (e.g. papermill's injected variables)."""
    raw = {k: params[k] for k in PHASE_KEYS if k in params}
    parsed, problems = validate_phase(raw, params.get("run_dir", "(parameters)"), params.get("phase", "?"))
    if problems or parsed is None:
        raise StudyError(problems)
    return parsed
