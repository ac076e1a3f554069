"""Benchmark: ``gaplab analyze`` on a huge log (issue 24, item 7: each in at most 5 s on the 2-core machine).

Two logs, written here (kept under ``--keep DIR`` to reuse them):

- a **TensorBoard folder** with 1,000,000 scalar points: ``train/loss`` at every step 1-999,000 and
  ``val/loss`` every 1,000 steps (1,000 evals), in one event file framed exactly as TensorBoard's own
  ``RecordWriter`` frames records (its ``masked_crc32c``), each record an ``Event`` with a ``simple_value``
  summary, as ``SummaryWriter.add_scalar`` writes it;
- a **200 MB Hugging Face console log**: tqdm bars (``\\r``-separated updates, one a step) with a
  ``{'loss': …}`` line every 10 steps and an ``{'eval_loss': …}`` line every 5,000 steps, as
  ``Trainer``'s ``ProgressCallback`` prints them (transformers 4.4x: values as strings).

Cases, side by side in each round, each timed in this process after one warm-up (imports done once):

- ``read bytes``: reading the file(s) whole in 1 MB chunks and nothing else (the floor any reader has);
- ``read_log``: gaplab's reader (:func:`gaplab.logs.read_log`): the curves, the train level at each eval;
- ``analyze``: ``read_log`` plus the verdict and the advice (:func:`gaplab.logs.analyze.analyze_path`);
- ``gaplab analyze`` (once per log): the whole command in its own process, Python start-up and imports
  included.

Usage::

    python benchmarks/bench_analyze.py [--rounds 3] [--keep /tmp/bench_logs]
"""

from __future__ import annotations

import argparse
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PYTHON, env, fmt_load, header, load, machine, median, timed, write  # noqa: E402

TB_TRAIN_POINTS = 999_000
TB_EVAL_EVERY = 1_000
CONSOLE_BYTES = 200 * 2**20
GOAL_S = 5.0


def curves(steps: np.ndarray, total: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Train falling all run, val falling to a minimum at 40 % of the run and then rising: nats, noisy."""
    t = steps / total
    train = 1.2 + 2.5 * np.exp(-t / 0.15) - 0.4 * t
    val = 1.6 + 2.3 * np.exp(-t / 0.12) + 0.5 * np.maximum(t - 0.4, 0) ** 1.5
    return train * (1 + 0.03 * rng.standard_normal(len(t))), val * (1 + 0.005 * rng.standard_normal(len(t)))


def write_tensorboard(folder: Path) -> Path:
    """One event file of 1,000,000 scalars, framed as TensorBoard's RecordWriter frames records."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "events.out.tfevents.1700000000.bench.1.0"
    rng = np.random.default_rng(0)
    train_steps = np.arange(1, TB_TRAIN_POINTS + 1)
    val_steps = np.arange(TB_EVAL_EVERY, TB_TRAIN_POINTS + TB_EVAL_EVERY + 1, TB_EVAL_EVERY)
    train, _ = curves(train_steps, TB_TRAIN_POINTS, rng)
    _, val = curves(val_steps, TB_TRAIN_POINTS, rng)
    header_crc: dict[int, bytes] = {}  # the length's crc, the same for every record of one length

    def record(data: bytes) -> bytes:
        length = struct.pack("<Q", len(data))
        if len(data) not in header_crc:
            header_crc[len(data)] = struct.pack("<I", masked_crc32c(length))
        return length + header_crc[len(data)] + data + struct.pack("<I", masked_crc32c(data))

    def scalar(tag: str, step: int, value: float) -> bytes:
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=value)])
        return record(Event(wall_time=1.7e9 + step * 0.1, step=int(step), summary=summary).SerializeToString())

    events = sorted(
        [(int(s), 0, "train/loss", float(v)) for s, v in zip(train_steps, train)]
        + [(int(s), 1, "val/loss", float(v)) for s, v in zip(val_steps, val)]
    )
    with open(path, "wb") as fh:
        fh.write(record(Event(wall_time=1.7e9, file_version="brain.Event:2").SerializeToString()))
        for step, _, tag, value in events:
            fh.write(scalar(tag, step, value))
    return folder


