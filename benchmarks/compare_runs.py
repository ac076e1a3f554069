"""Do two runs of one study hold the same numbers?  ``summary.csv`` and every phase's ``metrics.json``,
timings aside.

A refactoring must not change what a study computes: run the study on the old code and on the new one with
the same seeds (``GAPLAB_OUTPUTS=/tmp/before gaplab run params/quickstart.yaml``, then ``/tmp/after``) and::

    python benchmarks/compare_runs.py /tmp/before/quickstart /tmp/after/quickstart

It prints each difference (file, key, before, after) and exits 1 if there is one, 0 if the two runs agree.
What is not compared: wall-clock times and speeds, versions, paths and the keys that hold them (see
:data:`IGNORED`); floats are compared exactly (the same seed on the same machine gives the same bits).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

#: keys (at any depth) whose values differ between two runs of the same code: time, speed, where, which version
IGNORED = {
    "wall_time_s",
    "tokens_per_s",
    "elapsed_s",
    "timings_s",
    "train_time_s",
    "versions",
    "run_dir",
    "path",
    "started",
    "finished",
    "duration_s",
}
#: summary.csv columns of the same kind
IGNORED_COLUMNS = {"wall_time_s", "tokens_per_s", "train_time_s", "run_dir", "elapsed_s"}


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def diff_json(a, b, where: str) -> list[str]:
    """Every place where two JSON values differ, keys in :data:`IGNORED` left out."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key in IGNORED:
                continue
            if key not in a or key not in b:
                out.append(f"{where}.{key}: only in {'after' if key not in a else 'before'}")
            else:
                out.extend(diff_json(a[key], b[key], f"{where}.{key}"))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in diff_json(x, y, f"{where}[{i}]")]
    return [] if _same(a, b) else [f"{where}: {a!r} -> {b!r}"]


def diff_summary(before: Path, after: Path) -> list[str]:
    rows = [list(csv.DictReader(p.open())) for p in (before, after)]
    if len(rows[0]) != len(rows[1]):
        return [f"summary.csv: {len(rows[0])} rows -> {len(rows[1])}"]
    out = []
    for i, (x, y) in enumerate(zip(*rows)):
        for col in sorted((set(x) | set(y)) - IGNORED_COLUMNS):
            if x.get(col) != y.get(col):
                out.append(f"summary.csv row {i} ({x.get('phase')}) {col}: {x.get(col)!r} -> {y.get(col)!r}")
    return out


def compare(before: Path, after: Path) -> list[str]:
    out = diff_summary(before / "summary.csv", after / "summary.csv")
    for metrics in sorted(before.glob("*/metrics.json")):
        other = after / metrics.parent.name / "metrics.json"
        if not other.exists():
            out.append(f"{metrics.parent.name}/metrics.json: missing after")
            continue
        out.extend(diff_json(json.loads(metrics.read_text()), json.loads(other.read_text()), metrics.parent.name))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before", type=Path, help="outputs/<study> of the old code")
    ap.add_argument("after", type=Path, help="outputs/<study> of the new code")
    args = ap.parse_args()
    differences = compare(args.before, args.after)
    for line in differences:
        print(line)
    phases = len(list(args.before.glob("*/metrics.json")))
    print(f"{len(differences)} difference(s) over summary.csv and {phases} phases' metrics.json (timings aside)")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
