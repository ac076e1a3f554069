"""Benchmark: ``gaplab inspect train.jsonl val.jsonl`` on 100,000 chat records against the floor.

Two data sets of chat records (system, user, assistant), train 90,000 / val 10,000, written to a temporary
folder from real text (the running interpreter's standard library, never committed):

- ``varied``: each user turn a stdlib docstring, each assistant turn a window of 4 to 40 lines of stdlib
  source (lengths like a code instruction set's);
- ``filler``: 90% of the records one of five answer skeletons with a topic word swapped in (seed 000's
  machine-written filler: near-identical records), the rest as in ``varied``.

Each case runs in its own process: the whole ``gaplab inspect`` (every check in this checkout, ``--json``),
and the floor: reading the same two files (``json.loads`` per line, the turns joined) and tokenizing them
with the same GPT-2 tokenizer.  Wall seconds, CPU seconds and the process's peak RSS are recorded.  Goals
(issue 23): ≤ 60 s and ≤ 4 GB for 100 K records, ≤ 5× the floor, nothing quadratic on near-identical records.

    PYTHONPATH=lib python benchmarks/bench_own_data.py [--records 100000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import PYTHON, env, fmt_load, header, load, machine, write  # noqa: E402

TOPICS = ["sorting", "parsing", "caching", "logging", "retries", "paths", "dates", "queues", "sockets", "json"]
SKELETONS = [
    "Here is a clean, well-documented solution for {t}. It follows best practices and handles edge cases.",
    "Great question about {t}! The following code is efficient, readable and production ready.",
    "To implement {t} in Python, use the function below. It is simple, fast and easy to test.",
    "This implementation of {t} is robust and idiomatic. Let me know if you need anything else!",
    "Below is a complete example for {t}. It is concise, correct and follows PEP 8.",
]


def stdlib_material(limit_files: int = 400) -> tuple[list[str], list[str]]:
    """Docstrings and source lines of the standard library, in sorted file order."""
    import sysconfig

    root = Path(sysconfig.get_paths()["stdlib"])
    docs, lines = [], []
    for path in sorted(root.glob("*.py"))[:limit_files]:
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (SyntaxError, UnicodeDecodeError):
            continue
        lines.extend(source.splitlines())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 30:
                    docs.append(doc.split("\n\n")[0])
    return docs, lines


def make_record(rng: random.Random, docs: list[str], lines: list[str], filler: bool) -> dict:
    if filler:
        topic = rng.choice(TOPICS)
        user = f"Write a Python function for {topic}."
        answer = rng.choice(SKELETONS).format(t=topic)
    else:
        user = rng.choice(docs)
        start = rng.randrange(len(lines) - 40)
        answer = "\n".join(lines[start : start + rng.randint(4, 40)])
    return {
        "messages": [
            {"role": "system", "content": "You are a helpful Python assistant."},
            {"role": "user", "content": user},
            {"role": "assistant", "content": answer},
        ]
    }


def write_case(folder: Path, name: str, n: int, filler_share: float, seed: int) -> tuple[Path, Path]:
    docs, lines = stdlib_material()
    rng = random.Random(seed)
    n_val = n // 10
    paths = []
    for side, count in (("train", n - n_val), ("val", n_val)):
        path = folder / f"{name}_{side}.jsonl"
        with open(path, "w", encoding="utf-8") as handle:
            for _ in range(count):
                record = make_record(rng, docs, lines, rng.random() < filler_share)
                handle.write(json.dumps(record) + "\n")
        paths.append(path)
    return paths[0], paths[1]


# --------------------------------------------------------------------------- the two kinds of process
def child_floor(train: str, val: str) -> None:
    from gaplab.data.tokenizer import get_tokenizer

    tok = get_tokenizer("gpt2")
    tokens = 0
    for path in (train, val):
        with open(path, encoding="utf-8") as handle:
            texts = ["\n".join(t["content"] for t in json.loads(line)["messages"]) for line in handle if line.strip()]
        tokens += sum(len(ids) for ids in tok.encode_batch(texts))
    print(json.dumps({"tokens": tokens}))


def child_inspect(train: str, val: str) -> None:
    import contextlib
    import io

    from gaplab.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["inspect", train, val, "--json"])
    report = json.loads(out.getvalue())
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    print(json.dumps({"rc": rc, "checks": statuses, "timings_s": report.get("timings_s", {})}))


def run_child(kind: str, train: Path, val: Path) -> dict:
    code = (
        "import json, resource, sys, time; sys.path.insert(0, sys.argv[4]); t0 = time.perf_counter(); "
        "import bench_own_data as b; getattr(b, 'child_' + sys.argv[1])(sys.argv[2], sys.argv[3]); "
        "print(json.dumps({'self_wall_s': time.perf_counter() - t0, "
        "'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    l0, t0 = load(), time.perf_counter()
    proc = subprocess.run(
        [PYTHON, "-c", code, kind, str(train), str(val), str(HERE)], env=env(), capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} exited {proc.returncode}:\n{proc.stderr[-4000:]}")
    lines = [json.loads(x) for x in proc.stdout.strip().splitlines()[-2:]]
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2),
        "load": [l0, load()],
        **lines[0],
        "peak_rss_mb": round(lines[1]["peak_rss_mb"], 1),
    }


def table(rows: list[dict]) -> str:
    out = [
        "| data | records | inspect wall s | floor wall s | ratio | inspect CPU s | inspect peak RSS | floor peak RSS "
        "| load (1 min) | failed checks |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        i, f = r["inspect"], r["floor"]
        failed = ", ".join(k for k, v in i["checks"].items() if v == "fail") or "none"
        out.append(
            f"| {r['case']} | {r['records']:,} | {i['wall_s']:.1f} | {f['wall_s']:.1f} | {i['wall_s'] / f['wall_s']:.1f}× "
            f"| {i['cpu_s']:.1f} | {i['peak_rss_mb'] / 1024:.2f} GB | {f['peak_rss_mb'] / 1024:.2f} GB "
            f"| {fmt_load(i['load'][0][:1])} | {failed} |"
        )
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--cases", nargs="+", default=["varied", "filler"])
    ap.add_argument("--name", default="own_data", help="results/<name>.md and .json")
    args = ap.parse_args()
    info, started = machine(), load()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in args.cases:
            train, val = write_case(Path(tmp), case, args.records, 0.9 if case == "filler" else 0.0, seed=23)
            floor = run_child("floor", train, val)  # floor first, then inspect: the same files, side by side
            inspect = run_child("inspect", train, val)
            mb = (train.stat().st_size + val.stat().st_size) / 2**20
            rows.append(
                {"case": case, "records": args.records, "megabytes": round(mb, 1), "floor": floor, "inspect": inspect}
            )
            print(f"{case}: {mb:.0f} MB, inspect {inspect['wall_s']} s, floor {floor['wall_s']} s", flush=True)
    timings = "\n".join(f"- {r['case']}: build_report sections (s): {r['inspect']['timings_s']}" for r in rows)
    md = header(
        "gaplab inspect on 100,000 chat records against reading and tokenizing them",
        "PYTHONPATH=lib python benchmarks/bench_own_data.py",
        info,
        started,
        load(),
        note="Each case is one process; peak RSS is the process's own (ru_maxrss).",
    )
    md += table(rows) + "\n" + timings + "\n"
    print(md)
    print(write(args.name, md, rows))


if __name__ == "__main__":
    main()
