"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 10:01:32.969583
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('job',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('claim_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('spec_json', sa.Text(), nullable=False),
    sa.Column('spec_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('quick', sa.Boolean(), nullable=False),
    sa.Column('executor', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('progress', sa.Float(), nullable=False),
    sa.Column('cells_total', sa.Integer(), nullable=False),
    sa.Column('cells_done', sa.Integer(), nullable=False),
    sa.Column('log', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('timings_json', sa.Text(), nullable=False),
    sa.Column('submission_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_claim_id'), ['claim_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_spec_hash'), ['spec_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_job_status'), ['status'], unique=False)

    op.create_table('jobcell',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('cell_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('payload_json', sa.Text(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('job_key', 'cell_key', name='uq_jobcell')
    )
    with op.batch_alter_table('jobcell', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobcell_job_key'), ['job_key'], unique=False)

    op.create_table('submission',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('seed', 'add_study', 'import_results', 'correction', 'replication', name='submissionkind', native_enum=False, length=32), nullable=False),
    sa.Column('submitted_by', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('submitted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'approved', 'rejected', name='reviewstatus', native_enum=False, length=32), nullable=False),
    sa.Column('reviewed_by', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('reviewed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('source_file', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('n_studies', sa.Integer(), nullable=False),
    sa.Column('n_claims', sa.Integer(), nullable=False),
    sa.Column('n_results', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_submission_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_submission_status'), ['status'], unique=False)

    op.create_table('claim',
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('submission_id', sa.Integer(), nullable=True),
    sa.Column('review_status', sa.Enum('pending', 'approved', 'rejected', name='reviewstatus', native_enum=False, length=32), nullable=False),
    sa.Column('current', sa.Boolean(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('study_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('question_id', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('question', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('direction', sa.Enum('up', 'down', 'neutral', 'mixed', 'unknown', name='direction', native_enum=False, length=32), nullable=False),
    sa.Column('position', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('study_main_claim', sa.Text(), nullable=False),
    sa.Column('compression_family', sa.Enum('unstructured_pruning', 'structured_pruning', 'quantization', 'binarization', 'ensemble', 'other', name='compressionfamily', native_enum=False, length=32), nullable=True),
    sa.Column('adversarial_training', sa.Enum('yes', 'no', 'both', 'unknown', name='advtraining', native_enum=False, length=32), nullable=False),
    sa.Column('threat_model', sa.Enum('white_box', 'transfer', 'black_box_query', 'certified', 'unknown', name='threatmodel', native_enum=False, length=32), nullable=False),
    sa.Column('conditions_note', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uid', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['submission_id'], ['submission.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('uid', 'version', name='uq_claim_version')
    )
    with op.batch_alter_table('claim', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_claim_current'), ['current'], unique=False)
        batch_op.create_index(batch_op.f('ix_claim_question_id'), ['question_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_claim_review_status'), ['review_status'], unique=False)
        batch_op.create_index(batch_op.f('ix_claim_study_id'), ['study_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_claim_submission_id'), ['submission_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_claim_uid'), ['uid'], unique=False)

    op.create_table('result',
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('submission_id', sa.Integer(), nullable=True),
    sa.Column('review_status', sa.Enum('pending', 'approved', 'rejected', name='reviewstatus', native_enum=False, length=32), nullable=False),
    sa.Column('current', sa.Boolean(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('study_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('dataset', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('architecture', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('compression_family', sa.Enum('unstructured_pruning', 'structured_pruning', 'quantization', 'binarization', 'ensemble', 'other', name='compressionfamily', native_enum=False, length=32), nullable=False),
    sa.Column('compression_method', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('compression_level_text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('sparsity', sa.Float(), nullable=True),
    sa.Column('bits', sa.Integer(), nullable=True),
    sa.Column('adversarial_training', sa.Enum('yes', 'no', 'both', 'unknown', name='advtraining', native_enum=False, length=32), nullable=False),
    sa.Column('adversarial_training_text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('attack', sa.Enum('fgsm', 'pgd', 'cw', 'autoattack', 'uap', 'square', 'certified', 'other', name='attack', native_enum=False, length=32), nullable=False),
    sa.Column('attack_text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('norm', sa.Enum('linf', 'l2', 'l0', 'unknown', name='norm', native_enum=False, length=32), nullable=False),
    sa.Column('norm_text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('epsilon', sa.Float(), nullable=True),
    sa.Column('epsilon_text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('steps', sa.Integer(), nullable=True),
    sa.Column('steps_text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('threat_model', sa.Enum('white_box', 'transfer', 'black_box_query', 'certified', 'unknown', name='threatmodel', native_enum=False, length=32), nullable=False),
    sa.Column('threat_model_text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('clean_acc_dense', sa.Float(), nullable=True),
    sa.Column('robust_acc_dense', sa.Float(), nullable=True),
    sa.Column('clean_acc_compressed', sa.Float(), nullable=True),
    sa.Column('robust_acc_compressed', sa.Float(), nullable=True),
    sa.Column('n_test', sa.Integer(), nullable=True),
    sa.Column('provenance', sa.Enum('verbatim', 'derived', 'replication', name='provenance', native_enum=False, length=32), nullable=False),
    sa.Column('url_or_path', sa.Text(), nullable=False),
    sa.Column('source_location', sa.Text(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=False),
    sa.Column('cluster', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('source_kind', sa.Enum('literature', 'replication', name='sourcekind', native_enum=False, length=32), nullable=False),
    sa.Column('claim_uid', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('verdict', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('quick', sa.Boolean(), nullable=False),
    sa.Column('gradient_masking', sa.Boolean(), nullable=True),
    sa.Column('checks_json', sa.Text(), nullable=False),
    sa.Column('replication_json', sa.Text(), nullable=False),
    sa.Column('warnings', sa.Text(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uid', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('fingerprint', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.ForeignKeyConstraint(['submission_id'], ['submission.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('uid', 'version', name='uq_result_version')
    )
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.create_index('ix_result_adv', ['current', 'adversarial_training'], unique=False)
        batch_op.create_index('ix_result_bits', ['current', 'bits'], unique=False)
        batch_op.create_index(batch_op.f('ix_result_current'), ['current'], unique=False)
        batch_op.create_index('ix_result_dataset', ['current', 'dataset'], unique=False)
        batch_op.create_index('ix_result_filter', ['current', 'compression_family', 'threat_model', 'epsilon'], unique=False)
        batch_op.create_index(batch_op.f('ix_result_fingerprint'), ['fingerprint'], unique=False)
        batch_op.create_index(batch_op.f('ix_result_review_status'), ['review_status'], unique=False)
        batch_op.create_index('ix_result_sparsity', ['current', 'sparsity'], unique=False)
        batch_op.create_index('ix_result_study', ['current', 'study_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_result_submission_id'), ['submission_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_result_uid'), ['uid'], unique=False)

    op.create_table('study',
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('submission_id', sa.Integer(), nullable=True),
    sa.Column('review_status', sa.Enum('pending', 'approved', 'rejected', name='reviewstatus', native_enum=False, length=32), nullable=False),
    sa.Column('current', sa.Boolean(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('study_id', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('authors', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=True),
    sa.Column('year_text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('venue', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('identifier', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('compression_kind', sa.Enum('pruning', 'quantization', 'both', 'other', name='compressionkind', native_enum=False, length=32), nullable=False),
    sa.Column('compression_kind_text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('main_claim', sa.Text(), nullable=False),
    sa.Column('main_direction', sa.Enum('up', 'down', 'neutral', 'mixed', 'unknown', name='direction', native_enum=False, length=32), nullable=False),
    sa.Column('main_direction_text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('adversarial_training', sa.Enum('yes', 'no', 'both', 'unknown', name='advtraining', native_enum=False, length=32), nullable=False),
    sa.Column('adversarial_training_text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('datasets', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('architectures', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('attacks', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('source_of_info', sa.Text(), nullable=False),
    sa.Column('in_review_2023', sa.Boolean(), nullable=True),
    sa.Column('review_membership_text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['submission_id'], ['submission.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('study_id', 'version', name='uq_study_version')
    )
    with op.batch_alter_table('study', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_study_current'), ['current'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_review_status'), ['review_status'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_study_id'), ['study_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_study_submission_id'), ['submission_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('study', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_study_submission_id'))
        batch_op.drop_index(batch_op.f('ix_study_study_id'))
        batch_op.drop_index(batch_op.f('ix_study_review_status'))
        batch_op.drop_index(batch_op.f('ix_study_current'))

    op.drop_table('study')
    with op.batch_alter_table('result', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_result_uid'))
        batch_op.drop_index(batch_op.f('ix_result_submission_id'))
        batch_op.drop_index('ix_result_study')
        batch_op.drop_index('ix_result_sparsity')
        batch_op.drop_index(batch_op.f('ix_result_review_status'))
        batch_op.drop_index(batch_op.f('ix_result_fingerprint'))
        batch_op.drop_index('ix_result_filter')
        batch_op.drop_index('ix_result_dataset')
        batch_op.drop_index(batch_op.f('ix_result_current'))
        batch_op.drop_index('ix_result_bits')
        batch_op.drop_index('ix_result_adv')

    op.drop_table('result')
    with op.batch_alter_table('claim', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_claim_uid'))
        batch_op.drop_index(batch_op.f('ix_claim_submission_id'))
        batch_op.drop_index(batch_op.f('ix_claim_study_id'))
        batch_op.drop_index(batch_op.f('ix_claim_review_status'))
        batch_op.drop_index(batch_op.f('ix_claim_question_id'))
        batch_op.drop_index(batch_op.f('ix_claim_current'))

    op.drop_table('claim')
    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_submission_status'))
        batch_op.drop_index(batch_op.f('ix_submission_kind'))

    op.drop_table('submission')
    with op.batch_alter_table('jobcell', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobcell_job_key'))

    op.drop_table('jobcell')
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_status'))
        batch_op.drop_index(batch_op.f('ix_job_spec_hash'))
        batch_op.drop_index(batch_op.f('ix_job_claim_id'))

    op.drop_table('job')

