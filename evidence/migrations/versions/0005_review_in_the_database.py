"""review enforced by the database (issue 23)

On PostgreSQL, triggers keyed by ``session_user`` hold review for every role in ``crev_submitter`` or
``crev_curator`` (docs/SECURITY.md; superusers and roles outside those groups, such as the schema
owner that loads releases, are trusted and exempt):

* a ``study``, ``claim`` or ``result`` row may only be inserted into a *pending* submission that the
  same role created (no rows injected into someone else's submission), and lands pending and not
  current (0003 did this for submitters only; now curators too);
* a submission inserted by such a role is pending, whatever it says (no self-approval at insert);
* an approved or rejected submission is immutable (a correction is a new submission);
* a pending submission's summary and counts change only by its own role or a curator;
  its status only by a curator, and never to ``approved`` by the role that submitted it (four-eyes
  in the database: ``CREV_ALLOW_SELF_APPROVAL`` is for a single-user SQLite file only);
* a ``job`` row records ``created_db_user`` (``session_user``) on insert; only that role or a
  curator may update it, except that anyone may mark a job the database's clock sees as stale
  (no heartbeat for 5 minutes, or none at all and started 30 minutes ago) ``failed`` —
  the stale-job rule of :mod:`replicate.jobs.store` that every launcher applies.

On both backends: ``submission.self_approved`` records an approval of one's own submission under
``CREV_ALLOW_SELF_APPROVAL`` (SQLite only), and ``job.created_db_user`` exists (NULL on SQLite).

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_FUNCTIONS = """
CREATE OR REPLACE FUNCTION crev_reviewed_role() RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    -- true for a non-superuser member of crev_submitter or crev_curator: the roles review binds
    IF COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = session_user), false) THEN
        RETURN false;
    END IF;
    RETURN (EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'crev_submitter')
            AND pg_has_role(session_user, 'crev_submitter', 'MEMBER'))
        OR (EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'crev_curator')
            AND pg_has_role(session_user, 'crev_curator', 'MEMBER'));
END $$;

CREATE OR REPLACE FUNCTION crev_is_curator() RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'crev_curator')
       AND pg_has_role(session_user, 'crev_curator', 'MEMBER');
END $$;

CREATE OR REPLACE FUNCTION crev_own_pending_rows() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    owner_role text;
    sub_status text;
BEGIN
    IF NOT crev_reviewed_role() THEN
        RETURN NEW;
    END IF;
    SELECT submitted_db_user, status INTO owner_role, sub_status FROM submission WHERE id = NEW.submission_id;
    IF NOT FOUND OR owner_role IS DISTINCT FROM session_user::text OR sub_status <> 'pending' THEN
        RAISE EXCEPTION 'crev: role % may add % rows only to a pending submission it created (submission % is %, by %)',
            session_user, TG_TABLE_NAME, NEW.submission_id, COALESCE(sub_status, 'missing'), COALESCE(owner_role, 'no role')
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    NEW.current := false;  -- rows count only once another curator approves their submission
    NEW.review_status := 'pending';
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION crev_review_submission() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT crev_reviewed_role() THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' THEN
        NEW.status := 'pending';  -- no role approves at insert, curators included
        NEW.reviewed_by := NULL;
        NEW.reviewed_at := NULL;
        NEW.reviewed_db_user := NULL;
        NEW.self_approved := false;
        RETURN NEW;
    END IF;
    IF OLD.status <> 'pending' THEN
        RAISE EXCEPTION 'crev: submission % is %: an approved or rejected submission is immutable (a correction is a new version)',
            OLD.id, OLD.status USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        IF NOT crev_is_curator() THEN
            RAISE EXCEPTION 'crev: role % is not a curator and cannot review submission %', session_user, OLD.id
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NEW.status = 'approved' AND OLD.submitted_db_user = session_user::text THEN
            RAISE EXCEPTION 'crev: role % submitted submission % and cannot approve it: another curator''s role must',
                session_user, OLD.id USING ERRCODE = 'insufficient_privilege';
        END IF;
        NEW.self_approved := false;
    ELSIF OLD.submitted_db_user IS DISTINCT FROM session_user::text AND NOT crev_is_curator() THEN
        RAISE EXCEPTION 'crev: submission % belongs to role %; role % cannot change it',
            OLD.id, COALESCE(OLD.submitted_db_user, 'none'), session_user USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION crev_own_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.created_db_user := session_user;
        RETURN NEW;
    END IF;
    NEW.created_db_user := OLD.created_db_user;
    IF NOT crev_reviewed_role() OR crev_is_curator() OR OLD.created_db_user = session_user::text THEN
        RETURN NEW;
    END IF;
    -- anyone may apply the stale-job rule, by the database's clock
    IF OLD.status IN ('queued', 'running') AND NEW.status = 'failed'
       AND COALESCE(OLD.heartbeat_at < now() - interval '5 minutes',
                    COALESCE(OLD.started_at, OLD.created_at) < now() - interval '30 minutes') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'crev: job % was launched by role %; role % cannot change it',
        OLD.id, COALESCE(OLD.created_db_user, 'unknown'), session_user USING ERRCODE = 'insufficient_privilege';
END $$;
"""

_TRIGGERS = (
    ('crev_own_rows', 'study', 'BEFORE INSERT', 'crev_own_pending_rows'),
    ('crev_own_rows', 'claim', 'BEFORE INSERT', 'crev_own_pending_rows'),
    ('crev_own_rows', 'result', 'BEFORE INSERT', 'crev_own_pending_rows'),
    ('crev_review', 'submission', 'BEFORE INSERT OR UPDATE', 'crev_review_submission'),
    ('crev_own_job', 'job', 'BEFORE INSERT OR UPDATE', 'crev_own_job'),
)


def upgrade() -> None:
    # a plain ADD COLUMN (no batch copy of the table: rows of study, claim and result refer to it)
    op.add_column('submission', sa.Column('self_approved', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('created_db_user', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(_FUNCTIONS)
        for name, table, when, function in _TRIGGERS:
            # "crev_review" sorts after 0003's "crev_guard": the guard forces pending first, then this checks
            op.execute(f'CREATE TRIGGER {name} {when} ON {table} FOR EACH ROW EXECUTE FUNCTION {function}()')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for name, table, _when, _function in _TRIGGERS:
            op.execute(f'DROP TRIGGER IF EXISTS {name} ON {table}')
        op.execute('DROP FUNCTION IF EXISTS crev_own_pending_rows(), crev_review_submission(), crev_own_job(), '
                   'crev_is_curator(), crev_reviewed_role()')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('created_db_user')
    op.execute('ALTER TABLE submission DROP COLUMN self_approved')  # SQLite >= 3.35 and PostgreSQL; no table copy
