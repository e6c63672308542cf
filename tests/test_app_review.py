"""The curator's Review page, headless: per-user accounts, a reason and a confirmation on every
decision, the four-eyes refusal, no auto-advance, a study approved before its results."""

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from evidence import add_study, count_results, get_engine, import_results, pending_submissions
from tests.helpers import result_row, write_rows
from ui.accounts import hash_secret, secret_matches

APP = str(Path(__file__).resolve().parent.parent / "app.py")
ACCOUNTS = {"alice": hash_secret("alice-secret"), "bob": hash_secret("bøb-sécret ✓")}


def _review(seeded_url, monkeypatch, accounts=ACCOUNTS):
    monkeypatch.setenv("CREV_DB", seeded_url)
    monkeypatch.delenv("CREV_CURATOR_SECRET", raising=False)
    monkeypatch.delenv("CREV_ALLOW_SELF_APPROVAL", raising=False)
    monkeypatch.setattr("ui.state.PRECOMPUTE", False)
    t = AppTest.from_file(APP, default_timeout=120)
    if accounts:
        t.secrets["curators"] = dict(accounts)
    t.run()
    t.switch_page("ui/review.py")
    t.run()
    assert not t.exception, [e.value for e in t.exception]
    return t


def _sign_in(t, name, secret):
    t.text_input(key="curator_name").input(name)
    t.text_input(key="curator_input").input(secret)
    t.button(key="FormSubmitter:curator_login-Sign in").click().run()
    assert not t.exception


def _decide(t, sub_id, reason, *, check=True, approve=True):
    t.selectbox(key="review_sub").select(sub_id).run()
    t.text_input(key=f"review_reason_{sub_id}").input(reason)
    t.checkbox(key=f"review_checked_{sub_id}").set_value(check)
    label = f"Approve #{sub_id}" if approve else f"Reject #{sub_id}"
    t.button(key=f"FormSubmitter:decide_{sub_id}-{label}").click().run()
    assert not t.exception, [e.value for e in t.exception]


@pytest.fixture
def alices_import(seeded_url, tmp_path):
    engine = get_engine(seeded_url)
    rep = import_results(engine, write_rows(tmp_path / "r.csv", [result_row()]), by="alice")
    return engine, rep.submission_id


def test_hashed_secrets_compare_as_bytes_and_accept_non_ascii():
    h = hash_secret("bøb-sécret ✓")
    assert secret_matches("bøb-sécret ✓", h) and not secret_matches("bob-secret", h)
    assert secret_matches("plain ü", "plain ü") and not secret_matches("plain u", "plain ü")


def test_read_only_without_curator_accounts(seeded_url, monkeypatch):
    t = _review(seeded_url, monkeypatch, accounts=None)
    assert any("Read-only: no curator account is configured" in w.value for w in t.warning)


@pytest.fixture
def client(monkeypatch):
    """Each test's own client address and an empty limiter (the limiter is shared by the server process)."""
    from ui import identity

    identity.limiter.clear()
    where = {"ip": "ip:192.0.2.1"}
    monkeypatch.setattr(identity, "client_id", lambda: where["ip"])
    return where


def test_wrong_secrets_are_limited_per_client_across_names(seeded_url, monkeypatch, client):
    t = _review(seeded_url, monkeypatch)
    for k in range(5):  # five names, one wrong secret each: the old per-name limit never blocked this
        _sign_in(t, f"guess-{k}", "wrong")
        assert any("do not match an account" in e.value for e in t.error)
    _sign_in(t, "alice", "alice-secret")  # the sixth try from this client waits, whatever the name
    assert any("Too many wrong secrets from this connection" in e.value for e in t.error)
    assert not any("Signed in as curator" in i.value for i in t.info)


def test_a_stranger_cannot_lock_the_curator_out(seeded_url, monkeypatch, client):
    t = _review(seeded_url, monkeypatch)
    for _ in range(6):  # a stranger types alice's name with wrong secrets (5 used to lock her out for 300 s)
        _sign_in(t, "alice", "wrong")
    assert any("Too many wrong secrets" in e.value for e in t.error)
    client["ip"] = "ip:198.51.100.7"  # alice, from her own connection
    t2 = _review(seeded_url, monkeypatch)
    _sign_in(t2, "alice", "alice-secret")
    assert any("Signed in as curator **alice**" in i.value for i in t2.info), [e.value for e in t2.error]


def test_the_limiter_backs_off_per_client_and_throttles_a_server_wide_flood():
    from ui.accounts import SignInLimiter

    now = [0.0]
    lim = SignInLimiter(free=3, base_s=2.0, cap_s=60.0, window_s=900.0, global_free=10, global_cap_s=8.0, clock=lambda: now[0])
    for _ in range(3):
        assert lim.wait_for("a") == 0.0
        lim.failed("a")
    assert lim.wait_for("a") == 2.0  # 2 * 2**0 after the third wrong try
    now[0] += 2.0
    lim.failed("a")
    assert lim.wait_for("a") == 4.0  # doubles
    for k in range(40):  # a flood from 40 clients, one wrong try each
        lim.failed(f"bot-{k}")
    assert lim.wait_for("bot-1") == 8.0  # past the server's budget a failing client waits (capped)
    assert lim.wait_for("curator") == 0.0  # a client with no wrong try of its own is always checked
    now[0] += 901.0
    assert lim.wait_for("a") == 0.0 and lim.wait_for("bot-1") == 0.0  # the window forgets
    lim.failed("b")
    lim.succeeded("b")
    assert lim.wait_for("b") == 0.0


