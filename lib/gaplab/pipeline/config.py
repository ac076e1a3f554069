"""Studies: loading, deep merge, grid expansion and validation.

A study is one YAML file with ``study``, ``description``, ``defaults`` and
``phases`` (and optionally ``grid``, ``sizes`` and ``extends``).  Every phase is
``defaults`` deep-merged with the phase's own overrides and validated against
:mod:`gaplab.schema`.  All problems in a file are collected and reported at once
(:class:`gaplab.errors.StudyError`), each naming the file, the phase, the key
path, the bad value and what is allowed, before anything runs.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ValidationError

from ..datareport.check_list import CHECK_NAMES
from ..errors import MISSING, Problem, StudyError
from ..schema import (
    BYTE_ALPHABET,
    NAMED_SIZES,
    PHASE_KEYS,
    SECTION_MODELS,
    SECTIONS,
    TIKTOKEN_NAMES,
    PhaseParams,
)
from .runs import STUDY_LEVEL_NAMES
from .study_file import read_yaml as _read_yaml

TOP_LEVEL_KEYS = ("study", "description", "extends", "defaults", "phases", "grid", "sizes")


#: keys that earlier versions accepted, with what to do instead
REMOVED_KEYS = {
    "train.restore_best": (
        "removed: it never changed what a run wrote; the best weights are always in ckpt/best.pt, "
        "which 03_loss_gap and 04_samples read (sample.checkpoints: [best]); delete the key"
    ),
}


#: a study or phase name: it names a folder, so letters, digits, ``_ - .`` and nothing after them (``\\Z``:
#: ``$`` would let a trailing newline through)
PHASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


#: the longest name a folder gets (file systems allow 255 bytes; staging adds a suffix)
MAX_NAME = 200


def name_problem(name: Any, what: str = "phase") -> Optional[str]:
    """Why ``name`` cannot name a study or phase folder, or None when it can."""
    allowed = f"allowed: letters, digits, '_', '-' or '.', starting with a letter or digit, at most {MAX_NAME} long"
    if not isinstance(name, str) or not PHASE_NAME.match(name) or len(name) > MAX_NAME:
        return f"{allowed} (it names a folder)"
    if what == "phase" and name.casefold() in {n.casefold() for n in STUDY_LEVEL_NAMES}:
        return (
            f"{name!r} is the name of a study-level file or folder in outputs/<study>/ "
            f"({', '.join(STUDY_LEVEL_NAMES)}); allowed: any other name"
        )
    return None


def _did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _allowed_for(model: type[BaseModel], name: str) -> str:
    """A short 'allowed' phrase for a field, from its annotation and bounds."""
    info = model.model_fields.get(name)
    if info is None:
        return ""
    bounds = []
    for meta in info.metadata:
        for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            v = getattr(meta, attr, None)
            if v is not None:
                bounds.append(f"{sym} {v}")
    ann = info.annotation
    text = getattr(ann, "__name__", None) or str(ann).replace("typing.", "")
    if getattr(ann, "__origin__", None) is Literal:
        text = "one of " + ", ".join(repr(a) for a in ann.__args__)
    return f"allowed: {text}" + (f" {' and '.join(bounds)}" if bounds else "")


# --------------------------------------------------------------------------- merging
def deep_merge(base: dict, override: Optional[dict]) -> dict:
    """Return ``base`` with ``override`` merged in; nested dicts merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) and value >= 1000:
        for div, suffix in ((1_000_000, "M"), (1000, "k")):
            if value % div == 0 or value >= div * 10:
                return f"{value / div:g}{suffix}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _grid_label(key: str) -> str:
    return {"data.max_tokens": "d", "data.max_train_tokens": "d", "train.max_iters": "it", "train.epochs": "ep"}.get(
        key, key.split(".")[-1]
    )


