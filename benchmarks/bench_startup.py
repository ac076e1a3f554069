"""Benchmark: whole-process ``gaplab train`` of seed phase 4 (60 iterations) against the plain loop's whole process.

Cases, each one whole process (python start to exit: imports, reading and tokenizing the corpus, the model,
an evaluation before the first and after the last step, checkpoints), alternating in rounds:

- ``plain loop``: ``benchmarks/reference_loop.py`` (nanoGPT-style: full fp32 logits over GPT-2's 50,257
  ids, default AdamW), turtledemo, 4/4/128, block 128, batch 16, 60 steps, 20 eval batches per split;
- ``gaplab train, compact``: ``gaplab train`` of ``seed_study_compact`` phase 4 cut to 60 iterations
  (``eval_interval: 60``: evaluations at iteration 0 and 60, as the plain loop; 2,036 ids), with staging,
  lock and checkpoints;
- ``gaplab train, faithful``: the same phase of ``seed_study`` (GPT-2's vocabulary);
- ``start-up``: the compact case again, instrumented: seconds from the process's start (its creation time)
  to the first evaluation (everything before training: imports, study, data, model) and to the first
  optimizer step (that plus the iteration-0 evaluation).

``--before LIB`` adds the gaplab cases with the package in ``LIB`` (side by side in the same rounds).

Usage::

    python benchmarks/bench_startup.py [--rounds 3] [--before /tmp/base/lib]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import HERE, PYTHON, ROOT, env, fmt_load, header, load, machine, median, timed, write  # noqa: E402

ITERS = 60


def study(folder: Path, base: str) -> Path:
    path = folder / f"{base}_60.yaml"
    path.write_text(
        f"study: {base}_60\nextends: {(ROOT / 'params' / (base + '.yaml')).resolve()}\n"
        f"defaults:\n  replicates: 1\nphases:\n  phase4:\n    train: {{max_iters: {ITERS}, eval_interval: {ITERS}}}\n",
        encoding="utf-8",
    )
    return path


def startup(study_path: str, out: str) -> None:
    """``gaplab train`` with clocks on the first evaluation and the first step; prints them as JSON."""
    import psutil

    created = psutil.Process().create_time()
    marks: dict[str, float] = {}
    import gaplab.train.loop as loop

    def clocked(name, fn):
        def wrapper(*a, **k):
            marks.setdefault(name, time.time() - created)
            return fn(*a, **k)

        return wrapper

    loop.evaluate = clocked("first_eval_s", loop.evaluate)
    loop.train_step = clocked("first_step_s", loop.train_step)
    from gaplab.cli import main

    main(["train", study_path, "--phase", "phase4", "--outputs", out, "--quiet"])
    marks["exit_s"] = time.time() - created
    print("STARTUP " + json.dumps(marks))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--before", default=None, help="a lib/ folder with the package to compare with")
    ap.add_argument("--startup", nargs=2, metavar=("STUDY", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.startup:
        startup(*args.startup)
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    compact, faithful = study(tmp, "seed_study_compact"), study(tmp, "seed_study")
    libs = [("", None)] + ([(" (before)", Path(args.before).resolve())] if args.before else [])
    cases = [("plain loop", None, "plain")]
    for suffix, lib in libs:
        cases += [
            (f"gaplab train, compact{suffix}", lib, compact),
            (f"gaplab train, faithful{suffix}", lib, faithful),
            (f"start-up{suffix}", lib, "startup"),
        ]
    info = machine()
    started = load()
    rows = []
    for r in range(args.rounds):
        for name, lib, what in cases:
            out = tmp / f"out-{len(rows)}"
            if what == "plain":
                cmd = [PYTHON, str(HERE / "reference_loop.py"), "--iters", str(ITERS), "--out", str(out)]
            elif what == "startup":
                cmd = [PYTHON, str(Path(__file__).resolve()), "--startup", str(compact), str(out)]
            else:
                cmd = [
                    PYTHON,
                    "-m",
                    "gaplab.cli",
                    "train",
                    str(what),
                    "--phase",
                    "phase4",
                    "--outputs",
                    str(out),
                    "--quiet",
                ]
            res = timed(cmd, environ=env(lib))
            marks = {}
            for line in res.pop("out").splitlines():
                if line.startswith("STARTUP "):
                    marks = json.loads(line[len("STARTUP ") :])
                elif line.startswith("FIRST_EVAL_S "):  # the plain loop's start-up
                    marks = {"first_eval_s": float(line.split()[1])}
            res.update(case=name, round=r + 1, **marks)
            rows.append(res)
            extra = "".join(f"  {k} {v:.2f}" for k, v in marks.items())
            print(
                f"round {r + 1} {name:<32} {res['wall_s']:7.1f} s wall {res['cpu_s']:7.1f} s CPU  load "
                f"{fmt_load(res['load_start'])}{extra}",
                flush=True,
            )
            shutil.rmtree(out, ignore_errors=True)
    ended = load()
    shutil.rmtree(tmp, ignore_errors=True)

    lines = [
        header(
            "Whole-process training: gaplab train vs the plain loop (seed phase 4, 60 iterations)",
            "python benchmarks/bench_startup.py " + " ".join(argv or sys.argv[1:]),
            info,
            started,
            ended,
        ),
        "| round | case | wall s | CPU s | to first eval s | to first step s | load at start |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for x in rows:
        fe = f"{x['first_eval_s']:.2f}" if "first_eval_s" in x else ""
        fs = f"{x['first_step_s']:.2f}" if "first_step_s" in x else ""
        lines.append(
            f"| {x['round']} | {x['case']} | {x['wall_s']:.1f} | {x['cpu_s']:.1f} | {fe} | {fs} | "
            f"{fmt_load(x['load_start'])} |"
        )
    lines += [
        "",
        "| case | median wall s | whole-process speed-up over the plain loop (median of rounds) |",
        "|---|---:|---:|",
    ]
    plain = [x for x in rows if x["case"] == "plain loop"]
    for name, _, _ in cases:
        mine = [x for x in rows if x["case"] == name]
        ratio = median([p["wall_s"] / m["wall_s"] for p, m in zip(plain, mine)])
        lines.append(f"| {name} | {median([m['wall_s'] for m in mine]):.1f} | {ratio:.1f}x |")
    pl = [x["first_eval_s"] for x in plain if "first_eval_s" in x]
    if pl:
        lines.append(f"\nThe plain loop's start-up (process start to its first evaluation): median {median(pl):.2f} s.")
    for suffix, _ in libs:
        su = [x for x in rows if x["case"] == f"start-up{suffix}" and "first_eval_s" in x]
        if su:
            lines.append(
                f"\nStart-up{suffix} (process start to the first evaluation, i.e. everything before "
                f"training): median {median([x['first_eval_s'] for x in su]):.2f} s; to the first "
                f"optimizer step (after the iteration-0 evaluation): "
                f"{median([x['first_step_s'] for x in su]):.2f} s."
            )
    path = write(
        "startup",
        "\n".join(lines) + "\n",
        {"machine": info, "load_start": started, "load_end": ended, "rows": rows, "args": vars(args)},
    )
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
