"""Ground truth is versioned (an upload adds a version); a run keeps every evaluation.

Existing ground truth becomes version 1 by `local` (pieces uploaded twice by a race are
numbered in upload order). A run that has scores gets them as its evaluation 1, with the
ground-truth versions they were computed against: the current ones, since until now new
ground truth dropped a run's scores.

Downgrading keeps only the current version of each piece and drops the evaluations.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 02:10:00.000000

"""
from datetime import UTC, datetime
from typing import Any, Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

#: The same piece (document, page, kind) as `ground_truths`, in SQL both databases accept.
SAME_PIECE = (
    "{o}.document_id = ground_truths.document_id AND {o}.kind = ground_truths.kind "
    "AND ({o}.page_id = ground_truths.page_id "
    "OR ({o}.page_id IS NULL AND ground_truths.page_id IS NULL))"
)

runs = sa.table(
    'runs',
    sa.column('id', sa.Integer()),
    sa.column('config', sa.JSON()),
    sa.column('metrics', sa.JSON()),
    sa.column('created_at', sa.DateTime(timezone=True)),
    sa.column('finished_at', sa.DateTime(timezone=True)),
)
evaluations = sa.table(
    'run_evaluations',
    sa.column('run_id', sa.Integer()),
    sa.column('number', sa.Integer()),
    sa.column('reason', sa.String()),
    sa.column('author', sa.String()),
    sa.column('created_at', sa.DateTime(timezone=True)),
    sa.column('metrics', sa.JSON()),
)


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('ground_truths', schema=None) as batch_op:
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('author', sa.String(length=200), server_default='local', nullable=False))
    op.execute(
        "UPDATE ground_truths SET version = (SELECT count(*) FROM ground_truths AS earlier "
        f"WHERE {SAME_PIECE.format(o='earlier')} AND earlier.id <= ground_truths.id)"
    )
    with op.batch_alter_table('ground_truths', schema=None) as batch_op:
        batch_op.create_unique_constraint(
            batch_op.f('uq_ground_truths_document_id_kind_page_id_version'),
            ['document_id', 'kind', 'page_id', 'version'],
        )
        batch_op.create_index(
            'uq_ground_truths_document_kind_version',
            ['document_id', 'kind', 'version'],
            unique=True,
            sqlite_where=sa.text('page_id IS NULL'),
            postgresql_where=sa.text('page_id IS NULL'),
        )

    op.create_table('run_evaluations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_run_evaluations_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_run_evaluations')),
    sa.UniqueConstraint('run_id', 'number', name=op.f('uq_run_evaluations_run_id_number'))
    )
    _keep_scores_as_first_evaluations()


def _keep_scores_as_first_evaluations() -> None:
    """Every run with scores: evaluation 1, naming the (current) ground truth it was scored on."""
    connection = op.get_bind()
    scored = connection.execute(
        sa.select(runs.c.id, runs.c.config, runs.c.metrics, runs.c.created_at, runs.c.finished_at)
        .where(runs.c.metrics.is_not(None))
        .order_by(runs.c.id)
    ).all()
    for run_id, config, metrics, created_at, finished_at in scored:
        if not metrics:
            continue
        extracts = any(stage.get('stage') == 'extract' for stage in (config or {}).get('stages', []))
        metrics = dict(metrics) | {'ground_truth': _ground_truth_of(connection, run_id, extracts)}
        connection.execute(runs.update().where(runs.c.id == run_id).values(metrics=metrics))
        connection.execute(
            evaluations.insert().values(
                run_id=run_id,
                number=1,
                reason='finished',
                author='histocr',
                created_at=finished_at or created_at,
                metrics=metrics,
            )
        )


def _ground_truth_of(connection: Any, run_id: int, extracts: bool) -> list[dict[str, Any]]:
    kinds = "('text', 'records')" if extracts else "('text')"
    rows = connection.execute(
        sa.text(
            "SELECT ground_truths.id, ground_truths.document_id, ground_truths.page_id, "
            "pages.number, ground_truths.kind, ground_truths.version, ground_truths.filename, "
            "ground_truths.author, ground_truths.created_at "
            "FROM ground_truths "
            "JOIN run_documents ON run_documents.document_id = ground_truths.document_id "
            "LEFT OUTER JOIN pages ON pages.id = ground_truths.page_id "
            f"WHERE run_documents.run_id = :run_id AND ground_truths.kind IN {kinds} "
            "AND NOT EXISTS (SELECT 1 FROM ground_truths AS later "
            f"WHERE {SAME_PIECE.format(o='later')} AND later.version > ground_truths.version) "
            "ORDER BY ground_truths.document_id, ground_truths.kind, "
            "pages.number IS NOT NULL, pages.number"
        ).columns(created_at=sa.DateTime(timezone=True)),
        {'run_id': run_id},
    )
    return [
        {
            'id': row.id,
            'document_id': row.document_id,
            'page_id': row.page_id,
            'page': row.number,
            'kind': row.kind,
            'version': row.version,
            'filename': row.filename,
            'author': row.author,
            'created_at': _utc(row.created_at).isoformat(),
        }
        for row in rows
    ]


def _utc(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite hands back text when the column type is not known
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('run_evaluations')
    op.execute(
        "DELETE FROM ground_truths WHERE EXISTS (SELECT 1 FROM ground_truths AS later "
        f"WHERE {SAME_PIECE.format(o='later')} AND later.version > ground_truths.version)"
    )
    with op.batch_alter_table('ground_truths', schema=None) as batch_op:
        batch_op.drop_index('uq_ground_truths_document_kind_version')
        batch_op.drop_constraint(
            batch_op.f('uq_ground_truths_document_id_kind_page_id_version'), type_='unique'
        )
        batch_op.drop_column('author')
        batch_op.drop_column('version')
