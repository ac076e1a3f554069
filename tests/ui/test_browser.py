"""The playground and the stage notebooks in a real browser: JupyterLab + headless Chromium (Debian's
package) driven by Playwright.

``test_playground_in_jupyterlab`` runs ``notebooks/00_playground.ipynb`` with Run All Cells, checks the
readout (the compact default and seed 003's 98 % with GPT-2's full table), trains the default run, checks
the prediction-vs-outcome line against :func:`gaplab.measure.curves.analyze_run` on the run's folder,
moves ``n_embd``, trains again (the knobs locked meanwhile) and checks the run history: the table and the
first run's faded val curve drawn under the second run's.  Then it saves the knobs as a phase.
Playwright's own browser downloads are never used: Chromium comes from ``apt-get install chromium``
(``.ci/run`` installs it).  Without Chromium the tests are skipped, except under CI (``CI=true``), where
that is a failure.  With ``GAPLAB_UPDATE_SCREENSHOT=1`` the screenshot is copied to
``docs/playground.png``, and ``test_stage_notebook_screenshots`` renders the executed stage notebooks of a
quickstart run (nbconvert's JupyterLab HTML, in Chromium) into ``docs/`` (it is skipped otherwise).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from gaplab.files import atomic_write_bytes

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(900)]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NOTEBOOK = "00_playground.ipynb"


def _chromium() -> str | None:
    path = os.environ.get("GAPLAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return path if Path(path).is_file() else None


def _require_browser() -> str:
    """Chromium's path; a skip with the fix outside CI, a failure under CI (never a silent skip there)."""
    missing = []
    chromium = _chromium()
    if chromium is None:
        where = os.environ.get("GAPLAB_CHROMIUM") or "`chromium` on PATH and /usr/bin/chromium"
        missing.append(
            f"Chromium is not installed (looked for {where}); install Debian's package: "
            "`apt-get install chromium` (or point GAPLAB_CHROMIUM at a Chromium binary)"
        )
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append(
            "the Python package playwright is missing: `make setup` installs it (its browser downloads are not needed)"
        )
    if missing:
        msg = "browser test: " + "; ".join(missing)
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(msg + " (CI=true: a missing browser is a failure)", pytrace=False)
        pytest.skip(msg)
    return chromium


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 (free port, token) serving a temp copy of the notebook."""
    _require_browser()
    root = Path(__file__).resolve().parents[2]
    base = tmp_path_factory.mktemp("lab")
    served = base / "served"
    (served / "notebooks").mkdir(parents=True)
    shutil.copy(root / "notebooks" / NOTEBOOK, served / "notebooks" / NOTEBOOK)
    config_dir = base / "jupyter-config"
    config_dir.mkdir()
    # no news feed and no update check: nothing outside 127.0.0.1 is contacted
    (config_dir / "jupyter_lab_config.json").write_text(
        json.dumps(
            {
                "LabApp": {
                    "news_url": None,
                    "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                    "extension_manager": "readonly",
                }
            }
        )
    )
    # and no "get notified about Jupyter news?" toast over the page: the app-level defaults `make lab` installs
    app_settings = base / "app-settings"
    shutil.copytree(root / "jupyter-settings" / "overrides.d", app_settings / "overrides.d")
    # start the notebook's kernel (gaplab) without a "Select Kernel" dialog
    tracker = base / "lab-settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"autoStartDefaultKernel": True}))
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(config_dir),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(base / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "lab-workspaces"),
    )
    env.pop("MPLBACKEND", None)  # the kernel should see what a learner's kernel sees
    port, token = _free_port(), secrets.token_hex(16)
    log = open(base / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={served}",
            f"--LabApp.app_settings_dir={app_settings}",
        ]
        + (["--allow-root"] if os.geteuid() == 0 else []),
        cwd=served,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited ({proc.returncode}): {(base / 'jupyterlab.log').read_text()}")
            try:
                if _get(f"{url}/api/status?token={token}") == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.time() > deadline:
                raise RuntimeError("JupyterLab did not start in 120 s: " + (base / "jupyterlab.log").read_text())
            time.sleep(0.3)
        yield {"url": url, "token": token, "served": served, "log": base / "jupyterlab.log"}
    finally:
        try:  # clean shutdown: the server stops its kernels, then exits
            req = urllib.request.Request(f"{url}/api/shutdown?token={token}", method="POST", data=b"")
            urllib.request.urlopen(req, timeout=10).close()
        except Exception:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def _faded_pixels(page) -> int:
    """Pixels of the latest earlier run's faded curves (:data:`gaplab.report.figure_kit.FADED`) in the curves PNG."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    src = page.locator(".gaplab-curves img").get_attribute("src")
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"), dtype=int)
    from gaplab.report.figure_kit import FADED

    rgb = [int(FADED[0][i : i + 2], 16) for i in (1, 3, 5)]
    return int((img == rgb).all(axis=2).sum())


