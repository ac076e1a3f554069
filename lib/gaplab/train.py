"""The trainer: batches, evals, early stopping, checkpoints, resume, history and metrics.

Iteration semantics (as in nanoGPT and seed 003): evaluate at iteration 0
(before any update), every ``eval_interval`` iterations and at the last
iteration; an iteration is one optimizer step over ``batch_size x grad_accum``
windows of ``block_size`` tokens.  Evals use a *fixed*, seeded set of windows
for train and for val, the same at every eval, so curves are smooth and
comparable from eval to eval.  On CPU and MPS evaluation is always fp32, even
when training uses bf16 (autocast, or only for the head's matmuls); on CUDA it
follows the training dtype.

Checkpoints hold only tensors and plain Python values, so they load with
``torch.load(..., weights_only=True)``; ``resume`` continues from
``ckpt/last.pt`` exactly: same batches, same dropout masks, same optimizer
state, so on CPU a resumed run's history equals an uninterrupted run's.
"""

from __future__ import annotations

import csv
import io
import math
import platform
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from . import __version__
from .config import PhaseParams, planned_iters
from .device import (autocast_context, c_compiler_available, head_matmul_dtype, needs_grad_scaler, resolve_device,
                     resolve_dtype, set_threads)
from .model import GPT, GPTConfig, count_params
from .runs import atomic_write_bytes, atomic_write_text, update_json

HISTORY_COLUMNS = ["iter", "train_loss", "val_loss", "gap", "lr", "tokens_seen", "epochs", "elapsed_s"]


class TrainingError(RuntimeError):
    """Training cannot start or resume; the message says why and what to change."""


# --------------------------------------------------------------------------- schedule and optimizer
def lr_at(it: int, train, max_iters: int) -> float:
    """Learning rate for the step taken at iteration ``it``.

    Linear warmup over ``warmup_iters``, then either constant or a cosine decay
    to ``min_lr`` (default ``learning_rate / 10``) at ``max_iters``
    (Loshchilov & Hutter 2017, "SGDR"; the GPT-3 paper's schedule, Brown et al. 2020).
    """
    lr = train.learning_rate
    if train.warmup_iters and it < train.warmup_iters:
        return lr * (it + 1) / train.warmup_iters
    if train.lr_schedule == "constant":
        return lr
    min_lr = train.min_lr if train.min_lr is not None else lr / 10
    span = max(1, max_iters - train.warmup_iters)
    progress = min(1.0, max(0.0, (it - train.warmup_iters) / span))
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - min_lr)


