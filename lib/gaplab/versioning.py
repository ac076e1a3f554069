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
#: the files whose content makes up gaplab's behaviour: code and notebooks anywhere in the package ...
CODE_SUFFIXES = (".py", ".ipynb")
#: ... and the shipped data files in these folders (seed 003's reference table, keyword sets)
DATA_FOLDERS = {"reference": (".csv",), "keywords": (".yaml",)}
#: never part of the code: caches, and run outputs (a notebook run by hand inside the package writes there)
IGNORED_PARTS = {"__pycache__", "outputs", ".ipynb_checkpoints"}


def _is_code(path: Path, package_dir: Path) -> bool:
    rel = path.relative_to(package_dir)
    if set(rel.parts) & IGNORED_PARTS or any(part.startswith(".") for part in rel.parts):
        return False
    if path.suffix in CODE_SUFFIXES:
        return True
    return len(rel.parts) == 2 and path.suffix in DATA_FOLDERS.get(rel.parts[0], ())


@functools.lru_cache(maxsize=4)
def code_fingerprint(package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over the relative path and bytes of every code, notebook and shipped data file of the package
    (run outputs and caches inside it are left out)."""
    h = hashlib.sha256()
    package_dir = Path(package_dir)
    files = sorted(p for p in package_dir.rglob("*") if p.is_file() and _is_code(p, package_dir))
    for p in files:
        h.update(p.relative_to(package_dir).as_posix().encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def gaplab_version() -> str:
    """The release and the code it runs, e.g. ``0.1.0+3f2a9c1e07bd``: equal only for identical code."""
    return f"{__version__}+{code_fingerprint()[:12]}"
