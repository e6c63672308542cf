"""The browser tests look for Streamlit's exception element to tell that a page failed; this test
shows that the element is there, in a real browser, when a page raises under the project's
configuration (client.showErrorDetails = "none" redacts its text, not the element).

It serves the real app.py with a page that raises: a copy of the repository's app and ui/ in a
temporary folder, whose overview page is replaced by one that raises.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def failing_app(tmp_path, seeded_url):
    app = tmp_path / "app"
    shutil.copytree(ROOT / "ui", app / "ui")
    shutil.copytree(ROOT / ".streamlit", app / ".streamlit")
    shutil.copy(ROOT / "app.py", app / "app.py")
    (app / "ui" / "overview.py").write_text("import streamlit as st\nst.title('About to fail')\nraise RuntimeError('a bug in a page')\n",
                                           encoding="utf-8")
    port = _free_port()
    env = {**os.environ, "CREV_DB": seeded_url, "CREV_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    log = open(tmp_path / "streamlit.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                            cwd=app, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(base + "/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"streamlit did not start: {(tmp_path / 'streamlit.log').read_text(errors='replace')[-2000:]}")
                time.sleep(0.5)
        yield base, tmp_path / "streamlit.log"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_a_page_that_raises_shows_streamlits_exception_element_and_logs_the_traceback(failing_app):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    base, log = failing_app
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--window-size=1400,1000"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        drv.set_page_load_timeout(60)
        drv.get(base)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not drv.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]'):
            time.sleep(0.5)
        shown = drv.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')
        body = drv.find_element(By.TAG_NAME, "body").text
    finally:
        drv.quit()
    assert shown, f"no stException element; the page shows: {body[:600]}"
    assert "This page could not be shown (RuntimeError)" in body
    assert "a bug in a page" not in body  # redacted in the browser ...
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "RuntimeError: a bug in a page" in text and "page Overview failed" in text  # ... and kept whole in the log
