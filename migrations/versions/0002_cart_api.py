"""Cart API: offers, item price snapshots, idempotency keys, the order-status view, idle carts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "cart"


def _now() -> sa.TextClause:
    return sa.text("now()")


def _create_offers() -> None:
    op.create_table(
        "offers",
        sa.Column("sku", sa.Text(), nullable=False),
        sa.Column("offer_id", sa.Uuid(), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("max_qty", sa.Integer(), server_default="20", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.CheckConstraint("unit_price > 0", name="ck_offers_unit_price"),
        sa.CheckConstraint("max_qty BETWEEN 1 AND 20", name="ck_offers_max_qty"),
        sa.CheckConstraint("char_length(currency) = 3", name="ck_offers_currency"),
        sa.PrimaryKeyConstraint("sku"),
        sa.UniqueConstraint("offer_id", name="uq_offers_offer_id"),
        schema=SCHEMA,
    )


def _extend_carts_and_items() -> None:
    op.add_column(
        "carts",
        sa.Column(
            "last_activity_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_carts_idle",
        "carts",
        ["last_activity_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'active'"),
    )
    # Lines written without the API (an upstream, or before this revision) get an id from the
    # database and no snapshot currency: theirs is the cart's.
    op.add_column(
        "cart_items",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        schema=SCHEMA,
    )
    op.add_column("cart_items", sa.Column("offer_id", sa.Uuid(), nullable=True), schema=SCHEMA)
    op.add_column("cart_items", sa.Column("currency", sa.Text(), nullable=True), schema=SCHEMA)
    op.add_column(
        "cart_items",
        sa.Column("captured_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        schema=SCHEMA,
    )
    op.create_unique_constraint("uq_cart_items_id", "cart_items", ["id"], schema=SCHEMA)


def _create_idempotency_keys() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("buyer_id", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        # json, not jsonb: a replay answers the very bytes of the first response, key order kept.
        sa.Column("response_body", postgresql.JSON(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.PrimaryKeyConstraint("buyer_id", "key"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"], schema=SCHEMA
    )


def _create_order_status() -> None:
    op.create_table(
        "order_status",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("buyer_id", sa.Text(), nullable=False),
        sa.Column("cart_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("total", sa.Numeric(precision=16, scale=2), nullable=False),
        sa.Column("items", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_now(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'created', 'confirmed', 'failed')",
            name="ck_order_status_status",
        ),
        sa.PrimaryKeyConstraint("order_id"),
        schema=SCHEMA,
    )
    op.create_index("ix_order_status_buyer", "order_status", ["buyer_id"], schema=SCHEMA)


def upgrade() -> None:
    _create_offers()
    _extend_carts_and_items()
    _create_idempotency_keys()
    _create_order_status()


def downgrade() -> None:
    op.drop_index("ix_order_status_buyer", table_name="order_status", schema=SCHEMA)
    op.drop_table("order_status", schema=SCHEMA)
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys", schema=SCHEMA)
    op.drop_table("idempotency_keys", schema=SCHEMA)
    op.drop_constraint("uq_cart_items_id", "cart_items", schema=SCHEMA, type_="unique")
    for column in ("captured_at", "currency", "offer_id", "id"):
        op.drop_column("cart_items", column, schema=SCHEMA)
    op.drop_index("ix_carts_idle", table_name="carts", schema=SCHEMA)
    op.drop_column("carts", "last_activity_at", schema=SCHEMA)
    op.drop_table("offers", schema=SCHEMA)