def make_optimizer(model: torch.nn.Module, train) -> torch.optim.AdamW:
    """AdamW (Loshchilov & Hutter 2019); tensors with dim >= 2 (matrices, embeddings) decay, biases and norms don't.

    Uses PyTorch's fused AdamW kernel where the device supports it (several
    times faster on CPU than the per-tensor loop), else the default one.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": train.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    kwargs = {"lr": train.learning_rate, "betas": (train.beta1, train.beta2)}
    try:
        return torch.optim.AdamW(groups, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, **kwargs)


# --------------------------------------------------------------------------- batches
class Batches:
    """Random training windows from a seeded generator, and fixed evaluation windows.

    Token streams are held as int64 tensors on ``device``; a batch is
    ``batch`` windows of ``block + 1`` tokens cut at random offsets.  The
    training offsets come from ``torch.Generator`` seeded with ``seed``; the
    evaluation offsets (``eval_iters x batch`` per split) are drawn once from
    ``seed + 1`` and reused at every eval.  A split with no more distinct
    windows than that is evaluated on each of its windows exactly once: the
    exact mean over the split, and cheaper than drawing the same few windows
    again and again (seed 003's phase 0 has 7 val windows).
    """

    def __init__(self, train: np.ndarray, val: np.ndarray, block: int, batch: int, seed: int, eval_iters: int,
                 device: torch.device = torch.device("cpu")):
        self.block, self.batch, self.device = block, batch, torch.device(device)
        self.train = torch.as_tensor(np.asarray(train, dtype=np.int64)).to(self.device)
        self.val = torch.as_tensor(np.asarray(val, dtype=np.int64)).to(self.device)
        for name, data in (("train", self.train), ("val", self.val)):
            if len(data) < block + 1:
                raise TrainingError(
                    f"the {name} split has {len(data)} tokens, but model.block_size = {block} needs at least "
                    f"{block + 1} (one window plus its next-token target); raise data.max_tokens or "
                    f"data.val_fraction, or lower model.block_size")
        self.gen = torch.Generator().manual_seed(seed)
        fixed = torch.Generator().manual_seed(seed + 1)
        n_eval = eval_iters * batch
        self.eval_offsets = {}
        for name, d in (("train", self.train), ("val", self.val)):
            drawn = torch.randint(len(d) - block, (n_eval,), generator=fixed)  # drawn always: same stream
            self.eval_offsets[name] = torch.arange(len(d) - block) if len(d) - block <= n_eval else drawn
        self._arange = torch.arange(block + 1, device=self.device)

    def _windows(self, data: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = data[offsets.to(self.device)[:, None] + self._arange]
        return w[:, :-1], w[:, 1:]

    def next_train(self) -> tuple[torch.Tensor, torch.Tensor]:
        offsets = torch.randint(len(self.train) - self.block, (self.batch,), generator=self.gen)
        return self._windows(self.train, offsets)

    def eval_batches(self, split: str):
        data = self.train if split == "train" else self.val
        offsets = self.eval_offsets[split]
        for s in range(0, len(offsets), self.batch):
            yield self._windows(data, offsets[s:s + self.batch])


# --------------------------------------------------------------------------- model, one step, eval
def build_model(model_cfg, train_cfg, vocab_size: int, device: torch.device, dtype: torch.dtype) -> GPT:
    """A freshly initialised :class:`GPT` (seeded by ``train.seed``) set up as the trainer uses it."""
    torch.manual_seed(train_cfg.seed)
    model = GPT(GPTConfig.from_model_config(model_cfg, vocab_size)).to(device)
    model.fused_loss = train_cfg.fused_loss
    model.head_dtype = head_matmul_dtype(train_cfg.dtype, device, dtype, vocab_size)
    if train_cfg.compile:
        if device.type == "cpu" and not c_compiler_available():
            warnings.warn("train.compile = true, but no C compiler was found (torch.compile needs one on CPU); "
                          "training without compiling", stacklevel=2)
        else:
            model.compile_blocks()
    return model


def train_step(model: GPT, optimizer: torch.optim.Optimizer, batches: Batches, train_cfg, lr: float,
               device: torch.device, dtype: torch.dtype, scaler=None) -> float:
    """One optimizer step over ``grad_accum`` micro-batches; returns the step's mean training loss.

    A non-finite loss (or gradient norm) leaves the weights untouched and is
    returned as ``nan``/``inf`` for the caller to stop on.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    total = torch.zeros((), device=device)
    for _ in range(train_cfg.grad_accum):
        x, y = batches.next_train()
        with autocast_context(device, dtype):
            _, loss = model(x, y)
        loss = loss / train_cfg.grad_accum
        total += loss.detach().float()
        (scaler.scale(loss) if scaler is not None else loss).backward()
    value = float(total)
    if not math.isfinite(value):
        optimizer.zero_grad(set_to_none=True)
        return value
    if scaler is not None:
        scaler.unscale_(optimizer)
    if train_cfg.grad_clip > 0:
        norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip))
        if not math.isfinite(norm) and scaler is None:
            optimizer.zero_grad(set_to_none=True)
            return float("nan")
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return value


