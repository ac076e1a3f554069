"""The GPT model: parameter counts, shapes, causality, and the fast loss paths against the plain ones."""

from __future__ import annotations

import math

import pytest
import torch
from gaplab.model.device import cpu_supports_bf16
from gaplab.model.fused_loss import chunked_cross_entropy, default_chunk
from gaplab.model.gpt import GPT, KVCache, LossOptions, count_params
from gaplab.schema import ModelConfig
from torch.nn import functional as F

pytestmark = pytest.mark.usefixtures("one_torch_thread")


GPT2_VOCAB = 50257

# Seed 003 ("ChromaDB SLM Training", 2025), "Model Parameters" row of each phase's Results table
# (/work/shared/seeds/003_*.txt lines 86, 386, 583, 934, 1354): (n_layer, n_head, n_embd, block_size) -> reported.
SEED_003 = {
    "phase0": ((6, 6, 384, 128), 29_995_392),
    "phase1": ((2, 2, 32, 16), 1_634_208),
    "phase2": ((3, 4, 64, 32), 3_368_576),
    "phase3": ((4, 4, 96, 64), 5_278_368),
    "phase4": ((4, 4, 128, 128), 7_242_624),
}


def _cfg(n_layer=2, n_head=2, n_embd=32, block_size=16, bias=True, dropout=0.0) -> ModelConfig:
    return ModelConfig(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=block_size, bias=bias, dropout=dropout)


def _model(vocab=97, seed=0, **kw) -> GPT:
    torch.manual_seed(seed)
    return GPT(_cfg(**kw), vocab)


# --------------------------------------------------------------------------- parameter counts
@pytest.mark.parametrize("phase", sorted(SEED_003))
def test_total_params_reproduce_seed_003(phase):
    """Convention: every parameter, token and position embeddings included, tied head once, biases on, vocab 50257."""
    (n_layer, n_head, n_embd, block), reported = SEED_003[phase]
    counts = count_params(_cfg(n_layer, n_head, n_embd, block, bias=True), GPT2_VOCAB)
    assert counts["total"] == reported


def test_other_counting_conventions_do_not_reproduce_the_seed():
    """Why the convention above: nanoGPT's get_num_params (minus position embeddings), no biases,
    or the padded vocabulary 50304 all miss seed 003's 7,242,624 for phase 4."""
    cfg = _cfg(4, 4, 128, 128)
    counts = count_params(cfg, GPT2_VOCAB)
    assert counts["total"] - 128 * 128 != 7_242_624
    assert count_params(_cfg(4, 4, 128, 128, bias=False), GPT2_VOCAB)["total"] != 7_242_624
    assert count_params(cfg, 50304)["total"] != 7_242_624


def test_phase4_breakdown_by_hand():
    # per block 12 d^2 + 13 d with d = 128: 198,272; 4 blocks + final LayerNorm (2d) = 793,344
    counts = count_params(_cfg(4, 4, 128, 128), GPT2_VOCAB)
    assert counts["non_embedding"] == 793_344
    assert counts["embedding"] == 50257 * 128 + 128 * 128 == 6_449_280
    assert counts["total"] == counts["embedding"] + counts["non_embedding"]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("sizes", [(1, 1, 8, 4), (2, 2, 32, 16), (3, 4, 64, 32)])
def test_analytic_count_equals_built_model(sizes, bias):
    n_layer, n_head, n_embd, block = sizes
    cfg = _cfg(n_layer, n_head, n_embd, block, bias=bias)
    built = GPT(cfg, 211).param_breakdown()
    assert built == count_params(cfg, 211)


def test_head_is_tied_to_token_embedding():
    model = _model()
    names = [n for n, _ in model.named_parameters()]
    assert not any("head" in n for n in names)
    x = torch.randint(97, (2, 8))
    logits = model(x)
    assert torch.allclose(logits, model.hidden(x) @ model.wte.weight.t())


def test_gpt2_init_scales_residual_projections():
    model = _model(n_layer=8, n_embd=128, n_head=4)
    assert model.blocks[0].attn.proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(16), rel=0.05)
    assert model.blocks[3].mlp.proj.weight.std().item() == pytest.approx(0.005, rel=0.05)
    assert model.blocks[0].mlp.fc.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.wte.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert float(model.blocks[0].attn.qkv.bias.detach().abs().max()) == 0.0


