"""Review held by the database (migration 0005), acting as the roles and GRANTs of docs/SECURITY.md.

Each test connects as a documented login role (``crev_a12_alice`` and ``crev_a12_bob`` in
``crev_submitter``; ``crev_a12_carol`` and ``crev_a12_erin`` in ``crev_curator``) and tries by hand,
in SQL, what the client would refuse: rows injected into another's submission, summary and count
changes by a non-owner, changes to an approved submission, another's job, a curator approving her own
submission. The migration itself is upgraded and downgraded on both backends.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

from evidence import get_engine, import_results, init_database
from evidence.db import _alembic_config, head_revision, schema_revision, writer
from evidence.models import Job, Submission
from tests.helpers import result_row, write_rows
from tests.test_evidence_security import PREFIX, pg_roles  # noqa: F401  (the documented roles and grants)

REFUSED = (sa.exc.ProgrammingError, sa.exc.InternalError)


@pytest.fixture
def roles(pg_roles):  # noqa: F811
    """pg_roles plus a second submitter, bob."""
    owner, engines = pg_roles
    with owner.connect() as conn:
        conn.exec_driver_sql(f"DROP ROLE IF EXISTS {PREFIX}bob")
        conn.exec_driver_sql(f"CREATE ROLE {PREFIX}bob LOGIN IN ROLE crev_submitter")
        conn.commit()
    url = sa.engine.make_url(owner.url.render_as_string(hide_password=False)).set(username=f"{PREFIX}bob")
    engines["bob"] = get_engine(url.render_as_string(hide_password=False))
    yield owner, engines
    engines["bob"].dispose()


def _refused(engine, sql: str, params: dict | None = None, match: str = "crev: ") -> None:
    with engine.connect() as conn, pytest.raises(REFUSED, match=match):
        conn.execute(sa.text(sql), params or {})
        conn.commit()


def _ok(engine, sql: str, params: dict | None = None) -> None:
    with engine.connect() as conn:
        conn.execute(sa.text(sql), params or {})
        conn.commit()


def _row_of(engine, submission_id: int) -> dict:
    with engine.connect() as conn:
        row = dict(conn.execute(sa.text("SELECT * FROM result WHERE submission_id = :s"), {"s": submission_id}).mappings().one())
    row.pop("id")
    return row


def _insert_result(engine, row: dict) -> None:
    cols = ", ".join(row)
    _ok(engine, f"INSERT INTO result ({cols}) VALUES ({', '.join(':' + c for c in row)})", row)


def _sub(owner, sid: int):
    with owner.connect() as conn:
        return conn.execute(sa.select(Submission.__table__).where(Submission.__table__.c.id == sid)).one()


def test_a_submitter_cannot_insert_rows_into_another_persons_submission(roles, tmp_path):
    owner, eng = roles
    bobs = import_results(eng["bob"], write_rows(tmp_path / "b.csv", [result_row(robust_acc_compressed="41.5")]), by="bob")
    alices = import_results(eng["alice"], write_rows(tmp_path / "a.csv", [result_row(robust_acc_compressed="42.5")]), by="alice")
    row = _row_of(eng["alice"], alices.submission_id)
    row.update(uid="injected00000000000a", fingerprint="e" * 40, submission_id=bobs.submission_id)
    with pytest.raises(REFUSED, match="only to a pending submission it created"):
        _insert_result(eng["alice"], row)
    with pytest.raises(REFUSED, match="only to a pending submission it created"):  # curators neither
        _insert_result(eng["carol"], row)
    with owner.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM result WHERE submission_id = :s"), {"s": bobs.submission_id}).scalar_one() == 1
    # into her own pending submission she may (it stays pending); once approved, not even there
    row.update(submission_id=alices.submission_id)
    _insert_result(eng["alice"], row)
    _ok(eng["carol"], "UPDATE submission SET status = 'approved' WHERE id = :s", {"s": alices.submission_id})
    row.update(uid="injected00000000000b", fingerprint="d" * 40)
    with pytest.raises(REFUSED, match="is approved"):
        _insert_result(eng["alice"], row)


def test_summary_and_counts_change_only_by_the_owner_or_a_curator_and_never_once_approved(roles, tmp_path):
    owner, eng = roles
    bobs = import_results(eng["bob"], write_rows(tmp_path / "b.csv", [result_row(robust_acc_compressed="43.5")]), by="bob")
    sid = {"s": bobs.submission_id}
    _refused(eng["alice"], "UPDATE submission SET summary = 'forged verdicts' WHERE id = :s", sid, "belongs to role")
    _refused(eng["alice"], "UPDATE submission SET n_results = 99 WHERE id = :s", sid, "belongs to role")
    _ok(eng["bob"], "UPDATE submission SET summary = 'bob corrects his own note' WHERE id = :s", sid)
    _ok(eng["carol"], "UPDATE submission SET summary = 'curator note' WHERE id = :s", sid)
    _ok(eng["carol"], "UPDATE submission SET status = 'approved', reviewed_by = 'carol' WHERE id = :s", sid)
    for who in ("bob", "alice", "carol"):  # approved: immutable for everyone bound by review
        _refused(eng[who], "UPDATE submission SET summary = 'changed after approval' WHERE id = :s", sid, "immutable")
    _refused(eng["erin"], "UPDATE submission SET status = 'rejected' WHERE id = :s", sid, "immutable")
    assert (_sub(owner, bobs.submission_id).summary, _sub(owner, bobs.submission_id).status) == ("curator note", "approved")


def test_the_database_refuses_a_curator_approving_her_own_submission(roles, tmp_path):
    owner, eng = roles
    own = import_results(eng["carol"], write_rows(tmp_path / "c.csv", [result_row(robust_acc_compressed="44.5")]), by="carol")
    sid = {"s": own.submission_id}
    _refused(eng["carol"], "UPDATE submission SET status = 'approved', reviewed_by = 'someone else' WHERE id = :s", sid, "cannot approve it")
    _refused(eng["bob"], "UPDATE submission SET n_results = 0 WHERE id = :s", sid)  # and no submitter touches it
    assert _sub(owner, own.submission_id).status == "pending"
    # a curator cannot approve at insert either: a hand-written approved submission lands pending
    _ok(eng["carol"], "INSERT INTO submission (kind, submitted_by, submitted_at, status, summary, n_studies, n_claims, n_results, release, "
                      "reviewed_by) VALUES ('import_results', 'carol', now(), 'approved', '', 0, 0, 0, '', 'carol')")
    with owner.connect() as conn:
        forged = conn.execute(sa.text("SELECT status, reviewed_by, self_approved FROM submission WHERE id = (SELECT max(id) FROM submission)")).one()
    assert tuple(forged) == ("pending", None, False)
    _ok(eng["erin"], "UPDATE submission SET status = 'approved', reviewed_by = 'erin' WHERE id = :s", sid)  # another curator may
    assert _sub(owner, own.submission_id).reviewed_db_user == f"{PREFIX}erin"


def _job(engine, name: str) -> int:
    with engine.connect() as conn:
        jid = conn.execute(sa.text(
            "INSERT INTO job (name, claim_id, spec_json, spec_hash, quick, executor, status, stage, progress, cells_total, cells_done, log, "
            "cancel_requested, created_by, created_at, started_at, timings_json) VALUES (:n, 'c', '{}', 'h', false, 'local', 'running', "
            "'grid', 0, 4, 0, '', false, :n, now(), now(), '') RETURNING id"), {"n": name}).scalar_one()
        conn.commit()
    return jid


def test_only_the_launcher_or_a_curator_updates_a_job_and_anyone_may_reap_a_stale_one(roles):
    owner, eng = roles
    jid = _job(eng["alice"], "alice")
    with owner.connect() as conn:
        assert conn.execute(sa.select(Job.__table__.c.created_db_user).where(Job.__table__.c.id == jid)).scalar_one() == f"{PREFIX}alice"
    j = {"j": jid}
    _refused(eng["bob"], "UPDATE job SET cancel_requested = true WHERE id = :j", j, "launched by role")
    _refused(eng["bob"], "UPDATE job SET status = 'failed', stage = 'stale' WHERE id = :j", j, "launched by role")  # it is alive
    _refused(eng["bob"], "UPDATE job SET created_db_user = :me, log = 'mine now' WHERE id = :j", {**j, "me": f"{PREFIX}bob"}, "launched by role")
    _ok(eng["alice"], "UPDATE job SET created_db_user = 'someone', progress = 0.5 WHERE id = :j", j)  # the owner column stays
    _ok(eng["carol"], "UPDATE job SET cancel_requested = true WHERE id = :j", j)
    with owner.connect() as conn:
        row = conn.execute(sa.text("SELECT created_db_user, progress, cancel_requested FROM job WHERE id = :j"), j).one()
    assert tuple(row) == (f"{PREFIX}alice", 0.5, True)
    # no heartbeat for 6 minutes by the database's clock: the stale-job rule may be applied by anyone
    _ok(owner, "UPDATE job SET heartbeat_at = now() - interval '6 minutes' WHERE id = :j", j)
    _ok(eng["bob"], "UPDATE job SET status = 'failed', stage = 'stale' WHERE id = :j", j)


def test_migration_0005_upgrades_and_downgrades(empty_url):
    engine = get_engine(empty_url)
    init_database(empty_url, load=False)
    assert schema_revision(engine) == head_revision() == "0005"
    cols = lambda t: {c["name"] for c in sa.inspect(engine).get_columns(t)}  # noqa: E731
    assert "self_approved" in cols("submission") and "created_db_user" in cols("job")

    def triggers() -> set[str]:
        if engine.dialect.name != "postgresql":
            return set()
        with engine.connect() as conn:
            return set(conn.execute(sa.text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")).scalars())

    if engine.dialect.name == "postgresql":
        assert {"crev_own_rows", "crev_review", "crev_own_job", "crev_guard"} <= triggers()
    cfg = _alembic_config(engine)
    with writer(engine).begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    engine.dispose()
    assert schema_revision(engine) == "0004"
    assert "self_approved" not in cols("submission") and "created_db_user" not in cols("job")
    assert not {"crev_own_rows", "crev_review", "crev_own_job"} & triggers()
    with writer(engine).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    assert schema_revision(engine) == "0005" and "self_approved" in cols("submission")
