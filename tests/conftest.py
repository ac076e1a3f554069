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


@pytest.fixture
def torch_threads_restored():
    """torch's thread count put back after the test (a trainer may change it)."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_torch_thread():
    """Tiny models on a busy 2-core machine run many times slower with 2 threads (the threads wait on
    each other); one thread keeps such tests fast and their results the same wherever they run."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def ci_study_with_a_broken_phase(tmp_path, root):
    """``make(name)``: a copy of params/ci.yaml plus phase ``name`` that fails in 04_samples (no such checkpoint)."""
    import yaml

    def make(name: str) -> Path:
        raw = yaml.safe_load((root / "params" / "ci.yaml").read_text())
        raw["phases"][name] = {"sample": {"checkpoints": ["best", "iter_999"]}}  # no such checkpoint
        study = tmp_path / "ci.yaml"
        study.write_text(yaml.safe_dump(raw))
        return study

    return make
