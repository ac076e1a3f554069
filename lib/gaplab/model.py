"""A GPT-2-style decoder, kept as plain as nanoGPT's model.py.

Pre-LayerNorm blocks, causal self-attention through
``F.scaled_dot_product_attention``, a GELU MLP (4x), learned position
embeddings, a final LayerNorm and an output head tied to the token embedding
(Radford et al. 2019, "Language Models are Unsupervised Multitask Learners";
tying: Press & Wolf 2017).  Initialisation as GPT-2: normal(0, 0.02), residual
output projections scaled by 1/sqrt(2 * n_layer).

Parameter counting (:func:`count_params`) follows Kaplan et al. (2020,
"Scaling Laws for Neural Language Models"): *non-embedding* parameters exclude
the token AND the position embeddings; the tied head is the token embedding
and is counted once.  ``total`` counts every parameter, embeddings included,
which is the convention seed 003 reports (29,995,392 for 6/6/384 at block 128
with GPT-2's 50,257-token vocabulary and biases on).

The one clever piece, :func:`chunked_cross_entropy`, computes the tied head's
cross-entropy a slice of rows at a time, so the full (tokens x vocabulary)
logits are never held in memory at once; with GPT-2's vocabulary those logits
dominate the time and memory of a small model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
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
        """From a :class:`gaplab.config.ModelConfig` (or anything with the same fields)."""
        return cls(vocab_size=int(vocab_size), block_size=model_cfg.block_size, n_layer=model_cfg.n_layer,
                   n_head=model_cfg.n_head, n_embd=model_cfg.n_embd, dropout=model_cfg.dropout,
                   bias=model_cfg.bias)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    def __init__(self, cfg: GPTConfig):
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
        drop = self.dropout if self.training else 0.0
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # CPU bf16 autocast: attention itself stays fp32 (its bf16 backward is several times slower on CPU)
            with torch.autocast("cpu", enabled=False):
                y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=causal, dropout_p=drop)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=drop)
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

    def forward(self, x: torch.Tensor, cache: Optional[dict] = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), cache)
        return x + self.mlp(self.ln2(x))


# --------------------------------------------------------------------------- the fused tied-head loss
#: logits per chunk of the fused loss (8 M: 16 MB in bf16, 32 MB in fp32)
CHUNK_LOGITS = 1 << 23
#: logits per fp32 softmax block on CPU (2 M: 8 MB, about an L3 cache slice)
BLOCK_LOGITS = 1 << 21


def default_chunk(vocab_size: int) -> int:
    """Rows per chunk: about :data:`CHUNK_LOGITS` logits at a time, at least 32 rows."""
    return max(32, CHUNK_LOGITS // max(1, vocab_size))


def _softmax_rows_(x: torch.Tensor) -> torch.Tensor:
    """Row softmax of a 2-D fp32 tensor, in place (ATen's row-blocked kernel, no extra buffer on CPU)."""
    if x.device.type == "cpu":
        try:
            return torch.ops.aten._softmax.out(x, 1, False, out=x)
        except (RuntimeError, AttributeError):  # pragma: no cover - older/other builds
            pass
    return x.copy_(torch.softmax(x, dim=1))


class _TiedHeadCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``hidden @ weight.T`` against ``targets``, ``chunk`` rows at a time.

    The loss is the end of the graph, so its gradients are formed in the
    forward pass, chunk by chunk (``softmax - onehot`` times ``weight`` and
    times ``hidden``), and only scaled in ``backward``.  One chunk-sized logits
    buffer (in ``mm_dtype``, the precision of the three matmuls) is reused for
    every chunk; the softmax, the loss and the gradient sums are fp32, done a
    few rows at a time in a small fp32 scratch buffer when ``mm_dtype`` is
    lower.  Extra memory: ``chunk x vocab`` logits, never ``rows x vocab``.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk: int, mm_dtype: torch.dtype, need_grad: bool):
        n, d = hidden.shape
        vocab = weight.shape[0]
        rows = max(1, min(chunk, n))
        dev = hidden.device
        exact = mm_dtype == torch.float32
        # On CPU the fp32 work happens `sub` rows at a time (BLOCK_LOGITS, cache-sized); in place on the
        # logits when they are fp32.  Elsewhere one pass per chunk (fewer kernel launches and syncs).
        small = dev.type == "cpu" and not (exact and need_grad)
        sub = max(8, min(rows, BLOCK_LOGITS // vocab)) if small else rows
        h_all, w = hidden.to(mm_dtype), weight.to(mm_dtype)
        low = torch.empty(rows, vocab, dtype=mm_dtype, device=dev)  # logits, then gradients
        scratch = None if exact else torch.empty(sub, vocab, dtype=torch.float32, device=dev)
        loss_sum = torch.zeros((), dtype=torch.float32, device=dev)
        if need_grad:
            grad_h = torch.empty(n, d, dtype=hidden.dtype, device=dev)
            grad_w = torch.zeros(vocab, d, dtype=torch.float32, device=dev)
            part = None if exact else torch.empty(vocab, d, dtype=mm_dtype, device=dev)
        for s in range(0, n, rows):
            e = min(s + rows, n)
            h, t = h_all[s:e], targets[s:e, None]
            lg = torch.mm(h, w.t(), out=low[: e - s])
            for a in range(0, e - s, sub):
                b = min(a + sub, e - s)
                p = lg[a:b] if exact else scratch[: b - a].copy_(lg[a:b])
                tt = t[a:b]
                if not need_grad:  # loss only: log-sum-exp minus the target's logit
                    loss_sum += (torch.logsumexp(p, dim=1) - p.gather(1, tt).squeeze(1)).sum()
                    continue
                _softmax_rows_(p)
                picked = p.gather(1, tt).squeeze(1)
                row_loss = -torch.log(picked)
                tiny = picked < 1e-30  # the target's probability underflowed: recompute those rows exactly
                if bool(tiny.any()):
                    lt = (h[a:b][tiny] @ w.t()).float()
                    row_loss[tiny] = torch.logsumexp(lt, dim=1) - lt.gather(1, tt[tiny]).squeeze(1)
                loss_sum += row_loss.sum()
                p.scatter_add_(1, tt, torch.full(tt.shape, -1.0, dtype=p.dtype, device=dev))  # softmax - onehot
                if not exact:
                    lg[a:b].copy_(p)
            if need_grad:
                grad_h[s:e] = lg @ w
                if part is None:
                    grad_w.addmm_(lg.t(), h)
                else:
                    grad_w += torch.mm(lg.t(), h, out=part)
        # Intermediate results, kept on ctx (not save_for_backward) so that backward can hand them over:
        # autograd then adds the embedding's gradient into grad_w in place instead of into a third copy.
        ctx.grads = (grad_h.div_(n), grad_w.div_(n)) if need_grad else None
        ctx.weight_dtype = weight.dtype
        return loss_sum / n

    @staticmethod
    def backward(ctx, grad_out):
        if ctx.grads is None:
            raise RuntimeError("chunked_cross_entropy supports one backward pass per forward; "
                               "use the plain loss (fused_loss = False) for retain_graph")
        grad_h, grad_w = ctx.grads
        ctx.grads = None
        scale = grad_out.float()
        return grad_h.mul_(scale.to(grad_h.dtype)), grad_w.mul_(scale).to(ctx.weight_dtype), None, None, None, None


def chunked_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                          chunk: Optional[int] = None, matmul_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Mean cross-entropy of the tied head ``hidden @ weight.T`` without materialising all logits.

    ``hidden``: (..., d); ``weight``: (vocab, d); ``targets``: (...) ids.
    Same value and gradients as ``F.cross_entropy(hidden @ weight.T, targets)``
    (up to float rounding) with at most ``chunk`` rows of logits alive.
    ``matmul_dtype`` (e.g. ``torch.bfloat16``) sets the matmuls' precision; by
    default it is the autocast dtype when autocast is on, else ``hidden``'s.
    """
    device_type = hidden.device.type
    if matmul_dtype is None:
        autocast_on = torch.is_autocast_enabled(device_type)
        matmul_dtype = torch.get_autocast_dtype(device_type) if autocast_on else hidden.dtype
    chunk = int(chunk or default_chunk(weight.shape[0]))
    need_grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    flat_h = hidden.reshape(-1, hidden.shape[-1])
    flat_t = targets.reshape(-1)
    if flat_t.shape[0] != flat_h.shape[0]:
        raise ValueError(f"targets hold {flat_t.shape[0]} ids for {flat_h.shape[0]} positions")
    with torch.autocast(device_type=device_type, enabled=False):
        return _TiedHeadCrossEntropy.apply(flat_h, weight, flat_t, chunk, matmul_dtype, need_grad)


# --------------------------------------------------------------------------- the model
class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
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
                raise ValueError(f"{past} cached + {T} new tokens exceed model.block_size = "
                                 f"{self.config.block_size}; start a new cache from the last block_size tokens")
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
