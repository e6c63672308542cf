"""Navigation and identity, headless: the page menu and who the user is on every page, set once in the
session; the Add page bound to the signed-in user; a stranger's cancel refused on Replications
(issue 24 items 1-2, issue 23 items 5-6)."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from evidence import get_engine, pending_submissions
from replicate.jobs.spec import load_spec
from replicate.jobs.store import create_job, get_job
from tests.test_replicate import TINY
from ui.accounts import hash_secret

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGES = ["ui/overview.py", "ui/explore.py", "ui/add.py", "ui/review.py", "ui/meta.py", "ui/contradictions.py", "ui/replications.py"]


@pytest.fixture
def t(seeded_url, monkeypatch, tmp_path):
    from ui import identity

    monkeypatch.setenv("CREV_DB", seeded_url)
    monkeypatch.setenv("CREV_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CREV_CURATOR_SECRET", raising=False)
    monkeypatch.setattr("ui.state.PRECOMPUTE", False)
    identity.limiter.clear()
    monkeypatch.setattr(identity, "client_id", lambda: "ip:203.0.113.9")
    at = AppTest.from_file(APP, default_timeout=120)
    at.secrets["curators"] = {"alice": hash_secret("alice-secret")}
    at.run()
    assert not at.exception, at.exception
    return at


def _open(t, page):
    t.switch_page(page)
    t.run()
    assert not t.exception, [e.value for e in t.exception]
    return t


def _declare(t, name):
    t.text_input(key="user_name").input(name)
    t.button(key="FormSubmitter:declare_name-Use this name").click().run()


def _sign_in(t, name, secret):
    t.text_input(key="curator_name").input(name)
    t.text_input(key="curator_input").input(secret)
    t.button(key="FormSubmitter:curator_login-Sign in").click().run()


def _sidebar_text(t) -> str:
    return " ".join(str(x.value) for x in (*t.sidebar.info, *t.sidebar.caption, *t.sidebar.markdown))


def test_every_page_keeps_the_sidebar_and_shows_who_the_user_is_set_once(t):
    _declare(t, "Jane Doe")
    for page in PAGES:
        _open(t, page)
        hidden = [h.proto.body for h in t.get("html") if "stSidebar" in h.proto.body and "display" in h.proto.body]
        assert not hidden, f"{page} hides the sidebar (and its page menu): {hidden}"
        assert "Signed in as submitter **Jane Doe**" in _sidebar_text(t), page
        assert not t.main.text_input or all(w.key != "user_name" for w in t.main.text_input), f"{page} asks for the name again"


def test_the_filters_keep_their_values_across_pages_that_do_not_draw_them(t):
    t.multiselect(key="f_dataset").select("CIFAR-10").run()
    _open(t, "ui/add.py")
    assert not [w for w in t.sidebar.multiselect if w.key == "f_dataset"]
    _open(t, "ui/explore.py")
    assert t.multiselect(key="f_dataset").value == ["CIFAR-10"]


def test_the_add_page_submits_under_the_signed_in_curator_only(t, seeded_url):
    _sign_in(t, "alice", "alice-secret")
    _open(t, "ui/add.py")
    assert any("Submitting as **alice**" in i.value for i in t.main.info)
    t.main.text_input[0].input("doe_2026_formstudy")
    t.main.text_input[1].input("A study from the form")
    t.main.text_input[3].input("2026")
    t.button(key="FormSubmitter:add_study-Submit the study for review").click().run()
    assert any("are in the review queue" in s.value for s in t.success), [e.value for e in t.error]
    pend = pending_submissions(get_engine(seeded_url))
    assert pend["submitted_by"].tolist() == ["alice"]


def _running_job(seeded_url, by):
    return create_job(get_engine(seeded_url), load_spec(__import__("tomllib").loads(TINY)), executor="local", by=by).id


def test_a_strangers_cancel_is_refused_and_the_launchers_is_taken(t, seeded_url):
    job_id = _running_job(seeded_url, "ann")
    _declare(t, "mallory")
    _open(t, "ui/replications.py")
    t.button(key=f"cancel_{job_id}").click().run()
    assert any("Not cancelled" in e.value and "launched by ann" in e.value for e in t.error), [e.value for e in t.error]
    assert not get_job(get_engine(seeded_url), job_id).cancel_requested
    assert not any("Log (curators only" in str(x.label) for x in t.expander)  # the log's paths and PID are for curators

    t.button(key="sign_out").click().run()
    _declare(t, "ann")
    _open(t, "ui/replications.py")
    t.button(key=f"cancel_{job_id}").click().run()
    assert any("cancellation requested" in w.value for w in t.warning)
    assert get_job(get_engine(seeded_url), job_id).cancel_requested
