"""The saga schema: sagas (optimistic version), orphan refunds, operator actions, outbox, inbox, journal."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Computed,
    DateTime,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from services.platform.inbox import inbox_table
from services.platform.journal import journal_table
from services.platform.outbox import outbox_table

SCHEMA = "saga"
metadata = MetaData(schema=SCHEMA)

sagas = Table(
    "sagas",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("state", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("data", JSONB, nullable=False),
    Column("payment_deadline", DateTime(timezone=True)),
    # Kafka's murmur2 of str(id) & 0x7fffffff: the deadline gate's partition of the saga
    # (migration 0003 defines the function; saga/deadline_gate.py is its Python twin).
    Column(
        "key_hash",
        Integer,
        Computed("saga.kafka_key_hash(id::text)", persisted=True),
        nullable=False,
    ),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(
        "state IN ('Submitted', 'StockReserved', 'Confirmed', 'Failed')", name="ck_sagas_state"
    ),
    Index(
        "ix_sagas_due",
        "payment_deadline",
        postgresql_where=text("payment_deadline IS NOT NULL"),
    ),
    Index("ix_sagas_state", "state"),
    # The console's flow figures: sagas finished in the last minutes (migration 0008).
    Index(
        "ix_sagas_finished_updated_at",
        "updated_at",
        postgresql_where=text("state IN ('Confirmed', 'Failed')"),
    ),
)

orphan_refunds = Table(
    "orphan_refunds",
    metadata,
    # A payment for an order that had no saga once the orphan grace passed, refunded at once.
    # The saga started for that order later (its CheckoutStarted was behind in a backlog) knows
    # the payment as refunded, so a re-sent copy of it is never accepted.
    Column("payment_id", Uuid, primary_key=True),
    Column("order_id", Uuid, nullable=False),
    Column("refunded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_orphan_refunds_order_id", "order_id"),
)

operator_actions = Table(
    "operator_actions",
    metadata,
    # Every operator action on a saga (abort, retry): who asked, when, why, and what the
    # transition table made of it (the row applied, or why it was refused).
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("order_id", Uuid, nullable=False),
    Column("action", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("outcome", Text, nullable=False),
    Column("from_state", Text),
    Column("to_state", Text),
    Column("detail", Text),
    CheckConstraint("action IN ('abort', 'retry')", name="ck_operator_actions_action"),
    CheckConstraint("outcome IN ('applied', 'refused')", name="ck_operator_actions_outcome"),
    Index("ix_operator_actions_order_id", "order_id", "id"),
)

outbox = outbox_table(metadata, SCHEMA)
inbox = inbox_table(metadata, SCHEMA)
journal = journal_table(metadata, SCHEMA)
