"""Display helpers for the stage notebooks: tables, figures and live curves.

Everything here only *shows* what the stages computed; nothing is computed
twice.  Each function works in JupyterLab and under papermill (where it
produces static outputs in the executed notebook).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pandas as pd

from ..files import read_json


def _display(*objs) -> None:
    from IPython.display import display

    display(*objs)


def _md(text: str) -> None:
    from IPython.display import Markdown

    _display(Markdown(text))


def _image(path: Path) -> None:
    from IPython.display import Image

    if path.exists():
        _display(Image(filename=str(path)))


def _kv(d: dict[str, Any], title: Optional[str] = None) -> pd.DataFrame:
    rows = [(k, v) for k, v in d.items() if not isinstance(v, (dict, list))]
    df = pd.DataFrame(rows, columns=["", title or "value"]).set_index("")
    _display(df)
    return df


def fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


# --------------------------------------------------------------------------- 01
def _figures(run_dir: Optional[Path], *names: str) -> None:
    if run_dir is not None:
        for name in names:
            _image(Path(run_dir) / "figures" / f"{name}.png")


def data_summary(report: dict[str, Any]) -> None:
    size, vocab = report["size"], report["size"].get("vocab", {})
    _kv({k: fmt(v) for k, v in size.items() if k not in ("vocab", "unseen_val_tokens", "skipped_examples")}, "size")
    if size.get("skipped"):
        eg = "; ".join(f"`{e['name']}`: {e['reason']}" for e in size.get("skipped_examples", []))
        _md(
            f"**Skipped:** {size['skipped']:,} files or records were not read into the corpus ({eg}"
            f"{'; …' if size['skipped'] > len(size.get('skipped_examples', [])) else ''})."
        )
    if not size.get("read_whole_corpus", True):
        _md(
            f"*Reading stopped at `data.max_tokens` = {report['settings'].get('max_tokens'):,}: "
            f"{size.get('documents_read', 0):,} documents read, the rest of the corpus never was.*"
        )
    if vocab.get("summary"):
        _md(f"**Vocabulary.** {vocab['summary']}")
    unseen = size.get("unseen_val_tokens")
    if unseen and unseen.get("val_tokens"):
        compact = (
            " With `tokenizer.compact` (`compact_from: train`) each of them becomes the one unknown id, "
            "which is never a training target."
            if unseen.get("compact") and unseen.get("compact_from") == "train"
            else ""
        )
        bytes_ = f" ({unseen['byte_share']:.1%} of their UTF-8 bytes)" if unseen.get("byte_share") is not None else ""
        _md(
            f"**Val tokens never seen in train:** {unseen['unseen_tokens']:,} of {unseen['val_tokens']:,} "
            f"({unseen['share']:.1%}){bytes_}, {unseen['distinct_unseen_ids']:,} distinct token ids (base "
            f"tokenizer ids, so the same with and without a compact vocabulary).{compact}"
        )
        if len(unseen.get("sources", [])) > 1:
            _display(pd.DataFrame(unseen["sources"]))


def data_quality(report: dict[str, Any], run_dir=None) -> None:
    lengths = report["lengths"]
    _kv({k: fmt(v) for k, v in lengths.items() if not isinstance(v, (dict, list))}, "tokens per document")
    _figures(run_dir, "data_lengths")
    dup = report["duplicates"]
    _md(
        f"**Exact duplicates:** {dup['exact']['documents']:,} documents ({dup['exact']['share']:.1%}).  \n"
        f"**Templated:** {dup['templated']['documents']:,} documents ({dup['templated']['share']:.1%}) in "
        f"{dup['templated']['families']} families ({dup['templated'].get('rule', '')})."
    )
    if dup["templated"].get("examples"):
        _display(pd.DataFrame(dup["templated"]["examples"]))
    near = dup.get("near")
    if near:
        _md(
            f"**Near-twins:** {near['documents']:,} documents ({near['share']:.1%}) have a near-twin, in "
            f"{near['families']:,} families ({near['pairs']:,} pairs). Rule: {near['rule']}."
        )
        if near.get("examples"):
            with pd.option_context("display.max_colwidth", 100):
                _display(pd.DataFrame(near["examples"]))
    bp = report["boilerplate"]
    _md(
        f"**Boilerplate:** {bp['documents']:,} documents ({bp['share']:.1%}) contain boilerplate. Rule: "
        f"{bp.get('rule', '')}."
    )
    if bp.get("phrases"):
        cov = bp.get("coverage") or {}
        _md(
            f"In those documents boilerplate is {cov.get('mean_in_documents', 0):.1%} of the words on average "
            f"(at most {cov.get('max', 0):.1%}; {cov.get('of_all_words', 0):.2%} of all the corpus's words)."
        )
        _display(pd.DataFrame(bp["phrases"]))
    if bp.get("natural_phrases"):
        _md(
            "Recurring phrases set aside as phrases of the language (neither at the same place nor a real "
            "share of their documents):"
        )
        _display(pd.DataFrame(bp["natural_phrases"]))


def split_and_leakage(report: dict[str, Any], run_dir=None) -> None:
    split = report["split"]
    _display(pd.DataFrame(split["sources"]))
    _figures(run_dir, "data_split_composition")
    leak = report["leakage"]
    ng, cs = leak["ngram"], leak["cross_split_duplicates"]
    share = "n/a" if ng["share"] is None else f"{ng['share']:.1%}"
    _md(
        f"**Leakage:** {ng['in_train']:,} of {ng['val_ngrams']:,} validation {ng['n']}-grams ({share}) also "
        f"occur in train; the longest val span found verbatim in train is {ng['longest_span_tokens']} tokens "
        f"(exact). {cs['documents']} of {cs['val_documents']} validation documents appear verbatim in train."
    )
    if ng.get("spans"):
        with pd.option_context("display.max_colwidth", 120):
            _display(pd.DataFrame(ng["spans"]))
    docs = ng.get("documents")
    if docs and docs.get("documents"):
        _md(
            f"**Per validation document:** {docs['leaked']} of {docs['documents']} have at least "
            f"{docs['leaked_share_threshold']:.0%} of their {ng['n']}-grams in train; {docs['outliers']} leak far "
            f"more than the rest (above Q3 + 3·IQR). The documents that leak most:"
        )
        _display(pd.DataFrame(docs["top"]))
    near = leak.get("cross_split_near_duplicates")
    if near:
        _md(
            f"**Near-twins across the split:** {near['documents']} of {near['val_documents']} validation "
            f"documents have a near-twin in train (another edition, a reformatted copy): the model has seen "
            f"them in another form, so their val loss is not a test of generalisation."
        )
        if near.get("examples"):
            _display(pd.DataFrame(near["examples"]))


def model_vs_data(report: dict[str, Any]) -> None:
    from ..report.notes import kaplan_bound_text

    mv = report["model_vs_data"]
    _md(mv.get("summary", ""))
    _kv(
        {
            "params (total)": fmt(mv["params"]["total"]),
            "params (embedding)": fmt(mv["params"]["embedding"]),
            "params (non-embedding)": fmt(mv["params"]["non_embedding"]),
            "embedding share": f"{mv['embedding_share']:.1%}",
            "train tokens": fmt(mv["train_tokens"]),
            "tokens per parameter (all counted, as Chinchilla's ~20)": fmt(mv["tokens_per_param_total"]),
            "tokens per non-embedding parameter (Kaplan's N)": fmt(mv["tokens_per_param_non_emb"]),
            "Chinchilla reference (tokens/param)": fmt(mv["chinchilla_tokens_per_param"]),
            "epochs the training will make": fmt(mv["epochs"]),
            f"Kaplan's overfitting bound {kaplan_bound_text('*')} (tokens)": fmt(mv["kaplan_min_tokens"]),
            "train tokens meet it?": mv["meets_kaplan"],
        },
        "model vs data",
    )
    if mv.get("note"):
        _md(f"*{mv['note']}*")
    for ref in (mv.get("references") or {}).values():
        _md(f"- {ref}")


def checks(report: dict[str, Any]) -> None:
    df = pd.DataFrame(report["checks"])
    cols = [c for c in ("name", "status", "value", "warn", "fail", "in_fail_on", "message") if c in df.columns]
    with pd.option_context("display.max_colwidth", 200):
        _display(df[cols])
    if report.get("failed"):
        _md(
            f"**Stopping:** {', '.join(report['failed'])} failed and {'is' if len(report['failed']) == 1 else 'are'} "
            f"listed in `data.fail_on`; training will not start."
        )


# --------------------------------------------------------------------------- rich outputs
class Rich:
    """An output with an HTML face (JupyterLab, nbconvert) and a plain-text one (a terminal, a log)."""

    def __init__(self, html: str, text: str):
        self.html, self.text = html, text

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text


def _esc(x: Any) -> str:
    from html import escape

    return escape(str(x), quote=True)


def _rows_html(rows: list[tuple[str, Any]]) -> str:
    def name(k: str) -> str:  # leading spaces indent a sub-row (HTML would collapse them)
        return "&nbsp;" * (2 * (len(k) - len(k.lstrip()))) + _esc(k.strip())

    body = "".join(
        f"<tr><th style='text-align:left;padding-right:1.5em'>{name(k)}</th>"
        f"<td style='text-align:left'>{_esc(v)}</td></tr>"
        for k, v in rows
    )
    return f"<table class='gaplab-table'>{body}</table>"


def _frame_html(df: pd.DataFrame, text_columns: tuple[str, ...] = (), index: bool = False) -> str:
    """A DataFrame as an HTML table: text columns (and the index) left-aligned, numbers right-aligned."""
    left, right = "text-align:left", "text-align:right"
    cols = ([""] if index else []) + [str(c) for c in df.columns]
    head = "".join(f"<th style='{left if (c in text_columns or c == '') else right}'>{_esc(c)}</th>" for c in cols)
    body = []
    for idx, r in df.iterrows():
        cells = [f"<th style='{left}'>{_esc(idx)}</th>"] if index else []
        cells += [f"<td style='{left if c in text_columns else right}'>{_esc(r[c])}</td>" for c in df.columns]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table class='gaplab-table'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _table(
    rows: list[tuple[str, Any]], details: Optional[list[tuple[str, Any]]] = None, summary: str = "All numbers"
) -> None:
    """A two-column table (name, value) and, folded under it, ``details``."""
    html = _rows_html(rows)
    text = "\n".join(f"{k}: {v}" for k, v in rows)
    if details:
        html += f"<details><summary>{_esc(summary)} ({len(details)})</summary>{_rows_html(details)}</details>"
    _display(Rich(html, text))


# --------------------------------------------------------------------------- 02
def live_plot(max_iters: Optional[int] = None):
    """A figure that redraws the curves (:func:`gaplab.report.plots.live_figure`) at every eval; returns ``on_eval``.

    Nothing is drawn before the first eval (no empty axes); the figure is a PNG updated in place.
    """
    from IPython.display import Image, display

    from ..report.figure_kit import png_bytes
    from ..report.plots import live_figure

    rows: list[dict] = []
    handle = display(
        Rich("<i>waiting for the first evaluation (iter 0) ...</i>", "waiting for the first evaluation ..."),
        display_id=True,
    )

    def on_eval(row: dict) -> None:
        rows.append(dict(row))
        handle.update(Image(data=png_bytes(live_figure(pd.DataFrame(rows), max_iters=max_iters)), format="png"))

    return on_eval


def live_curves(params: dict[str, Any]):
    """``on_eval`` for :func:`gaplab.pipeline.stages.train`: the curves redrawn at every eval (:func:`live_plot`);
    ``None`` under papermill, which keeps no live outputs (:func:`training_curves` shows the saved figure there)."""
    from ..pipeline.stages import in_papermill

    return None if in_papermill() else live_plot((params.get("train") or {}).get("max_iters"))


def training_curves(run_dir, live=None) -> None:
    """The finished run's curves, ``figures/training_curves.png`` (written by the stage), unless ``live`` (the
    live figure of :func:`live_curves`) already shows them."""
    if live is None:
        _image(Path(run_dir) / "figures" / "training_curves.png")


def _fmt_loss(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, (int, float)) else "n/a"


def training_summary(run_dir, params: Optional[dict[str, Any]] = None) -> None:
    """One table of what the run was and what it reached (``metrics.json``); where its files are.

    With ``params`` (the stage's), a run that ``gaplab run`` placed in a staging folder names the folder
    its files are moved to when every stage has finished (:func:`gaplab.pipeline.stages.final_run_dir`).
    """
    from ..pipeline.stages import final_run_dir

    m = read_json(Path(run_dir) / "metrics.json", {}) or {}
    p = m.get("params", {})
    rows = {
        "parameters (total)": p.get("total"),
        "  embedding (token + position)": p.get("embedding"),
        "  non-embedding": p.get("non_embedding"),
        "vocabulary (model / tokenizer)": f"{m.get('vocab_size')} / {m.get('vocab_size_original')}",
        "train tokens": m.get("train_tokens"),
        "val tokens": m.get("val_tokens"),
        "tokens per parameter (all counted, as Chinchilla's ~20)": m.get("tokens_per_param_total"),
        "tokens per non-embedding parameter (Kaplan's N)": m.get("tokens_per_param_non_emb"),
        "epochs over the train split": m.get("epochs"),
        "iterations": m.get("iters"),
        "best val loss @ iter (ckpt/best.pt)": f"{_fmt_loss(m.get('best_val_loss'))} nats/token @ {m.get('best_iter')}",
        "best val loss in bits per byte": m.get("best_val_bpb"),
        "val tokens never seen in training": (
            f"{m['val_unseen_token_share']:.1%}" if m.get("val_unseen_token_share") is not None else None
        ),
        "final train / val loss": f"{_fmt_loss(m.get('final_train_loss'))} / {_fmt_loss(m.get('final_val_loss'))} nats/token",
        "final gap (val − train)": m.get("final_gap"),
        "wall time (s)": m.get("wall_time_s"),
        "tokens / s": m.get("tokens_per_s"),
        "device / dtype": f"{m.get('device')} / {m.get('dtype')}",
        "stop reason": m.get("stop_reason"),
    }
    table = [(k, fmt(v)) for k, v in rows.items() if v is not None]
    folder, staged = final_run_dir(params) if params else (Path(run_dir).resolve(), False)
    table.append(("files of this phase", str(folder)))
    details = [("val set fingerprint (its text and vocabulary)", m.get("val_fingerprint"))]
    _table(table, [(k, v) for k, v in details if v is not None], "More")
    if staged:
        _md(
            f"`gaplab run` trains in a staging folder (`{Path(run_dir).name}`) and moves it to `{folder}` when "
            'every stage of the phase has finished; the placed notebooks then read that folder (`run_dir = "."`).'
        )


# --------------------------------------------------------------------------- 03
#: the analysis keys of the learner's table, in order (the rest are folded away)
LEARNER_KEYS = ("verdict", "reason", "best_val", "best_iter", "final_train", "final_val", "final_gap", "onset_iter")


def _onset_rule() -> str:
    from ..measure.curves import ONSET_RULE

    return " ".join(ONSET_RULE.split())


def analysis(a: dict[str, Any], run_dir=None) -> None:
    """The verdict and a short table a learner reads; every other number of the analysis folded away.

    Shown: verdict and its reason, best val @ iter (the checkpoint worth keeping), final train / val /
    gap, the overfitting onset, and from ``metrics.json`` the epochs and tokens per parameter.
    """
    m = (read_json(Path(run_dir) / "metrics.json", {}) or {}) if run_dir is not None else {}
    v = a.get("verdict", "?")
    _md(f"**Verdict: {v}.** {a.get('reason', '')}")
    rows: list[tuple[str, Any]] = []
    if a.get("best_val") is not None:
        rows.append(("best val loss @ iter (ckpt/best.pt)", f"{a['best_val']:.3f} nats/token @ {a.get('best_iter')}"))
    if a.get("final_train") is not None and a.get("final_val") is not None:
        gap = a.get("final_gap", a["final_val"] - a["final_train"])
        rows.append(("final train / val / gap", f"{a['final_train']:.3f} / {a['final_val']:.3f} / {gap:+.3f} nats"))
    rows.append(
        (
            "overfitting onset",
            f"after iter {a['onset_iter']}" if a.get("onset_iter") is not None else "none (by the onset rule below)",
        )
    )
    if m.get("epochs") is not None:
        rows.append(("epochs over the train split", fmt(m["epochs"])))
    if m.get("tokens_per_param_total") is not None:
        rows.append(("train tokens per parameter (all counted; Chinchilla ~20)", fmt(m["tokens_per_param_total"])))
    if a.get("replicates"):
        rows.append(("training seeds (curve = their mean)", a["replicates"]))
    details = [(k, fmt(val)) for k, val in a.items() if k not in LEARNER_KEYS and not isinstance(val, (dict, list))]
    _table(rows, details, "Every number of the analysis")
    _md(f"*The onset rule:* {_onset_rule()}")


def seen_unseen(run_dir) -> None:
    """The val loss on tokens seen in training and on tokens never seen (``metrics.json['val_seen_unseen']``)."""
    s = (read_json(Path(run_dir) / "metrics.json", {}) or {}).get("val_seen_unseen")
    if s:
        _md(f"**Val tokens never seen in training.** {s['summary']}")


def loss_figure(run_dir) -> None:
    _image(Path(run_dir) / "figures" / "loss_curves.png")


# --------------------------------------------------------------------------- 04
#: per-sample metrics of the compact table: (key, heading)
SAMPLE_COLUMNS = (
    ("checkpoint", "ckpt"),
    ("prompt", "prompt"),
    ("new_tokens", "new tokens"),
    ("mem_longest_tokens", "longest copied span (tokens)"),
    ("train_ngram_share", "n-grams from train"),
    ("distinct_2", "distinct-2"),
    ("stutter_count", "stutters"),
    ("parse_ok", "parses"),
)
#: aggregate metrics shown per checkpoint: (key, name)
AGGREGATE_ROWS = (
    ("n_samples", "samples"),
    ("mem_longest_tokens", "copied span, mean (tokens)"),
    ("mem_longest_tokens_max", "copied span, longest (tokens)"),
    ("train_ngram_share", "share of n-grams found in train"),
    ("novel_ngram_share", "share of n-grams in neither split"),
    ("distinct_2", "distinct-2 (1 = no repeats)"),
    ("stutter_share", "samples that stutter"),
    ("parse_ok_share", "samples that parse as Python"),
    ("keyword_score", "keyword score"),
    ("format_ok_share", "format checks passed"),
)


def _short(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.2f}"
    return "—" if v is None else str(v)


def _where(row: dict[str, Any]) -> str:
    """Where a copied span comes from, in words, from whatever the sample records."""
    parts = []
    for key in ("mem_train_source", "mem_train_document", "mem_train_file"):
        if row.get(key):
            parts.append(str(row[key]))
            break
    if row.get("mem_train_position") is not None:
        parts.append(f"train token {int(row['mem_train_position']):,}")
    return ", ".join(parts) if parts else "the training split"


def sample_html(row: dict[str, Any]) -> str:
    """One sample as a code block: the prompt in bold, the continuation as generated (real newlines), the span
    copied verbatim from training marked, with its length and where it comes from."""
    prompt, text = str(row.get("prompt", "")), str(row.get("text", ""))
    span = row.get("mem_longest_text") or ""
    n = row.get("mem_longest_tokens") or 0
    at = text.find(span) if span and n else -1
    if at >= 0:
        where = f"copied from training: {n} tokens, from {_where(row)}"
        body = (
            _esc(text[:at])
            + f"<mark title='{_esc(where)}' style='background:#ffe08a'>{_esc(span)}</mark>"
            + _esc(text[at + len(span) :])
        )
        note = f"<div class='gaplab-copied'>&#9646; marked: {_esc(where)}</div>"
    else:
        body, note = _esc(text), ""
    head = f"checkpoint {row.get('checkpoint', '?')}, prompt {prompt!r}"
    return (
        f"<div class='gaplab-sample'><div><b>{_esc(head)}</b></div>"
        f"<pre style='white-space:pre-wrap;background:#f6f8fa;padding:0.5em;border-radius:4px'>"
        f"<b>{_esc(prompt)}</b>{body}</pre>{note}</div>"
    )


def samples(rows: list[dict], aggregates: dict[str, Any]) -> None:
    """A compact metrics table per checkpoint and per sample, then each sample as a code block."""
    if not rows:
        _md("Sampling is disabled for this phase (`sample.enabled: false`).")
        return
    names = [(k, name) for k, name in AGGREGATE_ROWS if any(agg.get(k) is not None for agg in aggregates.values())]
    agg = pd.DataFrame(
        {ck: [_short(a.get(k)) for k, _ in names] for ck, a in aggregates.items()}, index=[name for _, name in names]
    )
    agg.columns = [f"checkpoint {c}" for c in agg.columns]
    _display(Rich(_frame_html(agg, index=True), agg.to_string()))
    cols = [(k, name) for k, name in SAMPLE_COLUMNS if any(k in r for r in rows)]
    per = pd.DataFrame(
        [[_short(r.get(k)) if k != "prompt" else repr(r.get(k, "")) for k, _ in cols] for r in rows],
        columns=[name for _, name in cols],
    )
    _display(Rich(_frame_html(per, text_columns=("ckpt", "prompt")), per.to_string(index=False)))
    for r in rows:
        text = f"--- {r.get('checkpoint', '?')} {r.get('prompt', '')!r}\n{r.get('prompt', '')}{r.get('text', '')}"
        _display(Rich(sample_html(r), text))


# --------------------------------------------------------------------------- 05
def compare(result: dict[str, Any]) -> None:
    """The journey's key columns, every column folded under them, the notes, the figures, the report's path."""
    from ..report.html_report import _table_html, key_table

    table: pd.DataFrame = result["table"]
    keys = key_table(table)
    full = _table_html(table)
    _display(
        Rich(
            _frame_html(keys, text_columns=("phase", "verdict"))
            + f"<details><summary>All {len(table.columns)} columns (summary.csv)</summary>{full}</details>",
            keys.to_string(index=False),
        )
    )
    if result.get("failed"):
        _md("**Failed phases:** " + "; ".join(f"`{k}`: {v}" for k, v in result["failed"].items()))
    if result.get("notes"):
        _md("**What the numbers say**\n\n" + "\n".join(f"- {n}" for n in result["notes"]))
    for path in result.get("figures", []):
        if str(path).endswith(".png"):
            _image(Path(path))
    _md(f"Static report: `{result.get('report')}`")
