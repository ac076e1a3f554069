"""Atomic writes and fingerprints."""

import json

import pytest

from gaplab import runs


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "metrics.json"
    runs.atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with runs.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind


def test_update_json_merges(tmp_path):
    p = tmp_path / "m.json"
    runs.update_json(p, {"a": 1, "b": {"x": 1}})
    runs.update_json(p, {"b": {"y": 2}, "c": 3})
    assert json.loads(p.read_text()) == {"a": 1, "b": {"y": 2}, "c": 3}


def test_json_handles_numpy_scalars(tmp_path):
    np = pytest.importorskip("numpy")
    p = runs.atomic_write_json(tmp_path / "x.json", {"n": np.int64(3), "f": np.float32(0.5), "a": np.arange(2)})
    assert json.loads(p.read_text()) == {"n": 3, "f": 0.5, "a": [0, 1]}


def test_stable_hash_ignores_key_order():
    assert runs.stable_hash({"a": 1, "b": [1, 2]}) == runs.stable_hash({"b": [1, 2], "a": 1})
    assert runs.stable_hash({"a": 1}) != runs.stable_hash({"a": 2})


def test_save_figure_writes_png_and_svg(tmp_path):
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png, svg = runs.save_figure(fig, tmp_path / "figures", "line")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in svg.read_text()[:500]
