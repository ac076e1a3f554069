"""Benchmark: the playground's default run, start to end (measured only; its defaults are the playground's).

One fresh process builds :class:`gaplab.ui.playground_view.Playground` with its default settings, presses
Train and waits: training with live curves, then the samples from the best checkpoint, as in JupyterLab.
Written: the seconds to the playground being built, to the first and the last evaluation (when the curves
have something to show, and when they are complete), and to the end of sampling; ``--rounds`` processes.

Usage::

    python benchmarks/bench_playground.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PYTHON, env, fmt_load, header, load, machine, median, timed, write  # noqa: E402


def one(out: str) -> None:
    import psutil

    created = psutil.Process().create_time()
    from gaplab.ui.playground_view import Playground

    pg = Playground(run_dir=out, study_path=str(Path(out) / "study.yaml"))
    built = time.time() - created
    evals: list[float] = []
    import gaplab.train.loop as loop

    real = loop.evaluate

    def clocked(*a, **k):
        r = real(*a, **k)
        evals.append(time.time() - created)
        return r

    loop.evaluate = clocked
    pg.train(wait=True)
    done = time.time() - created
    m = pg.last_metrics or {}
    print(
        "RESULT "
        + json.dumps(
            {
                "built_s": built,
                "first_eval_s": evals[0] if evals else None,
                "last_eval_s": evals[-1] if evals else None,
                "done_s": done,
                "iters": m.get("iters"),
                "threads": m.get("threads"),
                "vocab_size": m.get("vocab_size"),
                "params": m.get("params"),
                "error": repr(pg.error) if pg.error else None,
            }
        )
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        one(args.one)
        return 0
    info = machine()
    started = load()
    rows = []
    for r in range(args.rounds):
        out = tempfile.mkdtemp(prefix="bench-playground-")
        res = timed([PYTHON, str(Path(__file__).resolve()), "--one", out], environ=env())
        x = next(json.loads(line[7:]) for line in res.pop("out").splitlines() if line.startswith("RESULT "))
        x.update(round=r + 1, wall_s=res["wall_s"], cpu_s=res["cpu_s"], load_start=res["load_start"])
        rows.append(x)
        print(
            f"round {r + 1}: built {x['built_s']:.1f} s, first eval {x['first_eval_s']:.1f} s, last eval "
            f"{x['last_eval_s']:.1f} s, done {x['done_s']:.1f} s (load {fmt_load(res['load_start'])})",
            flush=True,
        )
    ended = load()
    lines = [
        header(
            "The playground's default run",
            "python benchmarks/bench_playground.py " + " ".join(argv or sys.argv[1:]),
            info,
            started,
            ended,
            "Seconds from the process's start; measured only (the defaults belong to the playground).",
        ),
        "| round | built s | first eval s | last eval s | done (samples) s | iters | threads | vocabulary | load |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for x in rows:
        lines.append(
            f"| {x['round']} | {x['built_s']:.1f} | {x['first_eval_s']:.1f} | {x['last_eval_s']:.1f} | "
            f"{x['done_s']:.1f} | {x['iters']} | {x['threads']} | {x['vocab_size']} | {fmt_load(x['load_start'])} |"
        )
    lines.append(
        f"\nMedian: curves complete after {median([x['last_eval_s'] for x in rows]):.1f} s, samples shown "
        f"after {median([x['done_s'] for x in rows]):.1f} s."
    )
    path = write(
        "playground", "\n".join(lines) + "\n", {"machine": info, "load_start": started, "load_end": ended, "rows": rows}
    )
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
