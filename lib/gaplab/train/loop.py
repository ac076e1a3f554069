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
an uninterrupted run's, row for row.  A resume from a checkpoint already at
the planned iteration (a run killed after its last eval) trains nothing: it
writes the final metrics and checkpoint.

One run is a :class:`PhaseRun` in named steps: set up (:meth:`PhaseRun.start_fresh`
or :meth:`PhaseRun.resume`), the loop (:meth:`PhaseRun.loop`: an eval row when one is
due, then one :meth:`PhaseRun.step`), and the final record (:meth:`PhaseRun.finish`,
a :class:`gaplab.train.metrics.TrainMetrics`).
"""

from __future__ import annotations

import math
import random
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

import numpy as np
import torch

from ..errors import TrainingError
from ..files import atomic_write_text
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
from ..model.gpt import GPT, LossOptions, count_params
from ..schema import PhaseParams, planned_iters, tokens_per_iter
from .batches import Batches
from .checkpoint import (
    TrainState,
    check_resumable,
    data_fingerprint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    versions,
)
from .history import HISTORY_COLUMNS, history_csv
from .inputs import TrainData
from .metrics import TrainMetrics
from .schedule import lr_at, make_optimizer
from .tracking import Tracker

if TYPE_CHECKING:
    from ..data.split import Prepared


# --------------------------------------------------------------------------- model, one step, eval
def build_model(model_cfg, train_cfg, vocab_size: int, device: torch.device, dtype: torch.dtype) -> GPT:
    """A freshly initialised :class:`GPT` (seeded by ``train.seed``) set up as the trainer uses it."""
    torch.manual_seed(train_cfg.seed)
    model = GPT(model_cfg, vocab_size).to(device)
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


def loss_options_for(train_cfg, device: torch.device, dtype: torch.dtype, vocab_size: int) -> LossOptions:
    """How the training loss is computed: ``train.fused_loss``, and the head's precision on this machine."""
    head_dtype = head_matmul_dtype(train_cfg.dtype, device, dtype, vocab_size)
    return LossOptions(fused=train_cfg.fused_loss, head_dtype=head_dtype)


def train_step(
    model: GPT,
    optimizer: torch.optim.Optimizer,
    batches: Batches,
    train_cfg,
    lr: float,
    device: torch.device,
    dtype: torch.dtype,
    scaler=None,
    loss_options: Optional[LossOptions] = None,
) -> float:
    """One optimizer step over ``grad_accum`` micro-batches; returns the step's mean training loss.

    ``loss_options`` default to ``train.fused_loss`` at the model's own precision
    (:func:`loss_options_for` gives the trainer's).  A non-finite loss (or gradient
    norm) leaves the weights untouched and is returned as ``nan``/``inf`` for the
    caller to stop on.
    """
    if loss_options is None:
        loss_options = LossOptions(fused=train_cfg.fused_loss)
    for group in optimizer.param_groups:
        group["lr"] = lr
    total = torch.zeros((), device=device)
    for _ in range(train_cfg.grad_accum):
        x, y = batches.next_train()
        with autocast_context(device, dtype):
            loss = model(x, y, loss_options)
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


def _progress_bar(total: int, initial: int):
    from tqdm.auto import tqdm

    interactive = sys.stderr.isatty() or "ipykernel" in sys.modules
    return tqdm(
        total=total, initial=initial, desc="train", unit="it", leave=True, mininterval=0.5 if interactive else 30.0
    )


def _check_data(data: TrainData) -> None:
    for name in ("train", "val"):
        arr = np.asarray(getattr(data, name))
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise TrainingError(
                f"data.{name} must be a 1-D array of integer token ids (got {arr.dtype}, shape {arr.shape})"
            )
        if arr.size and (arr.min() < 0 or arr.max() >= data.vocab_size):
            raise TrainingError(
                f"data.{name} holds token ids from {arr.min()} to {arr.max()}, outside the "
                f"model's vocabulary 0..{data.vocab_size - 1} (vocab_size = {data.vocab_size})"
            )


