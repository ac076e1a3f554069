"""Measuring a set of samples: every per-sample metric, their aggregates, and ``samples.jsonl``.

The seed projects judged samples by eye ("gibberish", "ginggingging", "memorized actual file paths")
or by ad-hoc scripts (keyword match per category, missing "### Solution" sections).
:func:`evaluate_samples` measures each of those, so phases compare with numbers: repetition and code
well-formedness (:mod:`gaplab.measure.text_quality`), memorisation (:mod:`gaplab.measure.ngram_index`),
keywords and format.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

from ..files import atomic_write_text
from .ngram_index import MemorizationIndex
from .text_quality import (
    KeywordSet,
    code_metrics,
    compile_patterns,
    format_compliance,
    keyword_score,
    repetition_metrics,
)


# =========================================================================== evaluation
def _mean(values: Iterable[Any]) -> Optional[float]:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else None


def _clip(text: Optional[str], limit: int = 200) -> Optional[str]:
    """Text for a summary table: at most ``limit`` characters, marked with " [...]" when cut."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + " [...]"


def _max(values: Iterable[Any]) -> Optional[float]:
    vals = [v for v in values if v is not None]
    return max(vals) if vals else None


def evaluate_samples(
    samples: Sequence[Mapping[str, Any]],
    *,
    index: Optional[MemorizationIndex] = None,
    tokenizer=None,
    python: bool = False,
    format_patterns: Sequence[str] = (),
    keyword_set: Optional[KeywordSet] = None,
    repeat_n: int = 3,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Add per-sample metrics to each sample (a copy) and aggregate them.

    What is measured on what: repetition, stutters, keywords and format on the
    generated continuation (``text``) — the prompt is not the model's output;
    Python well-formedness on ``full_text`` (prompt + continuation), since
    ``def get_`` + continuation is the code; memorisation on the generated ids
    (``token_ids``): copied spans and n-grams count only when they hold enough content tokens
    (:class:`gaplab.measure.ngram_index.MemorizationIndex`: indentation and punctuation runs are not
    copying), and ``mem_longest_text`` shows the longest copy.  Aggregates are means over samples (``*_share`` of a
    yes/no metric is the share of samples where it holds; ``None`` when no
    sample has the metric), plus keyword scores per category and difficulty.
    """
    patterns = compile_patterns(format_patterns)
    rows: list[dict[str, Any]] = []
    for s in samples:
        row = dict(s)
        text = str(row.get("text", ""))
        row.update(repetition_metrics(text, repeat_n=repeat_n))
        if index is not None:
            ids = row.get("token_ids")
            row.update(index.measure([] if ids is None else ids, tokenizer=tokenizer))
        if python:
            row.update(code_metrics(str(row.get("full_text", text))))
        if patterns:
            row.update(format_compliance(text, patterns))
        if keyword_set is not None:
            item = keyword_set.by_prompt.get(row.get("prompt"))
            if item is not None:
                row.update(
                    keyword_score(text, item.keywords, item.case_sensitive),
                    keyword_category=item.category,
                    keyword_difficulty=item.difficulty,
                )
        rows.append(row)
    return rows, aggregate_rows(rows, repeat_n=repeat_n, format_patterns=[p.pattern for p in patterns])


def _col(rows: Sequence[Mapping[str, Any]], key: str) -> list[Any]:
    return [r.get(key) for r in rows]


def _share(rows: Sequence[Mapping[str, Any]], key: str) -> Optional[float]:
    """Share of the rows with a ``key`` whose value is true (None when no row has one)."""
    vals = [r[key] for r in rows if r.get(key) is not None]
    return sum(1 for v in vals if v) / len(vals) if vals else None


def _repetition(rows: Sequence[Mapping[str, Any]], repeat_n: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "n_samples": len(rows),
        "new_tokens": _mean(_col(rows, "new_tokens")),
        "distinct_1": _mean(_col(rows, "distinct_1")),
        "distinct_2": _mean(_col(rows, "distinct_2")),
        "distinct_3": _mean(_col(rows, "distinct_3")),
        f"repeated_{repeat_n}gram_share": _mean(_col(rows, f"repeated_{repeat_n}gram_share")),
        "longest_repeat_chars": _mean(_col(rows, "longest_repeat_chars")),
        "stutter_share": _share(rows, "stutter_count"),
        "stutters_per_sample": _mean(_col(rows, "stutter_count")),
    }
    examples: list[str] = []
    for r in rows:
        for st in r.get("stutters") or []:
            if st["example"] not in examples:
                examples.append(st["example"])
    out["stutter_examples"] = examples[:10]
    return out


def _memorization(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    longest = max(rows, key=lambda r: r.get("mem_longest_tokens") or 0)
    return {
        "mem_longest_tokens": _mean(_col(rows, "mem_longest_tokens")),
        "mem_longest_tokens_max": _max(_col(rows, "mem_longest_tokens")),
        "mem_longest_chars_max": _max(_col(rows, "mem_longest_chars")),
        "mem_longest_text": _clip(longest.get("mem_longest_text")),
        "mem_longest_any_tokens_max": _max(_col(rows, "mem_longest_any_tokens")),
        "train_ngram_share": _mean(_col(rows, "train_ngram_share")),
        "val_only_ngram_share": _mean(_col(rows, "val_only_ngram_share")),
        "novel_ngram_share": _mean(_col(rows, "novel_ngram_share")),
    }


def _python_quality(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "parse_ok_share": _share(rows, "parse_ok"),
        "parse_line_share": _mean(_col(rows, "parse_line_share")),
        "brackets_balanced_share": _share(rows, "brackets_balanced"),
        "bracket_errors": _mean(_col(rows, "bracket_errors")),
        "tokenize_errors": _mean(_col(rows, "tokenize_errors")),
    }


def _format(rows: Sequence[Mapping[str, Any]], format_patterns: Sequence[str]) -> dict[str, Any]:
    return {
        "format_ok_share": _share(rows, "format_ok"),
        "format_by_pattern": {
            p: _mean([0.0 if p in (r.get("format_missing") or []) else 1.0 for r in rows if "format_ok" in r])
            for p in format_patterns
        },
    }


def _keywords(scored: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The mean keyword score of the scored rows, overall and by category and difficulty."""
    out: dict[str, Any] = {"keyword_score": _mean(r["keyword_score"] for r in scored), "keyword_samples": len(scored)}
    for key, name in (("keyword_category", "keyword_by_category"), ("keyword_difficulty", "keyword_by_difficulty")):
        groups: dict[str, list[float]] = {}
        for r in scored:
            groups.setdefault(r[key], []).append(r["keyword_score"])
        out[name] = {g: sum(v) / len(v) for g, v in groups.items()}
    return out


def aggregate_rows(
    rows: Sequence[Mapping[str, Any]], *, repeat_n: int = 3, format_patterns: Sequence[str] = ()
) -> dict[str, Any]:
    """Means and shares over evaluated rows (see :func:`evaluate_samples`): repetition always; memorization,
    Python well-formedness, format and keyword scores when the rows have them."""
    agg = _repetition(rows, repeat_n)
    if any("mem_longest_tokens" in r for r in rows):
        agg.update(_memorization(rows))
    if any("parse_ok" in r for r in rows):
        agg.update(_python_quality(rows))
    if format_patterns:
        agg.update(_format(rows, format_patterns))
    scored = [r for r in rows if r.get("keyword_score") is not None]
    if scored:
        agg.update(_keywords(scored))
    return agg


# =========================================================================== validators on samples
def sample_document_text(row: Mapping[str, Any], separator: str = "") -> str:
    """The text a sample validator sees: prompt + continuation, up to the first ``separator`` the model wrote.

    The data's separator ends a document, so what the model generated after it is the start of another
    document; without one in the continuation the whole sample counts.
    """
    prompt = str(row.get("prompt") or "")
    full = str(row["full_text"]) if row.get("full_text") is not None else prompt + str(row.get("text", ""))
    end = full.find(separator, len(prompt)) if separator else -1
    return full[:end] if end >= 0 else full


def validate_samples(
    rows: Sequence[Mapping[str, Any]], specs: Sequence[str], separator: str = ""
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run ``sample.validators`` (the ``data.validators`` kind) on each sample; per-sample marks and their shares.

    Each sample becomes one document (:func:`sample_document_text`) for
    :func:`gaplab.data.validators.run_validators`, so a validator means the same on samples as on data: a
    list of problems, empty when the sample passes, or ``None`` when it does not apply (a sample that is not
    a shopping cart, for ``cart_arithmetic``), counted as not checked.  Per row: ``validators_checked``
    (some validator applied), ``validators_ok`` (checked and no problem; ``None`` when unchecked),
    ``validator_problems``.  Aggregates: ``validators_checked_share`` (samples checked / samples),
    ``validators_pass_share`` (passing / checked; ``None`` when none was checked), ``validators_pass_count``,
    ``validators_checked_count``, and ``validators_by_name`` ({spec: checked, passing, pass_share}).
    """
    from ..data.corpus import Document
    from ..data.validators import run_validators

    out: list[dict[str, Any]] = []
    by_name: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(rows):
        row = dict(r)
        doc = Document(
            text=sample_document_text(row, separator), source=f"sample/{row.get('checkpoint', '?')}", name=f"sample-{i}"
        )
        result = run_validators([doc], list(specs))
        problems = [p for v in result["validators"].values() for ex in v["examples"] for p in ex["problems"]]
        checked = bool(result["documents_checked"])
        row.update(
            validators_checked=checked,
            validators_ok=(not result["documents_failing"]) if checked else None,
            validator_problems=problems,
        )
        for name, v in result["validators"].items():
            agg = by_name.setdefault(name, {"checked": 0, "passing": 0})
            agg["checked"] += v["checked"]
            agg["passing"] += v["checked"] - v["failing"]
        out.append(row)
    for agg in by_name.values():
        agg["pass_share"] = agg["passing"] / agg["checked"] if agg["checked"] else None
    n_checked = sum(1 for r in out if r["validators_checked"])
    n_pass = sum(1 for r in out if r["validators_ok"])
    return out, {
        "validators_checked_count": n_checked,
        "validators_pass_count": n_pass,
        "validators_checked_share": n_checked / len(out) if out else None,
        "validators_pass_share": n_pass / n_checked if n_checked else None,
        "validators_by_name": by_name,
    }


# =========================================================================== files
def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to samples.jsonl")


def write_samples(run_dir: Union[str, Path], rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``run_dir/samples.jsonl`` (one JSON object per sample) atomically."""
    text = "".join(json.dumps(dict(r), ensure_ascii=False, default=_jsonable) + "\n" for r in rows)
    return atomic_write_text(Path(run_dir) / "samples.jsonl", text)


def read_samples(run_dir: Union[str, Path]) -> list[dict[str, Any]]:
    """The rows of ``run_dir/samples.jsonl`` (empty if the file is missing)."""
    path = Path(run_dir) / "samples.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