# --------------------------------------------------------------------------- forward
def test_forward_returns_the_logits_or_the_loss():
    model = _model(vocab=50)
    x = torch.randint(50, (3, 16))
    assert model(x).shape == (3, 16, 50)  # no targets: the logits
    fused, plain = model(x, x), model(x, x, LossOptions(fused=False))  # targets: the mean loss, either way
    assert fused.shape == () and plain.shape == () and fused.item() == pytest.approx(plain.item(), abs=1e-5)
    assert not hasattr(model, "fused_loss") and not hasattr(model, "head_dtype")  # options are not settings


def test_initial_loss_is_log_vocab():
    """GPT-2 init gives near-zero logits, so the first loss is about ln(vocab) (uniform guessing)."""
    model = _model(vocab=500)
    x = torch.randint(500, (4, 16))
    loss = model(x, torch.randint(500, (4, 16)))
    assert loss.item() == pytest.approx(math.log(500), abs=0.05)


def test_too_long_sequence_is_refused():
    with pytest.raises(ValueError, match="block_size = 16"):
        _model()(torch.zeros(1, 17, dtype=torch.long))


def test_heads_must_divide_width():
    with pytest.raises(ValueError, match="n_embd = 30 must be a multiple of model.n_head = 4"):
        GPT(ModelConfig.model_construct(**{**ModelConfig().model_dump(), "n_embd": 30, "n_head": 4}), 10)


def test_attention_is_causal():
    model = _model(vocab=60).eval()
    x = torch.randint(60, (2, 16))
    y = x.clone()
    y[:, 9] = (y[:, 9] + 1) % 60
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.equal(a[:, :9], b[:, :9])  # earlier positions cannot see token 9
    assert not torch.allclose(a[:, 9:], b[:, 9:])


# --------------------------------------------------------------------------- fast paths vs plain
def _fused_vs_full_logits(seed, vocab, d, n, scale, **kw):
    """``(ref, gh, gw, got, h, w)``: the full-logits loss and its gradients, then the fused loss (grads in h, w)."""
    torch.manual_seed(seed)
    h = torch.randn(n, d, requires_grad=True)
    w = (scale * torch.randn(vocab, d)).requires_grad_()
    t = torch.randint(vocab, (n,))
    ref = F.cross_entropy(h @ w.t(), t)
    ref.backward()
    gh, gw = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    got = chunked_cross_entropy(h, w, t, **kw)
    got.backward()
    return ref, gh, gw, got, h, w


@pytest.mark.parametrize("chunk", [7, 64, 1000])
def test_chunked_cross_entropy_matches_full_logits(chunk):
    ref, gh, gw, got, h, w = _fused_vs_full_logits(1, vocab=300, d=16, n=150, scale=0.5, chunk=chunk)
    assert got.item() == pytest.approx(ref.item(), abs=1e-5)
    assert torch.allclose(h.grad, gh, atol=1e-6, rtol=1e-4)
    assert torch.allclose(w.grad, gw, atol=1e-6, rtol=1e-4)


def test_chunked_cross_entropy_known_value():
    """Uniform logits (zero hidden) give exactly ln(vocab)."""
    h = torch.zeros(5, 4)
    w = torch.randn(10, 4)
    assert chunked_cross_entropy(h, w, torch.arange(5), chunk=2).item() == pytest.approx(math.log(10), abs=1e-6)


def test_chunked_cross_entropy_without_grad_and_3d_inputs():
    torch.manual_seed(2)
    h, w, t = torch.randn(2, 5, 8), torch.randn(40, 8), torch.randint(40, (2, 5))
    with torch.no_grad():
        got = chunked_cross_entropy(h, w, t, chunk=3)
    assert got.item() == pytest.approx(F.cross_entropy((h @ w.t()).view(-1, 40), t.view(-1)).item(), abs=1e-5)
    with pytest.raises(ValueError, match="targets hold 3 ids for 10 positions"):
        chunked_cross_entropy(h, w, torch.arange(3))


def test_default_chunk_bounds_logits_memory():
    assert default_chunk(50257) * 50257 <= (1 << 23)
    assert default_chunk(10**9) == 32