def expand_grid(grid: dict[str, list]) -> list[tuple[str, dict]]:
    """Expand ``{key.path: [values]}`` into ``(phase_name, overrides)`` pairs, in order.

    ``model: [small, medium]`` names a size; other keys are dotted paths.
    """
    keys = list(grid)
    out = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        parts, overrides = [], {}
        for key, value in zip(keys, combo):
            if key == "model":
                parts.append(str(value))
                overrides = deep_merge(overrides, {"model": value})
                continue
            parts.append(f"{_grid_label(key)}{_format_value(value)}")
            node: dict = {}
            cursor = node
            path = key.split(".")
            for p in path[:-1]:
                cursor[p] = {}
                cursor = cursor[p]
            cursor[path[-1]] = value
            overrides = deep_merge(overrides, node)
        out.append(("_".join(parts), overrides))
    return out


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


def _pydantic_problems(err: ValidationError, raw: dict, file: str, phase: str) -> list[Problem]:
    out = []
    for e in err.errors():
        loc = [str(x) for x in e["loc"]]
        key = ".".join(loc)
        value = e.get("input", MISSING)
        section = loc[0] if loc else ""
        model = SECTION_MODELS.get(section)
        if e["type"] == "extra_forbidden":
            if key in REMOVED_KEYS:
                msg = REMOVED_KEYS[key]
            elif len(loc) == 1:
                msg = "unknown section; allowed: " + ", ".join(PHASE_KEYS) + _did_you_mean(loc[0], PHASE_KEYS)
            elif model is not None and len(loc) == 2:
                msg = (
                    f"unknown key in {section}"
                    + _did_you_mean(loc[-1], model.model_fields)
                    + f" (allowed keys: {', '.join(model.model_fields)})"
                )
            else:
                msg = "unknown key; allowed: warn, fail" + _did_you_mean(loc[-1], ("warn", "fail"))
            out.append(Problem(file, phase, key, _lookup(raw, loc), msg))
            continue
        allowed = _allowed_for(model, loc[1]) if model is not None and len(loc) >= 2 else ""
        msg = e["msg"].rstrip(".")
        if allowed and allowed.split(":", 1)[1].strip() not in msg:
            msg += f"; {allowed}"
        out.append(Problem(file, phase, key, value, msg))
    return out


def _lookup(raw: dict, loc: list[str]) -> Any:
    node: Any = raw
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return MISSING
    return node


def _val_path_problems(d: Any, file: str, phase: Optional[str]) -> list[Problem]:
    """``data.val_path``: a source read from a path, and no cut that would undo the user's split."""
    if not d.val_path:
        return []
    if d.source not in ("files", "text", "jsonl", "csv", "records"):
        why = "allowed: data.source records, jsonl, csv, text or files (sources read from data.path)"
        return [Problem(file, phase, "data.val_path", d.val_path, f"data.source {d.source!r} has no val file; {why}")]
    if d.max_tokens is not None:
        why = "data.max_tokens cuts one corpus before splitting it; with data.val_path use data.max_train_tokens"
        return [Problem(file, phase, "data.max_tokens", d.max_tokens, why)]
    return []


def template_problem(template: str, fields: list[str]) -> Optional[str]:
    """Why ``template`` cannot join a record's fields (``str.format`` with the field names), or None."""
    allowed = "allowed: text with {field} placeholders for data.fields, and {{ or }} for a literal brace"
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        bad = [n for n in names if not n.isidentifier()]
        if bad:
            return f"placeholder {{{bad[0]}}} is not a field name; {allowed}"
        template.format(**{n: "" for n in names})
    except (ValueError, KeyError, IndexError, AttributeError) as exc:
        return f"not a valid template ({exc}); {allowed}"
    missing = sorted(set(names) - set(fields))
    if missing and fields:
        return f"names {missing} that are not in data.fields {fields}"
    return None


