"""Checks: each measured share against its thresholds (ok / warn / fail), and stopping on ``data.fail_on``.

A measured value at or above ``warn`` warns, at or above ``fail`` fails; a measured 0 is always ok.  The
defaults are :data:`DEFAULT_CHECKS`; a study overrides them key by key in ``data.checks``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

from ..schema import CHECK_NAMES

#: Default thresholds.  A measured value at or above ``warn`` warns, at or above
#: ``fail`` fails; a measured 0 is always ok; ``None`` disables that level.
DEFAULT_CHECKS: dict[str, dict[str, Optional[float]]] = {
    "exact_duplicates": {"warn": 0.01, "fail": 0.10},
    "templated": {"warn": 0.05, "fail": 0.25},
    "boilerplate": {"warn": 0.10, "fail": 0.50},
    "split_imbalance": {"warn": 0.50, "fail": 0.70},
    "leakage": {"warn": 0.50, "fail": 0.80},
    "cross_split_duplicates": {"warn": 0.0, "fail": 0.05},
    "truncated": {"warn": 0.50, "fail": None},
    "validators": {"warn": 0.0, "fail": 0.01},
    "near_duplicates": {"warn": 0.05, "fail": 0.25},
    "cross_split_near_duplicates": {"warn": 0.0, "fail": 0.05},
    "unseen_val_tokens": {"warn": 0.01, "fail": 0.10},
}


#: What each check's value measures (shown with the thresholds).
CHECK_MEANING: dict[str, str] = {
    "exact_duplicates": "share of documents that repeat an earlier document exactly",
    "templated": "share of documents that share a template skeleton with a different document",
    "boilerplate": (
        "share of documents that contain a boilerplate phrase (repeated across documents and at "
        "their start or end, or covering a real share of them)"
    ),
    "split_imbalance": "largest gap between a source's val share of tokens and the split's overall val share",
    "leakage": "share of val n-grams that also occur in train",
    "cross_split_duplicates": "share of val documents that also appear verbatim in train",
    "truncated": "share of documents longer than block_size",
    "validators": "share of validated documents that fail a validator",
    "near_duplicates": "share of documents with a near-twin (Jaccard similarity of their sets of word shingles)",
    "cross_split_near_duplicates": "share of val documents with a near-twin in train",
    "unseen_val_tokens": "share of val tokens whose token id never occurs in the training split",
}


class DataCheckFailed(RuntimeError):
    """A check named in ``data.fail_on`` failed; training must not start."""

    def __init__(self, message: str, failed: list[dict[str, Any]]):
        super().__init__(message)
        self.failed = failed


# --------------------------------------------------------------------------- checks
def _thresholds(checks: Optional[Mapping[str, Any]]) -> dict[str, dict[str, Optional[float]]]:
    out = {k: dict(v) for k, v in DEFAULT_CHECKS.items()}
    for name, th in (checks or {}).items():
        if name not in CHECK_NAMES:
            raise ValueError(f"data.checks.{name}: unknown check; allowed: {', '.join(CHECK_NAMES)}")
        if hasattr(th, "model_dump"):  # gaplab.schema.Threshold: only the keys the study set
            given = th.model_dump(exclude_unset=True)
        elif isinstance(th, Mapping):
            given = dict(th)
        else:
            raise ValueError(f"data.checks.{name} = {th!r}: allowed: a mapping with warn and/or fail")
        for key in given:
            if key not in ("warn", "fail"):
                raise ValueError(f"data.checks.{name}.{key}: unknown key; allowed: warn, fail")
        out[name].update(given)
    return out


def _check_value(report: Mapping[str, Any], name: str) -> Optional[float]:
    try:
        if name == "exact_duplicates":
            return report["duplicates"]["exact"]["share"]
        if name == "templated":
            return report["duplicates"]["templated"]["share"]
        if name == "boilerplate":
            return report["boilerplate"]["share"]
        if name == "split_imbalance":
            return report["split"]["imbalance"]["value"]
        if name == "leakage":
            return report["leakage"]["ngram"]["share"]
        if name == "cross_split_duplicates":
            return report["leakage"]["cross_split_duplicates"]["share"]
        if name == "truncated":
            return report["lengths"]["truncated"]["share"]
        if name == "validators":
            v = report["validators"]
            return v["share"] if v.get("documents_checked") else None
        if name == "near_duplicates":
            return report["duplicates"]["near"]["share"]
        if name == "cross_split_near_duplicates":
            d = report["leakage"]["cross_split_near_duplicates"]
            return d["share"] if d["val_documents"] else None
        if name == "unseen_val_tokens":
            return report["size"]["unseen_val_tokens"]["share"]
    except (KeyError, TypeError):
        return None
    return None


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _fmt_threshold(warn: Optional[float], fail: Optional[float]) -> str:
    parts = []
    if warn is not None:
        parts.append(f"warn ≥ {warn:g}")
    if fail is not None:
        parts.append(f"fail ≥ {fail:g}")
    return ", ".join(parts) if parts else "no thresholds"


def _detail(report: Mapping[str, Any], name: str, warn: Optional[float]) -> str:
    """A sentence that says what was found, with an example."""
    if name == "exact_duplicates":
        d = report["duplicates"]["exact"]
        n = report["size"]["documents"]
        text = f"{d['documents']} of {n} documents repeat an earlier one exactly"
        if d["examples"]:
            e = d["examples"][0]
            text += f"; biggest group: {e['count']} copies ({', '.join(map(repr, e['names'][:3]))})"
        return text
    if name == "templated":
        d = report["duplicates"]["templated"]
        n = report["size"]["documents"]
        text = f"{d['documents']} of {n} documents belong to {d['families']} template famil" + (
            "y" if d["families"] == 1 else "ies"
        )
        if d["examples"]:
            e = d["examples"][0]
            text += f"; biggest: {e['count']} documents like {e['examples'][0]['preview'][:80]!r}"
        return text
    if name == "boilerplate":
        d = report["boilerplate"]
        n = report["size"]["documents"]
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
                text += f"; it is {_pct(cov['mean_in_documents'])} of those documents' words on average"
        natural = d.get("natural_phrases") or []
        if natural:
            text += (
                f"; {len(natural)}{'+' if len(natural) >= 5 else ''} recurring phrase"
                f"{'s' if len(natural) != 1 else ''} of the language set aside, e.g. {natural[0]['phrase'][:60]!r}"
            )
        return text
    if name == "split_imbalance":
        s = report["split"]
        level = warn if warn is not None else 0.0
        bad = sorted(
            (r for r in s["sources"] if r["scored"] and r["deviation"] >= level and r["deviation"] > 0),
            key=lambda r: -r["deviation"],
        )
        overall = s["overall_val_share"]
        if not bad:
            return f"every source's val share is within {level:g} of the overall {_pct(overall)}"
        names = "; ".join(
            f"{r['source']!r}: {_pct(r['val_share'])} of its tokens in val "
            f"({r['val_documents']} val / {r['train_documents']} train documents)"
            for r in bad[:4]
        )
        more = f" and {len(bad) - 4} more" if len(bad) > 4 else ""
        return f"the split puts {_pct(overall)} of all tokens in val, but {names}{more}"
    if name == "leakage":
        d = report["leakage"]["ngram"]
        text = f"{d['in_train']:,} of {d['val_ngrams']:,} val {d['n']}-grams also occur in train"
        if d.get("spans"):
            text += f"; longest verbatim span {d['longest_span_tokens']} tokens"
        return text
    if name == "cross_split_duplicates":
        d = report["leakage"]["cross_split_duplicates"]
        text = f"{d['documents']} of {d['val_documents']} val documents are also in train verbatim"
        if d["examples"]:
            e = d["examples"][0]
            text += f", e.g. {e['val']!r} = {e['train']!r}"
        return text
    if name == "truncated":
        d = report["lengths"]["truncated"]
        return (
            f"{d['documents']} of {report['lengths']['documents']} documents are longer than block_size = "
            f"{d['block_size']} tokens: the model never sees them whole in one context"
        )
    if name == "near_duplicates":
        d = report["duplicates"]["near"]
        n = report["size"]["documents"]
        text = (
            f"{d['documents']} of {n} documents have a near-twin (similarity ≥ {d['threshold']:g}), in "
            f"{d['families']} famil{'y' if d['families'] == 1 else 'ies'}"
        )
        differ = [e for e in d["examples"] if not e["identical"]]
        if differ:
            e = differ[0]
            text += f"; e.g. {e['a']!r} ~ {e['b']!r} ({e['similarity']:.2f})"
        return text
    if name == "cross_split_near_duplicates":
        d = report["leakage"]["cross_split_near_duplicates"]
        text = (
            f"{d['documents']} of {d['val_documents']} val documents have a near-twin in train "
            f"(similarity ≥ {d['threshold']:g}): the model has seen another version of them"
        )
        if d["examples"]:
            e = d["examples"][0]
            text += f", e.g. {e['val']!r} ~ {e['train']!r} ({e['similarity']:.2f})"
        return text
    if name == "unseen_val_tokens":
        d = report["size"]["unseen_val_tokens"]
        text = f"{d['unseen_tokens']:,} of {d['val_tokens']:,} val tokens"
        if d.get("byte_share") is not None:
            text += f" ({_pct(d['byte_share'])} of their UTF-8 bytes)"
        text += f" have an id ({d['distinct_unseen_ids']:,} distinct) that never occurs in train"
        if d.get("compact") and d.get("compact_from") == "train":
            text += (
                "; with tokenizer.compact (compact_from: train) each becomes the one unknown id, never a "
                "training target"
            )
        worst = [r for r in d["sources"] if r["unseen_tokens"]][:3]
        if len(d["sources"]) > 1 and worst:
            text += "; most in " + ", ".join(f"{r['source']!r} {_pct(r['share'])}" for r in worst)
        return text
    if name == "validators":
        v = report["validators"]
        per = ", ".join(f"{k} {r['failing']}/{r['checked']}" for k, r in v["validators"].items())
        text = f"{v['documents_failing']} of {v['documents_checked']} validated documents fail ({per})"
        for r in v["validators"].values():
            if r["examples"]:
                e = r["examples"][0]
                text += f"; e.g. {e['document']}: {e['problems'][0]}"
                break
        return text
    return ""


def evaluate_checks(
    report: Mapping[str, Any], checks: Optional[Mapping[str, Any]] = None, fail_on: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """One row per check in :data:`gaplab.schema.CHECK_NAMES`: name, status, value, warn, fail, message.

    ``checks`` (a study's ``data.checks``) overrides :data:`DEFAULT_CHECKS` key
    by key.  Status: ``fail`` if value ≥ fail, else ``warn`` if value ≥ warn,
    else ``ok``; a value of 0, or a check that could not be measured, is ok.
    ``in_fail_on`` marks the checks that stop the pipeline when they fail.
    """
    bad = [n for n in fail_on if n not in CHECK_NAMES]
    if bad:
        raise ValueError(f"data.fail_on: unknown check(s) {bad}; allowed: {', '.join(CHECK_NAMES)}")
    limits = _thresholds(checks)
    rows = []
    for name in CHECK_NAMES:
        warn, fail = limits[name]["warn"], limits[name]["fail"]
        value = _check_value(report, name)
        if value is None:
            status = "ok"
            detail = (
                "not measured: no validators configured (data.validators)"
                if name == "validators"
                else "not measured: too little data for this check"
            )
            message = detail
        else:
            value = float(value)
            status = "ok"
            if value > 0 and fail is not None and value >= fail:
                status = "fail"
            elif value > 0 and warn is not None and value >= warn:
                status = "warn"
            detail = _detail(report, name, warn)
            shown = f"{value:.2f}" if name == "split_imbalance" else _pct(value)
            message = f"{shown} — {detail} [{CHECK_MEANING[name]}; {_fmt_threshold(warn, fail)}]"
        rows.append(
            {
                "name": name,
                "status": status,
                "value": value,
                "warn": warn,
                "fail": fail,
                "message": message,
                "detail": detail,
                "meaning": CHECK_MEANING[name],
                "in_fail_on": name in fail_on,
            }
        )
    return rows


def failed_checks(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The checks that failed and are named in the report's ``fail_on``."""
    fail_on = set(report.get("fail_on", []))
    return [c for c in report.get("checks", []) if c["status"] == "fail" and c["name"] in fail_on]


def raise_on_failures(report: Mapping[str, Any]) -> None:
    """Raise :class:`DataCheckFailed` if a check listed in ``data.fail_on`` failed."""
    failed = failed_checks(report)
    if not failed:
        return
    lines = [
        f"  - {c['name']}: measured {c['value']:.4g} ≥ fail threshold {c['fail']:g} "
        f"({c.get('meaning') or CHECK_MEANING.get(c['name'], '')}): {c.get('detail') or c['message']}"
        for c in failed
    ]
    raise DataCheckFailed(
        f"{len(failed)} data check{'s' if len(failed) != 1 else ''} named in data.fail_on failed, so training "
        "will not start:\n"
        + "\n".join(lines)
        + "\nFix the data, raise the threshold in data.checks, or remove the name from data.fail_on.",
        failed,
    )
