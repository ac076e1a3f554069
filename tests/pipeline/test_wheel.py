"""`pip install gaplab` must be able to run a study: the notebooks and data files ship in the wheel."""

import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_a_built_wheel_runs_a_study_from_another_folder(tmp_path, root):
    dist = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(root),
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "-q",
            "-w",
            str(dist),
        ],
        check=True,
        cwd=tmp_path,
    )
    wheel = next(dist.glob("gaplab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "gaplab/notebooks/02_train.ipynb",
        "gaplab/notebooks/05_compare.ipynb",
        "gaplab/reference/seed003.csv",
        "gaplab/keywords/stdlib_code.yaml",
        "gaplab/pipeline/runner.py",
    ):
        assert needed in names, needed

    # a new virtualenv with the wheel; its dependencies come from this environment's site-packages (a .pth
    # line adds the folder without running its .pth files, so the editable gaplab there is not seen)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-q", str(wheel)], check=True
    )
    deps = [p for p in site.getsitepackages() if p.endswith("site-packages")]
    purelib = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "deps.pth").write_text("\n".join(deps) + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GAPLAB_NOTEBOOKS", "GAPLAB_OUTPUTS")}
    where = subprocess.run(
        [str(py), "-c", "import gaplab; print(gaplab.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=elsewhere,
        env=env,
    ).stdout.strip()
    assert where.startswith(str(venv)), where  # the installed wheel, not the source tree
    run = subprocess.run(
        [str(venv / "bin" / "gaplab"), "run", str(root / "params" / "ci.yaml"), "--threads", "1"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = elsewhere / "outputs" / "ci"
    for phase in ("small_data", "more_data"):
        assert (out / phase / "04_samples.ipynb").exists() and (out / phase / "metrics.json").exists()
    assert (out / "report.html").exists()
