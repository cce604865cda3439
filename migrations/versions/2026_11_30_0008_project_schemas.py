"""Project schemas: versioned record fields with their meaning; a run number per project.

Every existing project gets version 1 of its schema from its field names (the city-directory
fields with their descriptions where the names are theirs); every existing run its number in
its project, in creation order.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 06:00:00

"""
import json
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The default schema's meanings as they were when this migration was written (a migration
# must not change when the code's defaults do).
_DEFAULTS = {
    'first and middle names': {
        'description': 'The given names of the person, as printed (abbreviations such as Joh. kept).',
        'required': False,
        'example': 'Joh. Wilh.',
    },
    'surname': {
        'description': "The family name (for a firm: the firm's name).",
        'required': True,
        'example': 'Obermann',
    },
    'occupation': {
        'description': 'Trade, office or standing, as printed.',
        'required': False,
        'example': 'Bäcker',
    },
    'address': {
        'description': 'Street and house number, or quarter letter and number, as printed.',
        'required': False,
        'example': 'Hochstraße 12',
    },
}


def _definition(name: str) -> dict:
    return {'name': name, **_DEFAULTS.get(name, {'description': '', 'required': False, 'example': ''})}


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('project_schemas',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_project_schemas_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_project_schemas')),
    sa.UniqueConstraint('project_id', 'version', name=op.f('uq_project_schemas_project_id_version'))
    )
    with op.batch_alter_table('project_schemas', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_project_schemas_project_id'), ['project_id'], unique=False)
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('number', sa.Integer(), nullable=True))

    connection = op.get_bind()
    insert = sa.text(
        'INSERT INTO project_schemas (project_id, version, fields, author, created_at) '
        "SELECT id, 1, :fields, 'local', created_at FROM projects WHERE id = :project_id"
    ).bindparams(sa.bindparam('fields', type_=sa.JSON()))
    for project_id, names in connection.execute(sa.text('SELECT id, schema_fields FROM projects')).all():
        if isinstance(names, str):  # JSON comes back as text from a plain SELECT on SQLite
            names = json.loads(names)
        fields = [_definition(name) for name in names or []]
        connection.execute(insert, {'fields': fields, 'project_id': project_id})
    op.execute(
        'UPDATE runs SET number = (SELECT count(*) FROM runs AS earlier '
        'WHERE earlier.project_id = runs.project_id AND earlier.id <= runs.id)'
    )


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('number')
    with op.batch_alter_table('project_schemas', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_project_schemas_project_id'))
    op.drop_table('project_schemas')
