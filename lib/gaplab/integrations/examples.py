"""Small real text to try the trainer callbacks on: a standard-library module's source, read from the running
interpreter (nothing is downloaded), as character ids in windows a ``torch`` ``DataLoader`` can serve.

The ``07_stop_at_onset`` notebook and the integration tests use it: :func:`char_split` cuts the text into
pieces taken in turn for train and val (both read the same kind of text), so a tiny model overfits the train
half in a few hundred steps while val, unseen, stops improving.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

import torch

#: characters per window (the model's context)
BLOCK = 64


def module_source(module: str) -> str:
    """The source text of a standard-library (or any importable) module."""
    return Path(importlib.import_module(module).__file__).read_text(encoding="utf-8")


def encode(text: str, vocabulary: Sequence[str]) -> torch.Tensor:
    """``text`` as the ids of its characters in ``vocabulary``."""
    index = {c: i for i, c in enumerate(vocabulary)}
    return torch.tensor([index[c] for c in text], dtype=torch.long)


class Windows(torch.utils.data.Dataset):
    """Windows of ``BLOCK + 1`` ids every ``stride`` characters; ``hf=True`` gives the Hugging Face form
    (``input_ids`` = ``labels``: the model shifts them itself), else ``(inputs, next-character targets)``."""

    def __init__(self, ids: torch.Tensor, stride: int, hf: bool):
        self.ids, self.hf = ids, hf
        self.starts = list(range(0, len(ids) - BLOCK - 1, stride))

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int):
        window = self.ids[self.starts[i] : self.starts[i] + BLOCK + 1]
        if self.hf:
            return {"input_ids": window[:-1], "labels": window[:-1]}
        return window[:-1], window[1:]


def char_split(ids: torch.Tensor, piece: int = 256, hf: bool = True) -> tuple[Windows, Windows]:
    """``ids`` cut into ``piece``-id pieces taken in turn for train and val: train windows overlap (every 16
    characters), val windows do not (every ``BLOCK``)."""
    pieces = ids.split(piece)
    return Windows(torch.cat(pieces[0::2]), 16, hf), Windows(torch.cat(pieces[1::2]), BLOCK, hf)
