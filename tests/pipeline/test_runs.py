"""Atomic writes and fingerprints."""

import json

import pytest
from gaplab.files import atomic_path, atomic_write_json, stable_hash, update_json
from gaplab.report.figure_kit import save_figure


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind


def test_update_json_merges(tmp_path):
    p = tmp_path / "m.json"
    update_json(p, {"a": 1, "b": {"x": 1}})
    update_json(p, {"b": {"y": 2}, "c": 3})
    assert json.loads(p.read_text()) == {"a": 1, "b": {"y": 2}, "c": 3}


def test_json_handles_numpy_scalars(tmp_path):
    np = pytest.importorskip("numpy")
    p = atomic_write_json(tmp_path / "x.json", {"n": np.int64(3), "f": np.float32(0.5), "a": np.arange(2)})
    assert json.loads(p.read_text()) == {"n": 3, "f": 0.5, "a": [0, 1]}


def test_stable_hash_ignores_key_order():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})


def test_save_figure_writes_png_and_svg(tmp_path):
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png, svg = save_figure(fig, tmp_path / "figures", "line")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in svg.read_text()[:500]


def test_code_fingerprint_follows_the_code_not_the_release_number(tmp_path):
    import shutil

    from gaplab.versioning import PACKAGE_DIR, code_fingerprint

    copy = tmp_path / "gaplab"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert code_fingerprint(copy) == code_fingerprint(PACKAGE_DIR)
    (copy / "reference" / "README.md").write_text("docs only")  # not code: same fingerprint
    assert code_fingerprint.__wrapped__(copy) == code_fingerprint(PACKAGE_DIR)
    loop = copy / "train" / "loop.py"
    loop.write_text(loop.read_text() + "\n# a bug fix\n")  # __version__ is unchanged
    assert code_fingerprint.__wrapped__(copy) != code_fingerprint(PACKAGE_DIR)


def test_phase_fingerprint_changes_with_the_code(monkeypatch):
    from gaplab.pipeline import runs

    resolved = {"study": "s", "phase": "p", "run_dir": "/x", "train": {"max_iters": 1}}
    before = runs.phase_fingerprint(resolved, "corpus-fp")
    assert runs.phase_fingerprint(dict(resolved, run_dir="/elsewhere"), "corpus-fp") == before
    monkeypatch.setattr(runs, "code_fingerprint", lambda: "other code")
    assert runs.phase_fingerprint(resolved, "corpus-fp") != before


def test_run_outputs_inside_the_package_are_not_code(tmp_path):
    """nbval runs the notebooks from inside the package; what they write there must not change the code."""
    import shutil

    from gaplab.versioning import PACKAGE_DIR, code_fingerprint

    copy = tmp_path / "gaplab"
    shutil.copytree(PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__", "outputs"))
    before = code_fingerprint.__wrapped__(copy)
    (copy / "outputs" / "notebook-defaults" / "tiny").mkdir(parents=True)
    (copy / "outputs" / "notebook-defaults" / "tiny" / "metrics.json").write_text("{}")
    (copy / "outputs" / "notebook-defaults" / "tiny" / "history.csv").write_text("iter\n")
    assert code_fingerprint.__wrapped__(copy) == before
    (copy / "reference" / "seed003.csv").write_text("phase\n")  # shipped data is part of the code
    assert code_fingerprint.__wrapped__(copy) != before
