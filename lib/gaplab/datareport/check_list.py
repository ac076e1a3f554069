"""Every data check, each one object in :data:`CHECKS` (the one list; a new check is one more entry here).

Each entry is a :class:`gaplab.datareport.check.DataCheck`: its name, default thresholds, meaning, and the
two small functions that read its value and its detail sentence from the report.  The report's ``checks``
rows (:func:`gaplab.datareport.checks.evaluate_checks`), the names a study may use in ``data.checks`` and
``data.fail_on`` (:data:`CHECK_NAMES`, checked by :mod:`gaplab.pipeline.config`) and the docs come from it.
"""

from __future__ import annotations

from typing import Any, Optional

from .check import DataCheck, Report, pct, plural
from .conflicts import (
    CONFLICT_MEANING,
    OVERLAP_MEANING,
    conflicts_detail,
    conflicts_section,
    overlap_detail,
    overlap_section,
)
from .shift import SHIFT_MEANING, shift_detail, shift_section


# --------------------------------------------------------------------------- details: what was found
def _exact_detail(report: Report, warn: Optional[float]) -> str:
    d, n = report["duplicates"]["exact"], report["size"]["documents"]
    text = f"{d['documents']} of {n} documents repeat an earlier one exactly"
    if d["examples"]:
        e = d["examples"][0]
        text += f"; biggest group: {e['count']} copies ({', '.join(map(repr, e['names'][:3]))})"
    return text


def _templated_detail(report: Report, warn: Optional[float]) -> str:
    d, n = report["duplicates"]["templated"], report["size"]["documents"]
    text = f"{d['documents']} of {n} documents belong to {d['families']} template {plural(d['families'], 'family', 'families')}"
    if d["examples"]:
        e = d["examples"][0]
        text += f"; biggest: {e['count']} documents like {e['examples'][0]['preview'][:80]!r}"
    return text


def _boilerplate_detail(report: Report, warn: Optional[float]) -> str:
    d, n = report["boilerplate"], report["size"]["documents"]
    text = (
        f"{d['documents']} of {n} documents contain boilerplate: a {d['ngram']}-word phrase found in "
        f"≥ {d['min_documents']} different documents, at their start or end or covering a real share"
    )
    if d["phrases"]:
        p = d["phrases"][0]
        where = {"start": "at the start", "end": "at the end"}.get(p.get("where"), "throughout")
        text += f", e.g. {p['phrase'][:80]!r} ({p['documents']} documents, {where})"
        cov = d.get("coverage") or {}
        if cov.get("mean_in_documents"):
            text += f"; it is {pct(cov['mean_in_documents'])} of those documents' words on average"
    natural = d.get("natural_phrases") or []
    if natural:
        text += (
            f"; {len(natural)}{'+' if len(natural) >= 5 else ''} recurring {plural(len(natural), 'phrase', 'phrases')}"
            f" of the language set aside, e.g. {natural[0]['phrase'][:60]!r}"
        )
    prefix = d.get("prompt_prefix")
    if prefix:
        text += (
            f"; the prompts share {prefix['phrase'][:80]!r} at their start ({prefix['documents']} records): "
            "a shared prompt prefix (an instruction template), not counted as boilerplate"
        )
    return text


def _split_imbalance_detail(report: Report, warn: Optional[float]) -> str:
    s = report["split"]
    level = warn if warn is not None else 0.0
    bad = sorted(
        (r for r in s["sources"] if r["scored"] and r["deviation"] >= level and r["deviation"] > 0),
        key=lambda r: -r["deviation"],
    )
    overall = s["overall_val_share"]
    if not bad:
        return f"every source's val share is within {level:g} of the overall {pct(overall)}"
    names = "; ".join(
        f"{r['source']!r}: {pct(r['val_share'])} of its tokens in val "
        f"({r['val_documents']} val / {r['train_documents']} train documents)"
        for r in bad[:4]
    )
    more = f" and {len(bad) - 4} more" if len(bad) > 4 else ""
    return f"the split puts {pct(overall)} of all tokens in val, but {names}{more}"


def _leakage_detail(report: Report, warn: Optional[float]) -> str:
    d = report["leakage"]["ngram"]
    text = f"{d['in_train']:,} of {d['val_ngrams']:,} val {d['n']}-grams also occur in train"
    if d.get("spans"):
        text += f"; longest verbatim span {d['longest_span_tokens']} tokens"
    return text


