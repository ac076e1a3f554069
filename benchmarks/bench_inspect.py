"""Benchmark: inspect the whole Python standard library (every ``.py`` outside test folders).

Reads the corpus with ``data.source: stdlib`` (all packages), tokenizes it with
GPT-2 (tiktoken, offline ranks; falls back to the ``char`` tokenizer when the
ranks are not provisioned, and says so), then times :func:`gaplab.datareport.build.build_report`
and prints wall time per section and peak memory.

Memory must grow linearly with the corpus: ``--scaling`` repeats the
inspection in fresh processes at 1/4, 1/2 and all of the tokens
(``data.max_tokens``) and prints the Python heap peak of ``build_report``
alone (tracemalloc, which numpy reports its arrays to) with the ratio to the
token count.  Target: ≤ 60 s for the full inspection on 2 cores.

    PYTHONPATH=lib python benchmarks/bench_inspect.py [--scaling] [--tokenizer char]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from gaplab.data.tokenizer import get_tokenizer
from gaplab.errors import TokenizerError
from gaplab.schema import PhaseParams


def _tokenizer_name(wanted: str) -> tuple[str, str]:
    if wanted != "gpt2":
        return wanted, ""
    try:
        get_tokenizer("gpt2")
        return "gpt2", ""
    except TokenizerError as exc:
        return "char", f"GPT-2 ranks not available ({exc}); measured with the char tokenizer instead"


def _param_counts(params: PhaseParams, vocab_size: int) -> tuple[dict, str]:
    try:
        from gaplab.model.gpt import count_params
    except ImportError:
        # timing of the detectors does not depend on these numbers
        return {"total": 1, "embedding": 0, "non_embedding": 1}, "gaplab.model not importable: placeholder counts"
    return count_params(params.model, vocab_size), ""


def run_once(tokenizer: str, max_tokens: int | None, heap: bool) -> dict:
    from gaplab.data.split import prepare_data
    from gaplab.datareport import build as build_mod

    params = PhaseParams.model_validate(
        {
            "data": {
                "source": "stdlib",
                "packages": [],
                "split": "tail",
                "val_fraction": 0.1,
                "max_tokens": max_tokens,
            },
            "tokenizer": {"name": tokenizer, "compact": False},
            "model": {"n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 128},
            "train": {"max_iters": 2000, "eval_interval": 100},
        }
    )
    t0 = time.perf_counter()
    prep = prepare_data(params, "bench")
    t_prepare = time.perf_counter() - t0
    counts, note = _param_counts(params, prep.vocab_size)
    t0 = time.perf_counter()
    report = build_mod.build_report(prep, params, param_counts=counts)
    t_report = time.perf_counter() - t0
    out = {
        "tokenizer": tokenizer,
        "documents": report["size"]["documents"],
        "tokens": report["size"]["tokens"],
        "characters": report["size"]["characters"],
        "prepare_s": t_prepare,
        "report_s": t_report,
        "sections_s": report["timings_s"],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "checks": {c["name"]: (c["status"], c["value"]) for c in report["checks"]},
        "note": note,
    }
    if heap:
        tracemalloc.start()
        build_mod.build_report(prep, params, param_counts=counts)
        out["report_heap_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer", default="gpt2", help="gpt2 (default) or char")
    ap.add_argument("--max-tokens", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--heap", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--scaling", action="store_true", help="heap peak of build_report at 1/4, 1/2, 1 of the tokens")
    args = ap.parse_args()
    name, why = _tokenizer_name(args.tokenizer)
    if args.json:  # a child process of --scaling
        print(json.dumps(run_once(name, args.max_tokens, args.heap)))
        return 0
    if why:
        print(f"NOTE: {why}")
    t0 = time.perf_counter()
    r = run_once(name, None, heap=False)
    wall = time.perf_counter() - t0
    print(
        f"stdlib corpus: {r['documents']:,} documents, {r['characters']:,} characters, {r['tokens']:,} "
        f"{r['tokenizer']} tokens"
    )
    print(f"read + tokenize + split (gaplab.data.split.prepare_data): {r['prepare_s']:.1f} s")
    print(
        f"build_report: {r['report_s']:.1f} s  sections: "
        + ", ".join(f"{k} {v:.2f}" for k, v in r["sections_s"].items())
    )
    print(f"wall time {wall:.1f} s (target ≤ 60 s on 2 cores); peak RSS {r['peak_rss_mb']:.0f} MB")
    for k, (status, value) in r["checks"].items():
        print(f"  {status:>4}  {k}: {value if value is None else round(value, 4)}")
    if r["note"]:
        print(f"NOTE: {r['note']}")
    if args.scaling:
        total = r["tokens"]
        print("\nmemory against corpus size (fresh process each; tracemalloc peak of build_report):")
        for frac in (0.25, 0.5, 1.0):
            cmd = [
                sys.executable,
                __file__,
                "--json",
                "--heap",
                "--tokenizer",
                name,
                "--max-tokens",
                str(max(1000, int(total * frac))),
            ]
            res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            print(
                f"  {res['tokens']:>10,} tokens: build_report {res['report_s']:.1f} s, heap peak "
                f"{res['report_heap_peak_mb']:.0f} MB ({res['report_heap_peak_mb'] * 2**20 / res['tokens']:.0f} "
                f"bytes/token), process peak RSS {res['peak_rss_mb']:.0f} MB"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
