"""gaplab's onset rule as early stopping, against the trainers' own early stopping, on real and seeded curves.

Each curve (eval by eval: iter, train loss, val loss) is replayed through four deciders, as a trainer would
feed them during training:

- **gaplab**: :func:`gaplab.measure.curves.detect_onset` (the one rule) on the curve so far after every eval,
  stopping at the first eval where it finds an onset (what ``gaplab.integrations`` does);
- **HF patience p**: the real ``transformers.EarlyStoppingCallback(early_stopping_patience=p,
  early_stopping_threshold=0)``, its ``on_evaluate`` called with the eval's ``eval_loss`` and then the
  Trainer's own ``Trainer._determine_best_metric`` (unbound, on a minimal object holding the real
  ``TrainingArguments`` and ``TrainerState``), in the order ``Trainer._maybe_log_save_evaluate`` runs them;
- **Lightning patience p**: the real ``lightning.pytorch.callbacks.EarlyStopping(monitor="val_loss",
  min_delta=0, patience=p)``, its ``_run_early_stopping_check`` called on a minimal trainer holding the
  eval's ``val_loss`` in ``callback_metrics`` (what ``on_validation_end`` calls).

Every decider keeps the weights of the lowest val loss seen up to its stop (``load_best_model_at_end``,
a restored best), so **val given up** is the val loss of that eval minus the lowest of the whole run (for
seeded curves, on the noise-free curve; for real ones, as logged), in % of the latter.  **Evals past the
onset**: from the true onset (the seeded U's minimum; the reader's onset for seed 003's overfitting phases)
to the stop, or to the end of the run when it never stops.  **False stops**: stops on curves whose val loss
never stopped improving (the seeded ``still_improving`` family and :func:`stall`, a val loss that stands
still for a while and then improves again; seed 003's phases 2 and 3 and seed 000's runs).  Stops on
converged curves (seeded ``plateau`` and ``flat``) are counted apart: they give up nothing and save compute,
and gaplab's rule, which looks for overfitting rather than convergence, does not make them.

Curves: seed 003/000's loss tables (``tests/measure/seed_curves.py``), any ``--history`` log that
``gaplab analyze`` reads (any format ``gaplab.logs`` knows; e.g. the real logs in ``tests/logs/fixtures``), and seeded curves of
``tests/measure/curve_battery.py`` (21 evals) at 0.5 %, 1 % and 2 % multiplicative eval noise.

    PYTHONPATH=lib python benchmarks/bench_early_stopping.py [--curves 200] [--history a.csv b.csv]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (ROOT / "lib", ROOT):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import numpy as np
import pandas as pd
from _common import header, load, machine, write
from gaplab.logs import read_log
from gaplab.measure.curves import END_EVALS, detect_onset

from tests.measure import curve_battery as B
from tests.measure.seed_curves import SEED_CURVES

PATIENCES = (1, 3, 5)
NOISE_LEVELS = (0.005, 0.01, 0.02)
FAMILIES = ("still_improving", "stall", "plateau", "flat", "u_shaped")

Decider = Callable[[np.ndarray, np.ndarray, np.ndarray], Optional[int]]


def gaplab_stop(iters: np.ndarray, train: np.ndarray, val: np.ndarray) -> Optional[int]:
    """The index of the first eval at which the rule finds an onset in the curve so far (None: never)."""
    for k in range(END_EVALS + 2, len(val) + 1):
        h = pd.DataFrame({"iter": iters[:k], "train_loss": train[:k], "val_loss": val[:k]})
        if detect_onset(h)["onset_iter"] is not None:
            return k - 1
    return None


def hf_decider(patience: int, out_dir: str) -> Decider:
    """The Hugging Face Trainer's EarlyStoppingCallback, driven as ``_maybe_log_save_evaluate`` drives it."""
    from transformers import EarlyStoppingCallback, Trainer, TrainerControl, TrainerState, TrainingArguments

    args = TrainingArguments(
        output_dir=out_dir,
        eval_strategy="steps",
        save_strategy="steps",
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        report_to="none",
        use_cpu=True,
    )

    def decide(iters, train, val):
        callback = EarlyStoppingCallback(early_stopping_patience=patience, early_stopping_threshold=0.0)
        state, control = TrainerState(), TrainerControl()
        trainer = SimpleNamespace(args=args, state=state)
        for i, (step, loss) in enumerate(zip(iters, val)):
            state.global_step = int(step)
            metrics = {"eval_loss": float(loss)}
            callback.on_evaluate(args, state, control, metrics=metrics)  # inside Trainer.evaluate()
            Trainer._determine_best_metric(trainer, metrics=metrics, trial=None)  # right after it
            if control.should_training_stop:
                return i
        return None

    return decide


