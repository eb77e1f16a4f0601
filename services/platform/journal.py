"""The journal: what a service consumed and produced per checkout, written with the effects.

The operations console's timeline of one checkout reads it (never Kafka). A row is written in
the same transaction as the inbox claim and the outbox rows, so the journal tells exactly what
committed; it is purged with the inbox's retention.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, MetaData, Table, Text, Uuid, func


def journal_table(metadata: MetaData, schema: str) -> Table:
    """The journal table of one service schema."""
    return Table(
        "journal",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        # The record's key: the order id (a checkout group's id, a cart id for cart events).
        Column("correlation_id", Text, nullable=False),
        Column("message_id", Uuid, nullable=False),
        Column("message_type", Text, nullable=False),
        Column("topic", Text, nullable=False),
        # "in" (consumed) or "out" (written to the outbox).
        Column("direction", Text, nullable=False),
        # in: applied, duplicate, dead_lettered; out: produced.
        Column("outcome", Text, nullable=False),
        # The saga's transition, a rejection's reason; NULL when there is nothing to say.
        Column("detail", Text),
        Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index(f"ix_{schema}_journal_correlation", "correlation_id", "id"),
        Index(f"ix_{schema}_journal_recorded_at", "recorded_at"),
        schema=schema,
    )
