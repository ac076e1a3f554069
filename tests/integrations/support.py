"""What the trainer tests share: real text (stdlib source read from the running interpreter), a character
vocabulary, windows of it as a ``torch`` dataset (nothing is downloaded), and :func:`require` for the extras.

``small_split()`` is a few KB of one module (a tiny model overfits it in a few hundred steps);
``large_split()`` is hundreds of KB of many modules (the same model cannot overfit it in a hundred steps).
"""

from __future__ import annotations

import functools
import importlib
import os
from pathlib import Path

import pytest
import torch

BLOCK = 64  # characters per window
SMALL_MODULE = "json.decoder"
LARGE_MODULES = ("json.decoder", "json.encoder", "csv", "textwrap", "argparse", "logging", "email.message", "shlex")


def source(module: str) -> str:
    return Path(importlib.import_module(module).__file__).read_text(encoding="utf-8")


@functools.cache
def vocabulary() -> tuple[str, ...]:
    """Every character of the texts used here (so one vocabulary serves both splits)."""
    return tuple(sorted(set("".join(source(m) for m in LARGE_MODULES))))


def encode(text: str) -> torch.Tensor:
    index = {c: i for i, c in enumerate(vocabulary())}
    return torch.tensor([index[c] for c in text], dtype=torch.long)


class Windows(torch.utils.data.Dataset):
    """Windows of ``BLOCK + 1`` token ids every ``stride`` characters; ``hf=True`` gives the Hugging Face
    form (``input_ids`` = ``labels``: the model shifts them), else ``(inputs, next-character targets)``."""

    def __init__(self, ids: torch.Tensor, stride: int, hf: bool):
        self.ids, self.hf = ids, hf
        self.starts = list(range(0, len(ids) - BLOCK - 1, stride))

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int):
        w = self.ids[self.starts[i] : self.starts[i] + BLOCK + 1]
        if self.hf:
            return {"input_ids": w[:-1], "labels": w[:-1]}
        return w[:-1], w[1:]


def small_split(hf: bool, chars: int = 4096, piece: int = 256) -> tuple[Windows, Windows]:
    """The first ``chars`` characters of one module, cut into ``piece``-character pieces taken in turn for
    train and val (so both read the same kind of text): half of it to train on, half to validate."""
    ids = encode(source(SMALL_MODULE))[:chars]
    pieces = ids.split(piece)
    return Windows(torch.cat(pieces[0::2]), 16, hf), Windows(torch.cat(pieces[1::2]), BLOCK, hf)


def large_split(hf: bool) -> tuple[Windows, Windows]:
    """Many modules to train on (hundreds of KB), and :func:`small_split`'s val text."""
    rest = torch.cat([encode(source(m)) for m in LARGE_MODULES[1:]])
    return Windows(rest, BLOCK, hf), small_split(hf)[1]


def require(module: str, extra: str):
    """``module``, imported; skipped where the extra is not installed, except in CI (``make test`` installs
    both extras, so there a missing one is a failure, not a skip)."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"the {extra} extra is not installed: pip install 'gaplab[{extra}]'")
