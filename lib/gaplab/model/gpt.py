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

As in nanochat, ``forward`` returns the logits without targets and the loss
with them; how the loss is computed (:class:`LossOptions`) is an argument of
``forward``, not a setting of the model.  Generation reuses the keys and
values of earlier positions through a :class:`KVCache`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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


@dataclass(frozen=True)
class LossOptions:
    """How ``GPT.forward`` computes the training loss (the trainer builds one from ``train.*``)."""

    #: compute the loss with :func:`chunked_cross_entropy` (the full logits are never formed)
    fused: bool = True
    #: precision of the head's matmuls in the fused loss while gradients are on (None: the model's)
    head_dtype: Optional[torch.dtype] = None
    #: rows of logits per chunk in the fused loss (None: :func:`gaplab.model.fused_loss.default_chunk`)
    chunk: Optional[int] = None


class KVCache:
    """The keys and values of the positions seen so far, one pair per layer (generation only).

    Empty, the next forward pass is the prompt; filled, it is one new token, which attends to every cached
    position.  ``positions`` counts what it holds.
    """

    def __init__(self, n_layer: int):
        self.keys: list[Optional[torch.Tensor]] = [None] * n_layer
        self.values: list[Optional[torch.Tensor]] = [None] * n_layer

    @property
    def positions(self) -> int:
        return 0 if self.keys[0] is None else int(self.keys[0].shape[2])

    def extend(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this pass's keys and values (B, heads, T, head size) to ``layer``'s; return them all."""
        if self.keys[layer] is not None:
            k, v = torch.cat([self.keys[layer], k], dim=2), torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int = 0):
        super().__init__()
        if cfg.n_embd % cfg.n_head:
            raise ValueError(f"model.n_embd = {cfg.n_embd} must be a multiple of model.n_head = {cfg.n_head}")
        self.layer = layer  # its index in the model: where its keys and values go in a KVCache
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cache: Optional[KVCache] = None) -> torch.Tensor:
        """Causal self-attention over ``x`` (B, T, C).

        ``cache`` (generation only) keeps every layer's keys and values.  Empty,
        ``x`` is the prompt and is attended causally; filled, ``x`` must be the
        one next token, which attends to everything cached.
        """
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        causal = True
        if cache is not None:
            if cache.keys[self.layer] is not None:
                if T != 1:
                    raise ValueError(f"a filled attention cache takes one new token at a time, got {T}")
                causal = False  # the one new query may see every cached position
            k, v = cache.extend(self.layer, k, v)
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
    def __init__(self, cfg: ModelConfig, layer: int = 0):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg, layer)
        self.ln2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cache: Optional[KVCache] = None) -> torch.Tensor:
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
        self.blocks = nn.ModuleList(Block(cfg, layer) for layer in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
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

    def hidden(self, idx: torch.Tensor, cache: Optional[KVCache] = None) -> torch.Tensor:
        """The final LayerNorm's output, (B, T, n_embd); with ``cache``, ``idx`` follows the cached positions."""
        past, T = (cache.positions if cache is not None else 0), idx.shape[1]
        if past + T > self.config.block_size:
            if past:
                raise ValueError(
                    f"{past} cached + {T} new tokens exceed model.block_size = "
                    f"{self.config.block_size}; start a new cache from the last block_size tokens"
                )
            raise ValueError(f"a sequence of {T} tokens is longer than model.block_size = {self.config.block_size}")
        pos = torch.arange(past, past + T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.blocks:
            x = block(x, cache)
        return self.ln_f(x)

    def new_cache(self) -> KVCache:
        """An empty key/value cache for :meth:`next_logits`."""
        return KVCache(len(self.blocks))

    @torch.no_grad()
    def next_logits(self, idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Logits (B, vocab) of the token after ``idx``, reusing and extending ``cache``.

        With an empty cache ``idx`` (B, T) is the whole context; afterwards pass
        only the newest token (B, 1).  Cached positions plus new ones must fit
        in ``block_size``: when a context outgrows it, start a new cache from
        its last ``block_size`` tokens (what an uncached forward over the
        cropped context computes).  Same numbers as ``forward`` up to rounding.
        """
        return self.hidden(idx, cache)[:, -1, :] @ self.wte.weight.t()

    def forward(
        self, idx: torch.Tensor, targets: Optional[torch.Tensor] = None, loss_options: LossOptions = LossOptions()
    ) -> torch.Tensor:
        """Without ``targets`` the logits (B, T, vocab); with them the mean cross-entropy (a scalar).

        ``loss_options`` say how the loss is computed: fused (the logits are never formed, the head's matmuls
        in ``head_dtype`` while gradients are on) or from the full logits in fp32.
        """
        x = self.hidden(idx)
        if targets is None:
            return x @ self.wte.weight.t()
        if loss_options.fused:
            head = loss_options.head_dtype if torch.is_grad_enabled() else None
            return chunked_cross_entropy(x, self.wte.weight, targets, chunk=loss_options.chunk, matmul_dtype=head)
        logits = x @ self.wte.weight.t()
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))