def _cross_exact_detail(report: Report, warn: Optional[float]) -> str:
    d = report["leakage"]["cross_split_duplicates"]
    text = f"{d['documents']} of {d['val_documents']} val documents are also in train verbatim"
    if d["examples"]:
        e = d["examples"][0]
        text += f", e.g. {e['val']!r} = {e['train']!r}"
    return text


def _truncated_detail(report: Report, warn: Optional[float]) -> str:
    d = report["lengths"]["truncated"]
    return (
        f"{d['documents']} of {report['lengths']['documents']} documents are longer than block_size = "
        f"{d['block_size']} tokens: the model never sees them whole in one context"
    )


def _near_detail(report: Report, warn: Optional[float]) -> str:
    d, n = report["duplicates"]["near"], report["size"]["documents"]
    text = (
        f"{d['documents']} of {n} documents have a near-twin (similarity ≥ {d['threshold']:g}), in "
        f"{d['families']} {plural(d['families'], 'family', 'families')}"
    )
    differ = [e for e in d["examples"] if not e["identical"]]
    if differ:
        e = differ[0]
        text += f"; e.g. {e['a']!r} ~ {e['b']!r} ({e['similarity']:.2f})"
    return text


def _cross_near_detail(report: Report, warn: Optional[float]) -> str:
    d = report["leakage"]["cross_split_near_duplicates"]
    text = (
        f"{d['documents']} of {d['val_documents']} val documents have a near-twin in train "
        f"(similarity ≥ {d['threshold']:g}): the model has seen another version of them"
    )
    if d["examples"]:
        e = d["examples"][0]
        text += f", e.g. {e['val']!r} ~ {e['train']!r} ({e['similarity']:.2f})"
    return text


def _unseen_detail(report: Report, warn: Optional[float]) -> str:
    d = report["size"]["unseen_val_tokens"]
    text = f"{d['unseen_tokens']:,} of {d['val_tokens']:,} val tokens"
    if d.get("byte_share") is not None:
        text += f" ({pct(d['byte_share'])} of their UTF-8 bytes)"
    text += f" have an id ({d['distinct_unseen_ids']:,} distinct) that never occurs in train"
    if d.get("compact") and d.get("compact_from") == "train":
        text += (
            "; with tokenizer.compact (compact_from: train) each becomes the one unknown id, never a training target"
        )
    worst = [r for r in d["sources"] if r["unseen_tokens"]][:3]
    if len(d["sources"]) > 1 and worst:
        text += "; most in " + ", ".join(f"{r['source']!r} {pct(r['share'])}" for r in worst)
    return text


def _validators_detail(report: Report, warn: Optional[float]) -> str:
    v = report["validators"]
    per = ", ".join(f"{k} {r['failing']}/{r['checked']}" for k, r in v["validators"].items())
    text = f"{v['documents_failing']} of {v['documents_checked']} validated documents fail ({per})"
    for r in v["validators"].values():
        if r["examples"]:
            e = r["examples"][0]
            text += f"; e.g. {e['document']}: {e['problems'][0]}"
            break
    return text


# --------------------------------------------------------------------------- values: read from the report
def _validators_value(report: Report) -> Any:
    v = report["validators"]
    return v["share"] if v.get("documents_checked") else None


def _cross_near_value(report: Report) -> Any:
    d = report["leakage"]["cross_split_near_duplicates"]
    return d["share"] if d["val_documents"] else None


