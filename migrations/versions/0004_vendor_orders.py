"""Vendor orders: each order row belongs to a checkout group and may name its vendor.

A marketplace checkout becomes one order per vendor under its group id; an existing order is a
group of its own (checkout_group_id = order_id). Rejected lines and the adjusted total record
what a partial checkout went on without.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "orders"


def upgrade() -> None:
    # Nullable first, filled, then NOT NULL: every order made before groups is its own group.
    op.add_column("orders", sa.Column("checkout_group_id", sa.Uuid(), nullable=True), schema=SCHEMA)
    op.execute("UPDATE orders.orders SET checkout_group_id = order_id")
    op.alter_column("orders", "checkout_group_id", nullable=False, schema=SCHEMA)
    op.add_column("orders", sa.Column("vendor_id", sa.Text(), nullable=True), schema=SCHEMA)
    op.add_column(
        "orders",
        sa.Column("marketplace", sa.Boolean(), server_default=sa.false(), nullable=False),
        schema=SCHEMA,
    )
    op.add_column(
        "orders",
        sa.Column(
            "rejected",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        schema=SCHEMA,
    )
    op.add_column(
        "orders",
        sa.Column("adjusted_total", sa.Numeric(precision=16, scale=2), nullable=True),
        schema=SCHEMA,
    )
    op.create_check_constraint(
        "ck_orders_adjusted_total_within_total",
        "orders",
        "adjusted_total BETWEEN 0 AND total",
        schema=SCHEMA,
    )
    op.create_index(
        "ix_orders_checkout_group", "orders", ["checkout_group_id"], unique=False, schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_index("ix_orders_checkout_group", table_name="orders", schema=SCHEMA)
    op.drop_constraint(
        "ck_orders_adjusted_total_within_total", "orders", schema=SCHEMA, type_="check"
    )
    for column in ("adjusted_total", "rejected", "marketplace", "vendor_id", "checkout_group_id"):
        op.drop_column("orders", column, schema=SCHEMA)
