"""Benchmark: ``train.compile: true`` on CPU (torch.compile of each block) on the seed study's configurations.

For each of seed 003's phases (compact vocabulary, as ``params/seed_study_compact.yaml``): two fresh
processes, compiled and not, from the same initial weights and the same batches: the first ``--warmup``
steps (where compiling happens), then ``--iters`` timed steps; s/iter (median), CPU s/iter, the compile
time (the warm-up's time beyond that many steady steps, with an empty inductor cache so nothing is reused
from an earlier run) and the losses at the end (the last step's training loss and a full fp32 evaluation),
which must agree.

Usage::

    python benchmarks/bench_compile.py [--phases phase1 phase2 phase3 phase4] [--iters 30] [--threads 1]
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

from _common import PYTHON, ROOT, env, fmt_load, header, load, machine, median, timed, write  # noqa: E402


def case(phase: str, compiled: bool, warmup: int, iters: int, threads: int) -> None:
    import torch
    from gaplab.data.split import prepare_data
    from gaplab.model.device import resolve_dtype
    from gaplab.pipeline.config import load_study
    from gaplab.train.batches import Batches
    from gaplab.train.loop import build_model, evaluate, loss_options_for, train_step
    from gaplab.train.schedule import make_optimizer

    torch.set_num_threads(threads)
    p = load_study(ROOT / "params" / "seed_study_compact.yaml").phase(phase).params
    prep = prepare_data(p, phase)
    dev = torch.device("cpu")
    dtype = resolve_dtype(p.train.dtype, dev, p.model.n_embd)
    t = p.train.model_copy(update={"compile": compiled})
    model = build_model(p.model, t, prep.vocab_size, dev, dtype)
    loss_options = loss_options_for(t, dev, dtype, prep.vocab_size)
    opt = make_optimizer(model, t)
    batches = Batches(prep.train, prep.val, p.model.block_size, t.batch_size, t.seed, t.eval_iters, dev)
    t0 = time.perf_counter()
    for _ in range(warmup):
        train_step(model, opt, batches, t, t.learning_rate, dev, dtype, None, loss_options)
    warm = time.perf_counter() - t0
    walls, cpus, loss = [], [], float("nan")
    for _ in range(iters):
        w, c = time.perf_counter(), time.process_time()
        loss = train_step(model, opt, batches, t, t.learning_rate, dev, dtype, None, loss_options)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    ev = evaluate(model, batches, dev, torch.float32)
    print(
        "RESULT "
        + json.dumps(
            {
                "warmup_s": warm,
                "s_iter": median(walls),
                "cpu_iter": median(cpus),
                "last_loss": loss,
                "eval_train": ev["train"],
                "eval_val": ev["val"],
                "dtype": str(dtype).replace("torch.", ""),
            }
        )
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phases", nargs="+", default=["phase1", "phase2", "phase3", "phase4", "phase0"])
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--case", nargs=2, metavar=("PHASE", "COMPILED"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.case:
        case(args.case[0], args.case[1] == "1", args.warmup, args.iters, args.threads)
        return 0
    info = machine()
    started = load()
    rows = []
    for phase in args.phases:
        for compiled in (False, True):
            cache = Path(tempfile.mkdtemp(prefix="inductor-"))  # a cold compile: nothing reused
            res = timed(
                [
                    PYTHON,
                    str(Path(__file__).resolve()),
                    "--case",
                    phase,
                    "1" if compiled else "0",
                    "--iters",
                    str(args.iters),
                    "--warmup",
                    str(args.warmup),
                    "--threads",
                    str(args.threads),
                ],
                environ=env(TORCHINDUCTOR_CACHE_DIR=str(cache)),
            )
            shutil.rmtree(cache, ignore_errors=True)
            result = next(json.loads(line[7:]) for line in res.pop("out").splitlines() if line.startswith("RESULT "))
            result.update(phase=phase, compiled=compiled, load_start=res["load_start"], process_s=res["wall_s"])
            rows.append(result)
            print(
                f"{phase} compile={compiled}: {result['s_iter']:.4f} s/iter, {result['cpu_iter']:.4f} CPU s/iter, "
                f"warm-up {result['warmup_s']:.1f} s, eval val {result['eval_val']:.4f}, load "
                f"{fmt_load(res['load_start'])}",
                flush=True,
            )
    ended = load()
    lines = [
        header(
            "train.compile on CPU: seed 003's configurations (compact vocabulary)",
            "python benchmarks/bench_compile.py " + " ".join(argv or sys.argv[1:]),
            info,
            started,
            ended,
            f"{args.threads} thread(s); {args.warmup} warm-up + {args.iters} timed steps per case, from the "
            "same initial weights and batches; compile time = warm-up time minus that many steady steps, "
            "with an empty inductor cache.",
        ),
        "| phase | dtype | s/iter eager | s/iter compiled | CPU s/iter eager | CPU s/iter compiled | speed-up | "
        "compile s | steps to repay it | last step loss eager / compiled | eval val eager / compiled |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for phase in args.phases:
        e = next(r for r in rows if r["phase"] == phase and not r["compiled"])
        c = next(r for r in rows if r["phase"] == phase and r["compiled"])
        compile_s = c["warmup_s"] - args.warmup * c["s_iter"]
        saved = e["s_iter"] - c["s_iter"]
        repay = f"{compile_s / saved:,.0f}" if saved > 0 else "never"
        lines.append(
            f"| {phase} | {e['dtype']} | {e['s_iter']:.4f} | {c['s_iter']:.4f} | {e['cpu_iter']:.4f} | "
            f"{c['cpu_iter']:.4f} | {e['s_iter'] / c['s_iter']:.2f}x | {compile_s:.1f} | {repay} | "
            f"{e['last_loss']:.4f} / {c['last_loss']:.4f} | {e['eval_val']:.4f} / {c['eval_val']:.4f} |"
        )
    path = write(
        "compile_cpu",
        "\n".join(lines) + "\n",
        {"machine": info, "load_start": started, "load_end": ended, "rows": rows, "args": vars(args)},
    )
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
