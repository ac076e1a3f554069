"""Benchmark: three replicates of seed phase 3 (compact vocabulary) against one, and what each costs.

Cases, each one whole process that trains the phase through the library (``prepare_data`` +
``train_replicates``, as ``02_train`` does), alternating in rounds:

- ``1 replicate``: gaplab's default for one run (phase 3 is large enough for all the cores' threads);
- ``1 replicate, 1 thread``;
- ``3 replicates, together``: gaplab's default (:func:`gaplab.pipeline.stages.replicate_plan_for`): one
  process per replicate, one thread each on this 2-core machine;
- ``3 replicates, one after another``: what gaplab did before (each with the process's threads);
- ``3 replicates, one after another, 1 thread``: the yardstick for equality: with one thread each, the
  replicates trained together must give exactly these histories (checked, and the largest difference
  written down).

Usage::

    python benchmarks/bench_replicates.py [--iters 2000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PYTHON, ROOT, env, fmt_load, header, load, machine, median, timed, write  # noqa: E402

MODES = {
    "1 replicate": (1, "default"),
    "1 replicate, 1 thread": (1, "one-thread"),
    "3 replicates, together": (3, "default"),
    "3 replicates, one after another": (3, "sequential"),
    "3 replicates, one after another, 1 thread": (3, "sequential-one-thread"),
}


def study(folder: Path, replicates: int, iters: int) -> Path:
    path = folder / f"phase3_r{replicates}.yaml"
    path.write_text(
        f"study: phase3_r{replicates}\nextends: {(ROOT / 'params' / 'seed_study_compact.yaml').resolve()}\n"
        f"defaults:\n  replicates: {replicates}\nphases:\n  phase3:\n    train: {{max_iters: {iters}, "
        f"save_every: {[i for i in (500, 1000) if i <= iters]}}}\n"
        f"    sample: {{checkpoints: [best, last]}}\n",
        encoding="utf-8",
    )
    return path


def run(study_path: str, out: str, mode: str) -> None:
    import torch
    from gaplab.data.split import prepare_data
    from gaplab.pipeline.config import load_study
    from gaplab.pipeline.stages import replicate_plan_for
    from gaplab.train.replicates import ReplicatePlan, train_replicates

    ph = load_study(study_path).phase("phase3")
    prep = prepare_data(ph.params, ph.name)
    if mode.endswith("one-thread"):
        torch.set_num_threads(1)
    plan = (
        replicate_plan_for(ph.params, int(prep.vocab_size))
        if mode in ("default", "one-thread")
        else ReplicatePlan(1, None)
    )
    train_replicates(ph.params, prep, Path(out), progress=False, plan=plan)


def histories(out: Path) -> dict[str, list[dict]]:
    found = {}
    for path in sorted(out.rglob("history.csv")):
        if "mean" in path.parts:
            continue
        with path.open(newline="") as fh:
            found[str(path.parent.relative_to(out))] = list(csv.DictReader(fh))
    return found


def largest_difference(a: dict, b: dict) -> float:
    if set(a) != set(b):
        return float("inf")
    worst = 0.0
    for key in a:
        if len(a[key]) != len(b[key]):
            return float("inf")
        for ra, rb in zip(a[key], b[key]):
            for col in ("train_loss", "val_loss"):
                worst = max(worst, abs(float(ra[col]) - float(rb[col])))
    return worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iters", type=int, default=2000, help="phase 3's iterations (the seed's: 2000)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--run", nargs=3, metavar=("STUDY", "OUT", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run:
        run(*args.run)
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="bench-replicates-"))
    studies = {n: study(tmp, n, args.iters) for n in (1, 3)}
    info = machine()
    started = load()
    rows, diffs = [], []
    for r in range(args.rounds):
        kept = {}
        for name, (n, mode) in MODES.items():
            out = tmp / f"out-{len(rows)}"
            res = timed(
                [PYTHON, str(Path(__file__).resolve()), "--run", str(studies[n]), str(out), mode], environ=env()
            )
            res.pop("out")
            res.update(case=name, round=r + 1)
            rows.append(res)
            print(
                f"round {r + 1} {name:<44} {res['wall_s']:7.1f} s wall {res['cpu_s']:7.1f} s CPU  load "
                f"{fmt_load(res['load_start'])}",
                flush=True,
            )
            if name in ("3 replicates, together", "3 replicates, one after another, 1 thread"):
                kept[name] = histories(out)
            shutil.rmtree(out, ignore_errors=True)
        diffs.append(
            largest_difference(kept["3 replicates, together"], kept["3 replicates, one after another, 1 thread"])
        )
    ended = load()
    shutil.rmtree(tmp, ignore_errors=True)

    lines = [
        header(
            f"Replicates: seed phase 3 (compact vocabulary, {args.iters} iterations), 3 seeds against 1",
            "python benchmarks/bench_replicates.py " + " ".join(argv or sys.argv[1:]),
            info,
            started,
            ended,
            "Each case is one whole process (imports, data, training, evaluations, checkpoints).",
        ),
        "| round | case | wall s | CPU s | load at start |",
        "|---:|---|---:|---:|---|",
    ]
    for x in rows:
        lines.append(
            f"| {x['round']} | {x['case']} | {x['wall_s']:.1f} | {x['cpu_s']:.1f} | {fmt_load(x['load_start'])} |"
        )
    med = {name: median([x["wall_s"] for x in rows if x["case"] == name]) for name in MODES}
    cpu = {name: median([x["cpu_s"] for x in rows if x["case"] == name]) for name in MODES}
    lines += [
        "",
        "| case | median wall s | median CPU s | wall x 1 replicate | wall x 1 replicate, 1 thread |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in MODES:
        lines.append(
            f"| {name} | {med[name]:.1f} | {cpu[name]:.1f} | {med[name] / med['1 replicate']:.2f} | "
            f"{med[name] / med['1 replicate, 1 thread']:.2f} |"
        )
    lines.append(
        f"\nReplicates trained together vs one after another on one thread each: largest difference in "
        f"any train or val loss of any eval: {max(diffs):.3g} nats (rounds: "
        f"{', '.join(f'{d:.3g}' for d in diffs)})."
    )
    path = write(
        "replicates",
        "\n".join(lines) + "\n",
        {
            "machine": info,
            "load_start": started,
            "load_end": ended,
            "rows": rows,
            "largest_difference": diffs,
            "args": vars(args),
        },
    )
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
