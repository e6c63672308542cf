"""End to end in a real browser: `streamlit run app.py` on a free port against a temporary
database, driven by Selenium with Debian's Chromium; screenshots of each page are saved under
test-artifacts/screenshots/."""

import shutil
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run installs them)"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on a free port over a freshly seeded database (the shared browser harness)."""
    from tests.browser_harness import seed_database, serve

    d = tmp_path_factory.mktemp("browser")
    url = f"sqlite:///{d / 'e2e.db'}"
    env = {"CREV_DB": url, "CREV_CACHE": str(d / "cache"), "CREV_CURATOR_SECRET": "e2e-secret"}
    seed_database(url, env)
    with serve(env, log=d / "streamlit.log") as base:
        yield base, url


@pytest.fixture(scope="module")
def driver():
    from tests.browser_harness import make_driver  # one Chromium set-up for the browser tests and the bench

    drv = make_driver()
    yield drv
    drv.quit()


def _wait_text(drv, text, timeout=60):
    from selenium.webdriver.common.by import By

    deadline = time.time() + timeout
    while time.time() < deadline:
        body = drv.find_element(By.TAG_NAME, "body").text
        if text in body:
            return body
        time.sleep(0.5)
    raise AssertionError(f"{text!r} did not appear; page shows: {drv.find_element(By.TAG_NAME, 'body').text[:800]}")


def _shot(drv, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    drv.save_screenshot(str(SHOTS / f"{name}.png"))


PAGES = [("overview", "", "Compression vs adversarial robustness"), ("explore", "explore", "Explore the evidence"),
         ("add", "add", "Add evidence"), ("review", "review", "Review queue"), ("meta", "meta", "Meta-analysis"),
         ("contradictions", "contradictions", "Contradictions"), ("replications", "replications", "Replications")]


def test_overview_numbers(server, driver):
    base, _ = server
    driver.get(base)
    import evidence as ev

    s = ev.stats(ev.get_engine(server[1]))
    body = _wait_text(driver, "Coded claims")
    _wait_text(driver, str(s.results))
    assert "Studies" in body and str(s.studies) in body and str(s.claims) in body
    _shot(driver, "overview")


def _page_failures(drv) -> list[str]:
    """Streamlit's exception elements (an uncaught page error, details redacted by showErrorDetails)
    and app.py's own message for a page that failed: what a user would see instead of the page."""
    from selenium.webdriver.common.by import By

    shown = [e.text for e in drv.find_elements(By.CSS_SELECTOR, '[data-testid="stException"]')]
    body = drv.find_element(By.TAG_NAME, "body").text
    return shown + (["app.py: This page could not be shown"] if "This page could not be shown" in body else [])


def test_every_page_renders_and_is_captured(server, driver):
    base, _ = server
    for name, path, heading in PAGES:
        driver.get(f"{base}/{path}")
        _wait_text(driver, heading)
        time.sleep(1.5)
        assert not _page_failures(driver), (name, _page_failures(driver))
        _shot(driver, name)
    assert len(list(SHOTS.glob("*.png"))) >= 7


def test_meta_analysis_plot_is_drawn(server, driver):
    from selenium.webdriver.common.by import By

    base, _ = server
    driver.get(f"{base}/meta")
    _wait_text(driver, "Pooled effect")
    deadline = time.time() + 60
    while time.time() < deadline and not driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg"):
        time.sleep(0.5)
    plots = driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg")
    assert plots, "no Plotly plot on the meta-analysis page"
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", plots[0])
    time.sleep(1)
    assert driver.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .point, .js-plotly-plot path.point, .js-plotly-plot .scatterlayer")
    _shot(driver, "meta-forest")


def test_submit_a_study_through_the_form(server, driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    import evidence as ev

    base, url = server
    driver.get(f"{base}/add")
    _wait_text(driver, "A study and its claims")

    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 60)

    def field(label):
        return wait.until(EC.element_to_be_clickable((By.XPATH, f"//input[@aria-label=\"{label}\"]")))

    from tests.browser_harness import declare_name

    declare_name(driver, "E2E Tester")  # once, in the sidebar
    for label, value in (("Study id (slug, e.g. doe_2026_pruningrobustness)", "e2e_2026_browserstudy"), ("Title", "Submitted from a browser"),
                         ("Year (as written, e.g. 2024 or '2022 (arXiv Aug 2021)')", "2026")):
        el = field(label)
        el.click()
        el.send_keys(value)
        el.send_keys(Keys.TAB)
        time.sleep(0.3)
    wait.until(EC.element_to_be_clickable((By.XPATH, "//button[contains(., 'Submit the study for review')]"))).click()
    _wait_text(driver, "are in the review queue")
    _shot(driver, "add-submitted")
    pending = ev.pending_submissions(ev.get_engine(url))
    assert "add_study" in set(pending["kind"])