def test_playground_in_jupyterlab(lab, tmp_path, root):
    from playwright.sync_api import expect, sync_playwright

    chromium = _require_browser()
    update_screenshot = os.environ.get("GAPLAB_UPDATE_SCREENSHOT") == "1"
    expect.set_options(timeout=120_000)  # a busy 2-core machine: be patient, never flaky
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 2400})
            page.set_default_timeout(120_000)
            page.goto(f"{lab['url']}/lab/tree/notebooks/{NOTEBOOK}?token={lab['token']}")
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            # wait for the gaplab kernel, then Run > Run All Cells
            expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1)
            expect(page.locator(".jp-Toolbar-kernelName")).to_contain_text("gaplab")
            if page.locator(".jp-Dialog").count():  # a "Select Kernel" dialog: keep the preferred one (gaplab)
                page.locator(".jp-Dialog button.jp-mod-accept").click()
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator("li.lm-Menu-item[data-command='runmenu:run-all']").click()  # Run All Cells

            total = page.locator(".gaplab-readout .gaplab-params-total")
            share = page.locator(".gaplab-embedding-share")
            status, outcome = page.locator(".gaplab-status"), page.locator(".gaplab-outcome")
            # the default: seed 003's phase 1 with a compact vocabulary (216 ids) ...
            expect(total).to_have_text(f"{25_472 + 216 * 32 + 16 * 32:,}")
            # ... and the readout still tells the 98 % of GPT-2's full table, which unticking shows
            expect(page.locator(".gaplab-readout")).to_contain_text("1,634,208 parameters, 98% of them embeddings")
            compact = page.locator(".gaplab-compact input[type=checkbox]")
            compact.uncheck()
            expect(total).to_have_text("1,634,208")
            expect(share).to_have_text("98.4% of the parameters are embeddings")
            compact.check()
            expect(total).to_have_text("32,896")
            expect(page.get_by_text("Would you like to get notified about official Jupyter news?")).to_have_count(0)

            # run 1: the default
            page.locator("button.gaplab-train").click()
            expect(compact).to_be_disabled()  # knobs locked while it trains
            expect(status).to_contain_text("done", timeout=600_000)
            expect(status).to_contain_text("(max_iters) after 500 iters")
            expect(outcome).to_contain_text("predicted: high risk of overfitting → observed: ")
            expect(compact).to_be_enabled()
            expect(page.locator(".gaplab-curves img")).to_have_count(1)
            assert _faded_pixels(page) == 0  # nothing earlier to draw yet
            first_outcome = outcome.locator("b").inner_text()
            expect(page.locator(".gaplab-log")).to_contain_text("Samples from the best checkpoint")

            # run 2: n_embd 32 -> 48, one step of the slider, with the keyboard on its handle
            page.locator(".gaplab-n-embd .noUi-handle").focus()
            page.keyboard.press("ArrowRight")
            expect(total).to_have_text(f"{56_640 + 216 * 48 + 16 * 48:,}")
            page.locator("button.gaplab-train").click()
            expect(status).to_contain_text("training into")
            expect(status).to_contain_text("done", timeout=600_000)
            history = page.locator(".gaplab-history")
            expect(history).to_contain_text("run-002")
            expect(history).to_contain_text("changed: n_embd 48")
            expect(outcome).to_contain_text("predicted: high risk of overfitting → observed: ")
            second_outcome = outcome.locator("b").inner_text()
            # the first run's val curve, faded, under the second run's (and labelled in the key)
            assert _faded_pixels(page) > 200

            # Save as phase: appended to ../params/playground.yaml beside the served notebook folder
            page.locator("button.gaplab-save").click()
            save = page.locator(".gaplab-save-status")
            expect(save).to_contain_text("Saved phase playground_1")
            expect(save).to_contain_text("from the repository root")
            expect(save).to_contain_text("gaplab run params/playground.yaml --phases playground_1")
            expect(page.locator(".gaplab-phase-name input")).to_have_value("playground_2")

            shot = tmp_path / "playground.png"
            page.locator(".gaplab-playground").screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            if update_screenshot:
                atomic_write_bytes(root / "docs" / "playground.png", _small_png(shot))
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            print(f"screenshot of the failure: {tmp_path / 'failure.png'}; JupyterLab log: {lab['log']}")
            print("cell outputs:", page.locator(".jp-OutputArea-output").all_inner_texts())
            raise
        finally:
            browser.close()

    from gaplab.measure.curves import analyze_run
    from gaplab.pipeline.config import load_study
    from gaplab.ui.playground import outcome_line

    runs = lab["served"] / "outputs" / "playground"
    m1 = json.loads((runs / "run-001" / "metrics.json").read_text())
    m2 = json.loads((runs / "run-002" / "metrics.json").read_text())
    assert m1["iters"] == m2["iters"] == 500
    assert (m1["params"]["total"], m2["params"]["total"]) == (32_896, 56_640 + 216 * 48 + 16 * 48)
    # the line a learner read is the one verdict function's, on each run's folder
    for folder, shown in (("run-001", first_outcome), ("run-002", second_outcome)):
        assert shown == outcome_line("overfitting-high", analyze_run(runs / folder))
    saved = load_study(lab["served"] / "params" / "playground.yaml").phase("playground_1").params
    assert (saved.model.n_embd, saved.tokenizer.compact, saved.train.max_iters) == (48, True, 500)


