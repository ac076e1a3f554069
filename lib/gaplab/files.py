"""Writing files so that nobody ever reads half of one.

Every artifact that a person or the next stage reads is written here, to a temporary file in the same
folder and then moved into place with ``os.replace``, so a reader never sees half a file and an
interrupted run never leaves one behind.  Also: JSON with numpy values, and stable hashes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union

import yaml

from .errors import CorruptFileError

PathLike = Union[str, Path]


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are ordinary readable files
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy / torch scalars and arrays
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, default=_json_default, allow_nan=True) + "\n"


def atomic_write_json(path: PathLike, obj: Any) -> Path:
    return atomic_write_text(path, to_json(obj))


def atomic_write_yaml(path: PathLike, obj: Any) -> Path:
    return atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))


def read_json(path: PathLike, default: Any = None) -> Any:
    """The JSON at ``path`` (``default`` if there is no such file); a file that does not parse raises
    :class:`gaplab.errors.CorruptFileError` naming it, never a bare ``JSONDecodeError``."""
    path = Path(path)
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CorruptFileError(
            f"{path}: not valid JSON ({exc}); it was changed or damaged after gaplab wrote it: "
            "delete it, or run again the stage (or gaplab run) that writes it"
        ) from None


def update_json(path: PathLike, updates: dict[str, Any]) -> dict[str, Any]:
    """Merge ``updates`` into the JSON object at ``path`` (created if missing), atomically."""
    data = read_json(path, {}) or {}
    data.update(updates)
    atomic_write_json(path, data)
    return data


def sha256_text(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def stable_hash(obj: Any) -> str:
    """sha256 of a JSON-able object with sorted keys."""
    return sha256_text(json.dumps(obj, sort_keys=True, default=_json_default))