def cross_checks(p: PhaseParams, file: str, phase: str) -> list[Problem]:
    """Checks that relate several fields of one phase."""
    out = []
    m, t, d, s = p.model, p.train, p.data, p.sample
    if p.tokenizer.compact_from != "train" and not p.tokenizer.compact:
        out.append(
            Problem(
                file,
                phase,
                "tokenizer.compact_from",
                p.tokenizer.compact_from,
                "only applies to a compact vocabulary; allowed: set tokenizer.compact: true, or leave compact_from out",
            )
        )
    if m.n_embd % m.n_head:
        out.append(
            Problem(
                file,
                phase,
                "model.n_embd",
                m.n_embd,
                f"must be divisible by model.n_head ({m.n_head}); allowed: a multiple of {m.n_head}, "
                f"e.g. {m.n_head * max(1, round(m.n_embd / m.n_head))}",
            )
        )
    if (t.max_iters is None) == (t.epochs is None):
        out.append(
            Problem(
                file,
                phase,
                "train.max_iters",
                t.max_iters,
                f"give exactly one of train.max_iters and train.epochs (epochs = {t.epochs})",
            )
        )
    if t.max_iters is not None and t.eval_interval > t.max_iters:
        out.append(
            Problem(file, phase, "train.eval_interval", t.eval_interval, f"must be <= train.max_iters ({t.max_iters})")
        )
    if t.min_lr is not None and t.min_lr > t.learning_rate:
        out.append(
            Problem(file, phase, "train.min_lr", t.min_lr, f"must be <= train.learning_rate ({t.learning_rate})")
        )
    if t.max_iters is not None and t.warmup_iters > t.max_iters:
        out.append(
            Problem(file, phase, "train.warmup_iters", t.warmup_iters, f"must be <= train.max_iters ({t.max_iters})")
        )
    bad_save = [i for i in t.save_every if not isinstance(i, int) or i <= 0]
    if bad_save:
        out.append(
            Problem(file, phase, "train.save_every", t.save_every, "allowed: a list of positive iteration numbers")
        )
    if not (t.device == "auto" or re.fullmatch(r"cpu|mps|cuda(:\d+)?", t.device)):
        out.append(Problem(file, phase, "train.device", t.device, "allowed: auto, cpu, mps, cuda or cuda:N"))
    if d.source in ("files", "text", "jsonl", "csv", "records") and not d.path:
        out.append(Problem(file, phase, "data.path", d.path, f"data.source {d.source!r} needs a path"))
    out.extend(_val_path_problems(d, file, phase))
    if d.source in ("jsonl", "csv") and not d.fields:
        out.append(
            Problem(
                file,
                phase,
                "data.fields",
                d.fields,
                f"data.source {d.source!r} needs the fields to join, e.g. [question, answer]",
            )
        )
    if d.source == "generated" and not d.generator:
        out.append(
            Problem(
                file,
                phase,
                "data.generator",
                d.generator,
                "data.source 'generated' needs a generator 'module:function', e.g. 'gaplab.data.teaching:qa_defects'",
            )
        )
    if d.template is not None:
        why = template_problem(d.template, list(d.fields))
        if why:
            out.append(Problem(file, phase, "data.template", d.template, why))
    if d.generator:
        from ..data.corpus import import_callable
        from ..errors import DataError

        try:
            import_callable(d.generator, "data.generator")  # imported to see that it exists; never called here
        except DataError as exc:
            out.append(
                Problem(
                    file,
                    phase,
                    "data.generator",
                    d.generator,
                    str(exc).removeprefix("data.generator: ").removeprefix(f"{d.generator!r}: "),
                )
            )
    for name in d.fail_on:
        if name not in CHECK_NAMES:
            out.append(
                Problem(
                    file,
                    phase,
                    "data.fail_on",
                    name,
                    f"unknown check; allowed: {', '.join(CHECK_NAMES)}" + _did_you_mean(name, CHECK_NAMES),
                )
            )
    for name in d.checks:
        if name not in CHECK_NAMES:
            out.append(
                Problem(
                    file,
                    phase,
                    f"data.checks.{name}",
                    name,
                    f"unknown check; allowed: {', '.join(CHECK_NAMES)}" + _did_you_mean(name, CHECK_NAMES),
                )
            )
    from ..data.validators import ValidatorError, load_validator

    for key, specs in (("data.validators", d.validators), ("sample.validators", s.validators)):
        for spec in specs:
            try:
                load_validator(spec)  # imports it now, so a bad path stops the study before anything runs
            except ValidatorError as exc:
                out.append(Problem(file, phase, key, spec, str(exc).split(": ", 2)[-1]))
    name = p.tokenizer.name
    if name not in ("char", "bpe") and name not in TIKTOKEN_NAMES:
        out.append(
            Problem(
                file,
                phase,
                "tokenizer.name",
                name,
                f"allowed: char, bpe, {', '.join(TIKTOKEN_NAMES)}"
                + _did_you_mean(name, ("char", "bpe") + TIKTOKEN_NAMES),
            )
        )
    out += _bpe_checks(p, file, phase)
    for pat in s.format_patterns:
        try:
            re.compile(pat)
        except re.error as exc:
            out.append(Problem(file, phase, "sample.format_patterns", pat, f"not a valid regular expression ({exc})"))
    return out


