"""Each page of the app, headless (streamlit.testing.v1.AppTest) on a seeded database."""

import logging

import pytest
from streamlit.testing.v1 import AppTest

from evidence import ResultFilter, count_results, get_engine, pending_submissions
from tests.helpers import result_row, write_rows

APP = str(__import__("pathlib").Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def at(seeded_url, monkeypatch, tmp_path):
    monkeypatch.setenv("CREV_DB", seeded_url)
    monkeypatch.setenv("CREV_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CREV_CURATOR_SECRET", raising=False)
    t = AppTest.from_file(APP, default_timeout=120)
    t.run()
    assert not t.exception, t.exception
    return t


PAGE_FAILED = "This page could not be shown"


def _page(t, path):
    t.switch_page(path)
    t.run()
    assert not t.exception, [e.value for e in t.exception]
    assert not [e.value for e in t.error if PAGE_FAILED in e.value]
    return t


def test_a_page_that_raises_fails_its_test_and_is_logged(at, monkeypatch, caplog):
    """app.py must not turn a page's exception into a message only: AppTest sees it, the log has it."""
    from ui import state

    def broken_sidebar():
        raise RuntimeError("boom in the sidebar")

    monkeypatch.setattr(state, "sidebar", broken_sidebar)
    with caplog.at_level(logging.ERROR, logger="crev.app"):
        at.run()
    assert at.exception  # Streamlit's element; its text is redacted by client.showErrorDetails = "none"
    assert any(PAGE_FAILED in e.value and "RuntimeError" in e.value for e in at.error)
    failed = [r for r in caplog.records if r.name == "crev.app"]
    assert failed and failed[0].exc_info[0] is RuntimeError and str(failed[0].exc_info[1]) == "boom in the sidebar"


def _text(t) -> str:
    return " ".join(str(x.value) for x in (*t.markdown, *t.caption, *t.info, *t.error, *t.success, *t.warning))


def test_overview_shows_the_seed_totals_and_reacts_to_filters(at):
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Studies"] == "40" and metrics["Coded claims"] == "43" and metrics["Results"] == "8349"
    before = _text(at)
    assert "4 studies" in before and "three-level model" in before  # default: the dataset's test-set size, flagged
    at.sidebar.selectbox(key="f_assume_n").select("none (exclude the row)").run()
    assert not at.exception
    after = _text(at)
    assert after != before and "from 1 study," in after


def test_explore_filters_the_table(at):
    _page(at, "ui/explore.py")
    n_all = len(at.dataframe[0].value)
    at.sidebar.multiselect(key="f_family").select("quantization").run()
    assert not at.exception
    assert "72 results" in _text(at)  # 2/3/4-bit rows of the seed
    assert len(at.dataframe[0].value) <= n_all


def test_add_form_rejects_bad_input_with_the_right_message(at, seeded_url):
    _page(at, "ui/add.py")
    form_inputs = at.text_input
    form_inputs[1].input("Bad Slug!")  # study id
    at.button(key="FormSubmitter:add_study-Submit the study for review").click().run()
    assert not at.exception
    assert any("problem(s); nothing was written" in e.value for e in at.error)
    assert pending_submissions(get_engine(seeded_url)).empty


def test_add_form_accepts_good_input_into_the_review_queue(at, seeded_url):
    _page(at, "ui/add.py")
    at.text_input[1].input("doe_2026_formstudy")
    at.text_input[2].input("A study from the form")
    at.text_input[4].input("2026")
    at.button(key="FormSubmitter:add_study-Submit the study for review").click().run()
    assert not at.exception
    assert any("are in the review queue" in s.value for s in at.success), [e.value for e in at.error]
    pend = pending_submissions(get_engine(seeded_url))
    assert len(pend) == 1 and pend["kind"].iloc[0] == "add_study"


def test_review_page_is_read_only_without_the_secret(at):
    _page(at, "ui/review.py")
    assert any("Read-only: no curator secret is configured" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key == "approve_btn"]


def test_review_page_approves_with_the_secret(seeded_url, monkeypatch, tmp_path):
    engine = get_engine(seeded_url)
    from evidence import import_results

    import_results(engine, write_rows(tmp_path / "r.csv", [result_row()]), by="alice")
    monkeypatch.setenv("CREV_DB", seeded_url)
    monkeypatch.setenv("CREV_CURATOR_SECRET", "s3cret")
    t = AppTest.from_file(APP, default_timeout=120)
    t.run()
    _page(t, "ui/review.py")
    t.text_input(key="curator_input").input("wrong").run()
    assert any("not the configured one" in e.value for e in t.error)
    t.text_input(key="curator_input").input("s3cret").run()
    base = count_results(engine)
    t.button(key="approve_btn").click().run()
    assert not t.exception
    assert count_results(engine) == base + 1


def test_meta_analysis_page_fits_and_changes_with_the_model(at):
    _page(at, "ui/meta.py")
    labels = {m.label: m.value for m in at.metric}
    assert "Pooled effect" in labels
    first = labels["Pooled effect"]
    at.selectbox(key="ma_model").select("random").run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Pooled effect"] != first


def test_contradictions_page_lists_pairs(at):
    _page(at, "ui/contradictions.py")
    assert "contradicting pairs of claims" in _text(at)
    at.selectbox(key="contra_q").select("quantization").run()
    assert not at.exception and len(at.expander) > 0


def test_replications_page_shows_the_catalogue(at):
    _page(at, "ui/replications.py")
    assert "Checks **wang_2018_prunedrobustness**" in _text(at)
    assert any("No job has run yet" in i.value for i in at.info)
    at.selectbox(key="rep_claim").select("quantization").run()
    assert not at.exception and "galloway_2018_bnn" in _text(at)
