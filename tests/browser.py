"""Start the app in a subprocess and drive it with Debian's Chromium through playwright (no browser download)."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from llada_play.model.checkpoint import dtype_named

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The dtype app.py runs models in by default ("auto"): the library's output to compare with is computed in it.
APP_DTYPE = dtype_named("auto")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def require_chromium():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(*args: str, timeout: float = 120, log_path: Path | None = None):
    """Start app.py on a free port; yield its URL; stop it by PID. ``log_path``: where its output goes (else
    .pytest_cache/app-PORT.log where that folder exists)."""
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    if log_path is None and (ROOT / ".pytest_cache").exists():
        log_path = ROOT / ".pytest_cache" / f"app-{port}.log"
    log = open(log_path, "w") if log_path is not None else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(port), *args], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app exited with code {proc.returncode}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    raise TimeoutError("app did not start in time")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def browser_page(width: int = 1400, height: int = 1000):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()


# Click Denoise from inside the page and time, with the page's own clock, the first streamed step and "Done:"
# (a MutationObserver on textContent: no polling delay, no layout).
TIME_DENOISE_JS = """() => new Promise((resolve, reject) => {
  const button = [...document.querySelectorAll('button.primary')].find(
    b => b.textContent.trim() === 'Denoise' && b.offsetParent !== null);
  if (!button) { reject(new Error('no Denoise button')); return; }
  let first = null, t0 = null;
  const check = () => {
    const text = document.body.textContent;
    if (first === null && /Step \\d+ of \\d+, block \\d+ of \\d+/.test(text)) first = performance.now() - t0;
    if (first !== null && text.includes('Done: ')) {
      observer.disconnect(); resolve({first: first / 1000, done: (performance.now() - t0) / 1000});
    }
  };
  const observer = new MutationObserver(check);
  observer.observe(document.body, {subtree: true, childList: true, characterData: true});
  setTimeout(() => { observer.disconnect(); reject(new Error('no Done: within 120 s')); }, 120000);
  t0 = performance.now();
  button.click();
})"""


def time_denoise_click(page) -> dict:
    """{first, done}: seconds from a click on Denoise to the first streamed step and to "Done:" in the page."""
    return page.evaluate(TIME_DENOISE_JS)


def open_tab(page, name: str) -> None:
    """Click the app's tab ``name``; on a narrow page gradio keeps the last tabs behind its "More tabs" menu."""
    page.get_by_role("tab").first.wait_for(timeout=60_000)  # the page has drawn its tabs
    tab = page.get_by_role("tab", name=name)
    if tab.count() and tab.first.is_visible():
        tab.first.click()
        return
    page.get_by_role("button", name="More tabs").click()
    page.locator(".overflow-dropdown button", has_text=name).first.click()