def write_console(path: Path) -> Path:
    """A console of ~200 MB: tqdm updates, a loss dict every 10 steps, an eval dict every 5,000 steps."""
    per_step = 62 + 95 / 10  # bytes: one bar update, a tenth of a loss line
    total = int(CONSOLE_BYTES / per_step)
    rng = np.random.default_rng(1)
    logged = np.arange(10, total + 1, 10)
    evals = np.arange(5000, total + 1, 5000)
    train, _ = curves(logged, total, rng)
    _, val = curves(evals, total, rng)
    loss_at, val_at = dict(zip(logged.tolist(), train.tolist())), dict(zip(evals.tolist(), val.tolist()))
    width = len(str(total))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("***** Running training *****\n")
        chunk = []
        for step in range(1, total + 1):
            pct = 100 * step // total
            bar = "█" * (pct // 10)
            chunk.append(f"\r{pct:3d}%|{bar:<10}| {step:>{width}}/{total} [01:23<45:06, 10.1it/s]")
            if step in loss_at:
                lr = 5e-5 * (1 - step / total)
                chunk.append(
                    f"\n{{'loss': '{loss_at[step]:.4f}', 'grad_norm': '1.25', 'learning_rate': '{lr:.4g}', "
                    f"'epoch': '{3 * step / total:.2f}'}}\n"
                )
            if step in val_at:
                chunk.append(
                    f"\n{{'eval_loss': '{val_at[step]:.4f}', 'eval_runtime': '12.3', 'eval_samples_per_second': "
                    f"'81.3', 'eval_steps_per_second': '10.2', 'epoch': '{3 * step / total:.2f}'}}\n"
                )
            if len(chunk) > 20000:
                fh.write("".join(chunk))
                chunk = []
        fh.write("".join(chunk) + "\n")
    return path


def read_bytes(path: Path) -> int:
    files = [p for p in sorted(path.rglob("*")) if p.is_file()] if path.is_dir() else [path]
    n = 0
    for f in files:
        with open(f, "rb") as fh:
            while block := fh.read(2**20):
                n += len(block)
    return n


def time_case(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", type=Path, default=None, help="write (or reuse) the logs here")
    args = ap.parse_args()
    from gaplab.logs import read_log
    from gaplab.logs.analyze import analyze_path

    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_analyze_"))
    folder.mkdir(parents=True, exist_ok=True)
    tb, console = folder / "tensorboard", folder / "console.log"
    made = {}
    if not (tb / "events.out.tfevents.1700000000.bench.1.0").exists():
        made["tensorboard"] = time_case(lambda: write_tensorboard(tb))
    if not console.exists():
        made["console"] = time_case(lambda: write_console(console))
    logs = {"TensorBoard folder, 1,000,000 scalars": tb, "HF console log": console}
    info, started = machine(), load()
    results = {}
    for name, path in logs.items():
        analyze_path(path)  # warm-up: imports, page cache
        cases = {
            "read bytes": lambda p=path: read_bytes(p),
            "read_log": lambda p=path: read_log(p),
            "analyze": lambda p=path: analyze_path(p),
        }
        times: dict[str, list[float]] = {c: [] for c in cases}
        for _ in range(args.rounds):
            for case, fn in cases.items():
                times[case].append(time_case(fn))
        command = timed([PYTHON, "-m", "gaplab.cli", "analyze", str(path)], environ=env())
        (analysis,) = analyze_path(path)
        results[name] = {
            "size_mb": read_bytes(path) / 2**20,
            "evals": analysis.curve.n_evals,
            "verdict": analysis.curve.verdict,
            "onset": analysis.curve.onset.onset_iter,
            "x_unit": analysis.x_unit,
            "times": times,
            "command_wall_s": command["wall_s"],
            "load": command["load_end"],
        }
    ended = load()
    markdown = report(results, info, started, ended, args.rounds)
    print(markdown)
    write("analyze", markdown, {"results": results, "made_s": made, "machine": info})
    return 0


def report(results: dict, info: dict, started, ended, rounds: int) -> str:
    lines = [
        header(
            "gaplab analyze on huge logs",
            "python benchmarks/bench_analyze.py",
            info,
            started,
            ended,
            f"Median of {rounds} rounds in one process (imports done); `gaplab analyze` is the whole command, "
            f"once. Goal: at most {GOAL_S:g} s each.",
        ),
        "| log | size | evals | read bytes | read_log | analyze | `gaplab analyze` (whole process) | goal | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        t = {case: median(v) for case, v in r["times"].items()}
        ok = "met" if max(t["analyze"], r["command_wall_s"]) <= GOAL_S else "missed"
        onset = f", onset at {r['x_unit']} {r['onset']}" if r["onset"] is not None else ""
        lines.append(
            f"| {name} | {r['size_mb']:.0f} MB | {r['evals']:,} | {t['read bytes']:.2f} s | {t['read_log']:.2f} s | "
            f"{t['analyze']:.2f} s | {r['command_wall_s']:.2f} s (load {fmt_load(r['load'])}) | {ok} | "
            f"{r['verdict']}{onset} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