def test_fused_model_loss_and_grads_match_plain_path():
    model = _model(vocab=123, n_layer=2, n_embd=32)
    x, y = torch.randint(123, (4, 16)), torch.randint(123, (4, 16))
    plain = model(x, y, LossOptions(fused=False))
    plain.backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    fused = model(x, y, LossOptions(fused=True))
    fused.backward()
    assert fused.item() == pytest.approx(plain.item(), abs=1e-5)
    for n, p in model.named_parameters():
        assert torch.allclose(p.grad, ref[n], atol=1e-6, rtol=1e-4), n


@pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no working bf16 matmuls")
def test_bf16_head_and_bf16_autocast_stay_close_to_fp32():
    model = _model(vocab=500, n_layer=2, n_embd=64)
    x, y = torch.randint(500, (4, 16)), torch.randint(500, (4, 16))
    ref = model(x, y)
    ref.backward()
    ref_grad = model.wte.weight.grad.clone()
    model.zero_grad(set_to_none=True)
    bf16_head = LossOptions(head_dtype=torch.bfloat16)
    head_bf16 = model(x, y, bf16_head)
    head_bf16.backward()
    assert head_bf16.item() == pytest.approx(ref.item(), abs=2e-3)
    rel = (model.wte.weight.grad - ref_grad).norm() / ref_grad.norm()
    assert rel.item() < 0.02
    with torch.no_grad():  # head_dtype applies to training only: evaluation is exact fp32
        evaluated = model(x, y, bf16_head)
    assert evaluated.item() == pytest.approx(ref.item(), abs=1e-6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        auto = model(x, y)
    assert auto.item() == pytest.approx(ref.item(), abs=2e-2)


def test_chunked_cross_entropy_survives_an_underflowing_target():
    """A target ~200 nats below the best logit: its softmax probability is 0 in fp32, the loss is still exact."""
    h = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    w = torch.tensor([[200.0, 0.0], [0.0, 0.0], [0.0, 3.0]])
    t = torch.tensor([1, 2])
    got = chunked_cross_entropy(h, w, t, chunk=1)
    ref = F.cross_entropy(h @ w.t(), t)
    assert math.isfinite(got.item()) and got.item() == pytest.approx(ref.item(), rel=1e-6)
    assert got.item() == pytest.approx((200.0 + math.log(1 + 2 * math.exp(-200.0)) + math.log(2 + math.exp(3)) - 3) / 2)
    got.backward()
    with pytest.raises(RuntimeError, match="one backward pass"):
        got2 = chunked_cross_entropy(h, w, t)
        got2.backward(retain_graph=True)
        got2.backward()


@pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU has no working bf16 matmuls")
def test_bf16_head_with_a_large_vocabulary_in_several_chunks_and_sub_blocks():
    """70,000 ids: the fp32 softmax runs in 29-row blocks inside 64-row chunks."""
    ref, gh, gw, got, h, w = _fused_vs_full_logits(
        3, vocab=70_000, d=8, n=150, scale=0.3, chunk=64, matmul_dtype=torch.bfloat16
    )
    assert got.item() == pytest.approx(ref.item(), abs=5e-3)
    assert ((h.grad - gh).norm() / gh.norm()).item() < 0.02
    assert ((w.grad - gw).norm() / gw.norm()).item() < 0.02


def test_cached_next_logits_match_the_full_forward_at_every_step():
    model = _model(vocab=60).eval()
    ids = torch.randint(60, (2, 16))
    cache = model.new_cache()
    assert isinstance(cache, KVCache) and cache.positions == 0
    got = [model.next_logits(ids[:, :5], cache)]  # the prompt at once
    for t in range(5, 16):
        assert cache.positions == t
        assert all(k.shape == (2, 2, t, 16) for k in cache.keys + cache.values)  # (batch, heads, positions, size)
        got.append(model.next_logits(ids[:, t : t + 1], cache))  # then one token at a time
    with torch.no_grad():
        full = model(ids)
    for step, logits in enumerate(got):
        torch.testing.assert_close(logits, full[:, 4 + step, :], rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="exceed model.block_size = 16"):
        model.next_logits(ids[:, :1], cache)  # 16 cached + 1 > block_size
    short = model.new_cache()
    model.next_logits(ids[:, :3], short)
    with pytest.raises(ValueError, match="one new token at a time"):
        model.next_logits(ids[:, 3:5], short)
