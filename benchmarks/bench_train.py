"""Benchmark: gaplab's trainer against a plain nanoGPT-style loop on seed 003's model sizes (CPU).

Each case runs in its own fresh process (``multiprocessing`` spawn), so its
peak resident memory (``VmHWM``) is its own.  Every case of a configuration
starts from the very same initial weights and sees the very same batches, with
seed 003's hyperparameters (constant learning rate, AdamW betas 0.9/0.95,
weight decay 0.01, grad clip 1).

Cases per configuration (``--configs``, default phase0 phase3 phase4):

- ``reference``: ``benchmarks/reference_loop.py`` (fp32, full logits, default AdamW);
- ``gaplab``: the trainer's own code path (``gaplab.train.loop.build_model``,
  ``make_optimizer``, ``Batches``, ``train_step``, as ``train_phase`` uses
  them) with ``train.dtype: auto``;
- ``gaplab fp32`` / ``gaplab bf16``: the same with ``train.dtype: fp32`` / ``bf16``;
- ``noise``, ``noise 2``: ``gaplab`` with other batch orders (seed + 1, + 2);
  the spread of gaplab's final loss over the three batch orders is the
  yardstick for "equal within noise";

plus ``phase4`` with a compact 2,048-token vocabulary (the 2,047 most
frequent ids + one unknown id).

Data: GPT-2 tokens of Python standard-library code (json, logging, email,
http, unittest) when the GPT-2 ranks are provisioned; otherwise a
Zipf-distributed synthetic stream (and the results say so).

Columns: s/iter is the median over ``--iters`` timed iterations after
``--warmup``; CPU s/iter the median process CPU time; tokens/s = batch x block
/ (s/iter); MFU = model FLOPs per second (6 N per token for N matmul parameters
incl. the tied head, plus 12 L d T per token for attention: Kaplan et al. 2020;
Chowdhery et al. 2022, "PaLM", appendix B) over a matmul peak that this script
measures (2048^3 fp32 and bf16); final loss = mean val loss (fp32) on fixed
windows after all iterations.

``--threads 1 2`` gives one table per thread count.  ``--precision`` instead
trains phase 3 to overfitting with ``train.dtype`` fp32, auto and bf16 through
``train_phase`` and compares the validation curves with run-to-run noise.

    PYTHONPATH=lib python benchmarks/bench_train.py [--iters 20] [--warmup 3] [--threads 1 2] [--configs phase3 phase4]
    PYTHONPATH=lib python benchmarks/bench_train.py --precision
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
for p in (str(ROOT / "lib"), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

GPT2_VOCAB = 50257
COMPACT_VOCAB = 2048
#: seed 003's phases (n_layer, n_head, n_embd, block_size, batch_size, learning_rate)
CONFIGS = {
    "phase0": dict(n_layer=6, n_head=6, n_embd=384, block_size=128, batch_size=4, lr=1e-3),
    "phase3": dict(n_layer=4, n_head=4, n_embd=96, block_size=64, batch_size=12, lr=3e-4),
    "phase4": dict(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=16, lr=1e-4),
}
HYPER = dict(weight_decay=0.01, beta1=0.9, beta2=0.95, grad_clip=1.0, seed=1337)
EVAL_BATCHES = 8


def _maxrss_mb() -> float:
    """This process's peak resident memory in MB.

    On Linux this is ``VmHWM`` from ``/proc/self/status``: ``ru_maxrss`` of a
    spawned child also counts the parent's resident memory at the moment it
    forked (the kernel carries the high-water mark across ``exec``), which
    would give every case the parent's size as a floor.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 / 1024 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


# --------------------------------------------------------------------------- one case, in a child process
def run_case(case: dict, data_path: str, init_path: str, out_q) -> None:
    """Train ``case`` for warmup + iters iterations; put timings, losses and memory on ``out_q``."""
    try:
        out_q.put(_run_case(case, data_path, init_path))
    except BaseException as exc:  # report, don't hang the parent
        out_q.put({"error": f"{type(exc).__name__}: {exc}"})