def _small_png(path: Path, colors: int = 128) -> bytes:
    """A screenshot as a palette PNG (a few hundred KB at most, for docs/)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    with Image.open(path) as im:
        im.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(buf, "PNG", optimize=True)
    return buf.getvalue()


#: the executed notebooks shown in docs/, as (file in the study's output folder, docs/ name)
STAGE_SHOTS = (
    ("{phase}/02_train.ipynb", "stage_02_train.png"),
    ("{phase}/03_loss_gap.ipynb", "stage_03_loss_gap.png"),
    ("{phase}/04_samples.ipynb", "stage_04_samples.png"),
    ("05_compare.ipynb", "stage_05_compare.png"),
    ("{phase}/01_inspect_data.ipynb", "stage_01_inspect_data.png"),
)


@pytest.mark.skipif(
    os.environ.get("GAPLAB_UPDATE_SCREENSHOT") != "1",
    reason="renders docs/ screenshots of the stage notebooks: set GAPLAB_UPDATE_SCREENSHOT=1",
)
def test_stage_notebook_screenshots(tmp_path, root):
    """Run params/quickstart.yaml (or use $GAPLAB_SCREENSHOT_OUTPUTS, a finished run's outputs folder), render
    its executed notebooks as JupyterLab's HTML in Chromium, and write full-page screenshots into docs/."""
    import yaml
    from playwright.sync_api import sync_playwright

    chromium = _require_browser()
    study = yaml.safe_load((root / "params" / "quickstart.yaml").read_text())
    outputs = Path(os.environ.get("GAPLAB_SCREENSHOT_OUTPUTS") or tmp_path / "outputs")
    if not (outputs / study["study"] / "05_compare.ipynb").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "gaplab.cli",
                "run",
                str(root / "params" / "quickstart.yaml"),
                "--outputs",
                str(outputs),
            ],
            check=True,
            cwd=tmp_path,
        )
    sdir = outputs / study["study"]
    phases = json.loads((sdir / "study_status.json").read_text())["phases_order"]
    phase = os.environ.get("GAPLAB_SCREENSHOT_PHASE") or phases[len(phases) // 2]
    html_dir = tmp_path / "html"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1000})
            for rel, name in STAGE_SHOTS:
                nb = sdir / rel.format(phase=phase)
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "nbconvert",
                        "--to",
                        "html",
                        "--template",
                        "lab",
                        "--output-dir",
                        str(html_dir),
                        "--output",
                        Path(name).stem,
                        str(nb),
                    ],
                    check=True,
                    capture_output=True,
                )
                page.goto((html_dir / f"{Path(name).stem}.html").as_uri())
                page.wait_for_load_state("load")
                shot = tmp_path / name
                page.screenshot(path=str(shot), full_page=True)
                atomic_write_bytes(root / "docs" / name, _small_png(shot))
        finally:
            browser.close()
