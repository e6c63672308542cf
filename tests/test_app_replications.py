"""The Replications page, headless: the Seeds box and the 'seeds (as used)' row say the same thing."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def t(seeded_url, monkeypatch, tmp_path):
    monkeypatch.setenv("CREV_DB", seeded_url)
    monkeypatch.setenv("CREV_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("ui.state.PRECOMPUTE", False)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("ui/replications.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _as_used(t) -> str:
    frame = next(d.value for d in t.dataframe if "part" in d.value.columns)
    return frame.set_index("part").loc["seeds (as used)", "setting"]


def test_the_seeds_box_and_the_seeds_as_used_agree(t):
    box = next(w for w in t.number_input if w.key == "rep_seeds_quick")  # quick run: one seed, and the box says so
    assert box.value == 1 and box.disabled
    assert _as_used(t) == "1: seed 0"
    t.toggle(key="rep_quick").set_value(False).run()
    t.number_input(key="rep_seeds").set_value(3).run()
    assert not t.exception
    assert _as_used(t) == "3: seed 0, seed 1, seed 2"


def test_the_claim_selector_keeps_its_claim_across_pages(t):
    claims = t.selectbox(key="rep_claim").options
    other = claims[-1]
    assert other != t.selectbox(key="rep_claim").value
    t.selectbox(key="rep_claim").select(other.split(":")[0] if ":" in other else other).run()
    chosen = t.selectbox(key="rep_claim").value
    t.switch_page("ui/overview.py")
    t.run()
    t.switch_page("ui/replications.py")
    t.run()
    assert not t.exception
    assert t.selectbox(key="rep_claim").value == chosen


def test_the_headline_follows_the_job_to_done(t, seeded_url):
    from evidence import get_engine
    from replicate.jobs.spec import load_spec
    from replicate.jobs.store import create_job, update_job
    from tests.test_replicate import TINY

    engine = get_engine(seeded_url)
    job_id = create_job(engine, load_spec(__import__("tomllib").loads(TINY)), executor="local", by="ann").id
    t.run()
    assert any(f"Job {job_id} — **running**" in m.value for m in t.markdown)
    update_job(engine, job_id, status="done")
    t.run()
    assert any(f"Job {job_id} — **done**" in m.value for m in t.markdown)
    assert not t.exception
