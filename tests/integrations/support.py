"""What the trainer tests share: real text (stdlib source read from the running interpreter), a character
vocabulary, windows of it as a ``torch`` dataset (nothing is downloaded), and :func:`require` for the extras.

``small_split()`` is a few KB of one module (a tiny model overfits it in a few hundred steps);
``large_split()`` is hundreds of KB of many modules (the same model cannot overfit it in a hundred steps).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os

import pytest
import torch
from gaplab.integrations.examples import BLOCK, Windows, char_split, encode, module_source

SMALL_MODULE = "json.decoder"
LARGE_MODULES = ("json.decoder", "json.encoder", "csv", "textwrap", "argparse", "logging", "email.message", "shlex")


@functools.cache
def vocabulary() -> tuple[str, ...]:
    """Every character of the texts used here (so one vocabulary serves both splits)."""
    return tuple(sorted(set("".join(module_source(m) for m in LARGE_MODULES))))


def small_split(hf: bool, chars: int = 4096, piece: int = 256) -> tuple[Windows, Windows]:
    """The first ``chars`` characters of one module, cut into ``piece``-character pieces taken in turn for
    train and val (so both read the same kind of text): half of it to train on, half to validate."""
    return char_split(encode(module_source(SMALL_MODULE), vocabulary())[:chars], piece, hf)


def large_split(hf: bool) -> tuple[Windows, Windows]:
    """Many modules to train on (hundreds of KB), and :func:`small_split`'s val text."""
    rest = torch.cat([encode(module_source(m), vocabulary()) for m in LARGE_MODULES[1:]])
    return Windows(rest, BLOCK, hf), small_split(hf)[1]


def require(module: str, extra: str):
    """``module``, imported; skipped where the extra is not installed, except in CI (``make test`` installs
    both extras, so there a missing one is a failure, not a skip)."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"the {extra} extra is not installed: pip install 'gaplab[{extra}]'")


@contextlib.contextmanager
def logged_lines(logger: str):
    """The messages ``logger`` emits inside the block (a list, filled as they come), and torch's thread
    count restored after it."""
    threads, lines = torch.get_num_threads(), []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    log = logging.getLogger(logger)
    log.addHandler(handler)
    try:
        yield lines
    finally:
        log.removeHandler(handler)
        torch.set_num_threads(threads)
