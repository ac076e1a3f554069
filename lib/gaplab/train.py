"""The trainer: batches, evals, early stopping, checkpoints, resume, history and metrics.

Iteration semantics (as in nanoGPT and the seed): evaluate at iteration 0
(before any update), every ``eval_interval`` iterations and at ``max_iters``;
an iteration is one optimizer step over ``batch_size x grad_accum`` windows of
``block_size`` tokens.  Evals use a *fixed*, seeded set of windows for train
and for val, the same at every eval, so curves are smooth and comparable
across phases.

Checkpoints hold only tensors and plain Python values, so they load with
``torch.load(..., weights_only=True)``; ``resume`` continues from
``ckpt/last.pt`` exactly (same batches, same dropout masks, same optimizer state).
"""

from __future__ import annotations

import io
import math
import platform
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
import torch

from . import __version__
from .config import PhaseParams, planned_iters
from .device import autocast, head_dtype, resolve_device, resolve_dtype, set_threads
from .model import GPT, GPTConfig, count_params
from .runs import atomic_write_bytes, atomic_write_text, update_json

HISTORY_COLUMNS = ["iter", "train_loss", "val_loss", "gap", "lr", "tokens_seen", "epochs", "elapsed_s"]


class TrainingError(RuntimeError):
    pass


def lr_at(it: int, train, max_iters: int) -> float:
    """Linear warmup, then cosine decay to ``min_lr`` (default lr/10) or constant."""
    lr = train.learning_rate
    if train.warmup_iters and it < train.warmup_iters:
        return lr * (it + 1) / train.warmup_iters
    if train.lr_schedule == "constant":
        return lr
    min_lr = train.min_lr if train.min_lr is not None else lr / 10
    span = max(1, max_iters - train.warmup_iters)
    progress = min(1.0, (it - train.warmup_iters) / span)
    return min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - min_lr)


