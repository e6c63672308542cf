"""job heartbeat

Adds ``job.heartbeat_at``: the time (timezone-aware UTC) the job's own process last said it is
alive. While a job runs, a daemon thread in that process writes it every
``replicate.jobs.store.HEARTBEAT_EVERY`` (30 s), so a job that trains one model for hours is not taken
for dead, and a job whose process died is seen as stale after ``replicate.jobs.store.HEARTBEAT_STALE_AFTER``
(5 min) instead of 30 minutes after its last finished cell.

Existing rows get ``NULL``: a job from before this revision keeps the old rule (stale 30 minutes
after its start or its newest finished cell).

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('heartbeat_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('heartbeat_at')
