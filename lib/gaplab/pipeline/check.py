"""``gaplab check``: what each phase of a study will be, before anything runs, and nothing the study names called.

Per phase: the parameter breakdown, train/val tokens, tokens per parameter, the planned iterations and
epochs, and the estimated peak memory of training (:mod:`gaplab.pipeline.resources`), refused when it cannot
fit (exit 2).  Each distinct data configuration (data, tokenizer, block size) is prepared once, so a
10,000-phase grid on one corpus answers in seconds.  A phase whose data comes from a ``data.generator`` is
not prepared (that would call the generator): its data columns stay ``?``.  The report ends with every
Python callable the study names, which run as code only when the data is prepared.
"""

from __future__ import annotations

import json
from typing import Optional

from ..errors import Problem, StudyError
from ..measure.references import CHINCHILLA_TOKENS_PER_PARAM, SOURCES
from ..schema import planned_iters, tokens_per_iter

#: phases a check table shows unless ``--all``
CHECK_TABLE_ROWS = 100


def _fmt_int(n: Optional[float]) -> str:
    return "?" if n is None else f"{int(round(n)):,}"


def _fmt_g(n: Optional[float]) -> str:
    return "?" if n is None else f"{n:.4g}"


def check_rows(study, phases: Optional[list[str]] = None, memory_check: bool = True) -> list[dict]:
    """Per phase: parameter breakdown, split sizes, tokens per parameter, epochs and estimated peak memory.

    Nothing is trained, and no callable the study names is called: each distinct data configuration is
    prepared once, except data from a ``data.generator``, whose sizes stay unknown (``None``) until
    the data is prepared for real.  With ``memory_check`` a phase that cannot fit is a problem (exit 2).
    """
    from .resources import machine_memory, memory_problem

    rows = []
    problems: list[Problem] = []
    prepared: dict[str, object] = {}
    limits: dict[str, tuple[int, str]] = {}
    for ph in study.select(phases):
        p = ph.params
        prep = _prepared_once(study, ph, prepared, problems)
        if prep is _FAILED:
            continue
        vocab, exact = _vocabulary(p, prep)
        if memory_check and vocab and exact:
            device = p.train.device
            limits.setdefault(device, machine_memory(device))
            too_big = memory_problem(p, vocab, str(study.path), ph.name, limits[device])
            if too_big is not None:
                problems.append(too_big)
        rows.append(_check_row(ph, prep, vocab, exact))
    if problems:
        raise StudyError(problems)
    return rows


_FAILED = object()  # a phase whose data could not be prepared (its problems are reported)


def _prepared_once(study, ph, prepared: dict, problems: list[Problem]):
    """The phase's prepared data (each data configuration once), None for a generator's, or ``_FAILED``."""
    from ..data.split import prepare_data

    p = ph.params
    if p.data.source == "generated":
        return None
    key = json.dumps(
        [p.data.model_dump(mode="json"), p.tokenizer.model_dump(mode="json"), p.model.block_size],
        sort_keys=True,
    )
    if key not in prepared:
        try:
            prepared[key] = prepare_data(p, ph.name, str(study.path))
        except StudyError as exc:
            prepared[key] = exc
    if isinstance(prepared[key], StudyError):  # found once, for each phase on this data
        problems.extend(Problem(pr.file, ph.name, pr.key, pr.value, pr.message) for pr in prepared[key].problems)
        return _FAILED
    return prepared[key]


def _vocabulary(p, prep) -> tuple[Optional[int], bool]:
    """``(vocabulary size or None, exact)``.  Without the data a tiktoken vocabulary is known unless compact
    (then the base's size is an upper bound); a char vocabulary is not known at all."""
    from ..data.tokenizer import get_tokenizer

    exact = prep is not None or (p.tokenizer.name != "char" and not p.tokenizer.compact)
    vocab = (
        prep.vocab_size
        if prep is not None
        else None
        if p.tokenizer.name == "char"
        else get_tokenizer(p.tokenizer.name, []).vocab_size
    )
    return vocab, exact


def _check_row(ph, prep, vocab: Optional[int], exact: bool) -> dict:
    """One row of the check table."""
    from ..data.corpus import skipped_summary
    from ..model.gpt import count_params
    from .resources import peak_memory

    p = ph.params
    n_train = len(prep.train) if prep is not None else None
    counts = count_params(p.model, vocab or 0)
    iters = planned_iters(p.train, p.model.block_size, n_train) if n_train or p.train.max_iters else None
    tokens_seen = iters * tokens_per_iter(p.train, p.model.block_size) if iters else None
    return {
        "phase": ph.name,
        "params_total": counts["total"] if vocab else None,
        "params_embedding": counts["embedding"] if vocab else None,
        "params_non_embedding": counts["non_embedding"],
        "vocab": vocab,
        "exact": exact,
        "data_known": prep is not None,
        "train_tokens": n_train,
        "val_tokens": len(prep.val) if prep is not None else None,
        "tokens_per_param_total": n_train / max(1, counts["total"]) if n_train and vocab else None,
        "tokens_per_param_non_emb": n_train / max(1, counts["non_embedding"]) if n_train else None,
        "replicates": p.replicates,
        "skipped": skipped_summary(prep.corpus) if prep is not None else "",
        "peak_memory": peak_memory(p.model, p.train, vocab)["total"] if vocab else None,
        "iters": iters,
        "epochs": tokens_seen / max(1, n_train) if tokens_seen and n_train else None,
    }


