"""Each page of the app, headless (streamlit.testing.v1.AppTest) on a seeded database."""

import logging
import re

import pytest
from streamlit.testing.v1 import AppTest

from evidence import Question, ResultFilter, count_results, get_engine, pending_submissions, query_results, stats

APP = str(__import__("pathlib").Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def at(seeded_url, monkeypatch, tmp_path):
    monkeypatch.setenv("CREV_DB", seeded_url)
    monkeypatch.setenv("CREV_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CREV_CURATOR_SECRET", raising=False)
    monkeypatch.setenv("CREV_APP_PRECOMPUTE", "0")  # heavy reports only where a test asks for them
    monkeypatch.setattr("ui.state.PRECOMPUTE", False, raising=False)
    t = AppTest.from_file(APP, default_timeout=120)
    t.run()
    assert not t.exception, t.exception
    return t


PAGE_FAILED = "This page could not be shown"


def _engine(t):
    import os

    return get_engine(os.environ["CREV_DB"])


def _page(t, path):
    t.switch_page(path)
    t.run()
    assert not t.exception, [e.value for e in t.exception]
    assert not [e.value for e in t.error], "a page shows an error on opening"  # incl. a background report that failed
    return t


def test_a_page_that_raises_fails_its_test_and_is_logged(at, monkeypatch, caplog):
    """app.py must not turn a page's exception into a message only: AppTest sees it, the log has it."""
    from ui import state

    def broken_sidebar(*_):
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


def test_a_background_report_that_raises_fails_the_page_and_is_logged(at, monkeypatch, caplog):
    import metaanalysis

    def broken_report(*args, **kwargs):
        raise RuntimeError("boom in the contradiction report")

    monkeypatch.setattr(metaanalysis, "contradiction_report", broken_report)
    with caplog.at_level(logging.ERROR, logger="crev.app"):
        at.switch_page("ui/contradictions.py")
        at.run()
    assert at.exception
    logged = {r.getMessage(): r.exc_info for r in caplog.records if r.name == "crev.app"}
    assert "background report contradictions failed" in logged
    assert str(logged["background report contradictions failed"][1]) == "boom in the contradiction report"


def test_overview_shows_the_database_totals_and_reacts_to_filters(at, seeded_url):
    s = stats(get_engine(seeded_url))
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Studies"], metrics["Coded claims"], metrics["Results"]) == (str(s.studies), str(s.claims), str(s.results))
    before = _text(at)
    assert "effects from" in before
    at.sidebar.selectbox(key="f_assume_n").select("none (exclude the row)").run()
    assert not at.exception
    assert _text(at) != before


def test_overview_shows_what_metaanalysis_answer_gives_per_question_and_kind(at):
    import metaanalysis as ma

    at.button(key="ov_answers").click().run()
    assert not at.exception
    eng = _engine(at)
    ans = ma.answer(ma.compute_effects(query_results(eng, ResultFilter()), ma.EffectSettings(assume_n="dataset")))
    text = _text(at)
    for q in Question:
        assert q.text in text
    tables = [t.value for t in at.table if "evaluation kind" in t.value.columns and "verdict" in t.value.columns]
    measurable = [qa for qa in ans.questions if qa.kinds]
    assert len(tables) == len(measurable) >= 2
    for qa, tab in zip(measurable, tables):
        assert list(tab["evaluation kind"]) == [k.kind.label for k in qa.kinds]
        assert list(tab["verdict"]) == [k.verdict for k in qa.kinds]
        assert list(tab["studies"]) == [str(k.n_studies) for k in qa.kinds]
        assert list(tab["effects"]) == [f"{k.k:,}" for k in qa.kinds]
    first = measurable[0].kinds[0]
    assert tables[0]["verdict"].iloc[0] == first.verdict and tables[0]["studies"].iloc[0] == str(first.n_studies)
    pooled = [(k, tab) for qa, tab in zip(measurable, tables) for k in qa.kinds if k.estimable]
    # under the df >= 4 and leave-one-out rules the shipped evidence may have no pooled kind: each kind then says what its studies can say
    assert all(k.can_say and k.can_say in k.verdict for qa in measurable for k in qa.kinds if not k.estimable and k.per_study)
    for k, tab in pooled[:1]:
        cells = " ".join(tab.astype(str).to_numpy().ravel())
        assert f"{k.estimate:+.1f} pp" in cells and f"{k.ci_low:+.1f} to {k.ci_high:+.1f} pp" in cells
        assert f"{k.loo_low:+.1f} to {k.loo_high:+.1f} pp" in cells
    assert "come from one study" in text
    for qa, tab in zip(measurable, tables):  # how much rests on high-risk rows: per question, and per kind in the table
        n_high = sum(int(k.n_high_risk) for k in qa.kinds)
        assert f"{n_high:,} of {qa.k:,} effects (" in text and qa.high_risk_text in text
        assert [c.split(" (")[0] for c in tab["high-risk effects"]] == [f"{k.n_high_risk:,}" for k in qa.kinds]
    assert "rest on high-risk evaluations (weak or unknown attack, epsilon not stated, robust above clean, or possible gradient masking)" in text
    refit = [(k, tab) for qa, tab in zip(measurable, tables) for k in qa.kinds if k.without_high_risk is not None]
    for k, tab in refit[:1]:
        w = k.without_high_risk
        assert f"{w.estimate:+.1f} pp ({w.ci_low:+.1f} to {w.ci_high:+.1f} pp; {w.n_studies} studies)" in list(tab["without high-risk effects (95% CI)"])
    why_none = [k.without_high_risk_note for qa in measurable for k in qa.kinds if k.without_high_risk_note]
    shown_refits = " ".join(" ".join(t["without high-risk effects (95% CI)"]) for t in tables)
    assert all(w in shown_refits for w in why_none)  # a pooled kind without a refit says why
    assert "Not assessable: no result in the database measures" in text  # the capacity question says what the data cannot tell
    shown = " ".join([text] + [" ".join(t.value.astype(str).to_numpy().ravel()) for t in at.table])
    for bad in ("p = 0 ", "p = 0.0000", "None", "n_assumed", "white_box", "black_box", "unstructured_pruning"):
        assert bad not in shown, (bad, shown[max(0, shown.find(bad) - 80):shown.find(bad) + 80])
    assert not re.search(r"\bnan\b", shown)


def test_explore_filters_the_table(at):
    _page(at, "ui/explore.py")
    n_all = count_results(_engine(at), ResultFilter())
    assert len(at.dataframe[0].value) == min(n_all, 50)  # the first page of 50 rows
    at.sidebar.multiselect(key="f_family").select("quantization").run()
    assert not at.exception
    n_q = count_results(_engine(at), ResultFilter(families=["quantization"]))
    assert 0 < n_q < n_all and f"{n_q:,} results" in _text(at)
    shown = at.dataframe[0].value
    assert len(shown) == min(n_q, 50)


def test_explore_sorts_the_whole_filtered_set_not_the_page(at):
    _page(at, "ui/explore.py")
    at.selectbox(key="ex_sort").select("robust accuracy change (pp)").run()
    at.toggle(key="ex_desc").set_value(True).run()
    assert not at.exception
    res = query_results(_engine(at), ResultFilter())
    change = (res["robust_acc_compressed"] - res["robust_acc_dense"]).dropna()
    first = at.dataframe[0].value["robust change (pp)"]
    assert len(first) == 50 < len(res)
    assert first.iloc[0] == pytest.approx(change.max(), abs=0.01)  # the largest of all rows, not of the first page
    assert list(first) == sorted(first, reverse=True)
    at.toggle(key="ex_desc").set_value(False).run()
    assert at.dataframe[0].value["robust change (pp)"].iloc[0] == pytest.approx(change.min(), abs=0.01)


def test_epsilon_filter_up_to_8_255_keeps_the_rows_at_8_255(at):
    _page(at, "ui/explore.py")
    at.sidebar.select_slider(key="f_eps").set_range(0.0, 8 / 255).run()
    assert not at.exception
    res = query_results(_engine(at), ResultFilter())
    eps = res["epsilon"].dropna()
    at_8 = int(((eps - 8 / 255).abs() < 1e-6).sum())
    assert at_8 > 0
    expected = int((eps <= 8 / 255 + 1e-6).sum())
    assert f"{expected:,} results" in _text(at)


def test_explore_says_when_a_study_has_no_numbers(at):
    _page(at, "ui/explore.py")
    engine = _engine(at)
    s = stats(engine)
    without = sorted(sid for sid, c in s.by_study.items() if c["results"] == 0)
    assert without
    at.selectbox(key="explore_study").select(without[0]).run()
    assert not at.exception
    assert any("has no numbers in the database" in i.value for i in at.info)


def test_add_form_rejects_bad_input_with_the_right_message(at, seeded_url):
    _page(at, "ui/add.py")
    at.text_input(key="user_name").input("Jane Doe")
    at.button(key="FormSubmitter:declare_name-Use this name").click().run()
    at.main.text_input[0].input("Bad Slug!")  # study id
    at.button(key="FormSubmitter:add_study-Submit the study for review").click().run()
    assert not at.exception
    assert any("problem(s); nothing was written" in e.value for e in at.error)
    assert pending_submissions(get_engine(seeded_url)).empty


def test_add_form_accepts_good_input_into_the_review_queue(at, seeded_url):
    _page(at, "ui/add.py")
    at.text_input(key="user_name").input("Jane Doe")
    at.button(key="FormSubmitter:declare_name-Use this name").click().run()
    at.main.text_input[0].input("doe_2026_formstudy")
    at.main.text_input[1].input("A study from the form")
    at.main.text_input[3].input("2026")
    at.button(key="FormSubmitter:add_study-Submit the study for review").click().run()
    assert not at.exception
    assert any("are in the review queue" in s.value for s in at.success), [e.value for e in at.error]
    pend = pending_submissions(get_engine(seeded_url))
    assert len(pend) == 1 and pend["kind"].iloc[0] == "add_study" and pend["submitted_by"].iloc[0] == "Jane Doe"


def test_add_form_needs_the_submitters_name_not_the_servers_login(at, seeded_url):
    _page(at, "ui/add.py")
    at.main.text_input[0].input("doe_2026_formstudy")
    at.main.text_input[1].input("A study from the form")
    at.button(key="FormSubmitter:add_study-Submit the study for review").click().run()
    assert any("Sign in or give your name in the sidebar" in e.value for e in at.error)
    assert pending_submissions(get_engine(seeded_url)).empty


def test_meta_analysis_page_fits_and_changes_with_the_model(at):
    _page(at, "ui/meta.py")
    labels = {m.label: m.value for m in at.metric}
    assert "Pooled effect" in labels
    first = labels["Pooled effect"]
    at.selectbox(key="ma_model").select("random").run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Pooled effect"] != first
    assert labels["p-value"] != "0" and not labels["p-value"].startswith("0.000")


def test_meta_analysis_why_message_names_the_missing_moderators(at):
    _page(at, "ui/meta.py")
    at.multiselect(key="ma_mods").select("sparsity").select("bits").run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    # no effect states both a sparsity and a bit width (pruning rows have one, quantization rows the other):
    # the message says so with the counts of each, not a generic error, and no model is shown
    assert re.search(r"only 0 effect\(s\) state every chosen moderator at once \(sparsity: [\d,]+, bit width: [\d,]+ effects", errors), errors
    assert "single cluster" not in errors
    assert "Pooled effect" not in {m.label for m in at.metric}


def test_contradictions_page_shows_questions_as_text_and_starts_on_one_with_data(at):
    _page(at, "ui/contradictions.py")
    assert "contradicting pairs of claims" in _text(at)
    box = at.selectbox(key="contra_q")
    assert "no results to test" not in box.format_func(box.value)
    assert box.format_func(box.value) in {q.text for q in Question}
    box.select("quantization").run()
    assert not at.exception and len(at.expander) > 0
    assert "Evidence used" in _text(at)


def test_replications_page_shows_the_catalogue(at):
    import replicate

    _page(at, "ui/replications.py")
    first = next(iter(replicate.catalogue().values()))
    assert first.claim.study in _text(at)
    assert any("No job has run yet" in i.value for i in at.info)
    at.selectbox(key="rep_claim").select("quantization").run()
    assert not at.exception and "galloway_2018_bnn" in _text(at)


def test_replications_launch_form_says_what_its_n_and_seeds_can_detect(at):
    _page(at, "ui/replications.py")
    at.selectbox(key="rep_claim").select("pruning_without_at").run()
    text = " ".join(c.value for c in at.caption)
    assert not at.exception and "What this run can detect" in text and "exact McNemar" in text
