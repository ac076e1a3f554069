"""Will a phase fit in memory?  An estimate of training's peak memory from the sizes alone, and the machine's.

:func:`peak_memory` counts, in fp32 (4 bytes a number, the trainer's master precision), what training
holds at its peak, from the model's sizes (:func:`gaplab.model.gpt.count_params`), the batch and the
vocabulary:

- **weights**, their **gradients** and **AdamW's state** (two moments): 1 + 1 + 2 numbers per parameter;
- **activations** that autograd keeps for the backward pass, per transformer block and per token of a
  micro-batch (``batch_size x block_size`` tokens): the block's input, both LayerNorm outputs, q/k/v,
  the attention output and its reshaped copy, the MLP's hidden layer before and after GELU (4 x wide
  each), which is 17 x ``n_embd`` numbers, plus one ``n_head x block_size`` row of attention weights
  (the unfused attention path) and 1-byte dropout masks when dropout is on; plus the embeddings' sum
  and the final LayerNorm;
- **logits**: the fused loss (``train.fused_loss: true``, the default) never holds the full
  ``tokens x vocabulary`` logits in training, only one chunk of them
  (:func:`gaplab.model.fused_loss.default_chunk` rows) plus the head's gradient (vocabulary x
  ``n_embd``) that it forms as it goes; with ``fused_loss: false`` training holds the logits, their
  log-softmax and their gradient (3 x tokens x vocabulary), and evaluation two of them.

Measured against the RSS high-water mark of 3 fp32 steps and an eval on one CPU thread (6/6/384 at block 128,
batch 4, GPT-2's vocabulary, fused and not; 4/4/128 at block 256, batch 32; 8/8/512 at block 256, batch 16),
the estimate was 0.88 to 1.05 times the measured peak.  It leaves out the Python process itself (torch, the tokenizer, the data: a few hundred MB),
and is compared with the memory of the device the phase trains on (:func:`machine_memory`): the RAM for
CPU and MPS, the GPU's memory for CUDA.  ``gaplab check``, ``run`` and ``train`` refuse a phase whose
estimate exceeds it (``--skip-memory-check`` for the brave).
"""

from __future__ import annotations

from typing import Any, Optional

from ..errors import Problem

FP32 = 4


def peak_memory(model_cfg: Any, train_cfg: Any, vocab_size: int) -> dict[str, int]:
    """Bytes at training's peak, by part: ``weights, gradients, adamw, activations, logits, total``."""
    from ..model.fused_loss import default_chunk
    from ..model.gpt import count_params

    n_params = count_params(model_cfg, vocab_size)["total"]
    d, layers, heads, block = model_cfg.n_embd, model_cfg.n_layer, model_cfg.n_head, model_cfg.block_size
    tokens = train_cfg.batch_size * block
    per_block = FP32 * tokens * (17 * d + heads * block) + (2 * tokens * d if model_cfg.dropout > 0 else 0)
    activations = layers * per_block + FP32 * 3 * tokens * d
    if train_cfg.fused_loss:
        rows = min(tokens, default_chunk(vocab_size))
        logits = FP32 * (rows * vocab_size + vocab_size * d + tokens * d)
        eval_logits = FP32 * rows * vocab_size
    else:
        logits = FP32 * 3 * tokens * vocab_size
        eval_logits = FP32 * 2 * tokens * vocab_size
    parts = {
        "weights": FP32 * n_params,
        "gradients": FP32 * n_params,
        "adamw": 2 * FP32 * n_params,
        "activations": activations,
        "logits": max(logits, eval_logits),
    }
    parts["total"] = sum(parts.values())
    return parts


def machine_memory(device_spec: str = "auto") -> tuple[int, str]:
    """``(bytes, what)``: the memory a phase on ``train.device = device_spec`` can use here."""
    import psutil

    if (device_spec == "auto" or device_spec.startswith("cuda")) and _cuda_possible():
        import torch

        if torch.cuda.is_available():
            index = int(device_spec.split(":")[1]) if ":" in device_spec else 0
            if index < torch.cuda.device_count():
                props = torch.cuda.get_device_properties(index)
                return int(props.total_memory), f"the memory of GPU {index} ({props.name})"
    return int(psutil.virtual_memory().total), "this machine's RAM"


def _cuda_possible() -> bool:
    """False where CUDA cannot be (macOS; Linux without NVIDIA's driver), so that asking costs no torch import
    (about 2 s at the start of every ``gaplab run``); elsewhere torch is asked."""
    import glob
    import os
    import sys

    if "torch" in sys.modules or sys.platform not in ("darwin", "linux"):
        return True
    return sys.platform == "linux" and (
        os.path.exists("/proc/driver/nvidia/version") or bool(glob.glob("/dev/nvidia*"))
    )


def format_bytes(n: Optional[float]) -> str:
    """``1.9TiB``, ``730MiB``: binary units (1 KiB = 1024 bytes), no space, so a table splits on whitespace."""
    if n is None:
        return "?"
    value, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            break
        value /= 1024
    return f"{value:.0f}{unit}" if value >= 100 or unit == "B" else f"{value:.1f}{unit}"


def memory_problem(
    params: Any, vocab_size: int, file: str, phase: str, limit: Optional[tuple[int, str]] = None
) -> Optional[Problem]:
    """A :class:`gaplab.errors.Problem` when the phase's estimated peak exceeds the memory it would train in."""
    est = peak_memory(params.model, params.train, vocab_size)
    limit_bytes, what = limit if limit is not None else machine_memory(params.train.device)
    if est["total"] <= limit_bytes:
        return None
    parts = ", ".join(f"{k} {format_bytes(v)}" for k, v in est.items() if k != "total")
    m = params.model
    return Problem(
        file,
        phase,
        "model",
        {"n_layer": m.n_layer, "n_head": m.n_head, "n_embd": m.n_embd, "block_size": m.block_size},
        f"training needs about {format_bytes(est['total'])} at its peak ({parts}; fp32, batch_size "
        f"{params.train.batch_size}, vocabulary {vocab_size:,}), more than {what}, "
        f"{format_bytes(limit_bytes)}; allowed: a smaller model, batch_size or block_size "
        "(or --skip-memory-check to try anyway)",
    )
