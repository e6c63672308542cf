"""releases and exact counts

Adds, per Contract 1 of this turn:

- ``release`` on studies, claims, results and submissions: the curated release a row came from
  (``seed-2025.1``, ``coverage-2026.11``, ``replication-2026.11``; ``""`` for a user's submission);
- ``provenance_text`` on results: the source's ``verbatim_check`` text as written, kept whole
  beside the parsed :class:`~evidence.vocab.Provenance` (``yes (secondhand copy)``);
- exact counts out of ``n_test`` on results (clean and robust correct, dense and compressed), the
  paired discordant counts on the robust outcome over the same images (dense right and compressed
  wrong, and the reverse), and ``attack_queries`` (the query budget of score/decision attacks).

Existing rows get ``release = ""``; :func:`evidence.releases.load_releases` then labels the rows an
earlier version loaded from the seed (``seed-2025.1``) when it loads the shipped releases once.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_COUNTS = (
    'n_clean_correct_dense',
    'n_robust_correct_dense',
    'n_clean_correct_compressed',
    'n_robust_correct_compressed',
    'n_robust_dense_only',
    'n_robust_compressed_only',
    'attack_queries',
)


def _release_column() -> sa.Column:
    return sa.Column('release', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False, server_default='')


def upgrade() -> None:
    for table in ('study', 'claim', 'submission'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(_release_column())
            batch_op.create_index(batch_op.f(f'ix_{table}_release'), ['release'], unique=False)
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.add_column(_release_column())
        batch_op.add_column(sa.Column('provenance_text', sa.Text(), nullable=False, server_default=''))
        for name in _COUNTS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=True))
        batch_op.create_index('ix_result_release', ['current', 'release'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.drop_index('ix_result_release')
        for name in reversed(_COUNTS):
            batch_op.drop_column(name)
        batch_op.drop_column('provenance_text')
        batch_op.drop_column('release')
    for table in ('submission', 'claim', 'study'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table}_release'))
            batch_op.drop_column('release')
