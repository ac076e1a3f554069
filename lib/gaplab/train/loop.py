"""The trainer: evals, early stopping, checkpoints, resume, history and metrics.

Iteration semantics (as in nanoGPT and seed 003): evaluate at iteration 0
(before any update), every ``eval_interval`` iterations and at the last
iteration; an iteration is one optimizer step over ``batch_size x grad_accum``
windows of ``block_size`` tokens.  Evals use a *fixed*, seeded set of windows
for train and for val, the same at every eval, so one run's curve moves only
because the model changed.  On CPU and MPS evaluation is always fp32, even
when training uses bf16 (autocast, or only for the head's matmuls); on CUDA it
follows the training dtype.

Checkpoints (:mod:`gaplab.train.checkpoint`): ``ckpt/last.pt`` is written
atomically at every scheduled eval and when training ends, so a run killed
at any moment resumes from its last eval; ``ckpt/best.pt`` holds the lowest
val loss so far.  A Stop pressed between two scheduled evals is evaluated
once more, so the curve shows where it stopped; that extra row is in
``history.csv`` but not in the checkpoint's history, does not move the
best checkpoint, and is dropped by a resume: a resumed run's history equals
an uninterrupted run's, row for row.
"""

from __future__ import annotations

import math
import random
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..errors import TrainingError
from ..files import atomic_write_text, update_json
from ..model.device import (
    auto_threads,
    autocast_context,
    c_compiler_available,
    head_matmul_dtype,
    needs_grad_scaler,
    resolve_device,
    resolve_dtype,
    set_threads,
)
from ..model.fused_loss import token_losses
from ..model.gpt import GPT, count_params
from ..schema import PhaseParams, planned_iters, tokens_per_iter
from ..units import perplexity
from .batches import Batches
from .checkpoint import (
    TrainState,
    data_fingerprint,
    load_checkpoint,
    resume_problems,
    rng_state,
    save_checkpoint,
    set_rng_state,
    versions,
)
from .history import HISTORY_COLUMNS, history_csv
from .schedule import lr_at, make_optimizer
from .tracking import Tracker


# --------------------------------------------------------------------------- model, one step, eval
def build_model(model_cfg, train_cfg, vocab_size: int, device: torch.device, dtype: torch.dtype) -> GPT:
    """A freshly initialised :class:`GPT` (seeded by ``train.seed``) set up as the trainer uses it."""
    torch.manual_seed(train_cfg.seed)
    model = GPT(model_cfg, vocab_size).to(device)
    model.fused_loss = train_cfg.fused_loss
    model.head_dtype = head_matmul_dtype(train_cfg.dtype, device, dtype, vocab_size)
    if train_cfg.compile:
        if device.type == "cpu" and not c_compiler_available():
            warnings.warn(
                "train.compile = true, but no C compiler was found (torch.compile needs one on CPU); "
                "training without compiling",
                stacklevel=2,
            )
        else:
            model.compile_blocks()
    return model


def train_step(
    model: GPT,
    optimizer: torch.optim.Optimizer,
    batches: Batches,
    train_cfg,
    lr: float,
    device: torch.device,
    dtype: torch.dtype,
    scaler=None,
) -> float:
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
def evaluate(
    model: GPT,
    batches: Batches,
    device: torch.device,
    dtype: torch.dtype,
    token_bytes: Optional[dict] = None,
    val_seen: Optional[np.ndarray] = None,
) -> dict[str, float]:
    """The losses over the fixed evaluation windows of each split, with their noise and in bits per byte.

    Keys: ``train``, ``val`` (mean nats per token); ``train_se``, ``val_se`` (standard error of that mean
    over the windows; 0 when the split is evaluated exactly, every window once); ``train_bpb``, ``val_bpb``
    (the windows' summed loss / (ln 2 x their targets' UTF-8 bytes), NaN without ``token_bytes``); and with
    ``val_seen`` (per val token: its id occurs in train) ``val_loss_seen``, ``val_loss_unseen`` (mean nats
    over those val targets; NaN when there are none).  ``token_bytes`` maps split -> bytes per token.
    """
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    for split in ("train", "val"):
        means, loss_sum, byte_sum = [], 0.0, 0
        seen = [0.0, 0, 0.0, 0]  # loss and count of seen targets, then of unseen ones
        nbytes = (token_bytes or {}).get(split)
        for x, y, pos in batches.eval_batches(split):
            with autocast_context(device, dtype):
                hidden = model.hidden(x)
            losses = token_losses(hidden, model.wte.weight, y).double().cpu().numpy()
            means.append(losses.mean(axis=1))
            loss_sum += float(losses.sum())
            if nbytes is not None:
                byte_sum += int(nbytes[pos].sum())
            if split == "val" and val_seen is not None:
                mask = val_seen[pos]
                seen[0] += float(losses[mask].sum())
                seen[1] += int(mask.sum())
                seen[2] += float(losses[~mask].sum())
                seen[3] += int((~mask).sum())
        window_means = np.concatenate(means)
        out[split] = float(window_means.mean())
        exact = batches.exact[split] or len(window_means) < 2
        out[f"{split}_se"] = 0.0 if exact else float(window_means.std(ddof=1) / math.sqrt(len(window_means)))
        out[f"{split}_bpb"] = loss_sum / (math.log(2) * byte_sum) if byte_sum else float("nan")
    if val_seen is not None:
        out["val_loss_seen"] = seen[0] / seen[1] if seen[1] else float("nan")
        out["val_loss_unseen"] = seen[2] / seen[3] if seen[3] else float("nan")
    model.train(was_training)
    return out