def _run_case(case: dict, data_path: str, init_path: str) -> dict:
    import numpy as np
    import torch

    if case.get("threads"):
        torch.set_num_threads(case["threads"])
    cfg, vocab = CONFIGS[case["config"]], case["vocab"]
    T, B = cfg["block_size"], cfg["batch_size"]
    arrays = np.load(data_path)
    train, val, offsets = arrays["train"], arrays["val"], torch.from_numpy(arrays["eval_offsets"])
    init = torch.load(init_path, weights_only=True)
    if case["impl"] == "reference":
        import reference_loop as ref

        rss_imports = _maxrss_mb()
        model = ref.ReferenceGPT(vocab, T, cfg["n_layer"], cfg["n_head"], cfg["n_embd"])
        ref.load_weights_in_order(model, init)
        del init
        opt = ref.make_optimizer(model, cfg["lr"], HYPER["weight_decay"], (HYPER["beta1"], HYPER["beta2"]))
        data_t, val_t = torch.from_numpy(train), torch.from_numpy(val)
        gen = torch.Generator().manual_seed(case["seed"])

        def step(i: int) -> float:
            x, y = ref.get_batch(data_t, T, B, gen)
            return ref.train_step(model, opt, x, y, HYPER["grad_clip"])

        def final_loss() -> float:
            return ref.evaluate(model, val_t, offsets, T, B)
    else:
        from gaplab.model.device import resolve_device, resolve_dtype
        from gaplab.schema import PhaseParams
        from gaplab.train.batches import Batches
        from gaplab.train.loop import build_model, train_step
        from gaplab.train.schedule import lr_at, make_optimizer
        from reference_loop import load_weights_in_order

        rss_imports = _maxrss_mb()
        params = PhaseParams.model_validate(
            {
                "model": {k: cfg[k] for k in ("n_layer", "n_head", "n_embd", "block_size")},
                "train": {
                    "max_iters": case["total_iters"],
                    "batch_size": B,
                    "learning_rate": cfg["lr"],
                    "lr_schedule": "constant",
                    "weight_decay": HYPER["weight_decay"],
                    "beta1": HYPER["beta1"],
                    "beta2": HYPER["beta2"],
                    "grad_clip": HYPER["grad_clip"],
                    "seed": case["seed"],
                    "device": "cpu",
                    "dtype": case["dtype"],
                    "compile": case.get("compile", False),
                },
            }
        )
        t = params.train
        device = resolve_device(t.device)
        dtype = resolve_dtype(t.dtype, device, params.model.n_embd)
        model = build_model(params.model, t, vocab, device, dtype)
        load_weights_in_order(model, init)
        del init
        opt = make_optimizer(model, t)
        batches = Batches(train, val, T, B, t.seed, 1, device)

        def step(i: int) -> float:
            return train_step(model, opt, batches, t, lr_at(i, t, t.max_iters), device, dtype)

        @torch.no_grad()
        def final_loss() -> float:
            model.eval()
            total = 0.0
            for s in range(0, len(offsets), B):
                x, y = batches._windows(batches.val, offsets[s : s + B])
                total += float(model(x, y)[1]) * x.shape[0]
            model.train()
            return total / len(offsets)

    rss_ready = _maxrss_mb()
    times, cpu_times, losses = [], [], []
    for i in range(case["total_iters"]):
        t0, c0 = time.perf_counter(), time.process_time()
        losses.append(step(i))
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    final = final_loss()
    return {
        "times": times,
        "cpu_times": cpu_times,
        "losses": losses,
        "final_loss": final,
        "rss_imports_mb": rss_imports,
        "rss_ready_mb": rss_ready,
        "peak_rss_mb": _maxrss_mb(),
        "threads": torch.get_num_threads(),
    }


