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
        _md(f"**Skipped:** {size['skipped']:,} files or records were not read into the corpus ({eg}"
            f"{'; …' if size['skipped'] > len(size.get('skipped_examples', [])) else ''}).")
    if not size.get("read_whole_corpus", True):
        _md(f"*Reading stopped at `data.max_tokens` = {report['settings'].get('max_tokens'):,}: "
            f"{size.get('documents_read', 0):,} documents read, the rest of the corpus never was.*")
    if vocab.get("summary"):
        _md(f"**Vocabulary.** {vocab['summary']}")
    unseen = size.get("unseen_val_tokens")
    if unseen and unseen.get("val_tokens"):
        compact = (" With `tokenizer.compact` (`compact_from: train`) each of them becomes the one unknown id, "
                   "which is never a training target." if unseen.get("compact") and unseen.get("compact_from") == "train"
                   else "")
        bytes_ = f" ({unseen['byte_share']:.1%} of their UTF-8 bytes)" if unseen.get("byte_share") is not None else ""
        _md(f"**Val tokens never seen in train:** {unseen['unseen_tokens']:,} of {unseen['val_tokens']:,} "
            f"({unseen['share']:.1%}){bytes_}, {unseen['distinct_unseen_ids']:,} distinct token ids (base "
            f"tokenizer ids, so the same with and without a compact vocabulary).{compact}")
        if len(unseen.get("sources", [])) > 1:
            _display(pd.DataFrame(unseen["sources"]))


def data_quality(report: dict[str, Any], run_dir=None) -> None:
    lengths = report["lengths"]
    _kv({k: fmt(v) for k, v in lengths.items() if not isinstance(v, (dict, list))}, "tokens per document")
    _figures(run_dir, "data_lengths")
    dup = report["duplicates"]
    _md(f"**Exact duplicates:** {dup['exact']['documents']:,} documents ({dup['exact']['share']:.1%}).  \n"
        f"**Templated:** {dup['templated']['documents']:,} documents ({dup['templated']['share']:.1%}) in "
        f"{dup['templated']['families']} families ({dup['templated'].get('rule', '')}).")
    if dup["templated"].get("examples"):
        _display(pd.DataFrame(dup["templated"]["examples"]))
    near = dup.get("near")
    if near:
        _md(f"**Near-twins:** {near['documents']:,} documents ({near['share']:.1%}) have a near-twin, in "
            f"{near['families']:,} families ({near['pairs']:,} pairs). Rule: {near['rule']}.")
        if near.get("examples"):
            with pd.option_context("display.max_colwidth", 100):
                _display(pd.DataFrame(near["examples"]))
    bp = report["boilerplate"]
    _md(f"**Boilerplate:** {bp['documents']:,} documents ({bp['share']:.1%}) contain boilerplate. Rule: "
        f"{bp.get('rule', '')}.")
    if bp.get("phrases"):
        cov = bp.get("coverage") or {}
        _md(f"In those documents boilerplate is {cov.get('mean_in_documents', 0):.1%} of the words on average "
            f"(at most {cov.get('max', 0):.1%}; {cov.get('of_all_words', 0):.2%} of all the corpus's words).")
        _display(pd.DataFrame(bp["phrases"]))
    if bp.get("natural_phrases"):
        _md("Recurring phrases set aside as phrases of the language (neither at the same place nor a real "
            "share of their documents):")
        _display(pd.DataFrame(bp["natural_phrases"]))


def split_and_leakage(report: dict[str, Any], run_dir=None) -> None:
    split = report["split"]
    _display(pd.DataFrame(split["sources"]))
    _figures(run_dir, "data_split_composition")
    leak = report["leakage"]
    ng, cs = leak["ngram"], leak["cross_split_duplicates"]
    share = "n/a" if ng["share"] is None else f"{ng['share']:.1%}"
    _md(f"**Leakage:** {ng['in_train']:,} of {ng['val_ngrams']:,} validation {ng['n']}-grams ({share}) also "
        f"occur in train; the longest val span found verbatim in train is {ng['longest_span_tokens']} tokens "
        f"(exact). {cs['documents']} of {cs['val_documents']} validation documents appear verbatim in train.")
    if ng.get("spans"):
        with pd.option_context("display.max_colwidth", 120):
            _display(pd.DataFrame(ng["spans"]))
    docs = ng.get("documents")
    if docs and docs.get("documents"):
        _md(f"**Per validation document:** {docs['leaked']} of {docs['documents']} have at least "
            f"{docs['leaked_share_threshold']:.0%} of their {ng['n']}-grams in train; {docs['outliers']} leak far "
            f"more than the rest (above Q3 + 3·IQR). The documents that leak most:")
        _display(pd.DataFrame(docs["top"]))
    near = leak.get("cross_split_near_duplicates")
    if near:
        _md(f"**Near-twins across the split:** {near['documents']} of {near['val_documents']} validation "
            f"documents have a near-twin in train (another edition, a reformatted copy): the model has seen "
            f"them in another form, so their val loss is not a test of generalisation.")
        if near.get("examples"):
            _display(pd.DataFrame(near["examples"]))