def _finite(x: Any) -> Optional[float]:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def _progress_bar(total: int, initial: int):
    from tqdm.auto import tqdm

    interactive = sys.stderr.isatty() or "ipykernel" in sys.modules
    return tqdm(
        total=total, initial=initial, desc="train", unit="it", leave=True, mininterval=0.5 if interactive else 30.0
    )


def _check_data(data, vocab_size: int) -> None:
    for name in ("train", "val"):
        arr = np.asarray(getattr(data, name))
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise TrainingError(
                f"data.{name} must be a 1-D array of integer token ids (got {arr.dtype}, shape {arr.shape})"
            )
        if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
            raise TrainingError(
                f"data.{name} holds token ids from {arr.min()} to {arr.max()}, outside the "
                f"model's vocabulary 0..{vocab_size - 1} (vocab_size = {vocab_size})"
            )


# --------------------------------------------------------------------------- the trainer
def train_phase(
    params: PhaseParams,
    data,
    run_dir,
    *,
    progress: bool = True,
    resume: bool = False,
    on_eval: Optional[Callable[[dict], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
) -> dict[str, Any]:
    """Train one phase into ``run_dir``; return the metrics written to ``metrics.json``.

    ``data`` needs ``train`` and ``val`` (1-D arrays of model-space token ids),
    ``vocab_size``, ``vocab_size_original`` and ``corpus.fingerprint`` (a
    :class:`gaplab.data.split.Prepared` has them).  ``on_eval(row)`` is called after
    every eval with the history row; ``should_stop()`` is polled before every
    iteration and, when true, ends the run cleanly ("stopped by user") after a
    final eval and checkpoint.  ``resume`` continues from ``ckpt/last.pt``; it
    refuses a phase whose settings or data differ from the checkpoint's
    (:func:`gaplab.train.checkpoint.resume_problems`).

    Threads: ``train.threads``, else one for a small model on CPU
    (:func:`gaplab.model.device.auto_threads`), else the process's setting; the
    process's thread count is restored on return.
    """
    t = params.train
    per_iter = tokens_per_iter(t, params.model.block_size)
    before = torch.get_num_threads()
    set_threads(t.threads or auto_threads(params.model, per_iter, int(data.vocab_size), resolve_device(t.device)))
    try:
        return _train(params, data, run_dir, progress=progress, resume=resume, on_eval=on_eval, should_stop=should_stop)
    finally:
        torch.set_num_threads(before)


def _train(
    params: PhaseParams,
    data,
    run_dir,
    *,
    progress: bool,
    resume: bool,
    on_eval: Optional[Callable[[dict], None]],
    should_stop: Optional[Callable[[], bool]],
) -> dict[str, Any]:
    run_dir = Path(run_dir)
    m_cfg, t = params.model, params.train
    device = resolve_device(t.device)
    dtype = resolve_dtype(t.dtype, device, m_cfg.n_embd)
    eval_dtype = eval_dtype_for(device, dtype)
    vocab_size = int(data.vocab_size)
    _check_data(data, vocab_size)
    n_train, n_val = len(data.train), len(data.val)
    max_iters = planned_iters(t, m_cfg.block_size, n_train)
    per_iter = tokens_per_iter(t, m_cfg.block_size)
    phase_dict = params.to_dict()
    data_fp = data_fingerprint(data.train, data.val)
    train_bytes, val_bytes = getattr(data, "train_bytes", None), getattr(data, "val_bytes", None)
    token_bytes = (
        {"train": train_bytes, "val": val_bytes} if train_bytes is not None and val_bytes is not None else None
    )
    val_seen = getattr(data, "val_seen", None)

    random.seed(t.seed)
    np.random.seed(t.seed % 2**32)
    model = build_model(m_cfg, t, vocab_size, device, dtype)
    optimizer = make_optimizer(model, t)
    scaler = torch.amp.GradScaler("cuda") if needs_grad_scaler(device, dtype) else None
    batches = Batches(data.train, data.val, m_cfg.block_size, t.batch_size, t.seed, t.eval_iters, device)
    counts = count_params(m_cfg, vocab_size)

    ckpt_dir = run_dir / "ckpt"
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    history: list[dict] = []  # every row of history.csv
    scheduled: list[dict] = []  # the rows an uninterrupted run has: what a checkpoint keeps
    start_iter, best_val, best_iter, bad_evals, train_seconds = 0, float("inf"), -1, 0, 0.0
    best_row: dict = {}
    if resume:
        if not last_path.exists():
            raise TrainingError(f"resume: {last_path} does not exist; train once without resume first")
        ck = load_checkpoint(last_path)
        model_now = m_cfg.model_dump()
        if ck.get("model_config") != model_now or int(ck.get("vocab_size", -1)) != vocab_size:
            raise TrainingError(
                f"resume: {last_path} holds a model {ck.get('model_config')} over "
                f"{ck.get('vocab_size')} ids, but this phase builds {model_now} over {vocab_size}; "
                "train from scratch (no resume) or restore the settings"
            )
        changed = resume_problems(ck.get("params") or {}, phase_dict, ck.get("data_fingerprint"), data_fp)
        if changed:
            raise TrainingError(
                f"resume: {last_path} holds a model and optimizer trained with other settings, and "
                f"continuing would mix two runs in one history: {'; '.join(changed)}. Train from "
                "scratch (no resume), or restore these settings"
            )
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        if scaler is not None and ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        set_rng_state(ck["rng"], batches, device)
        start_iter = int(ck["iter"])
        best_val, best_iter, bad_evals = float(ck["best_val"]), int(ck["best_iter"]), int(ck["bad_evals"])
        train_seconds = float(ck["train_seconds"])
        if any(len(row) != len(HISTORY_COLUMNS) for row in ck["history"]):
            raise TrainingError(
                f"resume: {last_path} was written by a gaplab whose history.csv had other columns; "
                "train from scratch (no resume)"
            )
        scheduled = [dict(zip(HISTORY_COLUMNS, row)) for row in ck["history"]]
        history = list(scheduled)
        best_row = next((r for r in scheduled if r["iter"] == best_iter), {})
        if start_iter >= max_iters:
            raise TrainingError(
                f"resume: {last_path} is at iter {start_iter}, already at the planned "
                f"{max_iters} iterations; raise train.max_iters (or train.epochs) to train on"
            )
    elif ckpt_dir.is_dir():  # a fresh run: checkpoints of an earlier run in this folder would be mistaken for ours
        for old in ckpt_dir.glob("*.pt"):
            old.unlink()
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    # TensorBoard: a resume drops what an interrupted run logged after its checkpoint's last eval
    tracker = Tracker(run_dir, t.seed, purge_from=scheduled[-1]["iter"] + 1 if resume else None, params=phase_dict)

    def state(it: int) -> TrainState:
        return TrainState(
            model=model.state_dict(),
            optimizer=optimizer.state_dict(),
            scaler=scaler.state_dict() if scaler is not None else None,
            rng=rng_state(batches, device),
            iter=it,
            best_val=best_val,
            best_iter=best_iter,
            bad_evals=bad_evals,
            train_seconds=train_seconds,
            history=[[r[c] for c in HISTORY_COLUMNS] for r in scheduled],
            model_config=m_cfg.model_dump(),
            vocab_size=vocab_size,
            params=phase_dict,
            data_fingerprint=data_fp,
            versions=versions(),
        )

    bar = _progress_bar(max_iters, start_iter) if progress else None
    stop_reason: Optional[str] = None
    t0 = time.time() - (history[-1]["elapsed_s"] if history else 0.0)
    last_eval_iter = history[-1]["iter"] if history else -1
    model.train()
    it = start_iter
    while True:
        user_stop = bool(should_stop()) if should_stop is not None else False
        on_schedule = it % t.eval_interval == 0 or it >= max_iters
        if (on_schedule or user_stop) and it != last_eval_iter:
            losses = evaluate(model, batches, device, eval_dtype, token_bytes, val_seen)
            tokens_seen = it * per_iter
            row = {
                "iter": it,
                "train_loss": losses["train"],
                "val_loss": losses["val"],
                "gap": losses["val"] - losses["train"],
                "lr": lr_at(min(it, max_iters - 1), t, max_iters),
                "tokens_seen": tokens_seen,
                "epochs": tokens_seen / n_train,
                "elapsed_s": round(time.time() - t0, 3),
                "train_loss_se": losses["train_se"],
                "val_loss_se": losses["val_se"],
                "train_bpb": losses["train_bpb"],
                "val_bpb": losses["val_bpb"],
                "val_loss_seen": losses.get("val_loss_seen", math.nan),
                "val_loss_unseen": losses.get("val_loss_unseen", math.nan),
            }
            history.append(row)
            last_eval_iter = it
            atomic_write_text(run_dir / "history.csv", history_csv(history))
            tracker.log(row, it * per_iter / train_seconds if train_seconds > 0 else None)
            if bar is not None:
                tps = (it - start_iter) * per_iter / train_seconds if train_seconds > 0 else 0.0
                bar.set_postfix(
                    loss=f"{row['train_loss']:.3f}",
                    val=f"{row['val_loss']:.3f}",
                    gap=f"{row['gap']:.3f}",
                    tok_s=f"{tps:,.0f}",
                    refresh=False,
                )
            if on_eval is not None:
                on_eval(dict(row))
            if not (math.isfinite(row["val_loss"]) and math.isfinite(row["train_loss"])):
                stop_reason = f"non-finite loss at iter {it}"
                break
            if on_schedule:
                scheduled.append(row)
                if row["val_loss"] < best_val - t.min_delta:
                    best_val, best_iter, bad_evals, best_row = row["val_loss"], it, 0, row
                    save_checkpoint(best_path, state(it))
                else:
                    bad_evals += 1
                    if t.patience is not None and bad_evals >= t.patience:
                        stop_reason = f"early_stop (patience {t.patience})"
                save_checkpoint(last_path, state(it))  # a kill from here on resumes at this eval
        if it in t.save_every:
            save_checkpoint(ckpt_dir / f"iter_{it}.pt", state(it))
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
    tracker.close()

    if stop_reason.startswith("non-finite"):
        last_path.unlink(missing_ok=True)  # the weights are broken: nothing to resume from
    elif scheduled and scheduled[-1]["iter"] != it or stop_reason == "stopped by user":
        save_checkpoint(last_path, state(it))

    last = history[-1]
    tokens_trained = it * per_iter
    metrics = {
        "best_val_loss": best_val if math.isfinite(best_val) else None,
        "best_iter": best_iter,
        "final_train_loss": last["train_loss"],
        "final_val_loss": last["val_loss"],
        "final_gap": last["gap"],
        "best_val_bpb": _finite(best_row.get("val_bpb")),
        "final_val_bpb": _finite(last["val_bpb"]),
        "final_train_bpb": _finite(last["train_bpb"]),
        "best_val_perplexity": perplexity(best_val),
        "final_val_perplexity": perplexity(last["val_loss"]),
        "final_train_perplexity": perplexity(last["train_loss"]),
        "params": counts,
        "train_tokens": n_train,
        "val_tokens": n_val,
        "tokens_per_param_total": n_train / max(1, counts["total"]),
        "tokens_per_param_non_emb": n_train / max(1, counts["non_embedding"]),
        "epochs": tokens_trained / n_train,
        "iters": it,
        "max_iters": max_iters,
        "tokens_per_iter": per_iter,
        "wall_time_s": round(time.time() - t0, 3),
        "train_time_s": round(train_seconds, 3),
        "tokens_per_s": tokens_trained / train_seconds if train_seconds > 0 else None,
        "device": str(device),
        "dtype": str(dtype).replace("torch.", ""),
        "head_dtype": str(model.head_dtype or dtype).replace("torch.", ""),
        "threads": torch.get_num_threads(),
        "stop_reason": stop_reason,
        "corpus_fingerprint": data.corpus.fingerprint,
        "val_fingerprint": getattr(data, "val_fingerprint", "") or None,
        "val_text_fingerprint": getattr(data, "val_text_fingerprint", "") or None,
        "val_unseen_token_share": getattr(data, "val_unseen_token_share", None),
        "val_unseen_byte_share": getattr(data, "val_unseen_byte_share", None),
        "train_bytes": int(train_bytes.sum()) if train_bytes is not None else None,
        "val_bytes": int(val_bytes.sum()) if val_bytes is not None else None,  # tokens per byte: val_tokens / val_bytes
        "tokenizer": getattr(getattr(data, "tokenizer", None), "name", None),
        "vocab_size": vocab_size,
        "vocab_size_original": int(data.vocab_size_original),
        "versions": versions(),
    }
    update_json(run_dir / "metrics.json", metrics)
    return metrics
