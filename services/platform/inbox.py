"""The inbox: message ids a service has applied, claimed in the same transaction as the effects."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Column, DateTime, Index, MetaData, Table, Text, Uuid, func
from sqlalchemy.ext.asyncio import AsyncConnection

from services.platform import sql


def inbox_table(metadata: MetaData, schema: str) -> Table:
    """The inbox table of one service schema."""
    return Table(
        "inbox",
        metadata,
        Column("message_id", Uuid, primary_key=True),
        Column("message_type", Text, nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index(f"ix_{schema}_inbox_received_at", "received_at"),
        schema=schema,
    )


def claim_statement(table: Table) -> str:
    """The statement that claims many ids at once; built once per consumer, not per batch."""
    return (
        f"INSERT INTO {table.schema}.{table.name} (message_id, message_type) "
        "SELECT * FROM unnest($1::uuid[], $2::text[]) "
        "ON CONFLICT (message_id) DO NOTHING RETURNING message_id"
    )


async def claim_many(
    conn: AsyncConnection, statement: str, messages: Sequence[tuple[uuid.UUID, str]]
) -> set[uuid.UUID]:
    """Record the messages as applied in one round trip; returns the ids that were new.

    The ids not returned are duplicates. A concurrent claim of the same id blocks on the
    unique key until the other transaction ends, so two consumers never both apply a message.
    """
    ordered = sorted(messages)  # one lock order for every claimer: no deadlock between them
    rows = await sql.fetch(conn, statement, [m for m, _ in ordered], [t for _, t in ordered])
    return {row[0] for row in rows}
