"""Per-field provenance of records: which model or rule produced each field.

A nullable JSON column (field name → source, e.g. ``{"surname": "crf", "address":
"rule:house-heading"}``). Records extracted before it stay NULL: what produced each of their
fields was not kept, and guessing it from the run's engine would claim more than is known.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 09:00:00

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0009'
down_revision: str | Sequence[str] | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provenance', sa.JSON(), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.drop_column('provenance')
