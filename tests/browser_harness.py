"""Driving the app in a real browser: `streamlit run app.py` on a free port, Debian's Chromium
through Selenium (headless, 1400 × 1000), and waits that follow the app's own run state.

Shared by the browser tests (tests/test_browser*.py) and the browser bench (bench/app_browser.py).
A page is *rendered* when the app's root element reports ``data-test-script-state="notRunning"``
for a short quiet window and every Plotly chart on it has drawn its SVG: that is what a user sees
as "done", including the network and the browser's layout, which AppTest does not measure.
"""

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

__all__ = ["ROOT", "CHROMIUM", "DRIVER", "SHOTS", "available", "serve", "make_driver", "wait_rendered", "wait_text", "body_text",
           "shot", "select_option", "select_index", "click_radio", "click_button", "type_into", "seed_database"]

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def available() -> bool:
    return bool(CHROMIUM and DRIVER)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_database(url: str, env: dict) -> None:
    """Create and seed the database at ``url`` with the real CLI (as a user would)."""
    done = subprocess.run([sys.executable, "-m", "crev_cli", "evidence", "init"], env={**os.environ, **env, "CREV_DB": url}, capture_output=True,
                          text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"crev evidence init failed: {done.stderr.strip() or done.stdout.strip()}")


@contextlib.contextmanager
def serve(env: dict, log: Path | None = None, start_timeout: float = 120):
    """Run the app on a free port with ``env``; yield its base URL; stop it afterwards."""
    port = _free_port()
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port), "--server.address",
                             "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
                            env={**os.environ, **env}, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + start_timeout
        while True:
            try:
                if urllib.request.urlopen(base + "/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"streamlit did not start within {start_timeout:.0f} s (exit code {proc.poll()})")
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if log:
            out.close()


def make_driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1400,1000"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    drv.set_page_load_timeout(90)
    return drv


_STATE_JS = """
const app = document.querySelector('[data-testid="stApp"]');
if (!app) return ['missing', 0, 0];
const charts = document.querySelectorAll('[data-testid="stPlotlyChart"]').length;
const drawn = document.querySelectorAll('[data-testid="stPlotlyChart"] .main-svg').length;
return [app.getAttribute('data-test-script-state'), charts, drawn];
"""


def _state(drv):
    state, charts, drawn = drv.execute_script(_STATE_JS)
    return state, charts <= drawn  # each drawn chart has at least one .main-svg


def wait_rendered(drv, *, started: bool = False, quiet: float = 0.25, timeout: float = 120) -> float:
    """Wait until the script has run (``started``: it must first be seen running, for a rerun after
    a control change) and the page stays idle, with all charts drawn, for ``quiet`` seconds.
    Returns the time.perf_counter() at which it became idle."""
    deadline = time.perf_counter() + timeout
    seen_running = not started
    t_start = time.perf_counter()
    idle_since = None
    while time.perf_counter() < deadline:
        state, drawn = _state(drv)
        now = time.perf_counter()
        if state in ("running", "rerunRequested"):
            seen_running = True
        if not seen_running and now - t_start > 3:
            seen_running = True  # the rerun was too fast to be seen between two polls
        if seen_running and state == "notRunning" and drawn:
            idle_since = idle_since or now
            if now - idle_since >= quiet:
                return idle_since
        else:
            idle_since = None
        time.sleep(0.03)
    raise AssertionError(f"the page did not finish rendering within {timeout:.0f} s; it shows: {body_text(drv)[:600]}")


def body_text(drv) -> str:
    from selenium.webdriver.common.by import By

    return drv.find_element(By.TAG_NAME, "body").text


def wait_text(drv, text: str, timeout: float = 90) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        body = body_text(drv)
        if text in body:
            return body
        time.sleep(0.2)
    raise AssertionError(f"{text!r} did not appear; the page shows: {body_text(drv)[:1200]}")


def shot(drv, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    drv.save_screenshot(str(path))
    return path


def _clickable(drv, xpath: str, timeout: float = 60):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    el = WebDriverWait(drv, timeout).until(EC.presence_of_element_located((By.XPATH, xpath)))
    drv.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
    return WebDriverWait(drv, timeout).until(EC.element_to_be_clickable((By.XPATH, xpath)))


def select_option(drv, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox whose label is ``label``."""
    _open_select(drv, label)
    _clickable(drv, f"//*[@role='option'][normalize-space()=\"{option}\"]").click()


def _open_select(drv, label: str):
    box = _clickable(drv, f"//input[@role='combobox'][@aria-label=\"{label}\"]")
    box.click()
    return box


def select_index(drv, label: str, index: int) -> str:
    """Pick the ``index``-th option of the selectbox ``label``; returns its text."""
    from selenium.webdriver.common.by import By

    _open_select(drv, label)
    _clickable(drv, "//*[@role='option']")
    opts = drv.find_elements(By.XPATH, "//*[@role='option']")
    opt = opts[min(index, len(opts) - 1)]
    text = opt.text
    opt.click()
    return text


def click_radio(drv, label: str, option: str) -> None:
    _clickable(drv, f"//div[@role='radiogroup'][@aria-label=\"{label}\"]//label[normalize-space()=\"{option}\"]").click()


def click_button(drv, text: str) -> None:
    _clickable(drv, f"//button[normalize-space()=\"{text}\"]").click()


def type_into(drv, label: str, value: str, *, area: bool = False) -> None:
    from selenium.webdriver.common.keys import Keys

    tag = "textarea" if area else "input"
    el = _clickable(drv, f"//{tag}[@aria-label=\"{label}\"]")
    el.click()
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(value)
    el.send_keys(Keys.TAB) if not area else el.send_keys(Keys.CONTROL, Keys.ENTER)


def _open_sign_in(drv) -> None:
    """Open the sidebar's 'Sign in' box (an expander, closed by default)."""
    from selenium.webdriver.common.by import By

    box = "//details[summary[.//*[normalize-space()='Sign in']]]"
    if not drv.find_elements(By.XPATH, box + "[@open]"):
        _clickable(drv, box + "/summary").click()
        import time as _t

        _t.sleep(0.8)  # the expander's opening animation: a click during it lands on the form


def _type_focused(drv, label: str, value: str) -> None:
    """Type into a sidebar form field focused by script: a click there can land on the form's
    'Press Enter to submit' hint or the password field's eye."""
    from selenium.webdriver.common.keys import Keys

    el = _clickable(drv, f"//input[@aria-label=\"{label}\"]")
    drv.execute_script("arguments[0].focus();", el)
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(value)


def sign_in(drv, name: str, secret: str) -> None:
    """Sign in with a local account in the sidebar (set once for the browser session)."""
    _open_sign_in(drv)
    _type_focused(drv, "Account name", name)
    _type_focused(drv, "Account secret", secret)
    click_button(drv, "Sign in")
    wait_text(drv, f"Signed in as")
    wait_text(drv, name)


def declare_name(drv, name: str) -> None:
    """Give a name (recorded, not proven) in the sidebar."""
    _open_sign_in(drv)
    _type_focused(drv, "Your name", name)
    click_button(drv, "Use this name")
    wait_text(drv, f"Signed in as submitter {name}")


def goto(drv, title: str) -> None:
    """Change page through the sidebar's page menu (the session, and who is signed in, stay)."""
    _clickable(drv, f"//a[@data-testid='stSidebarNavLink'][.//*[normalize-space()=\"{title}\"]]").click()
    wait_rendered(drv, started=True)
