"""The inventory schema: stock counters per product, reservation rows, outcomes, outbox, inbox."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from services.platform.inbox import inbox_table
from services.platform.journal import journal_table
from services.platform.outbox import outbox_table

SCHEMA = "inventory"
metadata = MetaData(schema=SCHEMA)

products = Table(
    "products",
    metadata,
    Column("sku", Text, primary_key=True),
    Column("available", Integer, nullable=False),
    Column("reserved", Integer, nullable=False, server_default="0"),
    Column("deducted", Integer, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("available >= 0", name="ck_products_available"),
    CheckConstraint("reserved >= 0", name="ck_products_reserved"),
    CheckConstraint("deducted >= 0", name="ck_products_deducted"),
)

reservations = Table(
    "reservations",
    metadata,
    Column("reservation_id", Uuid, primary_key=True),
    Column("order_id", Uuid, nullable=False),
    Column("sku", Text, ForeignKey("inventory.products.sku"), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("quantity > 0", name="ck_reservations_quantity"),
    CheckConstraint("status IN ('held', 'deducted', 'released')", name="ck_reservations_status"),
    UniqueConstraint("order_id", "sku", name="uq_reservations_order_sku"),
    Index("ix_reservations_order", "order_id"),
)

# The first answer to "reserve order X" is kept, so a re-sent request gets the same answer.
reservation_outcomes = Table(
    "reservation_outcomes",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("succeeded", Boolean, nullable=False),
    Column("reason", Text),
    Column("shortages", JSONB, nullable=False, server_default="[]"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outbox = outbox_table(metadata, SCHEMA)
inbox = inbox_table(metadata, SCHEMA)
journal = journal_table(metadata, SCHEMA)
