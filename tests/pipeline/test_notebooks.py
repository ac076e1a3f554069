"""The stage notebooks: thin, parameterized, committed without outputs."""

import ast

import nbformat
import pytest

STAGES = ["01_inspect_data", "02_train", "03_loss_gap", "04_samples"]
from gaplab.schema import PHASE_KEYS as SCHEMA_KEYS

PHASE_KEYS = {"study", "phase", "run_dir", *SCHEMA_KEYS}  # the notebook's signature is the resolved phase


def _nb(root, name):
    return nbformat.read(root / "notebooks" / f"{name}.ipynb", as_version=4)


def _parameters(nb):
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    tree = ast.parse(cells[0].source)
    return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}


@pytest.mark.parametrize("name", STAGES)
def test_stage_parameters_match_resolved_phase(root, name):
    assert _parameters(_nb(root, name)) == PHASE_KEYS


def test_compare_parameters(root):
    assert _parameters(_nb(root, "05_compare")) == {"study", "study_dir", "phases"}


def test_notebooks_committed_without_outputs_and_thin(root):
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), f"{path.name} has outputs"
        assert any(c.cell_type == "markdown" for c in nb.cells), path.name
        for c in code:  # logic lives in gaplab; cells stay short
            assert len(c.source.splitlines()) <= 15, f"{path.name}: a {len(c.source.splitlines())}-line cell"
        assert nb.metadata["kernelspec"]["name"] == "gaplab"


def test_nbstripout_verify(root):
    """The committed notebooks are exactly what nbstripout would commit (no outputs, counts or volatile metadata)."""
    import subprocess
    import sys
    from pathlib import Path

    tool = Path(sys.executable).with_name("nbstripout")
    res = subprocess.run([str(tool), "--verify", *sorted(str(p) for p in (root / "notebooks").glob("*.ipynb"))],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