def test_four_eyes_a_curator_cannot_approve_their_own_submission(seeded_url, monkeypatch, alices_import):
    engine, sub_id = alices_import
    t = _review(seeded_url, monkeypatch)
    _sign_in(t, "alice", "alice-secret")
    assert any("Signed in as curator **alice**" in i.value for i in t.info)
    base = count_results(engine)
    _decide(t, sub_id, "looks right")
    assert any("cannot approve it" in e.value for e in t.error), [e.value for e in t.error]
    assert count_results(engine) == base
    assert pending_submissions(engine)["id"].tolist() == [sub_id]


def test_another_curator_approves_with_a_reason_and_nothing_is_selected_after(seeded_url, monkeypatch, alices_import):
    engine, sub_id = alices_import
    t = _review(seeded_url, monkeypatch)
    _sign_in(t, "bob", "bøb-sécret ✓")  # a non-ASCII secret works
    base = count_results(engine)
    _decide(t, sub_id, "", check=True)  # no reason: refused, nothing written
    assert any("give a reason" in e.value for e in t.error)
    _decide(t, sub_id, "checked against Table 9", check=False)  # not ticked: refused
    assert any("Tick that you have checked" in e.value for e in t.error)
    assert count_results(engine) == base
    _decide(t, sub_id, "checked against Table 9")
    assert count_results(engine) == base + 1
    assert any(f"Submission #{sub_id} approved by bob" in s.value and "Table 9" in s.value for s in t.success)
    assert not [s for s in t.selectbox if s.key == "review_sub" and s.value is not None]  # no auto-advance
    done = pending_submissions(engine, status=None).set_index("id").loc[sub_id]
    assert done["status"] == "approved" and done["reviewed_by"] == "bob" and done["reason"] == "checked against Table 9"


def test_results_wait_for_their_studys_approval(seeded_url, monkeypatch, tmp_path):
    engine = get_engine(seeded_url)
    add_study(engine, {"study": {"study_id": "doe_2026_newstudy", "title": "New", "year": "2026"}, "claims": []}, "alice")
    rep = import_results(engine, write_rows(tmp_path / "r.csv", [result_row(study_id="doe_2026_newstudy")]), by="alice")
    t = _review(seeded_url, monkeypatch)
    _sign_in(t, "bob", "bøb-sécret ✓")
    t.selectbox(key="review_sub").select(rep.submission_id).run()
    assert any("not approved yet" in e.value and "doe_2026_newstudy" in e.value for e in t.error)
    approve = [b for b in t.button if b.key == f"FormSubmitter:decide_{rep.submission_id}-Approve #{rep.submission_id}"]
    assert approve and approve[0].disabled


def test_a_correction_from_add_evidence_reaches_the_queue_with_its_diff(seeded_url, monkeypatch):
    engine = get_engine(seeded_url)
    monkeypatch.setenv("CREV_DB", seeded_url)
    monkeypatch.setattr("ui.state.PRECOMPUTE", False)
    t = AppTest.from_file(APP, default_timeout=120)
    t.run()
    t.switch_page("ui/add.py")
    t.run()
    t.text_input(key="user_name").input("Jane Doe")
    t.button(key="FormSubmitter:declare_name-Use this name").click().run()
    t.selectbox(key="corr_entity").select("study").run()
    t.text_input(key="corr_key").input("sehwag_2020_hydra")
    t.selectbox(key="corr_field_study").select("venue")
    t.text_input(key="corr_value").input("NeurIPS 2020 (corrected)")
    t.text_input(key="corr_reason").input("the proceedings say NeurIPS")
    t.button(key="FormSubmitter:correction-Submit the correction for review").click().run()
    assert not t.exception
    assert any("correction of study sehwag_2020_hydra" in s.value for s in t.success), [e.value for e in t.error]
    sub_id = int(pending_submissions(engine)["id"].iloc[0])
    t.secrets["curators"] = dict(ACCOUNTS)
    t.switch_page("ui/review.py")
    t.run()
    t.selectbox(key="review_sub").select(sub_id).run()
    assert not t.exception
    diff = t.dataframe[1].value  # the queue, then the changes
    row = diff[diff["field"] == "venue"].iloc[0]
    assert row["proposed"] == "NeurIPS 2020 (corrected)" and row["current"] != row["proposed"]


def test_a_rejection_is_confirmed_in_words_spelled_right(seeded_url, monkeypatch, alices_import, client):
    engine, sub_id = alices_import
    t = _review(seeded_url, monkeypatch)
    _sign_in(t, "bob", "bøb-sécret ✓")
    _decide(t, sub_id, "numbers not in the paper", approve=False)
    flash = [s.value for s in t.success if f"Submission #{sub_id}" in s.value]
    assert flash and f"Submission #{sub_id} rejected by bob" in flash[0] and "rejectd" not in flash[0]
    assert pending_submissions(engine, status=None).set_index("id").loc[sub_id, "status"] == "rejected"


def test_the_reviewer_sees_the_submitters_reason_for_a_correction(seeded_url, monkeypatch, client):
    from evidence import propose_correction

    engine = get_engine(seeded_url)
    sub = propose_correction(engine, "study", "sehwag_2020_hydra", {"venue": "NeurIPS 2020"}, by="carol",
                             reason="the proceedings page says NeurIPS 2020")
    assert pending_submissions(engine).set_index("id").loc[sub.id, "submitter_reason"] == "the proceedings page says NeurIPS 2020"
    t = _review(seeded_url, monkeypatch)
    t.selectbox(key="review_sub").select(sub.id).run()
    assert any("The submitter's reason: “the proceedings page says NeurIPS 2020”" in i.value for i in t.info), [i.value for i in t.info]
