"""Review workflow: pending rows do not count; approval, rejection, corrections and history."""

import json

import pytest

from evidence import (
    EvidenceError, ResultFilter, add_study, approve, count_results, history, import_results, pending_submissions,
    propose_correction, query_results, reject, submission_diff, list_studies, read_study_file,
)
from tests.helpers import result_row, write_rows

STUDY = {
    "study": {
        "study_id": "doe_2026_newstudy",
        "title": "A new study",
        "authors": "J. Doe",
        "year": "2026 (arXiv)",
        "compression_kind": "quantization",
        "main_claim": "4-bit models are less robust",
        "main_direction": "robustness_down",
        "adversarial_training": "no",
        "identifier": "arXiv:2601.00001",
    },
    "claims": [{"question_id": "quantization", "question": "Does quantization change robustness?", "direction": "down", "position": "4-bit hurts"}],
}


def test_pending_result_excluded_then_included_after_approval(seeded_any, tmp_path):
    engine = seeded_any
    base = count_results(engine)
    rep = import_results(engine, write_rows(tmp_path / "a.csv", [result_row()]), by="alice")
    assert count_results(engine) == base
    assert rep.submission_id in set(pending_submissions(engine)["id"])
    approve(engine, rep.submission_id, by="carol")
    assert count_results(engine) == base + 1
    assert pending_submissions(engine).empty


def test_rejected_submission_stays_visible_with_reason(seeded, tmp_path):
    rep = import_results(seeded, write_rows(tmp_path / "b.csv", [result_row()]), by="alice")
    reject(seeded, rep.submission_id, reason="numbers not in the cited table", by="carol")
    allsubs = pending_submissions(seeded, status=None).set_index("id")
    assert allsubs.loc[rep.submission_id, "status"] == "rejected"
    assert allsubs.loc[rep.submission_id, "reason"] == "numbers not in the cited table"
    rows = query_results(seeded, ResultFilter(status="all", study_ids=["sehwag_2020_hydra"]))
    assert (rows["review_status"] == "rejected").sum() == 1
    with pytest.raises(EvidenceError, match="is rejected, not pending"):
        approve(seeded, rep.submission_id)


def test_rejection_needs_a_reason(seeded, tmp_path):
    rep = import_results(seeded, write_rows(tmp_path / "c.csv", [result_row()]))
    with pytest.raises(EvidenceError, match="needs a reason"):
        reject(seeded, rep.submission_id, reason="  ")


def test_correction_is_a_new_version_and_history_lists_each(seeded):
    uid = query_results(seeded, ResultFilter(study_ids=["sehwag_2020_hydra"]))["uid"].iloc[0]
    sub = propose_correction(seeded, "result", uid, {"robust_acc_compressed": 47.5}, by="bob", reason="typo")
    # the correction is pending: the current value is unchanged
    cur = query_results(seeded, ResultFilter(study_ids=["sehwag_2020_hydra"]))
    assert cur.loc[cur["uid"] == uid, "version"].iloc[0] == 1
    diff = submission_diff(seeded, sub.id)
    assert diff.loc[diff["field"] == "robust_acc_compressed", "proposed"].iloc[0] == 47.5
    approve(seeded, sub.id, by="carol")
    cur = query_results(seeded, ResultFilter(study_ids=["sehwag_2020_hydra"]))
    row = cur[cur["uid"] == uid]
    assert len(row) == 1 and row["version"].iloc[0] == 2 and row["robust_acc_compressed"].iloc[0] == 47.5
    h = history(seeded, uid)
    assert list(h["version"]) == [1, 2]
    assert list(h["current"]) == [False, True]
    assert list(h["submission_kind"]) == ["seed", "correction"]


def test_add_study_from_json_and_toml(seeded, tmp_path):
    j = tmp_path / "s.json"
    j.write_text(json.dumps(STUDY))
    sub = add_study(seeded, read_study_file(j), by="alice")
    assert (sub.n_studies, sub.n_claims) == (1, 1)
    assert "doe_2026_newstudy" not in set(list_studies(seeded)["study_id"])
    approve(seeded, sub.id, by="carol")
    st = list_studies(seeded).set_index("study_id").loc["doe_2026_newstudy"]
    assert st["year"] == 2026 and st["year_text"] == "2026 (arXiv)" and st["main_direction"] == "down"
    t = tmp_path / "s.toml"
    t.write_text('[study]\nstudy_id = "roe_2026_other"\ntitle = "Other"\nyear = 2026\n\n[[claims]]\nquestion_id = "transfer"\ndirection = "neutral"\n')
    sub2 = add_study(seeded, read_study_file(t))
    h = history(seeded, "roe_2026_other")
    assert list(h["review_status"]) == ["pending"] and sub2.n_claims == 1


def test_add_study_rejects_duplicates_and_bad_fields(seeded):
    from evidence import ValidationFailed

    bad = {"study": {"study_id": "sehwag_2020_hydra", "title": ""}, "claims": [{"question_id": "q", "direction": "sideways"}]}
    with pytest.raises(ValidationFailed) as err:
        add_study(seeded, bad)
    cols = {p.column for p in err.value.problems}
    assert {"study.title", "study.study_id", "claims.direction"} <= cols
    assert pending_submissions(seeded).empty