def eval_dtype_for(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """Evaluations (the numbers in history.csv) are fp32 except under CUDA autocast, where they follow training."""
    return dtype if device.type == "cuda" else torch.float32


@torch.no_grad()
def evaluate(model: GPT, batches: Batches, device: torch.device, dtype: torch.dtype) -> dict[str, float]:
    """Mean loss over the fixed evaluation windows of each split: ``{"train": .., "val": ..}``."""
    was_training = model.training
    model.eval()
    out = {}
    for split in ("train", "val"):
        total, count = 0.0, 0
        for x, y in batches.eval_batches(split):
            with autocast_context(device, dtype):
                _, loss = model(x, y)
            total += float(loss) * x.shape[0]
            count += x.shape[0]
        out[split] = total / count
    model.train(was_training)
    return out


# --------------------------------------------------------------------------- checkpoints
def _ckpt_bytes(obj: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def save_checkpoint(path, obj: dict) -> Path:
    """``torch.save`` into memory, then an atomic write: a reader never sees half a checkpoint."""
    return atomic_write_bytes(path, _ckpt_bytes(obj))


def load_checkpoint(path) -> dict:
    """A checkpoint dict, loaded with ``weights_only=True`` (tensors and plain Python values only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def load_model(ckpt_path, device: str = "cpu") -> tuple[GPT, dict]:
    """``(model, checkpoint)`` from a checkpoint file; the model is in eval mode on ``device``."""
    ck = load_checkpoint(ckpt_path)
    model = GPT(GPTConfig(**ck["model_config"]))
    model.load_state_dict(ck["model"])
    model.to(device).eval()
    return model, ck


def _rng_state(batches: Batches, device: torch.device) -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, state, gauss_next = random.getstate()
    out = {
        "torch": torch.get_rng_state(),
        "batches": batches.gen.get_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "state": list(state), "gauss_next": gauss_next},
    }
    if device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def _set_rng_state(st: dict[str, Any], batches: Batches, device: torch.device) -> None:
    torch.set_rng_state(st["torch"])
    batches.gen.set_state(st["batches"])
    n = st["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = st["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    if device.type == "cuda" and "cuda" in st:
        torch.cuda.set_rng_state(st["cuda"], device)


# --------------------------------------------------------------------------- files
def history_csv(history: list[dict]) -> str:
    """``history.csv`` text; floats are written with full precision (they read back exactly)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for row in history:
        writer.writerow([row[c] for c in HISTORY_COLUMNS])
    return buf.getvalue()


def _versions() -> dict[str, str]:
    return {"gaplab": str(__version__), "torch": str(torch.__version__), "python": platform.python_version()}


def _perplexity(loss: float) -> Optional[float]:
    if not math.isfinite(loss):
        return None
    return math.exp(loss) if loss < 700 else float("inf")


def _progress_bar(total: int, initial: int):
    from tqdm.auto import tqdm

    interactive = sys.stderr.isatty() or "ipykernel" in sys.modules
    return tqdm(total=total, initial=initial, desc="train", unit="it", leave=True,
                mininterval=0.5 if interactive else 30.0)


def _check_data(data, vocab_size: int) -> None:
    for name in ("train", "val"):
        arr = np.asarray(getattr(data, name))
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise TrainingError(f"data.{name} must be a 1-D array of integer token ids (got {arr.dtype}, "
                                f"shape {arr.shape})")
        if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
            raise TrainingError(f"data.{name} holds token ids from {arr.min()} to {arr.max()}, outside the "
                                f"model's vocabulary 0..{vocab_size - 1} (vocab_size = {vocab_size})")


# --------------------------------------------------------------------------- the trainer
def train_phase(params: PhaseParams, data, run_dir, *, progress: bool = True, resume: bool = False,
                on_eval: Optional[Callable[[dict], None]] = None,
                should_stop: Optional[Callable[[], bool]] = None) -> dict[str, Any]:
    """Train one phase into ``run_dir``; return the metrics written to ``metrics.json``.

    ``data`` needs ``train`` and ``val`` (1-D arrays of model-space token ids),
    ``vocab_size``, ``vocab_size_original`` and ``corpus.fingerprint`` (a
    :class:`gaplab.split.Prepared` has them).  ``on_eval(row)`` is called after
    every eval with the history row; ``should_stop()`` is polled before every
    iteration and, when true, ends the run cleanly ("stopped by user") after a
    final eval and checkpoint.  ``resume`` continues from ``ckpt/last.pt``.
    """
    run_dir = Path(run_dir)
    m_cfg, t = params.model, params.train
    set_threads(t.threads)
    device = resolve_device(t.device)
    dtype = resolve_dtype(t.dtype, device, m_cfg.n_embd)
    eval_dtype = eval_dtype_for(device, dtype)
    vocab_size = int(data.vocab_size)
    _check_data(data, vocab_size)
    n_train, n_val = len(data.train), len(data.val)
    max_iters = planned_iters(t, m_cfg.block_size, n_train)
    tokens_per_iter = t.batch_size * t.grad_accum * m_cfg.block_size

    random.seed(t.seed)
    np.random.seed(t.seed % 2**32)
    model = build_model(m_cfg, t, vocab_size, device, dtype)
    gcfg = model.config
    optimizer = make_optimizer(model, t)
    scaler = torch.amp.GradScaler("cuda") if needs_grad_scaler(device, dtype) else None
    batches = Batches(data.train, data.val, m_cfg.block_size, t.batch_size, t.seed, t.eval_iters, device)
    counts = count_params(m_cfg, vocab_size)

    ckpt_dir = run_dir / "ckpt"
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    history: list[dict] = []
    start_iter, best_val, best_iter, bad_evals, train_seconds = 0, float("inf"), -1, 0, 0.0
    if resume:
        if not last_path.exists():
            raise TrainingError(f"resume: {last_path} does not exist; train once without resume first")
        ck = load_checkpoint(last_path)
        if ck.get("model_config") != gcfg.to_dict():
            raise TrainingError(f"resume: {last_path} holds a model {ck.get('model_config')}, but this phase "
                                f"builds {gcfg.to_dict()}; train from scratch (no resume) or restore the settings")
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        if scaler is not None and ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        _set_rng_state(ck["rng"], batches, device)
        start_iter = int(ck["iter"])
        best_val, best_iter, bad_evals = float(ck["best_val"]), int(ck["best_iter"]), int(ck["bad_evals"])
        train_seconds = float(ck["train_seconds"])
        history = [dict(zip(HISTORY_COLUMNS, row)) for row in ck["history"]]
        if start_iter >= max_iters:
            raise TrainingError(f"resume: {last_path} is at iter {start_iter}, already at the planned "
                                f"{max_iters} iterations; raise train.max_iters (or train.epochs) to train on")
    elif ckpt_dir.is_dir():  # a fresh run: checkpoints of an earlier run in this folder would be mistaken for ours
        for old in ckpt_dir.glob("*.pt"):
            old.unlink()
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    def checkpoint(it: int) -> dict:
        return {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": _rng_state(batches, device),
            "iter": it, "best_val": best_val, "best_iter": best_iter, "bad_evals": bad_evals,
            "train_seconds": train_seconds, "history": [[r[c] for c in HISTORY_COLUMNS] for r in history],
            "model_config": gcfg.to_dict(), "params": params.to_dict(), "vocab_size": vocab_size,
            "versions": _versions(),
        }

    bar = _progress_bar(max_iters, start_iter) if progress else None
    stop_reason: Optional[str] = None
    t0 = time.time() - (history[-1]["elapsed_s"] if history else 0.0)
    last_eval_iter = history[-1]["iter"] if history else -1
    model.train()
    it = start_iter
    while True:
        user_stop = bool(should_stop()) if should_stop is not None else False
        if (it % t.eval_interval == 0 or it >= max_iters or user_stop) and it != last_eval_iter:
            losses = evaluate(model, batches, device, eval_dtype)
            tokens_seen = it * tokens_per_iter
            row = {"iter": it, "train_loss": losses["train"], "val_loss": losses["val"],
                   "gap": losses["val"] - losses["train"], "lr": lr_at(min(it, max_iters - 1), t, max_iters),
                   "tokens_seen": tokens_seen, "epochs": tokens_seen / n_train,
                   "elapsed_s": round(time.time() - t0, 3)}
            history.append(row)
            last_eval_iter = it
            atomic_write_text(run_dir / "history.csv", history_csv(history))
            if bar is not None:
                tps = (it - start_iter) * tokens_per_iter / train_seconds if train_seconds > 0 else 0.0
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", val=f"{row['val_loss']:.3f}",
                                gap=f"{row['gap']:.3f}", tok_s=f"{tps:,.0f}", refresh=False)
            if on_eval is not None:
                on_eval(dict(row))
            if not (math.isfinite(row["val_loss"]) and math.isfinite(row["train_loss"])):
                stop_reason = f"non-finite loss at iter {it}"
                break
            if row["val_loss"] < best_val - t.min_delta:
                best_val, best_iter, bad_evals = row["val_loss"], it, 0
                save_checkpoint(best_path, checkpoint(it))
            else:
                bad_evals += 1
                if t.patience is not None and bad_evals >= t.patience:
                    stop_reason = f"early_stop (patience {t.patience})"
        if it in t.save_every:
            save_checkpoint(ckpt_dir / f"iter_{it}.pt", checkpoint(it))
        if stop_reason is None and user_stop:
            stop_reason = "stopped by user"
        if stop_reason is None and it >= max_iters:
            stop_reason = "max_iters"
        if stop_reason is not None:
            break
        started = time.perf_counter()
        loss = train_step(model, optimizer, batches, t, lr_at(it, t, max_iters), device, dtype, scaler)
        train_seconds += time.perf_counter() - started
        if not math.isfinite(loss):
            stop_reason = f"non-finite loss at iter {it}"
            break
        it += 1
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()

    if not stop_reason.startswith("non-finite"):
        save_checkpoint(last_path, checkpoint(it))
    if t.restore_best and best_path.exists():
        model.load_state_dict(load_checkpoint(best_path)["model"])

    last = history[-1]
    tokens_trained = it * tokens_per_iter
    metrics = {
        "best_val_loss": best_val if math.isfinite(best_val) else None, "best_iter": best_iter,
        "final_train_loss": last["train_loss"], "final_val_loss": last["val_loss"], "final_gap": last["gap"],
        "best_val_perplexity": _perplexity(best_val), "final_val_perplexity": _perplexity(last["val_loss"]),
        "final_train_perplexity": _perplexity(last["train_loss"]),
        "params": counts, "train_tokens": n_train, "val_tokens": n_val,
        "tokens_per_param": n_train / max(1, counts["non_embedding"]),
        "epochs": tokens_trained / n_train, "iters": it, "max_iters": max_iters, "tokens_per_iter": tokens_per_iter,
        "wall_time_s": round(time.time() - t0, 3), "train_time_s": round(train_seconds, 3),
        "tokens_per_s": tokens_trained / train_seconds if train_seconds > 0 else None,
        "device": str(device), "dtype": str(dtype).replace("torch.", ""),
        "head_dtype": str(model.head_dtype or dtype).replace("torch.", ""),
        "threads": torch.get_num_threads(),
        "stop_reason": stop_reason, "restored_best": bool(t.restore_best and best_path.exists()),
        "corpus_fingerprint": data.corpus.fingerprint,
        "vocab_size": vocab_size, "vocab_size_original": int(data.vocab_size_original), "versions": _versions(),
    }
    update_json(run_dir / "metrics.json", metrics)
    return metrics
