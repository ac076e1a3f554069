"""Benchmark: a 4-phase grid study on the Dask executor vs the local one, on this machine.

Runs the same study (``data.max_tokens: [4000, 8000]`` x ``model: [micro, tiny]``,
short training) four ways, each into its own outputs folder:

- ``local, 1 worker``  — the reference: one phase at a time, all cores to torch;
- ``dask, 1 worker``   — a LocalCluster of 1 worker: one phase at a time, all cores (same work as above);
- ``dask, 2 workers``  — 2 workers x 1 thread: two phases at once, one torch thread each;
- ``local, 2 workers`` — the same split on the local process pool.

and measures the study's wall time (``gaplab run`` start to end, 05_compare
included), the summed in-phase seconds (stages 01–04 as timed in status.json),
and the per-phase overhead of the Dask path: (dask 1 worker - local 1 worker) / phases.
It also times packing and unpacking one finished phase folder and the
LocalCluster start/stop on its own.

Usage::

    python benchmarks/bench_dask.py [--iters 150] [--repeats 2] [--out benchmarks/results/dask.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))

from gaplab.files import atomic_write_text


def study_yaml(iters: int) -> dict:
    return {
        "study": "bench_dask",
        "description": "4-phase grid for the Dask benchmark",
        "defaults": {
            "data": {
                "source": "stdlib",
                "packages": ["json"],
                "max_tokens": 4000,
                "split": "tail",
                "val_fraction": 0.1,
            },
            "tokenizer": {"name": "gpt2", "compact": True},
            "train": {
                "max_iters": iters,
                "batch_size": 8,
                "learning_rate": 3.0e-3,
                "eval_interval": max(1, iters // 3),
                "eval_iters": 4,
                "lr_schedule": "constant",
            },
            "sample": {"prompts": ["import json"], "max_new_tokens": 16, "num_samples": 1},
        },
        "grid": {"data.max_tokens": [4000, 8000], "model": ["micro", "tiny"]},
    }


CONFIGS = [
    ("local, 1 worker", "local", 1),
    ("dask, 1 worker", "dask", 1),
    ("dask, 2 workers", "dask", 2),
    ("local, 2 workers", "local", 2),
]


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(
            next(
                line.split()[1]
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            )
        )
        mem = f"{mem_kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        mem = "RAM unknown"
    import dask
    import distributed
    import torch

    return (
        f"{cpu}, {len(os.sched_getaffinity(0))} usable cores, {mem}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, torch {torch.__version__}, dask {dask.__version__}, "
        f"distributed {distributed.__version__}"
    )


def run_once(study: Path, outputs: Path, executor: str, workers: int) -> dict:
    from gaplab.pipeline.runner import run_study

    t0 = time.perf_counter()
    code = run_study(str(study), outputs=str(outputs), executor=executor, workers=workers, force=True)
    wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"{executor} x{workers}: gaplab run failed (exit {code}); see {outputs}")
    sdir = outputs / "bench_dask"
    phases = json.loads((sdir / "study_status.json").read_text())["phases"]
    in_phase = sum(v["seconds"] for v in phases.values())
    return {"wall": wall, "in_phase": in_phase, "phases": len(phases), "sdir": sdir}


def time_cluster(workers: int) -> float:
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            client.wait_for_workers(workers)
    return time.perf_counter() - t0


def time_packing(phase_dir: Path, scratch: Path) -> tuple[float, float, int]:
    from gaplab.pipeline.executors.dask import pack_dir, unpack_into

    t0 = time.perf_counter()
    data = pack_dir(phase_dir)
    t1 = time.perf_counter()
    unpack_into(data, scratch / "unpacked")
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, len(data)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=150, help="training iterations per phase")
    ap.add_argument("--repeats", type=int, default=2, help="runs per configuration, interleaved (median reported)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "dask.md"))
    args = ap.parse_args(argv)

    rows = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
        tmp = Path(tmp)
        study = tmp / "bench_dask.yaml"
        study.write_text(yaml.safe_dump(study_yaml(args.iters), sort_keys=False))
        runs: dict[str, list[dict]] = {label: [] for label, _, _ in CONFIGS}
        for rep in range(args.repeats):  # interleaved, every other round reversed, so a load drift hits all alike
            for label, executor, workers in CONFIGS if rep % 2 == 0 else CONFIGS[::-1]:
                runs[label].append(run_once(study, tmp / f"out-{executor}-{workers}-{rep}", executor, workers))
                print(f"{label}: {runs[label][-1]['wall']:.1f}s wall", file=sys.stderr)
        results = {
            label: {
                "wall": statistics.median(r["wall"] for r in rs),
                "in_phase": statistics.median(r["in_phase"] for r in rs),
                "phases": rs[0]["phases"],
                "sdir": rs[0]["sdir"],
            }
            for label, rs in runs.items()
        }
        n = results["local, 1 worker"]["phases"]
        base = results["local, 1 worker"]["wall"]
        for label, _, _ in CONFIGS:
            r = results[label]
            rows.append((label, r["wall"], r["in_phase"], base / r["wall"]))
        overhead = (results["dask, 1 worker"]["wall"] - base) / n
        in_phase_diff = (results["dask, 1 worker"]["in_phase"] - results["local, 1 worker"]["in_phase"]) / n
        # with one phase at a time, wall - in-phase is everything outside the stages: planning, cluster,
        # shipping the phase folder, placing it, 05_compare; the Dask/local difference of that is the Dask path's cost
        outside = {k: results[k]["wall"] - results[k]["in_phase"] for k in ("dask, 1 worker", "local, 1 worker")}
        outside_diff = (outside["dask, 1 worker"] - outside["local, 1 worker"]) / n
        cluster_1 = time_cluster(1)
        cluster_2 = time_cluster(2)
        phase_dir = next(p for p in sorted(results["dask, 1 worker"]["sdir"].iterdir()) if (p / "status.json").exists())
        pack_s, unpack_s, size = time_packing(phase_dir, tmp)

    lines = [
        "# Dask executor benchmark",
        "",
        f"Machine: {machine()}. Load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f} "
        "(a shared machine: other work running at the same time inflates and scatters the times).",
        "",
        f"Study: 4-phase grid (`data.max_tokens: [4000, 8000]` x `model: [micro, tiny]`), {args.iters} training "
        f"iterations per phase, all 4 stages + `05_compare`; `--force`, median of {args.repeats} run(s) "
        "per configuration, interleaved (every other round in reverse order). "
        "Wall = `run_study` start to end (cluster start/stop included for Dask); in-phase = sum of the phases' "
        "stage seconds from `status.json`.",
        "",
        "| configuration | wall s | in-phase s (sum) | speed-up vs local x1 |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {label} | {wall:.1f} | {inph:.1f} | {sp:.2f}x |" for label, wall, inph, sp in rows]
    lines += [
        "",
        f"- Dask path overhead per phase, outside the stages (one phase at a time; (wall - in-phase) of dask x1 "
        f"minus local x1, / {n} phases): **{outside_diff:+.2f} s** "
        f"({outside['dask, 1 worker']:.1f} s vs {outside['local, 1 worker']:.1f} s in all).",
        f"- Raw wall difference per phase (dask x1 - local x1) / {n}: {overhead:+.2f} s, of which the stages themselves "
        f"account for {in_phase_diff:+.2f} s/phase.",
        f"- Phases in parallel vs threads in one phase: dask 2 workers x 1 thread took "
        f"{results['dask, 2 workers']['wall']:.1f} s, dask 1 worker x 2 threads {results['dask, 1 worker']['wall']:.1f} s "
        f"({results['dask, 1 worker']['wall'] / results['dask, 2 workers']['wall']:.2f}x).",
        f"- LocalCluster start + stop: {cluster_1:.2f} s (1 worker), {cluster_2:.2f} s (2 workers), paid once per run.",
        f"- Packing one finished phase folder ({phase_dir.name}): {size / 1024:.0f} KiB tar.gz, pack {pack_s * 1000:.0f} ms, "
        f"unpack {unpack_s * 1000:.0f} ms.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
