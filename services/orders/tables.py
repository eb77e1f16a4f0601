"""The orders schema: vendor orders with line snapshots, parked early commands, outbox, inbox."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    MetaData,
    Numeric,
    Table,
    Text,
    Uuid,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from services.platform.inbox import inbox_table
from services.platform.journal import journal_table
from services.platform.outbox import outbox_table

SCHEMA = "orders"
metadata = MetaData(schema=SCHEMA)

# One row per vendor order. A checkout of one vendor (or of none) is one order whose id is its
# checkout group's id; a marketplace checkout is one order per vendor under one group id.
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
    Column("checkout_group_id", Uuid, nullable=False),
    Column("vendor_id", Text),
    Column("marketplace", Boolean, nullable=False, server_default=false()),
    # The lines a partial checkout went on without ([{sku, quantity, reason}]).
    Column("rejected", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    # The total of the accepted lines, set when the order becomes final (NULL while created).
    Column("adjusted_total", Numeric(16, 2)),
    # A priced checkout's orders: their lines' charges ([{sku, discount, tax, charge}]) and
    # their share of the shipping charge; both NULL for an unpriced checkout's orders.
    Column("charges", JSONB),
    Column("shipping_share", Numeric(16, 2)),
    CheckConstraint("status IN ('created', 'confirmed', 'failed')", name="ck_orders_status"),
    # A priced order may end above its total: it takes over the shipping share of a vendor
    # order of its group that was left with no line.
    CheckConstraint(
        "adjusted_total >= 0 AND (charges IS NOT NULL OR adjusted_total <= total)",
        name="ck_orders_adjusted_total_in_range",
    ),
    CheckConstraint(
        "(charges IS NULL) = (shipping_share IS NULL) AND coalesce(shipping_share, 0) >= 0",
        name="ck_orders_priced",
    ),
    Index("ix_orders_buyer", "buyer_id"),
    Index("ix_orders_checkout_group", "checkout_group_id"),
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
journal = journal_table(metadata, SCHEMA)