def format_check_table(rows: list[dict], limit: Optional[int] = None) -> str:
    from .resources import format_bytes

    cols = [
        ("phase", "phase", str),
        ("params_total", "params", _fmt_int),
        ("params_embedding", "embedding", _fmt_int),
        ("params_non_embedding", "non-emb", _fmt_int),
        ("vocab", "vocab", _fmt_int),
        ("train_tokens", "train tok", _fmt_int),
        ("val_tokens", "val tok", _fmt_int),
        ("tokens_per_param_total", "tok/param", _fmt_g),
        ("tokens_per_param_non_emb", "tok/non-emb", _fmt_g),
        ("peak_memory", "peak mem", format_bytes),
        ("iters", "iters", _fmt_int),
        ("epochs", "epochs", lambda v: "?" if v is None else f"{v:.1f}"),
    ]
    if any(r.get("replicates", 1) > 1 for r in rows):
        cols.append(("replicates", "seeds", _fmt_int))
    bounded = ("params_total", "params_embedding", "vocab", "peak_memory")  # upper bounds where not exact

    def cell(r: dict, k: str, f) -> str:
        text = f(r[k])
        return "<=" + text if k in bounded and not r["exact"] and text != "?" else text

    shown = rows if limit is None else rows[:limit]
    table = [[h for _, h, _ in cols]] + [[cell(r, k, f) for k, _, f in cols] for r in shown]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if len(shown) < len(rows):
        lines.append(f"... and {len(rows) - len(shown):,} more phases (--all shows every one, --phases picks some)")
    lines.append("")
    lines.append(
        f"tok/param: train tokens per parameter, embeddings included, the convention of Chinchilla's "
        f"compute-optimal ~{CHINCHILLA_TOKENS_PER_PARAM:g} ({SOURCES['chinchilla'].authors}); tok/non-emb: per "
        f"non-embedding parameter, the N of {SOURCES['kaplan'].authors}."
    )
    if any(r.get("replicates", 1) > 1 for r in rows):
        lines.append("seeds: training seeds per phase (replicates); training takes that many times as long.")
    for r in shown:
        if r.get("skipped"):
            lines.append(f"{r['phase']}: data: {r['skipped']}")
    lines.append("epochs: iters x batch_size x grad_accum x block_size / train tokens.")
    lines.append(
        "peak mem: estimated peak memory of training (fp32 weights, gradients, AdamW state, activations "
        "for batch x block, logits; 1 GiB = 2**30 bytes), without the Python process itself."
    )
    if any(not r["data_known"] for r in rows):
        lines.append(
            "?: data from a data.generator is not prepared by check (that would call it): its sizes are "
            "known, and its memory checked, when the data is prepared (gaplab inspect, run, train); "
            "<=: a compact vocabulary counted at the base tokenizer's size, an upper bound."
        )
    return "\n".join(lines)


def named_callables(study) -> dict[str, list[str]]:
    """``{"data.generator 'm:f'": [phases], ...}``: every Python callable the study names, with its phases."""
    from ..data.validators import BUILTINS

    out: dict[str, list[str]] = {}
    for ph in study.phases:
        d = ph.params.data
        specs = [("data.generator", d.generator)] if d.source == "generated" and d.generator else []
        specs += [("data.validators", v) for v in d.validators if v not in BUILTINS]
        for key, spec in specs:
            out.setdefault(f"{key} {spec!r}", []).append(ph.name)
    return out


def check_report(
    study, phases: Optional[list[str]] = None, memory_check: bool = True, limit: Optional[int] = CHECK_TABLE_ROWS
) -> str:
    """What ``gaplab check`` prints: the phase count, the table, the machine's memory, the named callables."""
    from .resources import format_bytes, machine_memory

    rows = check_rows(study, phases, memory_check=memory_check)
    n = len(study.phases)
    lines = [
        f"study {study.name}: {study.description.splitlines()[0] if study.description else ''}",
        f"{n:,} phase{'s' if n != 1 else ''}" + (f", {len(rows):,} selected" if phases else ""),
        format_check_table(rows, limit),
    ]
    total, what = machine_memory("auto")
    lines.append(
        f"memory: {what} is {format_bytes(total)}; a phase whose peak mem exceeds the memory it trains "
        "in is refused (--skip-memory-check to try anyway)."
    )
    callables = named_callables(study)
    if callables:
        lines.append(
            "Python callables this study names (they run as code when the data is prepared, by gaplab "
            "inspect, run and train; check imported them to see that they exist and called none):"
        )
        for spec, names in callables.items():
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5:,} more" if len(names) > 5 else "")
            lines.append(f"  {spec}: phase{'s' if len(names) != 1 else ''} {shown}")
    return "\n".join(lines)