def make_optimizer(model: GPT, train) -> torch.optim.AdamW:
    """AdamW; matrices (dim >= 2: linear weights, embeddings) decay, biases and norms do not."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=train.learning_rate, betas=(train.beta1, train.beta2))


class Batches:
    """Random training windows from a seeded generator, and fixed evaluation windows."""

    def __init__(self, train: np.ndarray, val: np.ndarray, block: int, batch: int, seed: int, eval_iters: int,
                 device: torch.device):
        self.train = torch.as_tensor(np.asarray(train, dtype=np.int64))
        self.val = torch.as_tensor(np.asarray(val, dtype=np.int64))
        self.block, self.batch, self.device = block, batch, device
        for name, data in (("train", self.train), ("val", self.val)):
            if len(data) < block + 1:
                raise TrainingError(f"the {name} split has {len(data)} tokens; it needs block_size + 1 = {block + 1}")
        self.gen = torch.Generator().manual_seed(seed)
        fixed = torch.Generator().manual_seed(seed + 1)
        n_eval = eval_iters * batch
        self.eval_offsets = {name: torch.randint(len(d) - block, (n_eval,), generator=fixed)
                             for name, d in (("train", self.train), ("val", self.val))}
        self._arange = torch.arange(block + 1)

    def _windows(self, data: torch.Tensor, offsets: torch.Tensor):
        w = data[offsets[:, None] + self._arange]
        return w[:, :-1].to(self.device), w[:, 1:].to(self.device)

    def next_train(self):
        return self._windows(self.train, torch.randint(len(self.train) - self.block, (self.batch,), generator=self.gen))

    def eval_batches(self, split: str):
        offs = self.eval_offsets[split]
        for s in range(0, len(offs), self.batch):
            yield self._windows(self.train if split == "train" else self.val, offs[s:s + self.batch])


@torch.no_grad()
def evaluate(model: GPT, batches: Batches, device, dtype) -> dict[str, float]:
    model.eval()
    out = {}
    for split in ("train", "val"):
        losses = []
        for x, y in batches.eval_batches(split):
            with autocast(device, dtype):
                _, loss = model(x, y)
            losses.append(loss.float().item())
        out[split] = float(np.mean(losses))
    model.train()
    return out


def _ckpt_bytes(obj: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def load_checkpoint(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def load_model(path, device: str = "cpu") -> tuple[GPT, dict]:
    """A model from a checkpoint (``weights_only=True``), in eval mode."""
    ck = load_checkpoint(path)
    model = GPT(GPTConfig(**ck["model_config"]))
    model.load_state_dict(ck["model"])
    model.to(device).eval()
    return model, ck


def _versions() -> dict[str, str]:
    return {"gaplab": __version__, "torch": torch.__version__, "python": platform.python_version()}


def train_phase(params: PhaseParams, data, run_dir, *, progress: bool = True, resume: bool = False,
                on_eval: Optional[Callable[[dict], None]] = None,
                should_stop: Optional[Callable[[], bool]] = None) -> dict[str, Any]:
    """Train one phase into ``run_dir``; return the metrics written to ``metrics.json``.

    ``data`` needs ``train`` and ``val`` (model-space token ids), ``vocab_size``,
    ``vocab_size_original`` and ``corpus.fingerprint`` (a :class:`gaplab.split.Prepared`).
    """
    run_dir = Path(run_dir)
    (run_dir / "ckpt").mkdir(parents=True, exist_ok=True)
    m_cfg, t = params.model, params.train
    set_threads(t.threads)
    device = resolve_device(t.device)
    dtype = resolve_dtype(t.dtype, device)
    n_train, n_val = len(data.train), len(data.val)
    max_iters = planned_iters(t, m_cfg.block_size, n_train)
    tokens_per_iter = t.batch_size * t.grad_accum * m_cfg.block_size

    torch.manual_seed(t.seed)
    gcfg = GPTConfig.from_model_config(m_cfg, data.vocab_size)
    model = GPT(gcfg).to(device)
    model.fused_loss = t.fused_loss
    model.head_dtype = head_dtype(t.dtype, device, dtype)
    optimizer = make_optimizer(model, t)
    scaler = torch.amp.GradScaler("cuda") if (device.type == "cuda" and dtype == torch.float16) else None
    batches = Batches(data.train, data.val, m_cfg.block_size, t.batch_size, t.seed, t.eval_iters, device)
    counts = count_params(m_cfg, data.vocab_size)

    history: list[dict] = []
    start_iter, best_val, best_iter, bad_evals = 0, float("inf"), -1, 0
    train_seconds = 0.0
    last_path, best_path = run_dir / "ckpt" / "last.pt", run_dir / "ckpt" / "best.pt"
    if resume:
        if not last_path.exists():
            raise TrainingError(f"resume: {last_path} does not exist; train without --resume first")
        ck = load_checkpoint(last_path)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        torch.set_rng_state(ck["rng"]["torch"])
        batches.gen.set_state(ck["rng"]["batches"])
        start_iter = ck["iter"]  # saved after that iteration's eval, before its optimizer step
        best_val, best_iter, bad_evals = ck["best_val"], ck["best_iter"], ck["bad_evals"]
        train_seconds = ck["train_seconds"]
        history = [dict(zip(HISTORY_COLUMNS, row)) for row in ck["history"]]
        if start_iter >= max_iters:
            raise TrainingError(f"resume: the checkpoint is at iter {ck['iter']}, already at max_iters {max_iters}")

    def checkpoint(it: int) -> dict:
        return {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "batches": batches.gen.get_state()},
            "iter": it, "best_val": best_val, "best_iter": best_iter, "bad_evals": bad_evals,
            "train_seconds": train_seconds, "history": [[r[c] for c in HISTORY_COLUMNS] for r in history],
            "model_config": dict(gcfg.__dict__), "params": params.to_dict(),
        }

    def write_history() -> None:
        atomic_write_text(run_dir / "history.csv", pd.DataFrame(history, columns=HISTORY_COLUMNS).to_csv(index=False))

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=max_iters, initial=start_iter, desc="train", unit="it", mininterval=1.0, leave=True)

    stop_reason = "max_iters"
    t0 = time.time() - (history[-1]["elapsed_s"] if history else 0.0)
    model.train()
    last_eval_iter = history[-1]["iter"] if history else -1
    it = start_iter
    while True:
        user_stop = should_stop is not None and should_stop()
        if (it % t.eval_interval == 0 or it == max_iters or user_stop) and it != last_eval_iter:
            losses = evaluate(model, batches, device, dtype)
            row = {"iter": it, "train_loss": losses["train"], "val_loss": losses["val"],
                   "gap": losses["val"] - losses["train"], "lr": lr_at(min(it, max_iters - 1), t, max_iters),
                   "tokens_seen": it * tokens_per_iter, "epochs": it * tokens_per_iter / n_train,
                   "elapsed_s": round(time.time() - t0, 3)}
            history.append(row)
            last_eval_iter = it
            write_history()
            if on_eval is not None:
                on_eval(dict(row))
            if bar is not None:
                tps = (it - start_iter) * tokens_per_iter / max(1e-9, train_seconds) if it > start_iter else 0.0
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", val=f"{row['val_loss']:.3f}",
                                gap=f"{row['gap']:.3f}", tok_s=f"{tps:,.0f}", refresh=False)
            if not math.isfinite(row["val_loss"]) or not math.isfinite(row["train_loss"]):
                stop_reason = f"non-finite loss at iter {it}"
                break
            if row["val_loss"] < best_val - t.min_delta:
                best_val, best_iter, bad_evals = row["val_loss"], it, 0
                atomic_write_bytes(best_path, _ckpt_bytes(checkpoint(it)))
            else:
                bad_evals += 1
            if it in t.save_every:
                atomic_write_bytes(run_dir / "ckpt" / f"iter_{it}.pt", _ckpt_bytes(checkpoint(it)))
            if t.patience is not None and bad_evals >= t.patience:
                stop_reason = f"early_stop (patience {t.patience})"
                break
        elif it in t.save_every:
            atomic_write_bytes(run_dir / "ckpt" / f"iter_{it}.pt", _ckpt_bytes(checkpoint(it)))
        if user_stop:
            stop_reason = "stopped by user"
            break
        if it >= max_iters:
            break
        # one optimizer step
        s = time.time()
        lr = lr_at(it, t, max_iters)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = 0.0
        for _ in range(t.grad_accum):
            x, y = batches.next_train()
            with autocast(device, dtype):
                _, loss = model(x, y)
            loss = loss / t.grad_accum
            loss_sum += loss.item()
            (scaler.scale(loss) if scaler else loss).backward()
        if not math.isfinite(loss_sum):
            optimizer.zero_grad(set_to_none=True)
            stop_reason = f"non-finite loss at iter {it}"
            break
        if scaler:
            scaler.unscale_(optimizer)
        if t.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        train_seconds += time.time() - s
        it += 1
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()

    final_iter = it
    if not stop_reason.startswith("non-finite"):
        atomic_write_bytes(last_path, _ckpt_bytes(checkpoint(final_iter)))
    if t.restore_best and best_path.exists():
        model.load_state_dict(load_checkpoint(best_path)["model"])

    wall = time.time() - t0
    last = history[-1]
    trained_iters = final_iter
    metrics = {
        "best_val_loss": best_val, "best_iter": best_iter,
        "final_train_loss": last["train_loss"], "final_val_loss": last["val_loss"], "final_gap": last["gap"],
        "best_val_perplexity": math.exp(best_val) if math.isfinite(best_val) else None,
        "final_val_perplexity": math.exp(last["val_loss"]) if math.isfinite(last["val_loss"]) else None,
        "final_train_perplexity": math.exp(last["train_loss"]) if math.isfinite(last["train_loss"]) else None,
        "params": counts, "train_tokens": n_train, "val_tokens": n_val,
        "tokens_per_param": n_train / max(1, counts["non_embedding"]),
        "epochs": trained_iters * tokens_per_iter / n_train, "iters": trained_iters, "max_iters": max_iters,
        "tokens_per_iter": tokens_per_iter, "wall_time_s": round(wall, 3), "train_time_s": round(train_seconds, 3),
        "tokens_per_s": trained_iters * tokens_per_iter / train_seconds if train_seconds > 0 else None,
        "device": str(device), "dtype": str(dtype).replace("torch.", ""),
        "head_dtype": str(model.head_dtype).replace("torch.", "") if model.head_dtype else None,
        "stop_reason": stop_reason, "corpus_fingerprint": data.corpus.fingerprint,
        "vocab_size": data.vocab_size, "vocab_size_original": data.vocab_size_original, "versions": _versions(),
    }
    update_json(run_dir / "metrics.json", metrics)
    return metrics
