"""A plain nanoGPT-style training loop: the baseline that gaplab's trainer is measured against.

Written for this benchmark from the GPT-2 recipe (Radford et al. 2019) the way
most from-scratch tutorials do it, with no performance tricks: a standard
pre-LN GPT-2 block (``F.scaled_dot_product_attention``, tanh-GELU MLP), a head
tied to the token embedding that produces the full (B, T, vocab) fp32 logits,
``F.cross_entropy`` on them, PyTorch's default AdamW (matrices decay, biases
and norms do not), gradient clipping, batches cut at random offsets.

Its parameters have the same shapes, in the same order, as
:class:`gaplab.model.gpt.GPT`'s, so the benchmark starts both from the very same
initial weights (:func:`load_weights_in_order`) and feeds both the same batches.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn import functional as F


class Attention(nn.Module):
    def __init__(self, d: int, n_head: int, bias: bool):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(d, 3 * d, bias=bias)
        self.c_proj = nn.Linear(d, d, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class FeedForward(nn.Module):
    def __init__(self, d: int, bias: bool):
        super().__init__()
        self.c_fc = nn.Linear(d, 4 * d, bias=bias)
        self.c_proj = nn.Linear(4 * d, d, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Layer(nn.Module):
    def __init__(self, d: int, n_head: int, bias: bool):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, bias=bias)
        self.attn = Attention(d, n_head, bias)
        self.ln_2 = nn.LayerNorm(d, bias=bias)
        self.mlp = FeedForward(d, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class ReferenceGPT(nn.Module):
    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int, bias: bool = True):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.h = nn.ModuleList(Layer(n_embd, n_head, bias) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd, bias=bias)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for layer in self.h:
            x = layer(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss


def load_weights_in_order(model: nn.Module, tensors: list[torch.Tensor]) -> None:
    """Copy ``tensors`` into ``model``'s parameters, matched by order and checked by shape."""
    params = list(model.parameters())
    if len(params) != len(tensors):
        raise ValueError(f"{len(tensors)} tensors for {len(params)} parameters")
    with torch.no_grad():
        for p, t in zip(params, tensors):
            if p.shape != t.shape:
                raise ValueError(f"shape {tuple(t.shape)} for a parameter of shape {tuple(p.shape)}")
            p.copy_(t)


def make_optimizer(model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float]) -> torch.optim.AdamW:
    params = list(model.parameters())
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def get_batch(data: torch.Tensor, block_size: int, batch_size: int, gen: torch.Generator):
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=gen)
    x = torch.stack([data[i : i + block_size] for i in ix.tolist()])
    y = torch.stack([data[i + 1 : i + 1 + block_size] for i in ix.tolist()])
    return x, y


def train_step(
    model: ReferenceGPT, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, grad_clip: float
) -> float:
    _, loss = model(x, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


@torch.no_grad()
def evaluate(model: ReferenceGPT, data: torch.Tensor, offsets: torch.Tensor, block_size: int, batch_size: int) -> float:
    model.eval()
    total, count = 0.0, 0
    for s in range(0, len(offsets), batch_size):
        ix = offsets[s : s + batch_size].tolist()
        x = torch.stack([data[i : i + block_size] for i in ix])
        y = torch.stack([data[i + 1 : i + 1 + block_size] for i in ix])
        _, loss = model(x, y)
        total += loss.item() * len(ix)
        count += len(ix)
    model.train()
    return total / count


# --------------------------------------------------------------------------- the whole process
def main(argv=None) -> int:
    """One whole training process the plain way: read a standard-library package's files, tokenize them with
    GPT-2's tokenizer (the faithful 50,257-token vocabulary), train ``--iters`` steps with an evaluation of
    ``--eval-iters`` batches per split before the first and after the last step, save a checkpoint.

    What ``benchmarks/bench_startup.py`` times against ``gaplab train`` (the same sizes, steps and evals).
    """
    import argparse
    import sysconfig
    import time
    from pathlib import Path

    ap = argparse.ArgumentParser(description=main.__doc__.split("\n\n")[0])
    ap.add_argument("--package", default="turtledemo")
    ap.add_argument("--iters", type=int, default=60)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--block", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--eval-iters", type=int, default=20)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)

    from gaplab.data.tokenizer import get_tokenizer  # GPT-2's ranks, provisioned offline by `gaplab tokenizer fetch`

    root = Path(sysconfig.get_paths()["stdlib"]) / args.package
    text = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.py")))
    tok = get_tokenizer("gpt2")
    data = torch.tensor(tok.encode(text), dtype=torch.long)
    n_val = len(data) // 10
    train, val = data[:-n_val], data[-n_val:]
    torch.manual_seed(1337)
    model = ReferenceGPT(tok.vocab_size, args.block, args.n_layer, args.n_head, args.n_embd)
    optimizer = make_optimizer(model, args.lr, 0.01, (0.9, 0.95))
    gen = torch.Generator().manual_seed(1337)
    fixed = torch.Generator().manual_seed(1338)
    offsets = {
        name: torch.randint(len(d) - args.block - 1, (args.eval_iters * args.batch,), generator=fixed)
        for name, d in (("train", train), ("val", val))
    }
    start = time.perf_counter()

    def evaluate_both() -> dict:
        return {
            name: evaluate(model, d, offsets[name], args.block, args.batch)
            for name, d in (("train", train), ("val", val))
        }

    try:  # seconds from the process's start to its first evaluation (its start-up), for the benchmark
        import psutil

        print(f"FIRST_EVAL_S {time.time() - psutil.Process().create_time():.3f}", flush=True)
    except ImportError:
        pass
    first = evaluate_both()
    for _ in range(args.iters):
        x, y = get_batch(train, args.block, args.batch, gen)
        train_step(model, optimizer, x, y, grad_clip=1.0)
    last = evaluate_both()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, out / "last.pt")
    print(
        f"plain loop: {args.iters} iters in {time.perf_counter() - start:.1f} s; val {first['val']:.3f} -> "
        f"{last['val']:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
