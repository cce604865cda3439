"""Review: versions of lines and records, verified pages, records a reviewer added; lines for
every text stage's result (mLLM results had none, so they could not be corrected line by line).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 04:40:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _owned(table: str) -> list[sa.ForeignKeyConstraint]:
    return [
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f(f'fk_{table}_run_id_runs'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['page_id'], ['pages.id'], name=op.f(f'fk_{table}_page_id_pages'), ondelete='CASCADE'),
    ]


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('line_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('line_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('page_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['line_id'], ['lines.id'], name=op.f('fk_line_versions_line_id_lines'), ondelete='CASCADE'),
    *_owned('line_versions'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_line_versions')),
    sa.UniqueConstraint('line_id', 'version', name=op.f('uq_line_versions_line_id_version'))
    )
    op.create_table('record_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('record_id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('page_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['record_id'], ['records.id'], name=op.f('fk_record_versions_record_id_records'), ondelete='CASCADE'),
    *_owned('record_versions'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_record_versions')),
    sa.UniqueConstraint('record_id', 'version', name=op.f('uq_record_versions_record_id_version'))
    )
    op.create_table('page_verifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('page_id', sa.Integer(), nullable=False),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    *_owned('page_verifications'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_page_verifications')),
    sa.UniqueConstraint('run_id', 'page_id', name=op.f('uq_page_verifications_run_id_page_id'))
    )
    for table, columns in (
        ('line_versions', ('line_id', 'page_id', 'run_id')),
        ('record_versions', ('page_id', 'record_id', 'run_id')),
        ('page_verifications', ('page_id', 'run_id')),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.create_index(batch_op.f(f'ix_{table}_{column}'), [column], unique=False)
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source', sa.String(length=20), server_default='engine', nullable=False))
    _lines_for_every_text_result()


def _lines_for_every_text_result() -> None:
    """Results of text stages that kept no lines (mLLM engines) get one line per text line,
    without geometry, as new results do (workers/tasks/stages.py)."""
    bind = op.get_bind()
    results = bind.execute(sa.text(
        "SELECT r.id, r.run_id, r.page_id, r.text FROM stage_results r "
        "WHERE r.stage IN ('ocr', 'correct') AND r.status = 'done' AND r.text IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM lines l WHERE l.stage_result_id = r.id)"
    ))
    lines = sa.table(
        'lines', sa.column('run_id'), sa.column('page_id'), sa.column('stage_result_id'),
        sa.column('position'), sa.column('text'), sa.column('kind'),
    )
    for result_id, run_id, page_id, text in results.fetchall():
        rows = [
            {'run_id': run_id, 'page_id': page_id, 'stage_result_id': result_id,
             'position': position, 'text': line, 'kind': 'body'}
            for position, line in enumerate(text.split('\n'))
        ]
        if rows:
            bind.execute(lines.insert(), rows)


def downgrade() -> None:
    """Downgrade schema (the lines made for mLLM results stay: they repeat their text)."""
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_column('source')
    op.drop_table('page_verifications')
    op.drop_table('record_versions')
    op.drop_table('line_versions')