# --------------------------------------------------------------------------- the parent
def _tokens(seed: int) -> tuple[np.ndarray, str]:  # noqa: F821
    import numpy as np

    try:
        from gaplab.data.corpus import load_corpus
        from gaplab.data.tokenizer import gpt2_encoding
        from gaplab.schema import DataConfig

        corpus = load_corpus(DataConfig(source="stdlib", packages=["json", "logging", "email", "http", "unittest"]))
        enc = gpt2_encoding()
        ids = [
            np.asarray(x + [50256], dtype=np.int64)
            for x in enc.encode_ordinary_batch([d.text for d in corpus.documents])
        ]
        stream = np.concatenate(ids)
        return stream, (
            f"GPT-2 tokens of Python {platform.python_version()} standard-library code "
            f"(json, logging, email, http, unittest): {len(stream):,} tokens, 90/10 tail split"
        )
    except Exception as exc:  # ranks not provisioned, or no stdlib sources
        rng = np.random.default_rng(seed)
        stream = np.minimum(rng.zipf(1.2, 500_000) - 1, GPT2_VOCAB - 1).astype(np.int64)
        return stream, (
            f"SYNTHETIC Zipf(1.2) token stream, 500,000 tokens (real GPT-2 tokens unavailable: "
            f"{type(exc).__name__}: {exc})"
        )


def _compact(stream):
    import numpy as np

    counts = np.bincount(stream, minlength=GPT2_VOCAB)
    kept = np.argsort(-counts, kind="stable")[: COMPACT_VOCAB - 1]
    lut = np.full(GPT2_VOCAB, COMPACT_VOCAB - 1, dtype=np.int64)
    lut[kept] = np.arange(len(kept))
    covered = counts[kept].sum() / counts.sum()
    return lut[stream], covered