def model_vs_data(report: dict[str, Any]) -> None:
    mv = report["model_vs_data"]
    _md(mv.get("summary", ""))
    _kv({"params (total)": fmt(mv["params"]["total"]), "params (embedding)": fmt(mv["params"]["embedding"]),
         "params (non-embedding)": fmt(mv["params"]["non_embedding"]),
         "embedding share": f"{mv['embedding_share']:.1%}", "train tokens": fmt(mv["train_tokens"]),
         "tokens per parameter (all counted, as Chinchilla's ~20)": fmt(mv["tokens_per_param_total"]),
         "tokens per non-embedding parameter (Kaplan's N)": fmt(mv["tokens_per_param_non_emb"]),
         "Chinchilla reference (tokens/param)": fmt(mv["chinchilla_tokens_per_param"]),
         "epochs the training will make": fmt(mv["epochs"]),
         "Kaplan's overfitting bound 5e3*N^0.74 (tokens)": fmt(mv["kaplan_min_tokens"]),
         "train tokens meet it?": mv["meets_kaplan"]}, "model vs data")
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
        _md(f"**Stopping:** {', '.join(report['failed'])} failed and {'is' if len(report['failed']) == 1 else 'are'} "
            f"listed in `data.fail_on`; training will not start.")


# --------------------------------------------------------------------------- 02
def live_plot():
    """A figure that redraws train/val curves and the gap at every eval; returns ``on_eval``."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    fig, (ax, gax) = plt.subplots(1, 2, figsize=(10, 3.4))
    handle = display(fig, display_id=True)
    plt.close(fig)
    rows: list[dict] = []

    def on_eval(row: dict) -> None:
        rows.append(row)
        df = pd.DataFrame(rows)
        ax.clear()
        gax.clear()
        ax.plot(df["iter"], df["train_loss"], label="train", color="C0")
        ax.plot(df["iter"], df["val_loss"], label="val", color="C1")
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss (nats/token)")
        ax.legend()
        ax.set_title(f"iter {int(row['iter'])}: train {row['train_loss']:.3f}  val {row['val_loss']:.3f}")
        gax.plot(df["iter"], df["gap"], color="C3")
        gax.axhline(0, color="0.6", lw=0.8)
        gax.set_title("gap = val - train")
        gax.set_xlabel("iteration")
        fig.tight_layout()
        handle.update(fig)

    return on_eval


def train_live(params: dict[str, Any], should_stop=None) -> dict[str, Any]:
    """Train with curves that update at every eval (interactive use)."""
    from ..pipeline import stages

    return stages.train(params, progress=True, on_eval=live_plot(), should_stop=should_stop)


def training_summary(run_dir) -> pd.DataFrame:
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
        "best val loss (iter)": f"{m.get('best_val_loss', float('nan')):.4f} nats/token ({m.get('best_iter')})",
        "best val loss in bits per byte": m.get("best_val_bpb"),
        "val tokens never seen in training": (f"{m['val_unseen_token_share']:.1%}"
                                              if m.get("val_unseen_token_share") is not None else None),
        "val set (fingerprint of its text and vocabulary)": m.get("val_fingerprint"),
        "final train / val loss": f"{m.get('final_train_loss', float('nan')):.4f} / {m.get('final_val_loss', float('nan')):.4f}",
        "final gap (val - train)": m.get("final_gap"),
        "wall time (s)": m.get("wall_time_s"),
        "tokens / s": m.get("tokens_per_s"),
        "device / dtype": f"{m.get('device')} / {m.get('dtype')}",
        "stop reason": m.get("stop_reason"),
    }
    df = pd.DataFrame([(k, fmt(v)) for k, v in rows.items()], columns=["", "value"]).set_index("")
    _display(df)
    return df


# --------------------------------------------------------------------------- 03
def analysis(a: dict[str, Any]) -> None:
    _md(f"**Verdict: {a.get('verdict', '?')}.** {a.get('reason', '')}")
    _kv(a, "analysis")


def seen_unseen(run_dir) -> None:
    """The val loss on tokens seen in training and on tokens never seen (``metrics.json['val_seen_unseen']``)."""
    s = (read_json(Path(run_dir) / "metrics.json", {}) or {}).get("val_seen_unseen")
    if s:
        _md(f"**Val tokens never seen in training.** {s['summary']}")


def loss_figure(run_dir) -> None:
    _image(Path(run_dir) / "figures" / "loss_curves.png")


# --------------------------------------------------------------------------- 04
def samples(rows: list[dict], aggregates: dict[str, Any]) -> None:
    if not rows:
        _md("Sampling is disabled for this phase (`sample.enabled: false`).")
        return
    for ck, agg in aggregates.items():
        _md(f"**Checkpoint `{ck}`** — aggregate sample metrics")
        _kv(agg, ck)
    df = pd.DataFrame(rows)
    keep = [c for c in df.columns if not isinstance(df[c].iloc[0], (list, dict)) and c not in ("token_ids", "full_text")]
    with pd.option_context("display.max_colwidth", 120):
        _display(df[keep])


# --------------------------------------------------------------------------- 05
def compare(result: dict[str, Any]) -> None:
    table: pd.DataFrame = result["table"]
    with pd.option_context("display.max_columns", 40, "display.width", 200):
        _display(table)
    if result.get("failed"):
        _md("**Failed phases:** " + "; ".join(f"`{k}`: {v}" for k, v in result["failed"].items()))
    if result.get("notes"):
        _md("**What the numbers say**\n\n" + "\n".join(f"- {n}" for n in result["notes"]))
    for path in result.get("figures", []):
        if str(path).endswith(".png"):
            _image(Path(path))
    _md(f"Static report: `{result.get('report')}`")
