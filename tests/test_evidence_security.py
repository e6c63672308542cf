"""Who may approve: self-approval refused on every backend; on PostgreSQL the roles of docs/SECURITY.md.

The PostgreSQL tests run the SQL printed in docs/SECURITY.md (login role names prefixed for the
test), then act as a submitter and as curators through their own database roles.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from evidence import EvidenceError, approve, get_engine, import_results, init_database, reject
from evidence.errors import NotAuthorized
from evidence.models import Submission
from tests.conftest import PG_SKIP_REASON, PG_URL, _reset_postgres
from tests.helpers import result_row, write_rows

DOC = Path(__file__).resolve().parent.parent / "docs" / "SECURITY.md"
PREFIX = "crev_a12_"  # test login roles (cluster-wide names)


def _sql_blocks() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def _statements(block: str) -> list[str]:
    lines = [ln for ln in block.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


# --------------------------------------------------------------------------- every backend


def test_self_approval_is_refused_and_allowed_only_when_configured(seeded, tmp_path, monkeypatch):
    monkeypatch.delenv("CREV_ALLOW_SELF_APPROVAL", raising=False)
    rep = import_results(seeded, write_rows(tmp_path / "a.csv", [result_row(robust_acc_compressed="21.5")]), by="alice")
    with pytest.raises(NotAuthorized, match="alice submitted"):
        approve(seeded, rep.submission_id, by="alice")
    with pytest.raises(NotAuthorized):
        approve(seeded, rep.submission_id, by=" Alice ")  # the same person, however the name is typed
    monkeypatch.setenv("CREV_ALLOW_SELF_APPROVAL", "1")
    if seeded.dialect.name == "postgresql":  # a team database: the switch is for a single-user SQLite file only
        with pytest.raises(NotAuthorized, match="single-user SQLite"):
            approve(seeded, rep.submission_id, by="alice")
        return
    sub = approve(seeded, rep.submission_id, by="alice", reason="I curate this file alone")
    assert (sub.status.value, sub.reviewed_by, sub.reason, sub.self_approved) == ("approved", "alice", "I curate this file alone", True)


def test_explicit_argument_allows_self_approval_and_reject_records_the_reviewer(seeded, tmp_path, monkeypatch):
    monkeypatch.delenv("CREV_ALLOW_SELF_APPROVAL", raising=False)
    a = import_results(seeded, write_rows(tmp_path / "a.csv", [result_row(robust_acc_compressed="22.5")]), by="bob")
    b = import_results(seeded, write_rows(tmp_path / "b.csv", [result_row(robust_acc_compressed="23.5")]), by="bob")
    if seeded.dialect.name == "postgresql":
        with pytest.raises(NotAuthorized, match="single-user SQLite"):
            approve(seeded, a.submission_id, by="bob", allow_self_approval=True)
        assert not approve(seeded, a.submission_id, by="carol").self_approved
    else:
        assert approve(seeded, a.submission_id, by="bob", allow_self_approval=True).self_approved
    withdrawn = reject(seeded, b.submission_id, reason="withdrawn: wrong table", by="bob")  # withdrawing one's own is allowed
    assert (withdrawn.status.value, withdrawn.reviewed_by) == ("rejected", "bob")
    with pytest.raises(EvidenceError, match="is rejected, not pending"):
        approve(seeded, b.submission_id, by="carol")


# --------------------------------------------------------------------------- PostgreSQL roles


@pytest.fixture
def pg_roles():
    """The documented roles and grants on a fresh, initialised database; engines per login role."""
    if not PG_URL:
        pytest.skip(PG_SKIP_REASON)
    _reset_postgres(PG_URL)
    owner, _ = init_database(PG_URL)
    roles_sql, grants_sql = _sql_blocks()[:2]
    names = {"alice": f"{PREFIX}alice", "carol": f"{PREFIX}carol"}
    with owner.connect() as conn:
        for stmt in _statements(roles_sql):
            for plain, prefixed in names.items():
                stmt = re.sub(rf"\bROLE {plain}\b", f"ROLE {prefixed}", stmt)
            exists = re.search(r"CREATE ROLE (\w+)", stmt)
            if exists and conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": exists.group(1)}).first():
                continue
            conn.exec_driver_sql(stmt)
        conn.exec_driver_sql(f"DROP ROLE IF EXISTS {PREFIX}erin")
        conn.exec_driver_sql(f"CREATE ROLE {PREFIX}erin LOGIN IN ROLE crev_curator")
        for stmt in _statements(grants_sql):
            conn.exec_driver_sql(stmt)
        conn.commit()
    url = sa.engine.make_url(PG_URL)
    engines = {who: get_engine(url.set(username=f"{PREFIX}{who}").render_as_string(hide_password=False)) for who in ("alice", "carol", "erin")}
    yield owner, engines
    for e in engines.values():
        e.dispose()


def _sub(engine, sid: int) -> Submission:
    with engine.connect() as conn:
        return conn.execute(sa.select(Submission.__table__).where(Submission.__table__.c.id == sid)).one()


def test_submitter_role_adds_pending_rows_and_cannot_approve(pg_roles, tmp_path):
    owner, eng = pg_roles
    rep = import_results(eng["alice"], write_rows(tmp_path / "a.csv", [result_row(robust_acc_compressed="31.5")]), by="alice")
    assert _sub(owner, rep.submission_id).submitted_db_user == f"{PREFIX}alice"
    # a curator's submission: alice lacks UPDATE on the curated tables, whatever name she gives
    other = import_results(eng["carol"], write_rows(tmp_path / "c.csv", [result_row(robust_acc_compressed="32.5")]), by="carol")
    with pytest.raises(NotAuthorized, match="may not make this change"):
        approve(eng["alice"], other.submission_id, by="someone-else")
    with eng["alice"].connect() as conn, pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        conn.exec_driver_sql(f"UPDATE submission SET status = 'approved' WHERE id = {rep.submission_id}")
    assert _sub(owner, other.submission_id).status == "pending"


def test_forged_current_insert_by_a_submitter_lands_pending(pg_roles, tmp_path):
    owner, eng = pg_roles
    rep = import_results(eng["alice"], write_rows(tmp_path / "a.csv", [result_row(robust_acc_compressed="33.5")]), by="alice")
    t = sa.table("result", sa.column("id"), sa.column("uid"), sa.column("fingerprint"), sa.column("current"), sa.column("review_status"))
    with eng["alice"].connect() as conn:
        row = dict(conn.execute(sa.text("SELECT * FROM result WHERE submission_id = :s"), {"s": rep.submission_id}).mappings().one())
        row.pop("id")
        row.update(uid="forged0000000000000", fingerprint="f" * 40, current=True, review_status="approved")
        cols = ", ".join(row)
        conn.execute(sa.text(f"INSERT INTO result ({cols}) VALUES ({', '.join(':' + c for c in row)})"), row)
        conn.commit()
    with owner.connect() as conn:
        stored = conn.execute(sa.select(t.c.current, t.c.review_status).where(t.c.uid == "forged0000000000000")).one()
    assert (stored.current, stored.review_status) == (False, "pending")


def test_curator_approval_records_session_user_and_own_role_is_refused(pg_roles, tmp_path):
    owner, eng = pg_roles
    rep = import_results(eng["alice"], write_rows(tmp_path / "a.csv", [result_row(robust_acc_compressed="34.5")]), by="alice")
    approve(eng["carol"], rep.submission_id, by="carol", reason="checked against Table 9")
    sub = _sub(owner, rep.submission_id)
    assert (sub.status, sub.reviewed_by, sub.reviewed_db_user, sub.reason) == ("approved", "carol", f"{PREFIX}carol", "checked against Table 9")
    own = import_results(eng["carol"], write_rows(tmp_path / "c.csv", [result_row(robust_acc_compressed="35.5")]), by="carol")
    with pytest.raises(NotAuthorized, match=f"role {PREFIX}carol submitted"):
        approve(eng["carol"], own.submission_id, by="a-different-name")  # the role gives her away
    approve(eng["erin"], own.submission_id, by="erin")
    assert _sub(owner, own.submission_id).reviewed_db_user == f"{PREFIX}erin"


def test_a_new_sqlite_database_and_its_companions_are_owner_only(tmp_path, monkeypatch):
    """Issue 23 item 7: created 600 (the file, its -wal/-shm and lock file) and the default folder 700."""
    import stat

    old = os.umask(0o022)  # the usual umask, under which SQLite alone would create 644 files
    try:
        db = tmp_path / "new.db"
        engine, _ = init_database(f"sqlite:///{db}", load=False)
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT count(*) FROM submission")
            for path in [db, *(p for p in (tmp_path / "new.db-wal", tmp_path / "new.db-shm", tmp_path / "new.db.init-lock") if p.exists())]:
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        engine.dispose()
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
        from evidence.db import default_url

        url = default_url()
        assert stat.S_IMODE((tmp_path / "xdg" / "crev").stat().st_mode) == 0o700 and url.endswith("crev/evidence.db")
    finally:
        os.umask(old)
