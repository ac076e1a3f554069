"""Benchmark: a whole ``gaplab run`` (papermill, every stage, 05_compare) against training its phases alone.

Cases, each one whole process timed from outside (wall and CPU seconds of it and its children), run in
rounds that alternate the cases so that a change in the machine's load hits all of them alike:

- ``library alone``: one process that loads the study and, for each phase, prepares its data and trains it
  (every replicate) through the library (``prepare_data`` + ``train_replicates``): no notebook, no data
  report, no analysis, no samples, no figures; the least a run can cost;
- ``gaplab run``: ``gaplab run STUDY --force`` into a fresh outputs folder: plan, lock, staging, the four
  stage notebooks per phase through papermill, 05_compare, the report;
- with ``--before LIB``: both again with the package in ``LIB`` (e.g. the code before a change, from
  ``git archive``), side by side in the same rounds.

``--replicates N`` runs the study with ``replicates: N`` (a study file that extends it). ``--no-alone``
skips the library-alone case (the seed study's goals are absolute times).

Usage::

    python benchmarks/bench_pipeline.py                                   # params/ci.yaml, 3 rounds
    python benchmarks/bench_pipeline.py --before /tmp/base/lib --rounds 3
    python benchmarks/bench_pipeline.py --study params/seed_study_compact.yaml --replicates 1 --no-alone \\
        --rounds 1 --name seed_study_compact_r1
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PYTHON, ROOT, env, fmt_load, header, load, machine, median, timed, write  # noqa: E402


def library_alone(study_path: str, out: str) -> None:
    """Prepare and train every phase of the study (all replicates) through the library, nothing else."""
    from gaplab.data.split import prepare_data
    from gaplab.pipeline.config import load_study
    from gaplab.train.replicates import train_replicates

    study = load_study(study_path)
    for ph in study.phases:
        prep = prepare_data(ph.params, ph.name, str(study.path))
        train_replicates(ph.params, prep, Path(out) / ph.name, progress=False)


def study_file(study: Path, replicates: int | None, folder: Path) -> Path:
    if replicates is None:
        return study
    path = folder / f"{study.stem}_r{replicates}.yaml"
    path.write_text(
        f"study: {study.stem}_r{replicates}\nextends: {study.resolve()}\ndefaults:\n  replicates: {replicates}\n",
        encoding="utf-8",
    )
    return path


def phase_seconds(out: Path, study: Path) -> dict:
    """Per phase of ``study``: the stage seconds ``status.json`` recorded."""
    import yaml

    name = yaml.safe_load(study.read_text(encoding="utf-8")).get("study", study.stem)
    rows = {}
    for status in sorted(out.glob(f"{name}/*/status.json")):
        st = json.loads(status.read_text())
        rows[st.get("phase", status.parent.name)] = {
            "seconds": round(st.get("seconds", 0.0), 1),
            "stages": st.get("stages", {}),
        }
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", default="params/ci.yaml")
    ap.add_argument("--replicates", type=int, default=None, help="run the study with replicates: N")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--before", default=None, help="a lib/ folder with the package to compare with")
    ap.add_argument("--no-alone", action="store_true", help="skip the library-alone case")
    ap.add_argument("--workers", type=int, default=None, help="gaplab run --workers")
    ap.add_argument("--name", default=None, help="results/<name>.md (default: pipeline_<study>)")
    ap.add_argument(
        "--keep",
        default=None,
        metavar="OUTPUTS",
        help="the last round's `gaplab run` writes into OUTPUTS (e.g. outputs) and is kept: the timed "
        "run's results are then the ones a report or the README reads",
    )
    ap.add_argument("--library-alone", nargs=2, metavar=("STUDY", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.library_alone:
        library_alone(*args.library_alone)
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    study = study_file((ROOT / args.study).resolve(), args.replicates, tmp)
    libs = [("", None)] + ([(" (before)", Path(args.before).resolve())] if args.before else [])
    cases = []
    for suffix, lib in libs:
        if not args.no_alone:
            cases.append((f"library alone{suffix}", lib, "alone"))
        cases.append((f"gaplab run{suffix}", lib, "run"))
    info = machine()
    started = load()
    rounds = []

    def kept(out: Path) -> bool:
        return bool(args.keep) and out == (ROOT / args.keep).resolve()

    for r in range(args.rounds):
        for name, lib, kind in cases:
            out = tmp / f"out-{r}-{kind}-{len(rounds)}"
            if args.keep and kind == "run" and lib is None and r == args.rounds - 1:
                out = (ROOT / args.keep).resolve()
            if kind == "alone":
                cmd = [PYTHON, str(Path(__file__).resolve()), "--library-alone", str(study), str(out)]
            else:
                cmd = [PYTHON, "-m", "gaplab.cli", "run", str(study), "--force", "--outputs", str(out)]
                if args.workers:
                    cmd += ["--workers", str(args.workers)]
            res = timed(cmd, environ=env(lib))
            res.update(case=name, round=r + 1, phases=phase_seconds(out, study) if kind == "run" else {})
            res.pop("out")
            rounds.append(res)
            print(
                f"round {r + 1} {name:<26} {res['wall_s']:8.1f} s wall {res['cpu_s']:8.1f} s CPU  load "
                f"{fmt_load(res['load_start'])}",
                flush=True,
            )
            if not kept(out):
                shutil.rmtree(out, ignore_errors=True)
    ended = load()
    shutil.rmtree(tmp, ignore_errors=True)

    label = Path(args.study).stem + (f", replicates: {args.replicates}" if args.replicates else "")
    lines = [
        header(
            f"Pipeline speed: {label}",
            "python benchmarks/bench_pipeline.py " + " ".join(argv or sys.argv[1:]),
            info,
            started,
            ended,
        ),
        "| round | case | wall s | CPU s | load at start (1/5/15 min) |",
        "|---:|---|---:|---:|---|",
    ]
    for res in rounds:
        lines.append(
            f"| {res['round']} | {res['case']} | {res['wall_s']:.1f} | {res['cpu_s']:.1f} | "
            f"{fmt_load(res['load_start'])} |"
        )
    lines += ["", "| case | median wall s | median CPU s |", "|---|---:|---:|"]
    med = {}
    for name, _, _ in cases:
        walls = [x["wall_s"] for x in rounds if x["case"] == name]
        cpus = [x["cpu_s"] for x in rounds if x["case"] == name]
        med[name] = (median(walls), median(cpus))
        lines.append(f"| {name} | {med[name][0]:.1f} | {med[name][1]:.1f} |")
    for suffix, _ in libs:
        if not args.no_alone:
            ratios = [
                run["wall_s"] / alone["wall_s"]
                for run, alone in zip(
                    [x for x in rounds if x["case"] == f"gaplab run{suffix}"],
                    [x for x in rounds if x["case"] == f"library alone{suffix}"],
                )
            ]
            cpu_ratios = [
                run["cpu_s"] / alone["cpu_s"]
                for run, alone in zip(
                    [x for x in rounds if x["case"] == f"gaplab run{suffix}"],
                    [x for x in rounds if x["case"] == f"library alone{suffix}"],
                )
            ]
            lines.append(
                f"\n`gaplab run` / library alone{suffix}: median {median(ratios):.2f}x wall "
                f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)}), {median(cpu_ratios):.2f}x CPU."
            )
    last = next((x for x in reversed(rounds) if x["case"] == "gaplab run"), None)
    if last and last["phases"]:
        lines += [
            "",
            "Stage seconds of the last `gaplab run` (from each phase's `status.json`):",
            "",
            "| phase | seconds | stages |",
            "|---|---:|---|",
        ]
        for ph, row in last["phases"].items():
            lines.append(
                f"| {ph} | {row['seconds']:.1f} | " + ", ".join(f"{k} {v:.1f}" for k, v in row["stages"].items()) + " |"
            )
    name = args.name or f"pipeline_{Path(args.study).stem}" + (f"_r{args.replicates}" if args.replicates else "")
    path = write(
        name,
        "\n".join(lines) + "\n",
        {"machine": info, "load_start": started, "load_end": ended, "rounds": rounds, "args": vars(args)},
    )
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
