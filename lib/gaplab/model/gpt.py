"""A GPT-2-style decoder, kept as plain as nanoGPT's model.py.

Pre-LayerNorm blocks, causal self-attention, a GELU MLP (4x), learned position
embeddings, a final LayerNorm and an output head tied to the token embedding
(Radford et al. 2019, "Language Models are Unsupervised Multitask Learners";
tying: Press & Wolf 2017).  Initialisation as GPT-2: normal(0, 0.02), residual
output projections scaled by 1/sqrt(2 * n_layer).  The sizes are one
:class:`gaplab.schema.ModelConfig` (what a study file says) plus the
vocabulary size (what the tokenizer gives).

Parameter counting (:func:`count_params`) follows Kaplan et al. (2020,
"Scaling Laws for Neural Language Models"): *non-embedding* parameters exclude
the token AND the position embeddings; the tied head is the token embedding
and is counted once.  ``total`` counts every parameter, embeddings included,
which is the convention seed 003 reports (29,995,392 for 6/6/384 at block 128
with GPT-2's 50,257-token vocabulary and biases on) and the one Hoffmann et al.
(2022) use for tokens per parameter.

Two pieces depart from plain PyTorch, each behind one named function: the
training loss of the tied head (:func:`gaplab.model.fused_loss.chunked_cross_entropy`,
which never materialises the full logits) and attention under CPU bf16
autocast (:func:`gaplab.model.device.attention`, which keeps it in fp32).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
import torch.nn as nn
from torch.nn import functional as F

from ..schema import ModelConfig
from .device import attention
from .fused_loss import chunked_cross_entropy


def count_params(model_cfg: Any, vocab_size: int) -> dict[str, int]:
    """``{"total", "embedding", "non_embedding"}`` from the sizes alone, without building the model.

    Per block (d = n_embd): two LayerNorms (d weights, + d biases if ``bias``),
    attention (qkv d x 3d, output d x d), MLP (d x 4d, 4d x d), biases if
    ``bias``; plus a final LayerNorm.  Embedding: vocab x d (token, the same
    tensor as the head) + block_size x d (position).  ``total`` includes both
    embeddings; ``non_embedding`` excludes both (Kaplan et al. 2020).
    """
    d, L, b = model_cfg.n_embd, model_cfg.n_layer, 1 if model_cfg.bias else 0
    layer_norm = d + b * d
    attention = d * 3 * d + b * 3 * d + d * d + b * d
    mlp = d * 4 * d + b * 4 * d + 4 * d * d + b * d
    non_embedding = L * (2 * layer_norm + attention + mlp) + layer_norm
    embedding = int(vocab_size) * d + model_cfg.block_size * d
    return {"total": non_embedding + embedding, "embedding": embedding, "non_embedding": non_embedding}


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.n_embd % cfg.n_head:
            raise ValueError(f"model.n_embd = {cfg.n_embd} must be a multiple of model.n_head = {cfg.n_head}")
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cache: Optional[dict] = None) -> torch.Tensor:
        """Causal self-attention over ``x`` (B, T, C).

        ``cache`` (generation only): a dict that keeps this layer's keys and
        values.  Empty, ``x`` is the prompt and is attended causally; filled,
        ``x`` must be the one next token, which attends to everything cached.
        """
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        causal = True
        if cache is not None:
            if "k" in cache:
                if T != 1:
                    raise ValueError(f"a filled attention cache takes one new token at a time, got {T}")
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
                causal = False  # the one new query may see every cached position
            cache["k"], cache["v"] = k, v
        y = attention(q, k, v, causal=causal, dropout=self.dropout if self.training else 0.0)
        return self.resid_drop(self.proj(y.transpose(1, 2).contiguous().view(B, T, C)))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cache: Optional[dict] = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache)
        return x + self.mlp(self.ln2(x))


# --------------------------------------------------------------------------- the model
class GPT(nn.Module):
    """The decoder; ``GPT(ModelConfig(...), vocab_size)``."""

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        if not isinstance(vocab_size, int) or vocab_size < 1:
            raise ValueError(f"vocab_size = {vocab_size!r}: allowed: a whole number >= 1 (the tokenizer's ids)")
        self.config = cfg
        self.vocab_size = vocab_size
        self.wte = nn.Embedding(vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        #: compute the training loss with :func:`chunked_cross_entropy` (no full logits)
        self.fused_loss = True
        #: precision of the head's matmuls in the fused loss while gradients are on (None: the model's)
        self.head_dtype: Optional[torch.dtype] = None
        #: rows of logits per chunk in the fused loss (None: :func:`default_chunk`)
        self.loss_chunk: Optional[int] = None
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: scaled init of the residual projections
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def param_breakdown(self) -> dict[str, int]:
        """Counted from the built model; agrees with :func:`count_params`."""
        total = sum(p.numel() for p in self.parameters())  # the tied head is wte: counted once
        embedding = self.wte.weight.numel() + self.wpe.weight.numel()
        return {"total": total, "embedding": embedding, "non_embedding": total - embedding}

    def compile_blocks(self) -> None:
        """``torch.compile`` each transformer block in place (the fused loss stays eager)."""
        for block in self.blocks:
            block.compile()

    def hidden(self, idx: torch.Tensor, cache: Optional[list[dict]] = None) -> torch.Tensor:
        """The final LayerNorm's output, (B, T, n_embd); with ``cache``, ``idx`` follows the cached positions."""
        past, T = (self.cached_tokens(cache) if cache is not None else 0), idx.shape[1]
        if past + T > self.config.block_size:
            if past:
                raise ValueError(
                    f"{past} cached + {T} new tokens exceed model.block_size = "
                    f"{self.config.block_size}; start a new cache from the last block_size tokens"
                )
            raise ValueError(f"a sequence of {T} tokens is longer than model.block_size = {self.config.block_size}")
        pos = torch.arange(past, past + T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block, layer_cache in zip(self.blocks, cache if cache is not None else [None] * len(self.blocks)):
            x = block(x, layer_cache)
        return self.ln_f(x)

    def new_cache(self) -> list[dict]:
        """An empty key/value cache for :meth:`next_logits`: one dict per layer."""
        return [{} for _ in self.blocks]

    def cached_tokens(self, cache: list[dict]) -> int:
        """How many positions ``cache`` holds."""
        return int(cache[0]["k"].shape[2]) if cache and "k" in cache[0] else 0

    @torch.no_grad()
    def next_logits(self, idx: torch.Tensor, cache: list[dict]) -> torch.Tensor:
        """Logits (B, vocab) of the token after ``idx``, reusing and extending ``cache``.

        With an empty cache ``idx`` (B, T) is the whole context; afterwards pass
        only the newest token (B, 1).  Cached positions plus new ones must fit
        in ``block_size``: when a context outgrows it, start a new cache from
        its last ``block_size`` tokens (what an uncached forward over the
        cropped context computes).  Same numbers as ``forward`` up to rounding.
        """
        return self.hidden(idx, cache)[:, -1, :] @ self.wte.weight.t()

    def forward(self, idx: torch.Tensor, targets: Optional[torch.Tensor] = None):
        """``(logits, loss)``.

        Without targets: logits (B, T, vocab), loss None.  With targets: the mean
        cross-entropy; when ``fused_loss`` is on the logits are never formed and
        come back as None.
        """
        x = self.hidden(idx)
        if targets is None:
            return x @ self.wte.weight.t(), None
        if self.fused_loss:
            head = self.head_dtype if torch.is_grad_enabled() else None
            return None, chunked_cross_entropy(x, self.wte.weight, targets, chunk=self.loss_chunk, matmul_dtype=head)
        logits = x @ self.wte.weight.t()
        return logits, F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))
