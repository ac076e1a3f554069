"""Devices and precision: ``auto`` (cuda > mps > cpu) or a named device; fp32, bf16, fp16.

What ``train.dtype: auto`` means, per device:

- **CUDA**: bf16 autocast where the GPU supports bf16, else fp32.  ``fp16`` is
  allowed on CUDA only and uses a ``GradScaler``.
- **MPS**: always fp32 (bf16/fp16 on MPS are not tested here).
- **CPU**: on CPUs with native bf16 matmul instructions (AVX-512 BF16 or
  AMX), models at least 128 wide (``n_embd``) train under bf16 autocast
  (linear layers in bf16; the residual stream, attention, softmax, loss,
  LayerNorm and the optimizer stay fp32); narrower
  models train in fp32, with only the tied output head's three large matmuls
  in bf16 when the vocabulary has at least 8,192 ids
  (:func:`head_matmul_dtype`).  Everywhere else on CPU: fp32.  Evaluations
  (the losses in ``history.csv``) are fp32 on CPU whatever the training dtype.
  ``bench_train.py --precision`` (``benchmarks/results/train_cpu_precision.md``)
  checked that these choices keep the loss curves of runs that overfit within
  run-to-run noise of all-fp32 training, and ``benchmarks/results/train_cpu.md``
  that they are faster; below the thresholds they are not.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import sys
from typing import Optional

import torch
from torch.nn import functional as F

from ..errors import UsageError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceError(UsageError):
    """A device or precision that this machine cannot provide."""


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; a named device must exist here."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError):
        raise DeviceError(
            f"train.device = {spec!r}: not a device name; allowed: auto, cpu, cuda, cuda:N, mps"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"train.device = {spec!r}: CUDA is not available here; allowed: auto or cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"train.device = {spec!r}: this machine has {torch.cuda.device_count()} CUDA "
                f"device(s); allowed: cuda:0 .. cuda:{torch.cuda.device_count() - 1}"
            )
    elif dev.type == "mps":
        if not _mps_available():
            raise DeviceError(f"train.device = {spec!r}: Apple MPS is not available here; allowed: auto or cpu")
    elif dev.type != "cpu":
        raise DeviceError(f"train.device = {spec!r}: allowed: auto, cpu, cuda, cuda:N, mps")
    return dev


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU advertises native bf16 matmul instructions (AVX-512 BF16 or AMX-BF16; Linux only)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True when bf16 matmuls work on this CPU and agree with fp32 (oneDNN bf16 support + a tiny test)."""
    try:
        mkldnn_ok = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):
        mkldnn_ok = False
    if not mkldnn_ok:
        return False
    try:
        g = torch.Generator().manual_seed(0)
        a, b = torch.randn(16, 32, generator=g), torch.randn(32, 8, generator=g)
        got = (a.bfloat16() @ b.bfloat16()).float()
        return bool(torch.allclose(got, a @ b, rtol=0.05, atol=0.1))
    except RuntimeError:
        return False


#: ``auto`` on a CPU with native bf16 uses whole-model bf16 autocast from this width (n_embd) up; narrower
#: models spend about as much on casts as bf16 matmuls save (benchmarks/results/train_cpu.md).
BF16_AUTOCAST_MIN_WIDTH = 128


def resolve_dtype(spec: str, device: torch.device, n_embd: Optional[int] = None) -> torch.dtype:
    """The whole-model (autocast) dtype for ``train.dtype``; see the module docstring for ``auto``."""
    if spec not in ("auto", *DTYPES):
        raise DeviceError(f"train.dtype = {spec!r}: allowed: auto, fp32, bf16, fp16")
    if device.type == "mps":
        return torch.float32
    if spec == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if (
            device.type == "cpu"
            and n_embd is not None
            and n_embd >= BF16_AUTOCAST_MIN_WIDTH
            and cpu_has_native_bf16()
            and cpu_supports_bf16()
        ):
            return torch.bfloat16
        return torch.float32
    if spec == "fp16" and device.type != "cuda":
        raise DeviceError(f"train.dtype = 'fp16' needs CUDA (device here: {device}); allowed: auto, fp32, bf16")
    if spec == "bf16" and device.type == "cpu" and not cpu_supports_bf16():
        raise DeviceError("train.dtype = 'bf16': this CPU has no working bf16 matmuls; allowed: auto or fp32")
    return DTYPES[spec]