def measure_peaks(threads: int) -> dict[str, float]:
    """Best-of-5 GFLOP/s of a 2048^3 matmul in fp32 and bf16 (the MFU denominators)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    out = {}
    n = 2048
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        try:
            a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
            a @ b
            best = min(_timed(lambda a=a, b=b: a @ b) for _ in range(5))
            out[name] = 2 * n**3 / best / 1e9
        except RuntimeError:
            out[name] = float("nan")
    torch.set_num_threads(before)
    return out


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


MFU_NOTE = (
    "- MFU = model FLOPs per second over the measured matmul peak above (fp32 and bf16), with model FLOPs "
    "per token = 6 × (12·L·d² block weights + V·d tied head) + 12·L·d·T for attention (the accounting of "
    "Chowdhery et al. 2022, PaLM, appendix B). Where gaplab's matmuls run in bf16 the fp32 column can pass "
    "100%; the bf16 column is then the one to read."
)


def model_flops_per_iter(cfg: dict, vocab: int) -> float:
    """6 N per token (N = non-embedding matmul params + the tied head) + 12 L d T per token for attention."""
    d, L, T = cfg["n_embd"], cfg["n_layer"], cfg["block_size"]
    n_matmul = L * 12 * d * d + vocab * d
    per_token = 6 * n_matmul + 12 * L * d * T
    return per_token * cfg["batch_size"] * T


def _machine() -> dict[str, str]:
    import torch

    info = {"cpu": platform.processor() or "unknown", "cores": str(os.cpu_count())}
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        info["cpu"] = fields.get("Model name", info["cpu"])
        info["cores"] = (
            f"{fields.get('CPU(s)', '?')} CPUs ({fields.get('Core(s) per socket', '?')} cores/socket, "
            f"{fields.get('Thread(s) per core', '?')} thread/core)"
        )
        flags = fields.get("Flags", "")
        info["bf16"] = ", ".join(f for f in ("avx512_bf16", "amx_bf16") if f in flags.split()) or "none"
    except (OSError, subprocess.CalledProcessError):
        pass
    info["torch"] = torch.__version__
    info["python"] = platform.python_version()
    return info


def _load() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", nargs="+", default=["phase0", "phase3", "phase4"], choices=sorted(CONFIGS))
    ap.add_argument("--iters", type=int, default=20, help="timed iterations per case")
    ap.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    ap.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[0],
        help="torch threads per case; several values give one table each (0: PyTorch's default)",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every case this many times (in rounds) and keep each case's fastest round",
    )
    ap.add_argument("--no-compact", action="store_true", help="skip the compact-vocabulary case")
    ap.add_argument("--compile", action="store_true", help="add a 'gaplab compile' case (torch.compile blocks)")
    ap.add_argument(
        "--out",
        default=None,
        help="markdown file (default: results/train_cpu.md, or results/train_cpu_precision.md with --precision)",
    )
    ap.add_argument(
        "--precision",
        action="store_true",
        help="instead: train phases 3 and 4 to overfitting in fp32, auto and bf16 and compare the curves",
    )
    args = ap.parse_args(argv)
    if args.precision:
        print(
            precision_check(
                Path(args.out or HERE / "results" / "train_cpu_precision.md"), threads=(args.threads[0] or 1)
            )
        )
        return 0
    args.out = args.out or str(HERE / "results" / "train_cpu.md")

    import numpy as np
    import torch
    from gaplab.files import atomic_write_json, atomic_write_text
    from gaplab.model.device import resolve_dtype
    from gaplab.model.gpt import count_params
    from gaplab.schema import PhaseParams
    from gaplab.train.loop import build_model

    default_threads = torch.get_num_threads()
    machine = _machine()
    load_start = _load()
    started = time.time()
    stream, data_note = _tokens(HYPER["seed"])
    compact_stream, covered = _compact(stream)
    thread_list = [t or default_threads for t in args.threads]
    peaks = {n: measure_peaks(n) for n in thread_list}
    print(f"machine: {machine}\ndata: {data_note}\nmatmul peak GFLOP/s: {peaks}  load: {load_start}", flush=True)

    plan = []
    for name in args.configs:
        impls = ["reference", "gaplab", "gaplab fp32", "gaplab bf16", "noise", "noise 2"] + (
            ["gaplab compile"] if args.compile else []
        )
        plan.append((name, GPT2_VOCAB, impls))
    if not args.no_compact:
        plan.append(
            (
                "phase4",
                COMPACT_VOCAB,
                ["reference", "gaplab", "gaplab bf16"] + (["gaplab compile"] if args.compile else []),
            )
        )

    total_iters = args.warmup + args.iters
    results = []
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        prepared = {}
        for name, vocab, _ in plan:
            cfg = CONFIGS[name]
            s = compact_stream if vocab == COMPACT_VOCAB else stream
            cut = int(len(s) * 0.9)
            train, val = s[:cut], s[cut:]
            g = torch.Generator().manual_seed(HYPER["seed"] + 2)
            offsets = torch.randint(len(val) - cfg["block_size"], (EVAL_BATCHES * cfg["batch_size"],), generator=g)
            data_path = os.path.join(tmp, f"{name}_{vocab}.npz")
            np.savez(data_path, train=train, val=val, eval_offsets=offsets.numpy())
            p = PhaseParams.model_validate(
                {
                    "model": {k: cfg[k] for k in ("n_layer", "n_head", "n_embd", "block_size")},
                    "train": {"seed": HYPER["seed"], "dtype": "fp32", "device": "cpu"},
                }
            )
            cpu = torch.device("cpu")
            init_model = build_model(p.model, p.train, vocab, cpu, resolve_dtype("fp32", cpu))
            init_path = os.path.join(tmp, f"init_{name}_{vocab}.pt")
            torch.save([t.detach().clone() for t in init_model.parameters()], init_path)
            del init_model
            prepared[(name, vocab)] = (data_path, init_path, count_params(p.model, vocab))
        for threads, rnd in [(t, r) for t in thread_list for r in range(args.repeat)]:
            for name, vocab, impls in plan:
                cfg = CONFIGS[name]
                data_path, init_path, counts = prepared[(name, vocab)]
                for impl in impls:
                    case = {
                        "config": name,
                        "vocab": vocab,
                        "impl": "reference" if impl == "reference" else "gaplab",
                        "dtype": {"gaplab fp32": "fp32", "gaplab bf16": "bf16"}.get(impl, "auto"),
                        "compile": impl == "gaplab compile",
                        "seed": HYPER["seed"] + {"noise": 1, "noise 2": 2}.get(impl, 0),
                        "total_iters": total_iters,
                        "threads": threads,
                    }
                    q = ctx.Queue()
                    proc = ctx.Process(target=run_case, args=(case, data_path, init_path, q))
                    t0 = time.time()
                    proc.start()
                    res = q.get()
                    proc.join()
                    base = {"threads": threads, "config": name, "vocab": vocab, "impl": impl, "round": rnd}
                    if "error" in res:
                        print(f"{name} vocab {vocab} {impl}: FAILED {res['error']}", flush=True)
                        results.append({**base, "error": res["error"]})
                        continue
                    timed = res["times"][args.warmup :]
                    s_iter = statistics.median(timed)
                    tokens = cfg["batch_size"] * cfg["block_size"]
                    flops = model_flops_per_iter(cfg, vocab)
                    row = {
                        **base,
                        "s_per_iter": s_iter,
                        "s_per_iter_min": min(timed),
                        "cpu_s_per_iter": statistics.median(res["cpu_times"][args.warmup :]),
                        "tokens_per_s": tokens / s_iter,
                        "peak_rss_mb": res["peak_rss_mb"],
                        "rss_imports_mb": res["rss_imports_mb"],
                        "rss_ready_mb": res["rss_ready_mb"],
                        "mfu_fp32": flops / s_iter / 1e9 / peaks[threads]["fp32"],
                        "mfu_bf16": flops / s_iter / 1e9 / peaks[threads]["bf16"],
                        "final_loss": res["final_loss"],
                        "last_train_losses": res["losses"][-5:],
                        "wall_s": round(time.time() - t0, 1),
                        "params": counts,
                        "load": _load(),
                    }
                    results.append(row)
                    print(
                        f"{threads}t r{rnd} {name:7s} V={vocab:<6d} {impl:14s} {s_iter:7.3f} s/it (cpu "
                        f"{row['cpu_s_per_iter']:.3f}) {row['tokens_per_s']:8.0f} tok/s peak "
                        f"{row['peak_rss_mb']:6.0f} MB  final {row['final_loss']:.4f}  ({row['wall_s']} s, load "
                        f"{row['load']})",
                        flush=True,
                    )

    best: dict[tuple, dict] = {}
    for r in results:  # each case's fastest round (the one least disturbed by other jobs)
        key = (r["threads"], r["config"], r["vocab"], r["impl"])
        if (
            key not in best
            or ("error" in best[key])
            or ("error" not in r and r["s_per_iter"] < best[key]["s_per_iter"])
        ):
            best[key] = r
    report = render(
        list(best.values()),
        machine,
        peaks,
        data_note,
        covered,
        args,
        load_start,
        _load(),
        time.time() - started,
        thread_list,
    )
    print(report)
    out = Path(args.out)
    atomic_write_text(out, report)
    atomic_write_json(
        out.with_suffix(".json"),
        {
            "machine": machine,
            "peaks_gflops": peaks,
            "data": data_note,
            "iters": args.iters,
            "warmup": args.warmup,
            "results": results,
        },
    )
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


def render(
    results: list[dict],
    machine: dict,
    peaks: dict,
    data_note: str,
    covered: float,
    args,
    load_start: str,
    load_end: str,
    seconds: float,
    thread_list: list[int],
) -> str:
    ok = [r for r in results if "error" not in r]
    lines = [
        "# Training speed on CPU: gaplab vs a plain nanoGPT-style loop",
        "",
        f"Generated by `benchmarks/bench_train.py` on {dt.date.today().isoformat()} "
        f"({seconds / 60:.1f} min; {args.warmup} warm-up + {args.iters} timed iterations per case, each case "
        f"in a fresh process, {args.repeat} round(s); each case's fastest round is shown, all rounds are in the "
        "`.json`).",
        "",
        f"- Machine: {machine.get('cpu')}, {machine.get('cores')}; native bf16: {machine.get('bf16', '?')}; "
        f"torch {machine.get('torch')}, Python {machine.get('python')}.",
        f"- Load average (1/5/15 min) at start: {load_start}; at end: {load_end} (the benchmark itself adds 1). "
        "Where other jobs share the machine wall times get noisy; CPU s/iter (process CPU time) is the steadier "
        "measure, and with one thread it is the work an iteration costs.",
        MFU_NOTE,
        "- Measured matmul peak (2048^3, GFLOP/s): "
        + "; ".join(
            f"{n} thread{'s' if n > 1 else ''}: fp32 {peaks[n]['fp32']:.0f}, bf16 {peaks[n]['bf16']:.0f}"
            for n in thread_list
        )
        + ".",
        f"- Data: {data_note}. Compact case: the {COMPACT_VOCAB - 1:,} most frequent ids + 1 unknown id "
        f"({covered:.1%} of tokens keep their own id).",
        "- Every case of a configuration starts from the same initial weights and sees the same batches "
        "(`noise`, `noise 2`: two other batch orders; the spread of gaplab's final loss over the three batch "
        'orders is the yardstick for "equal within noise"); seed 003\'s hyperparameters (constant lr, AdamW 0.9/0.95, wd 0.01, clip 1).',
        "- `gaplab` = `train.dtype: auto`; on this CPU (native bf16) that is bf16 autocast for phase 0 and 4 "
        "(n_embd >= 128) and, for phase 3, an fp32 model whose tied-head matmuls run in bf16 (vocabulary >= 8,192). "
        "Softmax, loss and evaluation are fp32 in every case. `gaplab fp32` / `gaplab bf16` = `train.dtype: fp32` "
        "/ `bf16`.",
    ]
    for threads in thread_list:
        rows = [r for r in ok if r["threads"] == threads]

        def find(config, vocab, impl, rows=rows):
            return next((r for r in rows if r["config"] == config and r["vocab"] == vocab and r["impl"] == impl), None)

        lines += [
            "",
            f"## {threads} thread{'s' if threads > 1 else ''}",
            "",
            "| config | vocab | impl | s/iter | CPU s/iter | tokens/s | × ref | × ref (CPU) | peak RSS MB | × ref RSS "
            "| RSS over imports MB | MFU fp32 | MFU bf16 | final val loss | Δ vs ref |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            ref = find(r["config"], r["vocab"], "reference")
            nan = float("nan")
            speed = r["tokens_per_s"] / ref["tokens_per_s"] if ref else nan
            cpu_speed = ref["cpu_s_per_iter"] / r["cpu_s_per_iter"] if ref else nan
            mem = r["peak_rss_mb"] / ref["peak_rss_mb"] if ref else nan
            delta = r["final_loss"] - ref["final_loss"] if ref else nan
            lines.append(
                f"| {r['config']} | {r['vocab']:,} | {r['impl']} | {r['s_per_iter']:.3f} | {r['cpu_s_per_iter']:.3f} "
                f"| {r['tokens_per_s']:,.0f} | {speed:.2f} | {cpu_speed:.2f} | {r['peak_rss_mb']:,.0f} | {mem:.2f} "
                f"| {r['peak_rss_mb'] - r['rss_imports_mb']:,.0f} | {r['mfu_fp32']:.1%} | {r['mfu_bf16']:.1%} "
                f"| {r['final_loss']:.4f} | {delta:+.4f} |"
            )
        for r in results:
            if "error" in r and r["threads"] == threads:
                lines.append(f"| {r['config']} | {r['vocab']:,} | {r['impl']} | failed: {r['error']} |")
        lines += ["", "Goals:", ""]
        for name in ("phase3", "phase4", "phase0"):
            ref, gap = find(name, GPT2_VOCAB, "reference"), find(name, GPT2_VOCAB, "gaplab")
            same_trainer = [r for r in (gap, find(name, GPT2_VOCAB, "noise"), find(name, GPT2_VOCAB, "noise 2")) if r]
            if not (ref and gap):
                continue
            speed = gap["tokens_per_s"] / ref["tokens_per_s"]
            cpu_speed = ref["cpu_s_per_iter"] / gap["cpu_s_per_iter"]
            mem = gap["peak_rss_mb"] / ref["peak_rss_mb"]
            finals = [r["final_loss"] for r in same_trainer]
            spread = max(finals) - min(finals) if len(finals) > 1 else float("nan")
            delta = abs(gap["final_loss"] - ref["final_loss"])
            goal = name != "phase0"  # the issue sets speed and memory goals for phases 3 and 4 only

            def mark(ok: bool, goal: bool = goal) -> str:
                return (" ✅" if ok else " ❌") if goal else ""

            lines.append(
                f"- {name} ({'goal ≥ 2× tokens/s, ≤ 0.5× peak RSS' if goal else 'no goal set'}): "
                f"{speed:.2f}× tokens/s (wall){mark(speed >= 2)}, "
                f"{cpu_speed:.2f}× by CPU time{mark(cpu_speed >= 2)}; "
                f"{mem:.2f}× peak RSS{mark(mem <= 0.5)}; final loss |Δ| = {delta:.4f} vs "
                f"batch-order spread {spread:.4f} {'✅' if delta <= max(spread, 1e-3) else '❌'}."
            )
        comp, ref4 = find("phase4", COMPACT_VOCAB, "gaplab"), find("phase4", GPT2_VOCAB, "reference")
        ref4c = find("phase4", COMPACT_VOCAB, "reference")
        if comp and ref4:
            speed = comp["tokens_per_s"] / ref4["tokens_per_s"]
            cpu_speed = ref4["cpu_s_per_iter"] / comp["cpu_s_per_iter"]
            lines.append(
                f"- phase4 compact (goal ≥ 10× the faithful reference): {speed:.1f}× (wall) "
                f"{'✅' if speed >= 10 else '❌'}, {cpu_speed:.1f}× by CPU time "
                f"{'✅' if cpu_speed >= 10 else '❌'}"
                + (
                    f"; {comp['tokens_per_s'] / ref4c['tokens_per_s']:.2f}× the reference loop at the same "
                    f"{COMPACT_VOCAB:,}-token vocabulary."
                    if ref4c
                    else "."
                )
            )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- precision check
#: (config, vocabulary, iterations, tokens): seed 003's data sizes; 2000 is its phase 3's own max_iters
PRECISION_RUNS = [
    ("phase3", "compact", 2000, 15000),
    ("phase3", "gpt2", 200, 15000),
    ("phase4", "compact", 1200, 23000),
]


def precision_check(out: Path, threads: int = 1) -> str:
    """Train seed 003's phases 3 and 4 on their little data with ``train.dtype`` fp32, auto and bf16.

    Same seed for all three, plus fp32 with the next seed: the run-to-run noise
    that a precision change has to stay within.  Goes through ``train_phase``.
    """
    import numpy as np
    from gaplab.files import atomic_write_json, atomic_write_text
    from gaplab.schema import PhaseParams
    from gaplab.train.inputs import TrainData
    from gaplab.train.loop import train_phase

    stream, data_note = _tokens(HYPER["seed"])
    machine = _machine()
    lines = [
        "# Does bf16 change the losses? (CPU)",
        "",
        f"Generated by `benchmarks/bench_train.py --precision` on {dt.date.today().isoformat()}; "
        f"{machine.get('cpu')}, native bf16: {machine.get('bf16', '?')}, torch {machine.get('torch')}, "
        f"{threads} thread(s).",
        "",
        "Seed 003's phase 3 (4 layers, 4 heads, 96 wide, block 64, batch 12, lr 3e-4, constant) on the first "
        "15,000 tokens, and its phase 4 (4/4/128, block 128, batch 16, lr 1e-4) on the first 23,000 tokens, of: "
        f"{data_note.split(':')[0]} (90/10 tail split: little data, so the compact runs overfit). "
        "`compact` keeps the ids present in the train split + 1 unknown id. Evaluations (every 100 iterations, "
        "20 batches per split, fixed windows) are fp32 in every run, so only training precision differs.",
        "",
        "- `fp32`: everything fp32. `bf16`: bf16 autocast (linear layers in bf16; residual stream, attention, "
        "softmax, loss, LayerNorm and optimizer fp32). `auto` (see `gaplab.model.device`): on CPUs with native bf16, "
        "bf16 autocast when n_embd >= 128, else an fp32 model with the tied head's matmuls in bf16 when the "
        "vocabulary has >= 8,192 ids, else fp32. The dtype column shows what each run used.",
        "- `max abs Δval` = largest absolute difference of the val-loss curve from the fp32 run with the same seed; the "
        "`fp32` run with seed + 1 (other initial weights and batches) gives the run-to-run noise.",
        "",
        "| config | vocab | dtype | seed | iters | best val (iter) | final train | final val | final gap | max abs Δval vs fp32 "
        "| s/iter |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    raw = {}
    for config, vocab_kind, iters, n_tokens in PRECISION_RUNS:
        small = stream[:n_tokens]
        train, val = small[: n_tokens * 9 // 10], small[n_tokens * 9 // 10 :]
        if vocab_kind == "compact":
            kept = np.unique(train)
            lut = np.full(GPT2_VOCAB, len(kept), dtype=np.int64)
            lut[kept] = np.arange(len(kept))
            tr, va, vocab = lut[train], lut[val], len(kept) + 1
        else:
            tr, va, vocab = train, val, GPT2_VOCAB
        data = TrainData(train=tr, val=va, vocab_size=vocab, vocab_size_original=GPT2_VOCAB, corpus_fingerprint="bench")
        cfg = CONFIGS[config]
        hist = {}
        for dtype, seed in (
            ("fp32", HYPER["seed"]),
            ("auto", HYPER["seed"]),
            ("bf16", HYPER["seed"]),
            ("fp32", HYPER["seed"] + 1),
        ):
            params = PhaseParams.model_validate(
                {
                    "model": {k: cfg[k] for k in ("n_layer", "n_head", "n_embd", "block_size")},
                    "train": {
                        "max_iters": iters,
                        "batch_size": cfg["batch_size"],
                        "learning_rate": cfg["lr"],
                        "lr_schedule": "constant",
                        "weight_decay": HYPER["weight_decay"],
                        "grad_clip": 1.0,
                        "eval_interval": 100,
                        "eval_iters": 20,
                        "seed": seed,
                        "device": "cpu",
                        "dtype": dtype,
                        "threads": threads,
                    },
                }
            )
            with tempfile.TemporaryDirectory() as tmp:
                m = train_phase(params, data, tmp, progress=False)
                rows = list(csv_rows(Path(tmp) / "history.csv"))
            vals = [r["val_loss"] for r in rows]
            hist[(dtype, seed)] = vals
            ref = hist.get(("fp32", HYPER["seed"]))
            delta = (
                max(abs(a - b) for a, b in zip(vals, ref)) if ref and (dtype, seed) != ("fp32", HYPER["seed"]) else 0.0
            )
            raw[f"{config}/{vocab_kind}/{dtype}/{seed}"] = {"metrics": m.to_dict(), "val_curve": vals}
            short = {"bfloat16": "bf16", "float32": "fp32"}
            shown = f"{dtype} (model {short[m.dtype]}, head {short[m.head_dtype]})"
            lines.append(
                f"| {config} | {vocab_kind} ({vocab:,}) | {shown} | {seed} | {iters} | {m.best_val_loss:.4f} "
                f"({m.best_iter}) | {m.final_train_loss:.4f} | {m.final_val_loss:.4f} | "
                f"{m.final_gap:+.4f} | {delta:.4f} | {m.train_time_s / iters:.3f} |"
            )
            print(lines[-1], flush=True)
    report = "\n".join(lines) + "\n"
    atomic_write_text(out, report)
    atomic_write_json(out.with_suffix(".json"), raw)
    return report


def csv_rows(path: Path):
    import csv

    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            yield {k: float(v) for k, v in row.items()}


if __name__ == "__main__":
    sys.exit(main())
