"""integrity constraints and review identities

Rules the database itself enforces, so that processes racing each other cannot break them
(issue 12: double imports landed twice, simultaneous corrections left two current versions):

- one current version per entity: partial unique indexes on ``study(study_id)``, ``claim(uid)``
  and ``result(uid)`` where ``current``;
- one current result per fingerprint (same study, setting and numbers), and one *new* pending
  result per fingerprint (``version = 1``; a pending correction may share its entry's fingerprint);
- ``submission.submitted_db_user`` / ``reviewed_db_user``: on PostgreSQL the database role
  (``session_user``) that submitted and reviewed, set by triggers so a client cannot forge them;
- on PostgreSQL, a guard on inserts: a role that is a member of ``crev_submitter`` but not of
  ``crev_curator`` can only add pending, non-current rows (see docs/SECURITY.md for the roles).

A database written before this revision may already hold what the races left behind. Before the
indexes are created: of two current versions of one entry the newest stays current; of two current
results with one fingerprint the first stays current (the other stays, approved but not current,
in its history); of two pending new results with one fingerprint the later is rejected. Each
count is logged; nothing is deleted.

Revision ID: 0003
Revises: 0002
"""
import logging

from alembic import op
import sqlalchemy as sa
import sqlmodel

log = logging.getLogger("alembic.runtime.migration")


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# (index name, table, column, extra condition beyond "current")
_CURRENT = (
    ('uq_study_current', 'study', 'study_id'),
    ('uq_claim_current', 'claim', 'uid'),
    ('uq_result_current', 'result', 'uid'),
    ('uq_result_current_fingerprint', 'result', 'fingerprint'),
)

_GUARD_SQL = """
CREATE OR REPLACE FUNCTION crev_submitter_only() RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    -- true for a role in crev_submitter and not in crev_curator; false where the roles are not set up
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'crev_submitter') THEN
        RETURN false;
    END IF;
    IF NOT pg_has_role(session_user, 'crev_submitter', 'MEMBER') THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'crev_curator')
       AND pg_has_role(session_user, 'crev_curator', 'MEMBER') THEN
        RETURN false;
    END IF;
    RETURN true;
END $$;

CREATE OR REPLACE FUNCTION crev_guard_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF crev_submitter_only() THEN
        NEW.current := false;
        NEW.review_status := 'pending';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION crev_guard_submission() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.submitted_db_user := session_user;
        IF crev_submitter_only() THEN
            NEW.status := 'pending';
            NEW.reviewed_by := NULL;
            NEW.reviewed_at := NULL;
        END IF;
        NEW.reviewed_db_user := CASE WHEN NEW.status = 'pending' THEN NULL ELSE session_user END;
    ELSE
        NEW.submitted_db_user := OLD.submitted_db_user;
        IF NEW.status IS DISTINCT FROM OLD.status THEN
            NEW.reviewed_db_user := session_user;
        ELSE
            NEW.reviewed_db_user := OLD.reviewed_db_user;
        END IF;
    END IF;
    RETURN NEW;
END $$;
"""


def _resolve_existing_duplicates() -> None:
    bind = op.get_bind()
    steps = [
        (f"{table}: older current versions of one {key}",
         f"UPDATE {table} SET current = :f WHERE current = :t AND id NOT IN "
         f"(SELECT max(id) FROM {table} WHERE current = :t GROUP BY {key})")
        for table, key in (('study', 'study_id'), ('claim', 'uid'), ('result', 'uid'))
    ]
    steps.append(("result: later current results with the same fingerprint",
                  "UPDATE result SET current = :f WHERE current = :t AND id NOT IN "
                  "(SELECT min(id) FROM result WHERE current = :t GROUP BY fingerprint)"))
    steps.append(("result: later pending new results with the same fingerprint (rejected)",
                  "UPDATE result SET review_status = 'rejected' WHERE review_status = 'pending' AND version = 1 AND id NOT IN "
                  "(SELECT min(id) FROM result WHERE review_status = 'pending' AND version = 1 GROUP BY fingerprint)"))
    for what, sql in steps:
        n = bind.execute(sa.text(sql), {"t": True, "f": False}).rowcount
        if n:
            log.warning("migration 0003: %d row(s) resolved: %s", n, what)


def upgrade() -> None:
    _resolve_existing_duplicates()
    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.add_column(sa.Column('submitted_db_user', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True))
        batch_op.add_column(sa.Column('reviewed_db_user', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True))
    for name, table, column in _CURRENT:
        op.create_index(name, table, [column], unique=True,
                        sqlite_where=sa.text('current = 1'), postgresql_where=sa.text('current'))
    op.create_index('uq_result_pending_fingerprint', 'result', ['fingerprint'], unique=True,
                    sqlite_where=sa.text("review_status = 'pending' AND version = 1"),
                    postgresql_where=sa.text("review_status = 'pending' AND version = 1"))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(_GUARD_SQL)
        for table in ('study', 'claim', 'result'):
            op.execute(f'CREATE TRIGGER crev_guard BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION crev_guard_row()')
        op.execute('CREATE TRIGGER crev_guard BEFORE INSERT OR UPDATE ON submission FOR EACH ROW EXECUTE FUNCTION crev_guard_submission()')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in ('study', 'claim', 'result', 'submission'):
            op.execute(f'DROP TRIGGER IF EXISTS crev_guard ON {table}')
        op.execute('DROP FUNCTION IF EXISTS crev_guard_row(), crev_guard_submission(), crev_submitter_only()')
    op.drop_index('uq_result_pending_fingerprint', table_name='result')
    for name, table, _column in reversed(_CURRENT):
        op.drop_index(name, table_name=table)
    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.drop_column('reviewed_db_user')
        batch_op.drop_column('submitted_db_user')