#: ``auto`` uses bf16 head matmuls on CPU only from this vocabulary size up, where the head dominates the
#: step; below it (compact vocabularies) the conversions cost about what bf16 saves, and fp32 is exact.
BF16_HEAD_MIN_VOCAB = 8192


def head_matmul_dtype(
    spec: str, device: torch.device, dtype: torch.dtype, vocab_size: Optional[int] = None
) -> Optional[torch.dtype]:
    """Precision of the tied head's training matmuls; ``None`` means "the model's own".

    With ``train.dtype: auto`` on a CPU with native bf16 instructions and a
    vocabulary of at least :data:`BF16_HEAD_MIN_VOCAB` ids this is bf16 (about
    twice the fp32 matmul throughput); otherwise the model's dtype.
    """
    if (
        spec == "auto"
        and device.type == "cpu"
        and (vocab_size is None or vocab_size >= BF16_HEAD_MIN_VOCAB)
        and cpu_has_native_bf16()
        and cpu_supports_bf16()
    ):
        return torch.bfloat16
    return None if dtype == torch.float32 else dtype


def autocast_context(device: torch.device, dtype: torch.dtype):
    """``torch.autocast`` for bf16/fp16, a no-op context for fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def needs_grad_scaler(device: torch.device, dtype: torch.dtype) -> bool:
    """fp16 needs loss scaling (CUDA only); bf16 and fp32 do not."""
    return device.type == "cuda" and dtype == torch.float16


def set_threads(n: Optional[int]) -> None:
    """Use ``n`` intra-op threads (``None`` leaves PyTorch's default: one per core)."""
    if n:
        torch.set_num_threads(int(n))


#: below this many model FLOPs per optimizer step, training on CPU uses one thread (``train.threads`` unset);
#: ``benchmarks/bench_threads.py`` measured it (2 cores, ``results/threads.md``): seed phase 1 (0.04 GFLOP a
#: step) is slower with 2 threads even on an idle machine, phase 2 (0.45 GFLOP) 1.17x faster idle but 3x slower
#: while one other process keeps a core busy, phases 3 and 4 (3 and 14 GFLOP) 1.5x faster idle.
SMALL_STEP_FLOPS = 1e9


def step_flops(model_cfg, tokens_per_step: int, vocab_size: int) -> float:
    """Model FLOPs of one training step: 6 per matmul weight per token (forward and backward; the tied head
    included) plus 12 x layers x width x block per token for attention (Kaplan et al. 2020, PaLM appendix B)."""
    d, layers = model_cfg.n_embd, model_cfg.n_layer
    weights = layers * 12 * d * d + int(vocab_size) * d
    return float(tokens_per_step) * (6 * weights + 12 * layers * d * model_cfg.block_size)


def auto_threads(model_cfg, tokens_per_step: int, vocab_size: int, device: torch.device) -> Optional[int]:
    """Threads for ``train.threads`` unset: one on CPU for a step under :data:`SMALL_STEP_FLOPS` (a second
    thread there costs more in waiting than it computes, and much more when another process wants a core),
    else ``None`` (keep the process's setting)."""
    if device.type == "cpu" and step_flops(model_cfg, tokens_per_step, vocab_size) < SMALL_STEP_FLOPS:
        return 1
    return None


def c_compiler_available() -> bool:
    """``torch.compile`` on CPU generates C++; it needs a compiler (and is not supported on Windows here)."""
    return sys.platform != "win32" and any(shutil.which(c) for c in ("cc", "gcc", "clang", "g++", "c++"))


def describe(device: torch.device) -> str:
    """A one-line description of the device for logs and metrics."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, dropout: float) -> torch.Tensor:
    """Scaled dot-product attention (``F.scaled_dot_product_attention``) as the model calls it.

    Under CPU bf16 autocast, attention itself stays fp32: its bf16 backward is several times slower on CPU
    (measured in ``benchmarks/bench_train.py``), and the matmuls around it keep their bf16 speed.
    """
    if q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=causal, dropout_p=dropout)
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, dropout_p=dropout)
