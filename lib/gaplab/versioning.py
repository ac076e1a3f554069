"""Which gaplab this is: the release number and a fingerprint of the code itself.

The release number (``__version__``) does not change with a bug fix, so the cache and the Dask
executor use :func:`code_fingerprint` instead: a hash of every code, notebook and data file of the
installed package.  Two installs with the same fingerprint run the same code.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from . import __version__

PACKAGE_DIR = Path(__file__).resolve().parent
#: the files whose content makes up gaplab's behaviour (code, notebooks, shipped reference data)
CODE_SUFFIXES = (".py", ".ipynb", ".csv", ".yaml", ".json")


@functools.lru_cache(maxsize=4)
def code_fingerprint(package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over the relative path and bytes of every code, notebook and data file of the package."""
    h = hashlib.sha256()
    files = sorted(p for p in Path(package_dir).rglob("*")
                   if p.suffix in CODE_SUFFIXES and p.is_file() and "__pycache__" not in p.parts)
    for p in files:
        h.update(p.relative_to(package_dir).as_posix().encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def gaplab_version() -> str:
    """The release and the code it runs, e.g. ``0.1.0+3f2a9c1e07bd``: equal only for identical code."""
    return f"{__version__}+{code_fingerprint()[:12]}"
