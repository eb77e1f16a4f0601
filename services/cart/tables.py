"""The cart schema: carts per buyer with item price snapshots, clearances, outbox, inbox."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    Uuid,
    func,
)

from services.platform.inbox import inbox_table
from services.platform.outbox import outbox_table

SCHEMA = "cart"
metadata = MetaData(schema=SCHEMA)

carts = Table(
    "carts",
    metadata,
    Column("cart_id", Uuid, primary_key=True),
    Column("buyer_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("order_id", Uuid, unique=True),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(
        "status IN ('active', 'checked_out', 'cleared', 'abandoned')", name="ck_carts_status"
    ),
    Index("ix_carts_buyer", "buyer_id"),
)

cart_items = Table(
    "cart_items",
    metadata,
    Column("cart_id", Uuid, ForeignKey("cart.carts.cart_id", ondelete="CASCADE"), primary_key=True),
    Column("sku", Text, primary_key=True),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", Numeric(14, 2), nullable=False),
    Column("added_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("quantity > 0", name="ck_cart_items_quantity"),
)

# One row per order whose cart was cleared: proves "cleared exactly once".
clearances = Table(
    "clearances",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("cart_id", Uuid),
    Column("items_removed", Integer, nullable=False),
    Column("cleared_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outbox = outbox_table(metadata, SCHEMA)
inbox = inbox_table(metadata, SCHEMA)
