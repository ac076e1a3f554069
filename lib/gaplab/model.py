"""A GPT-2-style decoder, kept as plain as nanoGPT's model.py.

Pre-LayerNorm blocks, causal self-attention through
``F.scaled_dot_product_attention``, a GELU MLP (4x), learned position
embeddings, a final LayerNorm and an output head tied to the token embedding.

Parameter counting follows Kaplan et al. (2020, "Scaling Laws for Neural
Language Models"): *non-embedding* parameters exclude the token and the
position embeddings.  Because the head is tied, its weights are the token
embedding and are counted once.

The one clever piece, :func:`chunked_cross_entropy`, computes the tied head's
cross-entropy a slice of rows at a time, so the full (tokens x vocabulary)
logits are never held in memory at once — with GPT-2's 50,257-token
vocabulary those logits dominate the time and memory of a small model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int = 64
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 64
    dropout: float = 0.0
    bias: bool = True

    @classmethod
    def from_model_config(cls, model_cfg: Any, vocab_size: int) -> "GPTConfig":
        return cls(vocab_size=vocab_size, block_size=model_cfg.block_size, n_layer=model_cfg.n_layer,
                   n_head=model_cfg.n_head, n_embd=model_cfg.n_embd, dropout=model_cfg.dropout,
                   bias=model_cfg.bias)


def count_params(model_cfg: Any, vocab_size: int) -> dict[str, int]:
    """Total, embedding and non-embedding parameters, computed from the sizes alone.

    Per block: two LayerNorms (weight, and bias if ``bias``), attention
    (qkv: d x 3d, proj: d x d), MLP (d x 4d, 4d x d); plus a final LayerNorm.
    Embedding: vocab x d (token, shared with the head) + block x d (position).
    """
    d, L, b = model_cfg.n_embd, model_cfg.n_layer, 1 if model_cfg.bias else 0
    ln = d + b * d
    attn = d * 3 * d + b * 3 * d + d * d + b * d
    mlp = d * 4 * d + b * 4 * d + 4 * d * d + b * d
    non_embedding = L * (2 * ln + attn + mlp) + ln
    embedding = vocab_size * d + model_cfg.block_size * d
    return {"total": non_embedding + embedding, "embedding": embedding, "non_embedding": non_embedding}


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.resid_drop(self.proj(y.transpose(1, 2).contiguous().view(B, T, C)))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class _FusedTiedCE(torch.autograd.Function):
    """Mean cross-entropy of ``hidden @ weight.T`` against ``targets``, ``chunk`` rows at a time.

    Because the loss is the end of the graph, its gradients with respect to
    ``hidden`` and ``weight`` are formed in the forward pass, chunk by chunk
    (``softmax - onehot``), and only scaled in backward.  No chunk of logits
    outlives its loop step: peak extra memory is ``chunk x vocab``, not
    ``rows x vocab``.  ``matmul_dtype`` (e.g. bfloat16) sets the precision of
    the three head matmuls; the softmax and the sums stay in float32.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk: int, with_grad: bool, matmul_dtype):
        n = hidden.shape[0]
        mm = matmul_dtype or hidden.dtype
        h_all, w = hidden.to(mm), weight.to(mm)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_h = torch.empty_like(hidden) if with_grad else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if with_grad else None
        for s in range(0, n, chunk):
            h, t = h_all[s:s + chunk], targets[s:s + chunk]
            logits = (h @ w.t()).float()
            picked = logits.gather(1, t[:, None]).squeeze(1)
            top = logits.amax(dim=1, keepdim=True)
            probs = logits.sub_(top).exp_()  # in place: one chunk of logits becomes unnormalised probabilities
            norm = probs.sum(dim=1, keepdim=True)
            total += (top.squeeze(1) + norm.squeeze(1).log() - picked).sum()
            if with_grad:
                g = probs.div_(norm)
                g[torch.arange(g.shape[0], device=g.device), t] -= 1.0
                g = g.to(mm)
                grad_h[s:s + chunk] = (g @ w).to(hidden.dtype)
                grad_w += (g.t() @ h).float()
        if with_grad:
            ctx.save_for_backward(grad_h, grad_w)
        ctx.n, ctx.weight_dtype = n, weight.dtype
        return total / n

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        scale = grad_out / ctx.n
        return grad_h * scale.to(grad_h.dtype), (grad_w * scale).to(ctx.weight_dtype), None, None, None, None


def chunked_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                          chunk: Optional[int] = None, matmul_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Cross-entropy of the tied head without materialising full logits (see :class:`_FusedTiedCE`)."""
    vocab = weight.shape[0]
    chunk = chunk or max(64, (1 << 24) // vocab)  # ~16 M logits (64 MB in float32) per chunk
    with_grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    return _FusedTiedCE.apply(hidden.reshape(-1, hidden.shape[-1]), weight, targets.reshape(-1), chunk,
                              with_grad, matmul_dtype)


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.fused_loss = True  # use chunked_cross_entropy when targets are given
        self.head_dtype: Optional[torch.dtype] = None  # e.g. torch.bfloat16 for the head matmuls
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2: scaled init of residual projections
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def param_breakdown(self) -> dict[str, int]:
        total = sum(p.numel() for p in self.parameters())  # the tied head is the token embedding
        embedding = self.wte.weight.numel() + self.wpe.weight.numel()
        return {"total": total, "embedding": embedding, "non_embedding": total - embedding}

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        if T > self.config.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than block_size {self.config.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def forward(self, idx: torch.Tensor, targets: Optional[torch.Tensor] = None):
        """``(logits, loss)``; with targets and ``fused_loss`` the logits are not formed (None)."""
        x = self.hidden(idx)
        if targets is None:
            return x @ self.wte.weight.t(), None
        if self.fused_loss:
            return None, chunked_cross_entropy(x, self.wte.weight, targets, matmul_dtype=self.head_dtype)
        logits = x @ self.wte.weight.t()
        return logits, F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))
