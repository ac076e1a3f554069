"""The tied head's training loss, computed a chunk of rows at a time (never the full logits).

With GPT-2's 50,257-token vocabulary the logits (tokens x vocabulary) dominate the time and memory of a
small model.  :func:`chunked_cross_entropy` returns the same value and gradients as
``F.cross_entropy(hidden @ weight.T, targets)`` (up to float rounding) with at most one chunk of logits
alive; its softmax, loss and gradient sums are fp32 whatever the precision of its three matmuls.
"""

from __future__ import annotations

from typing import Optional

import torch

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
            raise RuntimeError(
                "chunked_cross_entropy supports one backward pass per forward; "
                "use the plain loss (fused_loss = False) for retain_graph"
            )
        grad_h, grad_w = ctx.grads
        ctx.grads = None
        scale = grad_out.float()
        return grad_h.mul_(scale.to(grad_h.dtype)), grad_w.mul_(scale).to(ctx.weight_dtype), None, None, None, None


def chunked_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    chunk: Optional[int] = None,
    matmul_dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
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


@torch.no_grad()
def token_losses(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: Optional[int] = None
) -> torch.Tensor:
    """Per-token cross-entropy (nats, fp32) of the tied head ``hidden @ weight.T``, ``chunk`` rows at a time.

    The evaluation's loss: the same numbers as ``F.cross_entropy(..., reduction="none")``, shaped like
    ``targets``, with at most one chunk of logits alive.
    """
    flat_h = hidden.reshape(-1, hidden.shape[-1])
    flat_t = targets.reshape(-1)
    rows = max(1, int(chunk or default_chunk(weight.shape[0])))
    w = weight.float()
    out = torch.empty(flat_t.shape[0], dtype=torch.float32, device=hidden.device)
    for s in range(0, flat_h.shape[0], rows):
        logits = flat_h[s : s + rows].float() @ w.t()
        out[s : s + rows] = torch.logsumexp(logits, dim=1) - logits.gather(1, flat_t[s : s + rows, None]).squeeze(1)
    return out.view(targets.shape)