# --------------------------------------------------------------------------- the trainer
def train_phase(
    params: PhaseParams,
    data: Union[TrainData, Prepared],
    run_dir,
    *,
    progress: bool = True,
    resume: bool = False,
    on_eval: Optional[Callable[[dict], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
) -> TrainMetrics:
    """Train one phase into ``run_dir``; return the record written to ``metrics.json``.

    ``data`` is a :class:`gaplab.train.inputs.TrainData`, or a :class:`gaplab.data.split.Prepared`
    (:meth:`TrainData.from_prepared` takes what training needs).  ``on_eval(row)`` is called after
    every eval with the history row; ``should_stop()`` is polled before every
    iteration and, when true, ends the run cleanly ("stopped by user") after a
    final eval and checkpoint.  ``resume`` continues from ``ckpt/last.pt``; it
    refuses a phase whose settings or data differ from the checkpoint's
    (:func:`gaplab.train.checkpoint.resume_problems`).

    Threads: ``train.threads``, else one for a small model on CPU
    (:func:`gaplab.model.device.auto_threads`), else the process's setting; the
    process's thread count is restored on return.
    """
    data = TrainData.of(data)
    t = params.train
    per_iter = tokens_per_iter(t, params.model.block_size)
    before = torch.get_num_threads()
    set_threads(t.threads or auto_threads(params.model, per_iter, data.vocab_size, resolve_device(t.device)))
    try:
        run = PhaseRun(params, data, Path(run_dir))
        if resume:
            run.resume()
        else:
            run.start_fresh()
        return run.finish(run.loop(progress, on_eval, should_stop))
    finally:
        torch.set_num_threads(before)


@dataclass
class Progress:
    """Where a run stands: the early-stopping counters and the history (what a checkpoint keeps)."""

    it: int = 0
    best_val: float = math.inf
    best_iter: int = -1
    bad_evals: int = 0
    best_row: dict = field(default_factory=dict)
    train_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)  # every row of history.csv
    scheduled: list[dict] = field(default_factory=list)  # the rows an uninterrupted run has: what a checkpoint keeps


class PhaseRun:
    """One phase's training in ``run_dir``: the model, optimizer and data set up as the phase says."""

    def __init__(self, params: PhaseParams, data: TrainData, run_dir: Path):
        m_cfg, t = params.model, params.train
        self.params, self.data, self.run_dir = params, data, run_dir
        self.device = resolve_device(t.device)
        self.dtype = resolve_dtype(t.dtype, self.device, m_cfg.n_embd)
        self.eval_dtype = eval_dtype_for(self.device, self.dtype)
        _check_data(data)
        self.max_iters = planned_iters(t, m_cfg.block_size, len(data.train))
        self.per_iter = tokens_per_iter(t, m_cfg.block_size)
        self.phase_dict = params.to_dict()
        self.data_fp = data_fingerprint(data.train, data.val)
        random.seed(t.seed)
        np.random.seed(t.seed % 2**32)
        self.model = build_model(m_cfg, t, data.vocab_size, self.device, self.dtype)
        self.loss_options = loss_options_for(t, self.device, self.dtype, data.vocab_size)
        self.optimizer = make_optimizer(self.model, t)
        self.scaler = torch.amp.GradScaler("cuda") if needs_grad_scaler(self.device, self.dtype) else None
        self.batches = Batches(data.train, data.val, m_cfg.block_size, t.batch_size, t.seed, t.eval_iters, self.device)
        self.counts = count_params(m_cfg, data.vocab_size)
        self.ckpt_dir = run_dir / "ckpt"
        self.last_path, self.best_path = self.ckpt_dir / "last.pt", self.ckpt_dir / "best.pt"
        self.progress = Progress()
        self.tracker: Optional[Tracker] = None
        self.bar = None
        self.t0 = time.time()
        self.start_iter, self.last_eval_iter = 0, -1

    # ----------------------------------------------------------------------- set up: fresh or resumed
    def start_fresh(self) -> None:
        """Checkpoints of an earlier run in this folder would be mistaken for ours: they go."""
        if self.ckpt_dir.is_dir():
            for old in self.ckpt_dir.glob("*.pt"):
                old.unlink()
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        self.tracker = Tracker(self.run_dir, self.params.train.seed, purge_from=None, params=self.phase_dict)

    def resume(self) -> None:
        """Continue from ``ckpt/last.pt``: weights, optimizer, random generators, counters and history.

        A checkpoint at the planned iteration is restored too: the loop then trains nothing and the run
        ends with its final metrics.  One past it is refused (the iterations cannot be undone).
        """
        if not self.last_path.exists():
            raise TrainingError(f"resume: {self.last_path} does not exist; train once without resume first")
        ck = load_checkpoint(self.last_path)
        check_resumable(ck, self.last_path, self.params, self.data.vocab_size, self.data_fp)
        self.model.load_state_dict(ck["model"])
        self.optimizer.load_state_dict(ck["optimizer"])
        if self.scaler is not None and ck.get("scaler"):
            self.scaler.load_state_dict(ck["scaler"])
        set_rng_state(ck["rng"], self.batches, self.device)
        scheduled = [dict(zip(HISTORY_COLUMNS, row)) for row in ck["history"]]
        best_iter = int(ck["best_iter"])
        self.progress = Progress(
            it=int(ck["iter"]),
            best_val=float(ck["best_val"]),
            best_iter=best_iter,
            bad_evals=int(ck["bad_evals"]),
            best_row=next((r for r in scheduled if r["iter"] == best_iter), {}),
            train_seconds=float(ck["train_seconds"]),
            history=list(scheduled),
            scheduled=scheduled,
        )
        if self.progress.it > self.max_iters:
            raise TrainingError(
                f"resume: {self.last_path} is at iter {self.progress.it}, past the planned {self.max_iters} "
                f"iterations; raise train.max_iters (or train.epochs) to at least {self.progress.it}, or train "
                "from scratch (no resume)"
            )
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "history.csv", history_csv(self.progress.history))
        # TensorBoard: a resume drops what an interrupted run logged after its checkpoint's last eval
        purge_from = scheduled[-1]["iter"] + 1
        self.tracker = Tracker(self.run_dir, self.params.train.seed, purge_from=purge_from, params=self.phase_dict)

    def _state(self) -> TrainState:
        p = self.progress
        return TrainState(
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler is not None else None,
            rng=rng_state(self.batches, self.device),
            iter=p.it,
            best_val=p.best_val,
            best_iter=p.best_iter,
            bad_evals=p.bad_evals,
            train_seconds=p.train_seconds,
            history=[[r[c] for c in HISTORY_COLUMNS] for r in p.scheduled],
            model_config=self.params.model.model_dump(),
            vocab_size=self.data.vocab_size,
            params=self.phase_dict,
            data_fingerprint=self.data_fp,
            versions=versions(),
        )

    # ----------------------------------------------------------------------- the loop
    def loop(
        self, progress: bool, on_eval: Optional[Callable[[dict], None]], should_stop: Optional[Callable[[], bool]]
    ) -> str:
        """Evaluate when an eval is due, then take one step, until a stop; return the stop reason."""
        p, t = self.progress, self.params.train
        self.bar = _progress_bar(self.max_iters, p.it) if progress else None
        self.start_iter = p.it
        self.t0 = time.time() - (p.history[-1]["elapsed_s"] if p.history else 0.0)
        self.last_eval_iter = p.history[-1]["iter"] if p.history else -1
        self.model.train()
        while True:
            user_stop = bool(should_stop()) if should_stop is not None else False
            on_schedule = p.it % t.eval_interval == 0 or p.it >= self.max_iters
            stop_reason: Optional[str] = None
            if (on_schedule or user_stop) and p.it != self.last_eval_iter:
                row = self.eval_row()
                self._record(row, on_eval)
                if not (math.isfinite(row["val_loss"]) and math.isfinite(row["train_loss"])):
                    return f"non-finite loss at iter {p.it}"
                if on_schedule:
                    stop_reason = self._keep_scheduled(row)
            if p.it in t.save_every:
                save_checkpoint(self.ckpt_dir / f"iter_{p.it}.pt", self._state())
            if stop_reason is None and user_stop:
                stop_reason = "stopped by user"
            if stop_reason is None and p.it >= self.max_iters:
                stop_reason = "max_iters"
            if stop_reason is not None:
                return stop_reason
            if not self.step():
                return f"non-finite loss at iter {p.it}"

    def step(self) -> bool:
        """One optimizer step at the current iteration; False (and no step counted) on a non-finite loss."""
        p, t = self.progress, self.params.train
        started = time.perf_counter()
        loss = train_step(
            self.model,
            self.optimizer,
            self.batches,
            t,
            lr_at(p.it, t, self.max_iters),
            self.device,
            self.dtype,
            self.scaler,
            self.loss_options,
        )
        p.train_seconds += time.perf_counter() - started
        if not math.isfinite(loss):
            return False
        p.it += 1
        if self.bar is not None:
            self.bar.update(1)
        return True

    def eval_row(self) -> dict:
        """The history row of an eval at the current iteration (``train.history.HISTORY_COLUMNS``)."""
        it, t = self.progress.it, self.params.train
        losses = evaluate(
            self.model, self.batches, self.device, self.eval_dtype, self.data.token_bytes, self.data.val_seen
        )
        tokens_seen = it * self.per_iter
        return {
            "iter": it,
            "train_loss": losses["train"],
            "val_loss": losses["val"],
            "gap": losses["val"] - losses["train"],
            "lr": lr_at(min(it, self.max_iters - 1), t, self.max_iters),
            "tokens_seen": tokens_seen,
            "epochs": tokens_seen / len(self.data.train),
            "elapsed_s": round(time.time() - self.t0, 3),
            "train_loss_se": losses["train_se"],
            "val_loss_se": losses["val_se"],
            "train_bpb": losses["train_bpb"],
            "val_bpb": losses["val_bpb"],
            "val_loss_seen": losses.get("val_loss_seen", math.nan),
            "val_loss_unseen": losses.get("val_loss_unseen", math.nan),
        }

    def _record(self, row: dict, on_eval: Optional[Callable[[dict], None]]) -> None:
        """The row into history.csv, TensorBoard, the progress bar and ``on_eval``."""
        p = self.progress
        p.history.append(row)
        self.last_eval_iter = p.it
        atomic_write_text(self.run_dir / "history.csv", history_csv(p.history))
        seconds = p.train_seconds
        self.tracker.log(row, p.it * self.per_iter / seconds if seconds > 0 else None)
        if self.bar is not None:
            tps = (p.it - self.start_iter) * self.per_iter / seconds if seconds > 0 else 0.0
            self.bar.set_postfix(
                loss=f"{row['train_loss']:.3f}",
                val=f"{row['val_loss']:.3f}",
                gap=f"{row['gap']:.3f}",
                tok_s=f"{tps:,.0f}",
                refresh=False,
            )
        if on_eval is not None:
            on_eval(dict(row))

    def _keep_scheduled(self, row: dict) -> Optional[str]:
        """A scheduled eval: the best checkpoint, the early-stopping count, ``ckpt/last.pt``; a stop reason or None."""
        p, t = self.progress, self.params.train
        p.scheduled.append(row)
        stop_reason = None
        if row["val_loss"] < p.best_val - t.min_delta:
            p.best_val, p.best_iter, p.bad_evals, p.best_row = row["val_loss"], p.it, 0, row
            save_checkpoint(self.best_path, self._state())
        else:
            p.bad_evals += 1
            if t.patience is not None and p.bad_evals >= t.patience:
                stop_reason = f"early_stop (patience {t.patience})"
        save_checkpoint(self.last_path, self._state())  # a kill from here on resumes at this eval
        return stop_reason

    # ----------------------------------------------------------------------- the end
    def finish(self, stop_reason: str) -> TrainMetrics:
        """Close the bar and TensorBoard, leave ``ckpt/last.pt`` right, and write the final record."""
        p = self.progress
        if self.bar is not None:
            self.bar.close()
        self.tracker.close()
        if stop_reason.startswith("non-finite"):
            self.last_path.unlink(missing_ok=True)  # the weights are broken: nothing to resume from
        elif p.scheduled and p.scheduled[-1]["iter"] != p.it or stop_reason == "stopped by user":
            save_checkpoint(self.last_path, self._state())
        metrics = TrainMetrics.from_run(
            data=self.data,
            last_row=p.history[-1],
            best_row=p.best_row,
            best_val=p.best_val,
            best_iter=p.best_iter,
            counts=self.counts,
            iters=p.it,
            max_iters=self.max_iters,
            tokens_per_iter=self.per_iter,
            wall_time_s=time.time() - self.t0,
            train_seconds=p.train_seconds,
            device=self.device,
            dtype=self.dtype,
            head_dtype=self.loss_options.head_dtype,
            stop_reason=stop_reason,
        )
        metrics.write(self.run_dir)
        return metrics