def lightning_decider(patience: int) -> Decider:
    """Lightning's EarlyStopping, its check run on a minimal trainer as ``on_validation_end`` runs it."""
    import torch
    from lightning.pytorch.callbacks import EarlyStopping

    def decide(iters, train, val):
        stopper = EarlyStopping(monitor="val_loss", min_delta=0.0, patience=patience, mode="min", verbose=False)
        strategy = SimpleNamespace(reduce_boolean_decision=lambda decision, all=True: decision)
        trainer = SimpleNamespace(fast_dev_run=False, should_stop=False, current_epoch=0, strategy=strategy)
        for i, loss in enumerate(val):
            trainer.callback_metrics = {"val_loss": torch.tensor(float(loss))}
            stopper._run_early_stopping_check(trainer)
            if trainer.should_stop:
                return i
        return None

    return decide


def deciders(out_dir: str) -> dict[str, Decider]:
    out: dict[str, Decider] = {"gaplab onset rule": gaplab_stop}
    for p in PATIENCES:
        out[f"HF EarlyStoppingCallback, patience {p}"] = hf_decider(p, out_dir)
    for p in PATIENCES:
        out[f"Lightning EarlyStopping, patience {p}"] = lightning_decider(p)
    return out


def outcome(stop: Optional[int], true_val: np.ndarray, seen_val: np.ndarray, onset: Optional[int]) -> dict:
    """What a stop at ``stop`` (None: ran to the end) cost and saved on one curve."""
    n = len(seen_val)
    last = n - 1 if stop is None else stop
    kept = int(np.argmin(seen_val[: last + 1]))  # the best checkpoint up to the stop
    best = float(np.min(true_val))
    return {
        "stopped": stop is not None and stop < n - 1,
        "stop_index": last,
        "evals_saved": n - 1 - last,
        "evals_past_onset": None if onset is None else last - onset,
        "val_given_up_pct": 100 * (float(true_val[kept]) - best) / best,
    }


