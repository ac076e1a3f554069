"""Print a study's journey as a Markdown table, straight from its summary.csv (for the README).

    .venv/bin/python benchmarks/study_table.py outputs/quickstart [--samples]

The README's study tables are made with this from runs of the final code, never typed in: the columns
are the learner's key columns (verdict, parameters, training tokens, tokens per parameter, epochs, best
val @ iter in nats and bits per byte, final train / val, gap, onset, seeds), with "±" spreads where a
phase has replicates.  ``--samples`` prints the sample-metrics table instead, ``--tokenizers`` a table for
studies whose phases differ in tokenizer (from each phase's ``metrics.json``: vocabulary, val tokens per
byte, embedding share, bits per byte, train time).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd


def _f(v, fmt: str = "{:.2f}") -> str:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return "—"
    return "—" if math.isnan(x) else fmt.format(x)


def _pm(row, col: str, fmt: str = "{:.2f}") -> str:
    std = row.get(f"{col}_std")
    base = _f(row.get(col), fmt)
    return base + (f" ± {_f(std, fmt)}" if pd.notna(std) and base != "—" else "")


def journey(table: pd.DataFrame) -> str:
    head = (
        "| phase | verdict | params (all / non-emb) | train tokens | tokens/param (all) | epochs | "
        "best val @ iter (nats) | best val (bits/byte) | final train / val | gap | onset | seeds |"
    )
    lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for _, r in table.iterrows():
        onset = "—" if pd.isna(r.get("onset_iter")) else f"{int(r['onset_iter'])}"
        seeds = int(r["replicates"]) if pd.notna(r.get("replicates")) else 1
        lines.append(
            f"| {r['phase']} | {r.get('verdict') or r.get('state')} | {int(r['params_total']):,} / "
            f"{int(r['params_non_embedding']):,} | {int(r['train_tokens']):,} | "
            f"{_f(r.get('tokens_per_param_total'), '{:.2g}')} | {_f(r.get('epochs'), '{:.3g}')} | "
            f"{_pm(r, 'best_val')} @ {int(r['best_iter'])} | {_pm(r, 'best_val_bpb', '{:.3f}')} | "
            f"{_f(r.get('final_train'))} / {_f(r.get('final_val'))} | {_pm(r, 'final_gap', '{:+.2f}')} | {onset} | "
            f"{seeds} |"
        )
    return "\n".join(lines)


SAMPLE_COLS = (
    ("sample_distinct_2", "distinct-2", "{:.2f}"),
    ("sample_repeated_3gram_share", "repeated 3-gram share", "{:.2f}"),
    ("sample_stutter_share", "stutter share", "{:.2f}"),
    ("sample_train_ngram_share", "8-grams copied from train", "{:.0%}"),
    ("sample_mem_longest_tokens_max", "longest copy (tokens)", "{:.0f}"),
    ("sample_parse_ok_share", "samples that parse", "{:.0%}"),
    ("sample_keyword_score", "keyword score", "{:.2f}"),
)


def samples(table: pd.DataFrame) -> str:
    cols = [c for c in SAMPLE_COLS if c[0] in table.columns]
    lines = ["| phase | " + " | ".join(c[1] for c in cols) + " |", "|---|" + "---:|" * len(cols)]
    for _, r in table.iterrows():
        lines.append(f"| {r['phase']} | " + " | ".join(_f(r.get(c), fmt) for c, _, fmt in cols) + " |")
    return "\n".join(lines)


def tokenizers(table: pd.DataFrame, study_dir: Path) -> str:
    lines = [
        "| tokenizer | vocabulary | tokens per byte (val) | embedding share of params | params | epochs | "
        "best val bpb | final gap (bpb) | onset | verdict | train time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for _, r in table.iterrows():
        m = json.loads((study_dir / r["phase"] / "metrics.json").read_text(encoding="utf-8"))
        p, a = m["params"], m.get("analysis") or {}
        onset = "none" if a.get("onset_iter") is None else str(a["onset_iter"])
        lines.append(
            f"| {r['phase']} | {int(m['vocab_size']):,} | {m['val_tokens'] / m['val_bytes']:.3f} | "
            f"{p['embedding'] / p['total']:.1%} | {_f(p['total'] / 1e6, '{:.3g}')} M | {_f(m['epochs'], '{:.3g}')} | "
            f"{_f(m['best_val_bpb'], '{:.3f}')} | {_f(m['final_val_bpb'] - m['final_train_bpb'], '{:+.3f}')} | "
            f"{onset} | {a.get('verdict', '—')} | {_f(m.get('train_time_s'), '{:.0f}')} s |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study_dir")
    ap.add_argument("--samples", action="store_true")
    ap.add_argument("--tokenizers", action="store_true")
    args = ap.parse_args(argv)
    path = Path(args.study_dir) / "summary.csv"
    if not path.exists():
        print(f"{path}: no such file; run the study first (gaplab run params/<study>.yaml)", file=sys.stderr)
        return 2
    table = pd.read_csv(path)
    table = table[table["state"].isin(["done", "cached"])]
    if args.tokenizers:
        print(tokenizers(table, Path(args.study_dir)))
    else:
        print(samples(table) if args.samples else journey(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
