"""Migration 0002: release labels and exact counts, on a fresh database and on an upgraded 0001 one."""

from __future__ import annotations

import pydantic
import pytest
import sqlalchemy as sa
from alembic import command

from evidence import get_engine
from evidence.db import _alembic_config, schema_revision, upgrade_schema, writer
from evidence.models import ResultCreate
from evidence.vocab import AdvTraining, Attack, CompressionFamily, Question, ThreatModel

NEW_RESULT_COLUMNS = {
    "release", "provenance_text", "n_clean_correct_dense", "n_robust_correct_dense", "n_clean_correct_compressed",
    "n_robust_correct_compressed", "n_robust_dense_only", "n_robust_compressed_only", "attack_queries",
}


def _columns(engine, table: str) -> dict[str, dict]:
    return {c["name"]: c for c in sa.inspect(engine).get_columns(table)}


def _upgrade_to(engine, revision: str) -> None:
    cfg = _alembic_config(engine)
    with writer(engine).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def test_fresh_schema_has_release_and_count_columns(empty_url):
    engine = get_engine(empty_url)
    upgrade_schema(engine)
    assert schema_revision(engine) >= "0002"
    cols = _columns(engine, "result")
    assert NEW_RESULT_COLUMNS <= set(cols)
    assert cols["release"]["nullable"] is False
    assert all(cols[c]["nullable"] for c in NEW_RESULT_COLUMNS - {"release", "provenance_text"})
    for table in ("study", "claim", "submission"):
        assert "release" in _columns(engine, table)


def test_upgrade_of_a_0001_database_keeps_its_rows_and_labels_them_unreleased(empty_url):
    engine = get_engine(empty_url)
    _upgrade_to(engine, "0001")
    assert "release" not in _columns(engine, "study")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO submission (kind, submitted_by, submitted_at, status, summary, n_studies, n_claims, n_results) "
            "VALUES ('add_study', 'ann', CURRENT_TIMESTAMP, 'pending', '', 1, 0, 0)"
        ))
        conn.execute(sa.text(
            "INSERT INTO study (study_id, title, authors, year_text, venue, identifier, compression_kind, compression_kind_text, "
            "main_claim, main_direction, main_direction_text, adversarial_training, adversarial_training_text, datasets, "
            "architectures, attacks, source_of_info, review_membership_text, version, submission_id, review_status, current, "
            "created_by, created_at) VALUES ('old_2020_study', 'Old', '', '', '', '', 'pruning', '', '', 'unknown', '', "
            "'unknown', '', '', '', '', '', '', 1, 1, 'pending', false, 'ann', CURRENT_TIMESTAMP)"
        ))
    upgrade_schema(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT study_id, release FROM study")).all()
        sub_release = conn.execute(sa.text("SELECT release FROM submission")).scalar_one()
    assert rows == [("old_2020_study", "")]
    assert sub_release == ""
    assert NEW_RESULT_COLUMNS <= set(_columns(engine, "result"))


def _result(**kw) -> dict:
    return {"study_id": "s_2020_x", "compression_family": "quantization", **kw}


def test_counts_determine_the_percentage_exactly():
    r = ResultCreate.model_validate(_result(n_test=10000, n_robust_correct_compressed=4321, robust_acc_compressed=43.2))
    assert r.robust_acc_compressed == pytest.approx(43.21, abs=1e-12)
    r = ResultCreate.model_validate(_result(n_test=3, n_clean_correct_dense=1))
    assert r.clean_acc_dense == pytest.approx(100 / 3, abs=1e-12)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"n_robust_correct_compressed": 5}, "without n_test"),
        ({"n_test": 100, "n_robust_correct_compressed": 101}, "more than n_test"),
        ({"n_test": 100, "n_robust_dense_only": 60, "n_robust_compressed_only": 50}, "more than n_test"),
        ({"n_test": 100, "n_robust_correct_compressed": 40, "robust_acc_compressed": 41.0}, "disagrees"),
        (
            {"n_test": 100, "n_robust_correct_dense": 50, "n_robust_correct_compressed": 40,
             "n_robust_dense_only": 12, "n_robust_compressed_only": 1},
            "paired counts disagree",
        ),
        ({"n_test": 100, "attack_queries": 0}, "greater than or equal to 1"),
    ],
)
def test_inconsistent_counts_are_refused(fields, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        ResultCreate.model_validate(_result(**fields))


def test_consistent_paired_counts_are_accepted():
    r = ResultCreate.model_validate(_result(
        n_test=100, n_robust_correct_dense=50, n_robust_correct_compressed=40, n_robust_dense_only=12, n_robust_compressed_only=2,
    ))
    assert (r.robust_acc_dense, r.robust_acc_compressed) == (50.0, 40.0)


def test_new_vocabulary_members_are_declared():
    assert {"apgd", "autoattack_fast", "autoattack_standard", "pgd_pp", "eot_pgd", "bpda"} <= {a.value for a in Attack}
    assert ThreatModel("common_corruptions") is ThreatModel.common_corruptions
    assert max(len(m.value) for e in (Attack, ThreatModel) for m in e) <= 32  # the enum columns hold 32 characters


def test_questions_are_one_enum_with_text_and_scope():
    assert [q.value for q in Question] == [
        "pruning_without_at", "sparsity_level", "quantization", "transfer", "robust_aware_pruning", "capacity",
    ]
    assert Question.pruning_without_at.scope.claim_conditions() == {"adversarial_training": AdvTraining.no}
    assert Question.transfer.scope.claim_conditions() == {"threat_model": ThreatModel.transfer}
    assert Question.transfer.scope.result_threat_models() == (ThreatModel.transfer, ThreatModel.white_box)
    assert CompressionFamily.binarization in Question.quantization.scope.families
    assert Question.capacity.scope.measurable is False
    assert Question.quantization.text.startswith("Does quantization")
