"""Saga: payments refunded because their order had no saga once the orphan grace passed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "saga"


def upgrade() -> None:
    """Create saga.orphan_refunds."""
    op.create_table(
        "orphan_refunds",
        sa.Column("payment_id", sa.Uuid(), primary_key=True),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column(
            "refunded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_orphan_refunds_order_id", "orphan_refunds", ["order_id"], schema=SCHEMA)


def downgrade() -> None:
    """Drop saga.orphan_refunds."""
    op.drop_index("ix_orphan_refunds_order_id", table_name="orphan_refunds", schema=SCHEMA)
    op.drop_table("orphan_refunds", schema=SCHEMA)
