"""The learning-rate schedule and the optimizer."""

from __future__ import annotations

import math

import torch


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
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": train.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    kwargs = {"lr": train.learning_rate, "betas": (train.beta1, train.beta2)}
    try:
        return torch.optim.AdamW(groups, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, **kwargs)
