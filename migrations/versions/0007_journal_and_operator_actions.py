"""Every service's journal (the console's timeline) and the saga's operator actions.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMAS = ("saga", "inventory", "orders", "cart", "payments")


def upgrade() -> None:
    """Create <schema>.journal for every service and saga.operator_actions."""
    for schema in SCHEMAS:
        op.create_table(
            "journal",
            sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
            sa.Column("correlation_id", sa.Text(), nullable=False),
            sa.Column("message_id", sa.Uuid(), nullable=False),
            sa.Column("message_type", sa.Text(), nullable=False),
            sa.Column("topic", sa.Text(), nullable=False),
            sa.Column("direction", sa.Text(), nullable=False),
            sa.Column("outcome", sa.Text(), nullable=False),
            sa.Column("detail", sa.Text()),
            sa.Column(
                "recorded_at",
                sa.DateTime(timezone=True),
                server_default=sa.func.now(),
                nullable=False,
            ),
            schema=schema,
        )
        op.create_index(
            f"ix_{schema}_journal_correlation",
            "journal",
            ["correlation_id", "id"],
            schema=schema,
        )
        op.create_index(
            f"ix_{schema}_journal_recorded_at",
            "journal",
            ["recorded_at"],
            schema=schema,
            postgresql_using="brin",
        )
    op.create_table(
        "operator_actions",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "requested_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("from_state", sa.Text()),
        sa.Column("to_state", sa.Text()),
        sa.Column("detail", sa.Text()),
        sa.CheckConstraint("action IN ('abort', 'retry')", name="ck_operator_actions_action"),
        sa.CheckConstraint("outcome IN ('applied', 'refused')", name="ck_operator_actions_outcome"),
        schema="saga",
    )
    op.create_index(
        "ix_operator_actions_order_id", "operator_actions", ["order_id", "id"], schema="saga"
    )


def downgrade() -> None:
    """Drop saga.operator_actions and every journal."""
    op.drop_index("ix_operator_actions_order_id", table_name="operator_actions", schema="saga")
    op.drop_table("operator_actions", schema="saga")
    for schema in reversed(SCHEMAS):
        op.drop_index(f"ix_{schema}_journal_recorded_at", table_name="journal", schema=schema)
        op.drop_index(f"ix_{schema}_journal_correlation", table_name="journal", schema=schema)
        op.drop_table("journal", schema=schema)
