"""The orders schema: orders with line-item snapshots, parked early commands, outbox, inbox."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    MetaData,
    Numeric,
    Table,
    Text,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from services.platform.inbox import inbox_table
from services.platform.outbox import outbox_table

SCHEMA = "orders"
metadata = MetaData(schema=SCHEMA)

orders = Table(
    "orders",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("buyer_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("total", Numeric(16, 2), nullable=False),
    Column("items", JSONB, nullable=False),
    Column("payment_id", Uuid),
    Column("failure_reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("status IN ('created', 'confirmed', 'failed')", name="ck_orders_status"),
    Index("ix_orders_buyer", "buyer_id"),
)

# A ConfirmOrder/OrderFailed that overtook its CheckoutStarted waits here, applied on creation.
pending_commands = Table(
    "pending_commands",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("order_id", Uuid, nullable=False),
    Column("message_id", Uuid, nullable=False, unique=True),
    Column("message_type", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_pending_commands_order", "order_id"),
)

outbox = outbox_table(metadata, SCHEMA)
inbox = inbox_table(metadata, SCHEMA)
