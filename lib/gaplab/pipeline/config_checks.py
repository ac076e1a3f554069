"""The checks of one phase beyond each field's own type and bounds: fields that must agree, names that must
exist, and pydantic's errors as problems that name the key and say what is allowed.

Split from :mod:`gaplab.pipeline.config`.  :func:`cross_checks` runs each step below in turn; a new check
is one more step in its list.
"""

from __future__ import annotations

import re
import string
from typing import Any, Literal, Optional

from pydantic import BaseModel, ValidationError

from ..datareport.check_list import CHECK_NAMES
from ..errors import MISSING, Problem
from ..schema import BYTE_ALPHABET, PHASE_KEYS, SECTION_MODELS, TIKTOKEN_NAMES, PhaseParams
from .config_names import did_you_mean as _did_you_mean

#: keys that earlier versions accepted, with what to do instead
REMOVED_KEYS = {
    "train.restore_best": (
        "removed: it never changed what a run wrote; the best weights are always in ckpt/best.pt, "
        "which 03_loss_gap and 04_samples read (sample.checkpoints: [best]); delete the key"
    ),
}


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


def pydantic_problems(err: ValidationError, raw: dict, file: str, phase: str) -> list[Problem]:
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
    """Checks that relate several fields of one phase: every step of :data:`CROSS_CHECKS`, in order."""
    return [problem for step in CROSS_CHECKS for problem in step(p, file, phase)]


def _compact_checks(p: PhaseParams, file: str, phase: str) -> list[Problem]:
    """``tokenizer.compact_from`` without a compact vocabulary."""
    out: list[Problem] = []
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
    return out


def _model_checks(p: PhaseParams, file: str, phase: str) -> list[Problem]:
    """The model's width must split into its heads."""
    out: list[Problem] = []
    m = p.model
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
    return out


def _train_checks(p: PhaseParams, file: str, phase: str) -> list[Problem]:
    """Iterations or epochs (one of them), and the schedule's numbers against them."""
    out: list[Problem] = []
    t = p.train
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
    return out


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


def _source_checks(p: PhaseParams, file: str, phase: str) -> list[Problem]:
    """What each data source needs: a path, the fields to join, a generator; a template that fits the fields."""
    out: list[Problem] = []
    d = p.data
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
    return out


def _generator_checks(p: PhaseParams, file: str, phase: str) -> list[Problem]:
    """A ``data.generator`` must import (it is never called here)."""
    out: list[Problem] = []
    d = p.data
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
    return out


def _check_name_checks(p: PhaseParams, file: str, phase: str) -> list[Problem]:
    """``data.fail_on`` and ``data.checks`` name data checks that exist."""
    out: list[Problem] = []
    d = p.data
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
    return out


def _validator_checks(p: PhaseParams, file: str, phase: str) -> list[Problem]:
    """Every validator the study names imports now, so a bad path stops the study before anything runs."""
    out: list[Problem] = []
    d, s = p.data, p.sample
    from ..data.validators import ValidatorError, load_validator

    for key, specs in (("data.validators", d.validators), ("sample.validators", s.validators)):
        for spec in specs:
            try:
                load_validator(spec)  # imports it now, so a bad path stops the study before anything runs
            except ValidatorError as exc:
                out.append(Problem(file, phase, key, spec, str(exc).split(": ", 2)[-1]))
    return out


def _tokenizer_name_checks(p: PhaseParams, file: str, phase: str) -> list[Problem]:
    """The tokenizer is one gaplab knows."""
    out: list[Problem] = []
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
    return out


def _sample_checks(p: PhaseParams, file: str, phase: str) -> list[Problem]:
    """``sample.format_patterns`` are regular expressions."""
    out: list[Problem] = []
    s = p.sample
    for pat in s.format_patterns:
        try:
            re.compile(pat)
        except re.error as exc:
            out.append(Problem(file, phase, "sample.format_patterns", pat, f"not a valid regular expression ({exc})"))
    return out


def _bpe_vocab_checks(p: PhaseParams, file: str, phase: str) -> list[Problem]:
    """``tokenizer.vocab_size`` goes with ``tokenizer.name: bpe`` only, and is at least the byte alphabet."""
    out: list[Problem] = []
    tok = p.tokenizer
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
    return out


def _bpe_split_checks(p: PhaseParams, file: str, phase: str) -> list[Problem]:
    """A BPE is trained on the training split, so the split comes first, on the text."""
    out: list[Problem] = []
    tok, d = p.tokenizer, p.data
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


#: the steps of :func:`cross_checks`, in the order their problems are listed
CROSS_CHECKS = (
    _compact_checks,
    _model_checks,
    _train_checks,
    _source_checks,
    _generator_checks,
    _check_name_checks,
    _validator_checks,
    _tokenizer_name_checks,
    _bpe_vocab_checks,
    _bpe_split_checks,
    _sample_checks,
)
