"""The playground in a real browser: JupyterLab + headless Chromium (Debian's package) driven by Playwright.

Runs ``notebooks/00_playground.ipynb`` with Run All Cells, moves the n_embd
slider, ticks compact vocab, lowers the iterations to 20, presses Train and
checks that the parameter readout changed, that the live loss figure
appeared and that samples were printed; then saves the knobs as a phase.  Playwright's own
browser downloads are never used: Chromium comes from ``apt-get install
chromium`` (``.ci/run`` installs it).  Without Chromium the test is skipped,
except under CI (``CI=true``), where that is a failure.  With
``GAPLAB_UPDATE_SCREENSHOT=1`` the run keeps its 500 iterations (the gap
opens) and the screenshot is copied to ``docs/playground.png``.
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

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
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
        missing.append(f"Chromium is not installed (looked for {where}); install Debian's package: "
                       "`apt-get install chromium` (or point GAPLAB_CHROMIUM at a Chromium binary)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the Python package playwright is missing: `make setup` installs it "
                       "(its browser downloads are not needed)")
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
    (config_dir / "jupyter_lab_config.json").write_text(json.dumps(
        {"LabApp": {"news_url": None, "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
                    "extension_manager": "readonly"}}))
    # and no "get notified about Jupyter news?" toast over the page
    news = base / "lab-settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # start the notebook's kernel (gaplab) without a "Select Kernel" dialog
    tracker = base / "lab-settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"autoStartDefaultKernel": True}))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(config_dir), JUPYTER_RUNTIME_DIR=str(base / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(base / "lab-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(base / "lab-workspaces"))
    env.pop("MPLBACKEND", None)  # the kernel should see what a learner's kernel sees
    port, token = _free_port(), secrets.token_hex(16)
    log = open(base / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={served}"] + (["--allow-root"] if os.geteuid() == 0 else []),
        cwd=served, env=env, stdout=log, stderr=subprocess.STDOUT)
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


def test_playground_in_jupyterlab(lab, tmp_path, root):
    from playwright.sync_api import expect, sync_playwright

    chromium = _require_browser()
    # GAPLAB_UPDATE_SCREENSHOT=1: keep the 500 iterations, so the picture in docs/ shows the gap opening
    update_screenshot = os.environ.get("GAPLAB_UPDATE_SCREENSHOT") == "1"
    iters = 500 if update_screenshot else 20
    expect.set_options(timeout=120_000)  # a busy 2-core machine: be patient, never flaky
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 2200})
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
            expect(total).to_have_text("1,634,208")  # seed 003 phase 1 ...
            expect(share).to_have_text("98.4% of the parameters are embeddings")  # ... 98 % embeddings
            before = total.inner_text()

            # n_embd 32 -> 48: one step of the slider, with the keyboard on its handle
            page.locator(".gaplab-n-embd .noUi-handle").focus()
            page.keyboard.press("ArrowRight")
            expect(total).not_to_have_text(before)
            expect(total).to_have_text("2,469,744")
            # compact vocabulary: 215 ids seen in the 900 train tokens + 1 unknown
            page.locator(".gaplab-compact input[type=checkbox]").check()
            expect(total).to_have_text(f"{56_640 + 216 * 48 + 16 * 48:,}")
            expect(share).to_have_text("16.4% of the parameters are embeddings")
            if not update_screenshot:  # iterations 500 -> 20 (the first option): training takes seconds
                page.locator(".gaplab-max-iters .noUi-handle").focus()
                page.keyboard.press("Home")
            expect(page.locator(".gaplab-readout")).to_contain_text(f"= {iters} iters x 64 tokens")

            page.locator("button.gaplab-train").click()
            expect(page.locator(".gaplab-status")).to_contain_text("done", timeout=600_000)
            expect(page.locator(".gaplab-status")).to_contain_text(f"(max_iters) after {iters} iters")
            figure = page.locator(".gaplab-curves img")
            expect(figure).to_have_count(1)
            assert figure.evaluate("img => img.naturalWidth") > 300
            expect(page.locator(".gaplab-log")).to_contain_text("Samples from the best checkpoint")

            # Save as phase: appended to ../params/playground.yaml beside the served notebook folder
            page.locator("button.gaplab-save").click()
            expect(page.locator(".gaplab-save-status")).to_contain_text("Saved phase playground_1")

            shot = tmp_path / "playground.png"
            page.locator(".gaplab-playground").screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
            if update_screenshot:
                atomic_write_bytes(root / "docs" / "playground.png", shot.read_bytes())
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"))
            print(f"screenshot of the failure: {tmp_path / 'failure.png'}; JupyterLab log: {lab['log']}")
            print("cell outputs:", page.locator(".jp-OutputArea-output").all_inner_texts())
            raise
        finally:
            browser.close()

    from gaplab.pipeline.config import load_study

    runs = lab["served"] / "outputs" / "playground"
    metrics = json.loads((runs / "run-001" / "metrics.json").read_text())
    assert metrics["iters"] == iters and metrics["params"]["total"] == 56_640 + 216 * 48 + 16 * 48
    saved = load_study(lab["served"] / "params" / "playground.yaml").phase("playground_1").params
    assert (saved.model.n_embd, saved.tokenizer.compact, saved.train.max_iters) == (48, True, iters)