def _bpe_checks(p: PhaseParams, file: str, phase: str) -> list[Problem]:
    """``tokenizer: {name: bpe, vocab_size: N}`` is trained on the training split, so the split comes first."""
    out, tok, d = [], p.tokenizer, p.data
    if tok.name != "bpe":
        if tok.vocab_size is not None:
            out.append(
                Problem(
                    file,
                    phase,
                    "tokenizer.vocab_size",
                    tok.vocab_size,
                    f"only applies to tokenizer.name: bpe (this phase uses {tok.name!r}, whose vocabulary "
                    "is fixed); allowed: leave vocab_size out, or set tokenizer.name: bpe",
                )
            )
    elif tok.vocab_size is None:
        out.append(
            Problem(
                file,
                phase,
                "tokenizer.vocab_size",
                None,
                f"tokenizer.name bpe needs a vocabulary size; allowed: an integer >= {BYTE_ALPHABET} "
                "(the byte alphabet), e.g. 1024",
            )
        )
    elif tok.vocab_size < BYTE_ALPHABET:
        out.append(
            Problem(
                file,
                phase,
                "tokenizer.vocab_size",
                tok.vocab_size,
                f"is below the byte alphabet: a byte-level BPE starts from all {BYTE_ALPHABET} byte values "
                f"and adds merges; allowed: an integer >= {BYTE_ALPHABET}",
            )
        )
    if tok.name == "bpe" and d.split_on != "text":
        out.append(
            Problem(
                file,
                phase,
                "data.split_on",
                d.split_on,
                "tokenizer.name bpe is trained on the training split only, so the split must be made on "
                "the text before tokenizing; allowed: text (set data.split_on: text)",
            )
        )
    if d.split_on == "text" and d.max_tokens is not None:
        out.append(
            Problem(
                file,
                phase,
                "data.max_tokens",
                d.max_tokens,
                "cuts the token stream before the split, so with data.split_on: text each tokenizer would "
                "keep different text; allowed: leave it out (data.max_train_tokens cuts only the "
                "training side and keeps the val text)",
            )
        )
    return out


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
        problems += _pydantic_problems(err, raw, file, phase)
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
    problems: list[Problem] = []
    if not isinstance(raw, dict):
        raise StudyError(
            [
                Problem(
                    file, None, "(file)", raw, "a study must be a YAML mapping with keys " + ", ".join(TOP_LEVEL_KEYS)
                )
            ]
        )
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

    grid = raw.get("grid")
    if grid is not None:
        if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
            problems.append(
                Problem(file, None, "grid", grid, "allowed: a mapping of key path -> non-empty list of values")
            )
        else:
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
            if not any(p.file == file and p.key.startswith("grid") for p in problems):
                entries.extend(expand_grid(grid))
    if not entries and not any(p.key in ("phases", "grid") for p in problems):
        problems.append(Problem(file, None, "phases", phases_raw, "a study needs at least one phase (or a grid)"))

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
    if problems:
        raise StudyError(problems)
    return Study(name=name, description=description.strip(), path=Path(file), phases=phases)


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
