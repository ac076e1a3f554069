import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MPLBACKEND", "agg")
if str(ROOT / "lib") not in sys.path:
    sys.path.insert(0, str(ROOT / "lib"))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture
def outputs(tmp_path, monkeypatch) -> Path:
    """A private outputs folder (``$GAPLAB_OUTPUTS``) for tests that write runs."""
    out = tmp_path / "outputs"
    monkeypatch.setenv("GAPLAB_OUTPUTS", str(out))
    return out
