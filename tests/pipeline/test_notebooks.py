"""The stage notebooks: thin, parameterized, committed without outputs."""

import ast

import nbformat
import pytest
from gaplab.schema import PHASE_KEYS as SCHEMA_KEYS

STAGES = ["01_inspect_data", "02_train", "03_loss_gap", "04_samples"]

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
    res = subprocess.run(
        [str(tool), "--verify", *sorted(str(p) for p in (root / "notebooks").glob("*.ipynb"))],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
def test_executed_stage_notebooks_read_well(tmp_path, root, monkeypatch):
    """Executed as ``gaplab run`` executes them (papermill, no live outputs): 02_train has a figure and one
    table, 03_loss_gap a short table with the details folded, 04_samples each sample as a code block with the
    span copied from training marked."""
    import papermill as pm
    from gaplab.pipeline.execute import kernel_name

    monkeypatch.setenv("GAPLAB_BATCH", "1")  # what execute_phase sets: no live widgets
    # A phase that memorises (1,200 tokens, 200 iterations), so its samples copy spans from training for certain
    # rather than by chance, as the 40-iteration defaults would on one machine and not another.
    params = {
        "run_dir": str(tmp_path / "tiny"),
        "phase": "tiny",
        "data": {"source": "stdlib", "packages": ["json"], "max_tokens": 1200, "split": "tail", "val_fraction": 0.1},
        "train": {"max_iters": 200, "batch_size": 8, "learning_rate": 1e-2, "eval_interval": 20, "eval_iters": 4},
        "sample": {
            "prompts": ["import json", "def "],
            "max_new_tokens": 32,
            "num_samples": 1,
            "checkpoints": ["best", "last"],
        },
    }
    done = {}
    for stage in ("02_train", "03_loss_gap", "04_samples"):
        out = tmp_path / f"{stage}.ipynb"
        pm.execute_notebook(
            str(root / "notebooks" / f"{stage}.ipynb"),
            str(out),
            parameters=params,
            kernel_name=kernel_name(),
            progress_bar=False,
            cwd=str(tmp_path),
        )
        done[stage] = nbformat.read(out, as_version=4)

    def outputs(nb, needle):
        cell = next(c for c in nb.cells if c.cell_type == "code" and needle in c.source)
        return cell.outputs

    train = outputs(done["02_train"], "stages.train(params")
    assert any("image/png" in o.get("data", {}) for o in train), "02_train under papermill drew no figure"
    assert (tmp_path / "tiny" / "figures" / "training_curves.png").exists()
    summary = outputs(done["02_train"], "show.training_summary")
    tables = [o for o in summary if "text/html" in o.get("data", {}) and "<table" in o["data"]["text/html"]]
    assert len(tables) == 1 and not any(o.output_type == "execute_result" for o in summary)  # one table, once
    assert "files of this phase" in tables[0]["data"]["text/html"]

    gap = outputs(done["03_loss_gap"], "show.analysis")
    html = "".join(o.get("data", {}).get("text/html", "") for o in gap)
    import re

    shown, folded = html.split("<details>", 1)
    rows = re.findall(r"<th[^>]*>(.*?)</th>", shown)
    assert "best val loss @ iter (ckpt/best.pt)" in rows and "overfitting onset" in rows and len(rows) <= 8
    internals = {"tol", "k", "onset_confirmed_iter", "dropped_non_finite_evals", "n_evals"}
    assert not internals & set(rows)  # the detector's internals are folded away ...
    assert len(re.findall(r"<th[^>]*>(.*?)</th>", folded)) > len(rows)  # ... not lost
    assert folded.startswith("<summary>Every number of the analysis")

    samples = outputs(done["04_samples"], "show.samples")
    html = "".join(o.get("data", {}).get("text/html", "") for o in samples)
    assert html.count("<pre") >= 2  # each sample a code block (2 prompts)
    assert "<mark" in html and "copied from training" in html


#: the stage function each notebook calls: it computes and writes every file of its stage
STAGE_CALLS = {
    "01_inspect_data": "inspect_phase",
    "02_train": "train",
    "03_loss_gap": "loss_gap",
    "04_samples": "samples",
    "05_compare": "compare",
}


@pytest.mark.parametrize("name", sorted(STAGE_CALLS))
def test_each_notebook_calls_its_stage_then_shows_it(root, name):
    """All five the same way: one call of the stage (``gaplab.pipeline.stages``), then ``show`` renders what it
    returned or wrote; no ``show`` function computes a stage (``show.live_curves`` is the stage's callback)."""
    from gaplab.pipeline import stages
    from gaplab.ui import show

    calls = []  # (module, function) in the order the code cells make them
    for cell in _nb(root, name).cells:
        if cell.cell_type == "code" and "parameters" not in cell.metadata.get("tags", []):
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    if isinstance(node.func.value, ast.Name) and node.func.value.id in ("stages", "show"):
                        calls.append((node.func.value.id, node.func.attr, node.lineno))
    stage_calls = [c for c in calls if c[0] == "stages" and c[1] in STAGE_CALLS.values()]
    assert [c[1] for c in stage_calls] == [STAGE_CALLS[name]]
    renders = [c for c in calls if c[0] == "show" and c[1] != "live_curves"]
    assert renders, f"{name} shows nothing"
    assert calls.index(stage_calls[0]) < calls.index(renders[0]), "the stage first, then what it wrote"
    assert all(hasattr(show, c[1]) for c in renders) and all(hasattr(stages, c[1]) for c in calls if c[0] == "stages")
    assert not hasattr(show, "train") and not hasattr(show, "train_live")  # training lives in the stage


def test_a_placed_notebook_reads_the_folder_it_sits_in(tmp_path, root):
    """papermill injects the staging folder a phase ran in, which is gone once the phase is placed: the placed
    notebooks must name their own folder, relative to the notebook, so a copied study folder still works."""
    import json

    from gaplab.pipeline.execute import PhaseStatus
    from gaplab.pipeline.runs import place_phase
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    study = tmp_path / "outputs" / "quickstart"
    staged = study / ".staging" / "run-x_l6wcor" / "overfit-6iwbw0kd"
    staged.mkdir(parents=True)
    params = {"study": "quickstart", "phase": "overfit", "run_dir": str(staged), "train": {"max_iters": 40}}
    for stage in ("02_train", "03_loss_gap"):
        notebook = load_notebook_node(str(root / "notebooks" / f"{stage}.ipynb"))  # as papermill reads it
        nbformat.write(parameterize_notebook(notebook, params), staged / f"{stage}.ipynb")
    (staged / "history.csv").write_text("iter,train_loss,val_loss\n0,1.0,1.1\n")

    placed = place_phase(staged, study / "overfit", "overfit", params, PhaseStatus("overfit", "done"))
    copy = tmp_path / "elsewhere" / "overfit"  # a learner's copy of the folder
    copy.parent.mkdir()
    placed.rename(copy)
    for stage in ("02_train", "03_loss_gap"):
        nb = nbformat.read(copy / f"{stage}.ipynb", as_version=4)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and ".staging" not in injected[0].source
        namespace: dict = {}
        exec(injected[0].source, namespace)  # the values a re-run reads, run from the notebook's folder
        assert (copy / namespace["run_dir"]).resolve() == copy.resolve()
        assert namespace["train"] == {"max_iters": 40}  # the other parameters are kept
        json.loads((copy / f"{stage}.ipynb").read_text())  # still a notebook