def stall(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Healthy, with a stall: val falls, stands still for 15-30 % of the run (from 20-40 % of it), then falls
    again to its lowest at the end, while train keeps falling throughout (seed 003 phase 4's 1,000-1,400
    plateau; a character model sitting at its unigram loss before it learns bigrams)."""
    final = rng.uniform(1.0, 6.0)
    start = final * rng.uniform(1.6, 3.0)
    begin, length = rng.uniform(0.2, 0.4), rng.uniform(0.15, 0.3)
    clock = np.where(B._T < begin, B._T, np.maximum(begin, B._T - length))  # val's clock stops in the stall
    tau = rng.uniform(0.3, 0.8)
    e = np.exp(-clock / tau)
    val = final + (start - final) * (e - e[-1]) / (1 - e[-1])
    train_final = final * rng.uniform(0.5, 0.9)
    e = np.exp(-B._T / tau)
    train = train_final + (start * rng.uniform(0.97, 1.03) - train_final) * (e - e[-1]) / (1 - e[-1])
    return val, train


def seeded_curves(n: int, noise: float, seed: int):
    """``(family, iters, train, val_seen, val_true, true_onset)`` for each seeded curve."""
    rng = np.random.default_rng(seed)
    draws = {
        "still_improving": B.still_improving,
        "stall": stall,
        "plateau": B.plateau,
        "flat": lambda r: B.flat(r.uniform(1.0, 6.0), r),
        "u_shaped": B.u_shaped,
    }
    for family, draw in draws.items():
        for _ in range(n):
            drawn = draw(rng)
            val, train = drawn[0], drawn[1]
            onset = drawn[2] if family == "u_shaped" else None
            yield family, B.ITERS, B.noisy(train, noise, rng), B.noisy(val, noise, rng), val, onset


def run_seeded(ds: dict[str, Decider], n: int) -> pd.DataFrame:
    rows = []
    for noise_index, noise in enumerate(NOISE_LEVELS):
        for family, iters, train, val, true_val, onset in seeded_curves(n, noise, seed=100 + noise_index):
            for name, decide in ds.items():
                row = outcome(decide(iters, train, val), true_val, val, onset)
                rows.append(dict(row, method=name, family=family, noise_pct=100 * noise))
    return pd.DataFrame(rows)


def real_curves(extra: list[str]):
    """``(name, iters, train, val, reader's onset index or None, healthy or None)`` for each real curve."""
    for c in SEED_CURVES:
        iters = np.asarray(c.iters, dtype=float)
        onset = int(np.searchsorted(iters, c.onset_iter)) if c.onset_iter is not None else None
        yield c.name, iters, np.asarray(c.train, float), np.asarray(c.val, float), onset, not c.overfits
    for path in extra:
        h = read_log(path).history.dropna(subset=["train_loss", "val_loss"])
        yield Path(path).name, *(h[c].to_numpy(float) for c in ("iter", "train_loss", "val_loss")), None, None


def run_real(ds: dict[str, Decider], extra: list[str]) -> pd.DataFrame:
    rows = []
    for name, iters, train, val, onset, healthy in real_curves(extra):
        for method, decide in ds.items():
            stop = decide(iters, train, val)
            row = outcome(stop, val, val, onset)
            best = int(np.argmin(val))
            rows.append(
                dict(
                    row,
                    method=method,
                    curve=name,
                    evals=len(val),
                    healthy=healthy,
                    stop_iter=None if stop is None else int(iters[stop]),
                    evals_past_best=row["stop_index"] - best,
                )
            )
    return pd.DataFrame(rows)


def seeded_table(df: pd.DataFrame) -> str:
    """One row per method: stops on still-improving curves and on curves with a stall (false stops) by noise
    level and the val loss they gave up; stops on converged curves (plateau, flat: harmless, they save
    compute); on U-shaped curves the evals past the minimum, the val given up and the evals saved (all noise
    levels together)."""
    lines = [
        "| method | false stops: val still improving (0.5 / 1 / 2 % noise) | ... their val given up, mean % | "
        "false stops: a stall, then val improves again (0.5 / 1 / 2 %) | ... their val given up, mean % | "
        "stops on converged curves (plateau, flat) | U-shaped: stopped | U: evals past the minimum, median (p90) "
        "| U: val given up, mean % | U: evals saved, mean |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method, g in df.groupby("method", sort=False):
        improving, u = g[g["family"] == "still_improving"], g[g["family"] == "u_shaped"]
        converged = g[g["family"].isin(("plateau", "flat"))]
        stalled = g[g["family"] == "stall"]
        false, false_stall = (
            " / ".join(f"{100 * x['stopped'].mean():.1f} %" for _, x in part.groupby("noise_pct"))
            for part in (improving, stalled)
        )
        past = u["evals_past_onset"].astype(float)
        lines.append(
            f"| {method} | {false} | {improving['val_given_up_pct'].mean():.2f} | {false_stall} | "
            f"{stalled['val_given_up_pct'].mean():.2f} | "
            f"{100 * converged['stopped'].mean():.1f} % | {100 * u['stopped'].mean():.1f} % | {past.median():.0f} "
            f"({past.quantile(0.9):.0f}) | {u['val_given_up_pct'].mean():.2f} | {u['evals_saved'].mean():.1f} |"
        )
    return "\n".join(lines)


def real_table(df: pd.DataFrame) -> str:
    """One row per method over the real curves: false stops on the healthy ones, and on the overfitting ones
    stops, evals past the reader's onset and val given up."""
    lines = [
        "| method | false stops (healthy real curves) | overfitting curves stopped | evals past the reader's "
        "onset, each curve | val given up, mean % (all real curves) |",
        "|---|---|---|---|---|",
    ]
    for method, g in df.groupby("method", sort=False):
        healthy, over = g[g["healthy"] == True], g[g["healthy"] == False]  # noqa: E712 (None: unlabelled)
        past = ", ".join("?" if pd.isna(x) else str(int(x)) for x in over["evals_past_onset"])
        lines.append(
            f"| {method} | {int(healthy['stopped'].sum())} of {len(healthy)} | {int(over['stopped'].sum())} of "
            f"{len(over)} | {past} | {g['val_given_up_pct'].mean():.2f} |"
        )
    return "\n".join(lines)


def curve_table(df: pd.DataFrame) -> str:
    """Where each decider stops on each real curve (iter; '-' = ran to the end) and what it gave up."""
    methods = list(dict.fromkeys(df["method"]))
    lines = ["| curve | evals | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for curve, g in df.groupby("curve", sort=False):
        cells = []
        for m in methods:
            r = g[g["method"] == m].iloc[0]
            where = "-" if not r["stopped"] else f"{int(r['stop_iter'])}"
            cells.append(f"{where} ({r['val_given_up_pct']:.1f} %)")
        lines.append(f"| {curve} | {int(g['evals'].iloc[0])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--curves", type=int, default=100, help="seeded curves per family and noise level")
    ap.add_argument(
        "--history", nargs="*", default=[], help="more real training logs, in any format gaplab analyze reads"
    )
    ap.add_argument("--name", default="early_stopping", help="results/<name>.md and .json")
    args = ap.parse_args(argv)
    started, t0 = load(), time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ds = deciders(tmp)
        real = run_real(ds, args.history)
        seeded = run_seeded(ds, args.curves)
    note = (
        f"{args.curves} seeded curves per family ({', '.join(FAMILIES)}) and noise level, 21 evals each; "
        f"{real['curve'].nunique()} real curves; {time.perf_counter() - t0:.0f} s."
    )
    command = "PYTHONPATH=lib python benchmarks/bench_early_stopping.py" + (
        f" --curves {args.curves}" if args.curves != 100 else ""
    )
    md = (
        header(
            "Early stopping: gaplab's onset rule against the trainers' own", command, machine(), started, load(), note
        )
        + "## Seeded curves\n\n"
        + seeded_table(seeded)
        + "\n\n## Real curves (seed 003 and seed 000 tables"
        + (", --history logs" if args.history else "")
        + ")\n\n"
        + real_table(real)
        + "\n\nWhere each stops (iter; '-': ran to the end) and the val loss it gave up:\n\n"
        + curve_table(real)
        + "\n"
    )
    summary = seeded.groupby(["method", "family", "noise_pct"], sort=False).agg(
        curves=("stopped", "size"),
        stopped=("stopped", "mean"),
        evals_past_onset_median=("evals_past_onset", "median"),
        val_given_up_pct_mean=("val_given_up_pct", "mean"),
        evals_saved_mean=("evals_saved", "mean"),
    )
    data = {"seeded_summary": summary.reset_index().to_dict("records"), "real": real.to_dict("records")}
    path = write(args.name, md, data)
    print(md)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
