"""A project's own recogniser: its trained versions (training set, figures, model file) and the
threshold of verified lines that starts a training by itself.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 10:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0010'
down_revision: str | Sequence[str] | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = "status IN ('queued', 'training')"


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('recognizer_models',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('base_model', sa.String(length=100), nullable=False),
    sa.Column('parameters', sa.JSON(), nullable=False),
    sa.Column('lines', sa.Integer(), nullable=True),
    sa.Column('verified_lines', sa.Integer(), nullable=True),
    sa.Column('ground_truth_lines', sa.Integer(), nullable=True),
    sa.Column('pages', sa.Integer(), nullable=True),
    sa.Column('training_set_key', sa.String(length=200), nullable=True),
    sa.Column('training_lines', sa.Integer(), nullable=True),
    sa.Column('validation_lines', sa.Integer(), nullable=True),
    sa.Column('skipped_lines', sa.Integer(), nullable=True),
    sa.Column('iterations', sa.Integer(), nullable=True),
    sa.Column('iterations_run', sa.Integer(), nullable=True),
    sa.Column('training_cer', sa.Float(), nullable=True),
    sa.Column('validation_cer', sa.Float(), nullable=True),
    sa.Column('base_validation_cer', sa.Float(), nullable=True),
    sa.Column('seconds', sa.Float(), nullable=True),
    sa.Column('cpu_seconds', sa.Float(), nullable=True),
    sa.Column('progress', sa.JSON(), nullable=True),
    sa.Column('log_key', sa.String(length=200), nullable=True),
    sa.Column('model_key', sa.String(length=200), nullable=True),
    sa.Column('model_sha256', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_recognizer_models_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recognizer_models')),
    sa.UniqueConstraint('project_id', 'number', name=op.f('uq_recognizer_models_project_id_number'))
    )
    with op.batch_alter_table('recognizer_models', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recognizer_models_project_id'), ['project_id'], unique=False)
        batch_op.create_index(
            'uq_recognizer_models_active',
            ['project_id'],
            unique=True,
            sqlite_where=sa.text(_ACTIVE),
            postgresql_where=sa.text(_ACTIVE),
        )
    op.create_table('recognizer_settings',
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('auto_train_after', sa.Integer(), nullable=True),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_recognizer_settings_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', name=op.f('pk_recognizer_settings'))
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('recognizer_settings')
    with op.batch_alter_table('recognizer_models', schema=None) as batch_op:
        batch_op.drop_index('uq_recognizer_models_active')
        batch_op.drop_index(batch_op.f('ix_recognizer_models_project_id'))
    op.drop_table('recognizer_models')