# --------------------------------------------------------------------------- the list
CHECKS: tuple[DataCheck, ...] = (
    DataCheck(
        name="exact_duplicates",
        meaning="share of documents that repeat an earlier document exactly",
        warn=0.01,
        fail=0.10,
        value=lambda r: r["duplicates"]["exact"]["share"],
        detail=_exact_detail,
    ),
    DataCheck(
        name="templated",
        meaning="share of documents that share a template skeleton with a different document",
        warn=0.05,
        fail=0.25,
        value=lambda r: r["duplicates"]["templated"]["share"],
        detail=_templated_detail,
    ),
    DataCheck(
        name="boilerplate",
        meaning=(
            "share of documents that contain a boilerplate phrase (repeated across documents and at "
            "their start or end, or covering a real share of them)"
        ),
        warn=0.10,
        fail=0.50,
        value=lambda r: r["boilerplate"]["share"],
        detail=_boilerplate_detail,
    ),
    DataCheck(
        name="split_imbalance",
        meaning="largest gap between a source's val share of tokens and the split's overall val share",
        warn=0.50,
        fail=0.70,
        value=lambda r: r["split"]["imbalance"]["value"],
        detail=_split_imbalance_detail,
        shown="number",
        needs_split=True,
    ),
    DataCheck(
        name="leakage",
        meaning="share of val n-grams that also occur in train",
        warn=0.50,
        fail=0.80,
        value=lambda r: r["leakage"]["ngram"]["share"],
        detail=_leakage_detail,
        needs_split=True,
    ),
    DataCheck(
        name="cross_split_duplicates",
        meaning="share of val documents that also appear verbatim in train",
        warn=0.0,
        fail=0.05,
        value=lambda r: r["leakage"]["cross_split_duplicates"]["share"],
        detail=_cross_exact_detail,
        needs_split=True,
    ),
    DataCheck(
        name="truncated",
        meaning="share of documents longer than block_size",
        warn=0.50,
        fail=None,
        value=lambda r: r["lengths"]["truncated"]["share"],
        detail=_truncated_detail,
    ),
    DataCheck(
        name="validators",
        meaning="share of validated documents that fail a validator",
        warn=0.0,
        fail=0.01,
        value=_validators_value,
        detail=_validators_detail,
        not_measured="not measured: no validators configured (data.validators)",
    ),
    DataCheck(
        name="near_duplicates",
        meaning="share of documents with a near-twin (Jaccard similarity of their sets of word shingles)",
        warn=0.05,
        fail=0.25,
        value=lambda r: r["duplicates"]["near"]["share"],
        detail=_near_detail,
    ),
    DataCheck(
        name="cross_split_near_duplicates",
        meaning="share of val documents with a near-twin in train",
        warn=0.0,
        fail=0.05,
        value=_cross_near_value,
        detail=_cross_near_detail,
        needs_split=True,
    ),
    DataCheck(
        name="unseen_val_tokens",
        meaning="share of val tokens whose token id never occurs in the training split",
        warn=0.01,
        fail=0.10,
        value=lambda r: r["size"]["unseen_val_tokens"]["share"],
        detail=_unseen_detail,
        needs_split=True,
    ),
    DataCheck(
        name="train_val_shift",
        meaning=SHIFT_MEANING,
        warn=0.05,
        fail=0.15,
        value=lambda r: r["train_val_shift"]["value"],
        detail=shift_detail,
        shown="number",
        needs_split=True,
        not_measured=(
            "not measured: needs a validation split, with at least 10 records, or text from at least two "
            "documents, on each side"
        ),
        section="train_val_shift",
        measure=shift_section,
    ),
    DataCheck(
        name="conflicting_answers",
        meaning=CONFLICT_MEANING,
        warn=0.01,
        fail=0.10,
        value=lambda r: r["conflicting_answers"]["value"],
        detail=conflicts_detail,
        needs_records=True,
        not_measured="not measured: needs records with a prompt and an answer side",
        section="conflicting_answers",
        measure=conflicts_section,
    ),
    DataCheck(
        name="val_prompts_in_train",
        meaning=OVERLAP_MEANING,
        warn=0.01,
        fail=0.10,
        value=lambda r: r["val_prompts_in_train"]["value"],
        detail=overlap_detail,
        needs_split=True,
        needs_records=True,
        not_measured="not measured: needs val records with a prompt and an answer side",
        section="val_prompts_in_train",
        measure=overlap_section,
    ),
)

#: the names ``data.checks`` and ``data.fail_on`` may use, in report order
CHECK_NAMES: tuple[str, ...] = tuple(c.name for c in CHECKS)
BY_NAME: dict[str, DataCheck] = {c.name: c for c in CHECKS}


def checks_markdown() -> str:
    """``docs/data_checks.md``: every check with its default thresholds and meaning, from :data:`CHECKS`
    (``python -m gaplab.datareport.check_list > docs/data_checks.md`` writes it; a test keeps it current)."""

    def level(x: Optional[float]) -> str:
        return "—" if x is None else f"{x:g}"

    lines = [
        "# Data checks",
        "",
        "Generated from `gaplab.datareport.check_list.CHECKS` (`python -m gaplab.datareport.check_list`); a study",
        "overrides the thresholds in `data.checks.<name>` and stops on a failure with `data.fail_on: [<name>]`.",
        "A measured value at or above `warn` warns, at or above `fail` fails; a measured 0 is always ok.",
        "",
        "| check | warn | fail | needs | what its value measures |",
        "|---|---|---|---|---|",
    ]
    for c in CHECKS:
        needs = ", ".join(n for n, on in (("a split", c.needs_split), ("prompt/answer records", c.needs_records)) if on)
        lines.append(f"| `{c.name}` | {level(c.warn)} | {level(c.fail)} | {needs or '—'} | {c.meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(checks_markdown(), end="")
