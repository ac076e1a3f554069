"""A study's static ``report.html``: the journey table, notes, failures and figures in one file.

The page needs no Jupyter and no network: PNG figures are embedded as base64
``data:`` URIs, SVG versions are linked relative to the study folder, and every
piece of text is HTML-escaped; the study's description is rendered as Markdown (mistune, raw HTML
escaped).  The journey table shows its key columns (:data:`KEY_COLUMNS`, :func:`key_table`, shared
with ``05_compare``) and folds every other column away.  Written atomically
(``gaplab.files.atomic_write_text``).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Optional, Union

import pandas as pd

from ..files import atomic_write_text
from ..measure.references import SOURCES
from ..versioning import gaplab_version
from .summary import journey_rows

PathLike = Union[str, Path]


GLOSSARY = (
    ("params_non_embedding", "parameters outside the token/position embeddings (Kaplan's N)"),
    ("tokens_per_param_total", "training tokens per parameter, embeddings included (Chinchilla's convention)"),
    ("tokens_per_param_non_emb", "training tokens per non-embedding parameter (Kaplan's N)"),
    (
        "best_val_bpb / final_val_bpb",
        "val loss in bits per UTF-8 byte of the scored text: comparable across tokenizers",
    ),
    (
        "val_fingerprint",
        "which val set (its text and the vocabulary it is scored over): nats per token compare only "
        "between equal fingerprints",
    ),
    ("val_unseen_token_share", "share of val tokens whose id never occurs in the training split"),
    ("epochs", "passes over the training split"),
    ("best_val / best_iter", "lowest validation loss (nats/token) and the iteration it was measured at"),
    ("final_gap", "final validation loss minus final training loss (nats)"),
    ("onset_iter", "last eval before the validation loss rose beyond noise while training loss kept falling"),
    ("verdict", "underfitting / healthy / overfitting / memorizing (rules in gaplab.measure.curves.verdict)"),
    (
        "sample_validators_pass_share",
        "share of the generated samples that sample.validators checked which pass "
        "every one (sample_validators_checked_share: share of samples checked at all)",
    ),
)


#: the journey's key columns, in order: (heading, how a row gives it); every other column is folded away
KEY_COLUMNS = (
    "phase",
    "verdict",
    "params",
    "train tokens",
    "tokens / param",
    "epochs",
    "best val @ iter",
    "final gap",
    "onset",
)


def _pm(value: Optional[float], std: Optional[float], seeds: Optional[int], fmt: str) -> str:
    """``value`` or ``mean ± std`` (a replicated phase), formatted with ``fmt``."""
    if value is None:
        return "—"
    if std is not None and seeds is not None and seeds > 1:
        return f"{format(value, fmt)} ± {abs(std):.3f} ({seeds} seeds)"
    return format(value, fmt)


def key_table(table: pd.DataFrame) -> pd.DataFrame:
    """The journey's key columns as text, one row per phase (:data:`KEY_COLUMNS`).

    ``verdict`` is the state for a phase that did not finish (failed, missing); ``params`` counts all
    parameters (embeddings included), ``tokens / param`` the training tokens per parameter on that count
    (Chinchilla's convention); losses are in nats per token.
    """
    rows = []
    for r in journey_rows(table):
        verdict = r.verdict if r.state == "done" and r.verdict is not None else r.state
        best = _pm(r.best_val, r.best_val_std, r.replicates, ".3f")
        rows.append(
            {
                "phase": r.phase,
                "verdict": str(verdict),
                "params": format_cell(r.params_total),
                "train tokens": format_cell(r.train_tokens),
                "tokens / param": format_cell(r.tokens_per_param_total),
                "epochs": format_cell(r.epochs),
                "best val @ iter": best if r.best_iter is None or best == "—" else f"{best} @ {r.best_iter:,}",
                "final gap": _pm(r.final_gap, r.final_gap_std, r.replicates, "+.3f"),
                "onset": "—" if r.onset_iter is None else f"iter {r.onset_iter:,}",
            }
        )
    return pd.DataFrame(rows, columns=list(KEY_COLUMNS))


def markdown_html(text: str) -> str:
    """Markdown (a study's description) as HTML; raw HTML in it is escaped, harmful links dropped."""
    import mistune

    return mistune.create_markdown(escape=True)(str(text or "")).strip()


_VERDICT_COLORS = {"underfitting": "#4C72B0", "healthy": "#55A868", "overfitting": "#DD8452", "memorizing": "#C44E52"}


_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 1em 0; display: block; overflow-x: auto; }
details { margin: 0.5em 0 1em; } summary { cursor: pointer; color: #345; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; position: sticky; top: 0; } td.text, th.text { text-align: left; }
tr.failed td { background: #fdeaea; } tr.missing td { color: #888; }
.failed-list li { color: #a00; } figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; } .verdict { font-weight: bold; }
"""


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _is_missing(v: Any) -> bool:
    if v is None or v is pd.NA:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def format_cell(v: Any) -> str:
    """A table cell as text: integers with thousands separators, floats to 4 significant digits, '—' if missing."""
    if _is_missing(v):
        return "—"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") in "iu"):
        return f"{int(v):,}"
    if isinstance(v, float) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") == "f"):
        f = float(v)
        if not math.isfinite(f):
            return str(f)
        if f == int(f) and abs(f) >= 1000:
            return f"{int(f):,}"
        if abs(f) >= 1000:
            return f"{f:,.0f}"
        return f"{f:.4g}"
    return str(v)


def _table_html(table: pd.DataFrame, text_columns: tuple[str, ...] = ("phase", "state")) -> str:
    keep = [c for c in table.columns if c in text_columns or not table[c].map(_is_missing).all()]
    head = "".join(f"<th>{_esc(c)}</th>" for c in keep)
    rows = []
    for _, r in table.iterrows():
        state = str(r.get("state", ""))
        cls = "failed" if state in ("failed", "interrupted") else ("missing" if state == "missing" else "")
        cells = []
        for c in keep:
            v = r[c]
            text = format_cell(v)
            if c == "verdict" and text in _VERDICT_COLORS:
                cells.append(f'<td class="text verdict" style="color:{_VERDICT_COLORS[text]}">{_esc(text)}</td>')
            elif isinstance(v, str) or c in text_columns:
                cells.append(f'<td class="text">{_esc(text)}</td>')
            else:
                cells.append(f"<td>{_esc(text)}</td>")
        rows.append(f'<tr class="{cls}">' + "".join(cells) + "</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


#: journey columns the key table already shows (folded away with the rest: everything else)
_SHOWN = ("state",)


def _key_table_html(keys: pd.DataFrame) -> str:
    head = "".join(
        f'<th class="text">{_esc(c)}</th>' if c in ("phase", "verdict") else f"<th>{_esc(c)}</th>" for c in KEY_COLUMNS
    )
    rows = []
    for _, r in keys.iterrows():
        state = str(r.get("state", ""))
        cls = "failed" if state in ("failed", "interrupted") else ("missing" if state == "missing" else "")
        cells = []
        for c in KEY_COLUMNS:
            text = str(r[c])
            if c == "verdict" and text in _VERDICT_COLORS:
                cells.append(f'<td class="text verdict" style="color:{_VERDICT_COLORS[text]}">{_esc(text)}</td>')
            elif c in ("phase", "verdict"):
                cells.append(f'<td class="text">{_esc(text)}</td>')
            else:
                cells.append(f"<td>{_esc(text)}</td>")
        rows.append(f'<tr class="{cls}">' + "".join(cells) + "</tr>")
    return f'<table class="key">\n<thead><tr>{head}</tr></thead>\n<tbody>\n' + "\n".join(rows) + "\n</tbody>\n</table>"


def _rel(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_uri()


def _figures_html(figures: Iterable[PathLike], base: Path) -> str:
    paths = [Path(p) for p in figures]
    stems: dict[str, dict[str, Path]] = {}
    for p in paths:
        stems.setdefault(str(p.with_suffix("")), {})[p.suffix.lower()] = p
    out = []
    for stem, by_ext in stems.items():
        caption = _esc(Path(stem).name.replace("_", " "))
        png, svg = by_ext.get(".png"), by_ext.get(".svg")
        links = f' — <a href="{_esc(_rel(svg, base))}">SVG</a>' if svg is not None and svg.exists() else ""
        if png is not None and png.exists():
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            out.append(
                f'<figure><img alt="{caption}" src="data:image/png;base64,{data}">'
                f"<figcaption>{caption}{links}</figcaption></figure>"
            )
        elif svg is not None and svg.exists():
            out.append(
                f'<figure><img alt="{caption}" src="{_esc(_rel(svg, base))}">'
                f"<figcaption>{caption}{links}</figcaption></figure>"
            )
    return "\n".join(out) if out else "<p>No figures.</p>"


def _sources_html() -> str:
    items = []
    for s in SOURCES.values():
        t = f'<a href="{_esc(s.url)}">{_esc(s.title)}</a>' if s.url else f"<em>{_esc(s.title)}</em>"
        items.append(f"<li><strong>{_esc(s.authors)}</strong>, {t}: {_esc(s.what)}</li>")
    return "<ul>\n" + "\n".join(items) + "\n</ul>"


def build_report(
    study_dir: PathLike,
    table: pd.DataFrame,
    figures: list[PathLike],
    title: str,
    description: str = "",
    failed: Optional[Mapping[str, str]] = None,
    notes: Optional[list[str]] = None,
) -> Path:
    """Write ``study_dir/report.html`` (self-contained, text escaped, atomic) and return its path."""
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame (the journey table), got {type(table).__name__}")
    sdir = Path(study_dir)
    failed = dict(failed or {})
    notes = list(notes or [])
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="meta">gaplab {_esc(gaplab_version())} · generated {_esc(when)} · {_esc(sdir)}</p>',
        markdown_html(description),
    ]
    if failed:
        parts.append("<h2>Failed phases</h2>")
        parts.append(
            '<ul class="failed-list">'
            + "".join(
                f"<li><strong>{_esc(name)}</strong>: {_esc(err or 'no error message recorded')}</li>"
                for name, err in failed.items()
            )
            + "</ul>"
        )
    parts.append("<h2>The journey</h2>")
    keys = key_table(table).assign(state=list(table["state"]) if "state" in table else "")
    parts.append(_key_table_html(keys))
    others = [c for c in table.columns if c != "phase" and c not in _SHOWN]
    parts.append(
        f"<details><summary>All {len(table.columns)} columns of the journey table (summary.csv)</summary>"
        + _table_html(table[["phase"] + others])
        + "</details>"
    )
    parts.append(
        "<details><summary>What the columns mean</summary><ul>"
        + "".join(f"<li><code>{_esc(k)}</code>: {_esc(v)}</li>" for k, v in GLOSSARY)
        + "</ul>"
        "<p>Losses are cross-entropy in nats per token; perplexity = exp(loss).</p></details>"
    )
    if notes:
        parts.append("<h2>Notes</h2>")
        parts.append("<ul>" + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul>")
    parts.append("<h2>Figures</h2>")
    parts.append(_figures_html(figures, sdir))
    parts.append("<h2>Sources</h2>")
    parts.append(_sources_html())
    parts.append("</body></html>")
    return atomic_write_text(sdir / "report.html", "\n".join(parts) + "\n")
