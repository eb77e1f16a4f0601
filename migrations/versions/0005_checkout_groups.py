"""Marketplace cart: vendors and MOQ on offers, vendor snapshots, checkout groups, vendor orders.

Offers and cart lines from before vendors belong to the vendor "house". Every order the cart
checked out before this revision becomes a checkout group of one (the group id is the order
id, as for any single-vendor checkout since), so GET /checkout-groups/{id} shows old orders too.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "cart"
HOUSE = "house"

_BACKFILL_GROUPS = """
INSERT INTO cart.checkout_groups (group_id, buyer_id, cart_id, policy, currency, total, created_at)
SELECT order_id, buyer_id, cart_id, 'all_or_nothing', currency, total, created_at
FROM cart.order_status
"""


def _vendors_on_offers_and_lines() -> None:
    for table in ("offers", "cart_items"):
        op.add_column(
            table,
            sa.Column("vendor_id", sa.Text(), server_default=HOUSE, nullable=False),
            schema=SCHEMA,
        )
    op.add_column(
        "offers", sa.Column("moq", sa.Integer(), server_default="1", nullable=False), schema=SCHEMA
    )
    op.create_check_constraint(
        "ck_offers_moq", "offers", "moq BETWEEN 1 AND max_qty", schema=SCHEMA
    )
    op.create_check_constraint(
        "ck_offers_vendor_id", "offers", "char_length(vendor_id) BETWEEN 1 AND 128", schema=SCHEMA
    )


def _create_checkout_groups() -> None:
    op.create_table(
        "checkout_groups",
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.Column("buyer_id", sa.Text(), nullable=False),
        sa.Column("cart_id", sa.Uuid(), nullable=False),
        sa.Column("policy", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("total", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "policy IN ('all_or_nothing', 'partial')", name="ck_checkout_groups_policy"
        ),
        sa.PrimaryKeyConstraint("group_id"),
        schema=SCHEMA,
    )
    op.create_index("ix_checkout_groups_buyer", "checkout_groups", ["buyer_id"], schema=SCHEMA)


def _vendor_orders_in_the_order_view() -> None:
    columns = [
        sa.Column("checkout_group_id", sa.Uuid(), nullable=True),
        sa.Column("vendor_id", sa.Text(), nullable=True),
        sa.Column("adjusted_total", sa.Numeric(precision=16, scale=2), nullable=True),
        sa.Column("accepted_items", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "rejected",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    ]
    for column in columns:
        op.add_column("order_status", column, schema=SCHEMA)
    op.execute(_BACKFILL_GROUPS)
    op.execute(f"UPDATE cart.order_status SET checkout_group_id = order_id, vendor_id = '{HOUSE}'")
    op.create_foreign_key(
        "order_status_checkout_group_id_fkey",
        "order_status",
        "checkout_groups",
        ["checkout_group_id"],
        ["group_id"],
        source_schema=SCHEMA,
        referent_schema=SCHEMA,
    )
    op.create_index("ix_order_status_group", "order_status", ["checkout_group_id"], schema=SCHEMA)


def upgrade() -> None:
    _vendors_on_offers_and_lines()
    _create_checkout_groups()
    _vendor_orders_in_the_order_view()


def downgrade() -> None:
    op.drop_index("ix_order_status_group", table_name="order_status", schema=SCHEMA)
    op.drop_constraint(
        "order_status_checkout_group_id_fkey", "order_status", schema=SCHEMA, type_="foreignkey"
    )
    for column in (
        "rejected",
        "accepted_items",
        "adjusted_total",
        "vendor_id",
        "checkout_group_id",
    ):
        op.drop_column("order_status", column, schema=SCHEMA)
    op.drop_index("ix_checkout_groups_buyer", table_name="checkout_groups", schema=SCHEMA)
    op.drop_table("checkout_groups", schema=SCHEMA)
    op.drop_constraint("ck_offers_vendor_id", "offers", schema=SCHEMA, type_="check")
    op.drop_constraint("ck_offers_moq", "offers", schema=SCHEMA, type_="check")
    op.drop_column("offers", "moq", schema=SCHEMA)
    for table in ("cart_items", "offers"):
        op.drop_column(table, "vendor_id", schema=SCHEMA)
