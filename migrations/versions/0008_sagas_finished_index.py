"""Saga: an index of finished sagas by their last update, for the console's flow figures.

The flow page counts sagas finished per minute and their end-to-end latency over the last
minutes, every 2 s while it is open; without this index each refresh reads every finished saga
(they stay for audit). It is partial, so sagas in flight are not in it; updated_at being
indexed costs sagas the HOT update of a row that only changes its data.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "saga"
INDEX = "ix_sagas_finished_updated_at"


def upgrade() -> None:
    """Create saga.ix_sagas_finished_updated_at."""
    op.create_index(
        INDEX,
        "sagas",
        ["updated_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("state IN ('Confirmed', 'Failed')"),
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_index(INDEX, table_name="sagas", schema=SCHEMA)
