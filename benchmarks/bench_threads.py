"""Benchmark: one torch thread or two, for each of seed 003's configurations, with and without a competitor.

Where :data:`gaplab.model.device.SMALL_STEP_FLOPS` comes from.  For each configuration (compact vocabulary)
and thread count, one fresh process trains ``--iters`` steps after a warm-up (s/iter: the median step);
then again while one other process keeps one core busy (a pure-Python loop, what any other program on
the machine does to a 2-core laptop).

Usage::

    python benchmarks/bench_threads.py [--iters 20]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PYTHON, ROOT, env, fmt_load, header, load, machine, median, timed, write  # noqa: E402


def case(phase: str, threads: int, iters: int) -> None:
    import torch
    from gaplab.data.split import prepare_data
    from gaplab.model.device import resolve_dtype, step_flops
    from gaplab.pipeline.config import load_study
    from gaplab.train.batches import Batches
    from gaplab.train.loop import build_model, train_step
    from gaplab.train.schedule import make_optimizer

    torch.set_num_threads(threads)
    p = load_study(ROOT / "params" / "seed_study_compact.yaml").phase(phase).params
    prep = prepare_data(p, phase)
    dev = torch.device("cpu")
    dtype = resolve_dtype(p.train.dtype, dev, p.model.n_embd)
    t = p.train
    model = build_model(p.model, t, prep.vocab_size, dev, dtype)
    opt = make_optimizer(model, t)
    batches = Batches(prep.train, prep.val, p.model.block_size, t.batch_size, t.seed, t.eval_iters, dev)
    for _ in range(3):
        train_step(model, opt, batches, t, t.learning_rate, dev, dtype)
    walls = []
    for _ in range(iters):
        w = time.perf_counter()
        train_step(model, opt, batches, t, t.learning_rate, dev, dtype)
        walls.append(time.perf_counter() - w)
    tokens = t.batch_size * t.grad_accum * p.model.block_size
    print(
        "RESULT " + json.dumps({"s_iter": median(walls), "gflop": step_flops(p.model, tokens, prep.vocab_size) / 1e9})
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phases", nargs="+", default=["phase1", "phase2", "phase3", "phase4", "phase0"])
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--case", nargs=2, metavar=("PHASE", "THREADS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.case:
        case(args.case[0], int(args.case[1]), args.iters)
        return 0
    info = machine()
    started = load()
    rows = []
    for phase in args.phases:
        for busy in (False, True):
            for threads in (1, 2):
                other = subprocess.Popen([PYTHON, "-c", "while True: pass"]) if busy else None
                try:
                    res = timed(
                        [
                            PYTHON,
                            str(Path(__file__).resolve()),
                            "--case",
                            phase,
                            str(threads),
                            "--iters",
                            str(args.iters),
                        ],
                        environ=env(),
                    )
                finally:
                    if other is not None:
                        other.kill()
                        other.wait()
                r = next(json.loads(x[7:]) for x in res.pop("out").splitlines() if x.startswith("RESULT "))
                r.update(phase=phase, threads=threads, busy=busy, load_start=res["load_start"])
                rows.append(r)
                print(
                    f"{phase} threads={threads} busy={busy}: {r['s_iter']:.4f} s/iter (load "
                    f"{fmt_load(res['load_start'])})",
                    flush=True,
                )
    ended = load()
    lines = [
        header(
            "One thread or two: seed 003's configurations (compact vocabulary)",
            "python benchmarks/bench_threads.py " + " ".join(argv or sys.argv[1:]),
            info,
            started,
            ended,
            "'busy': while one other process keeps one core busy. Loads include other jobs on the machine.",
        ),
        "| phase | GFLOP a step | 1 thread s/iter | 2 threads s/iter | 2 threads speed-up | busy: 1 thread | "
        "busy: 2 threads | busy: 2 threads speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for phase in args.phases:
        g = {(r["threads"], r["busy"]): r for r in rows if r["phase"] == phase}
        lines.append(
            f"| {phase} | {g[1, False]['gflop']:.2f} | {g[1, False]['s_iter']:.4f} | {g[2, False]['s_iter']:.4f} | "
            f"{g[1, False]['s_iter'] / g[2, False]['s_iter']:.2f}x | {g[1, True]['s_iter']:.4f} | "
            f"{g[2, True]['s_iter']:.4f} | {g[1, True]['s_iter'] / g[2, True]['s_iter']:.2f}x |"
        )
    path = write(
        "threads",
        "\n".join(lines) + "\n",
        {"machine": info, "load_start": started, "load_end": ended, "rows": rows, "args": vars(args)},
    )
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
