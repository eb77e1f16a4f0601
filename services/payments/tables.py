"""The payment simulator schema: its decisions, refunds, outbox and inbox."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, DateTime, MetaData, Numeric, Table, Text, Uuid, func

from services.platform.inbox import inbox_table
from services.platform.journal import journal_table
from services.platform.outbox import outbox_table

SCHEMA = "payments"
metadata = MetaData(schema=SCHEMA)

payments = Table(
    "payments",
    metadata,
    Column("order_id", Uuid, primary_key=True),
    Column("payment_id", Uuid, nullable=False, unique=True),
    Column("amount", Numeric(14, 2), nullable=False),
    Column("currency", Text, nullable=False),
    Column("decision", Text, nullable=False),
    Column("reason", Text),
    Column("decided_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("decision IN ('completed', 'declined', 'silent')", name="ck_payments_decision"),
)

# Keyed by payment id: a payment is refunded at most once, whoever asks how often.
refunds = Table(
    "refunds",
    metadata,
    Column("payment_id", Uuid, primary_key=True),
    Column("order_id", Uuid, nullable=False),
    Column("amount", Numeric(14, 2), nullable=False),
    Column("currency", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("refunded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outbox = outbox_table(metadata, SCHEMA)
inbox = inbox_table(metadata, SCHEMA)
journal = journal_table(metadata, SCHEMA)
