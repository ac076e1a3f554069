"""Devices and precision: auto (cuda > mps > cpu) or named; fp32, bf16, fp16.

- CUDA: ``auto`` means bf16 where the GPU supports it; fp16 uses a GradScaler.
- MPS: always fp32 (documented as untested here).
- CPU: ``auto`` means fp32 for the model.  Where the CPU has native bf16
  matmuls (AVX-512 BF16 / AMX), the tied head's large matmuls run in bf16
  (see ``gaplab.model.chunked_cross_entropy``); the benchmark in
  ``benchmarks/`` checks that final losses stay within noise.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Optional

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceError(RuntimeError):
    pass


def resolve_device(spec: str = "auto") -> torch.device:
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(spec)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"train.device {spec!r}: CUDA is not available here; allowed: auto or cpu")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError(f"train.device {spec!r}: Apple MPS is not available here; allowed: auto or cpu")
    return dev


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 matmul instructions (AVX-512 BF16 or AMX)."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_dtype(spec: str, device: torch.device) -> torch.dtype:
    """The dtype for autocast ("auto": bf16 on capable CUDA, else fp32)."""
    if device.type == "mps":
        return torch.float32
    if spec == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if spec == "fp16" and device.type == "cpu":
        raise DeviceError("train.dtype 'fp16' needs CUDA; allowed on CPU: auto, fp32, bf16")
    return DTYPES[spec]


def head_dtype(spec: str, device: torch.device, dtype: torch.dtype) -> Optional[torch.dtype]:
    """Precision of the tied head's matmuls: with ``auto``, bf16 on CPUs with native bf16; else the model's."""
    if spec == "auto" and device.type == "cpu" and cpu_supports_bf16():
        return torch.bfloat16
    return None if dtype == torch.float32 else dtype


def autocast(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def set_threads(n: Optional[int]) -> None:
    if n:
        torch.set_num_threads(n)
