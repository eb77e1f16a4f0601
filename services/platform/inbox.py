"""The inbox: message ids a service has applied, claimed in the same transaction as the effects."""

from __future__ import annotations

import uuid

from sqlalchemy import Column, DateTime, Index, MetaData, Table, Text, Uuid, func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection


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


async def claim(
    conn: AsyncConnection, table: Table, message_id: uuid.UUID, message_type: str
) -> bool:
    """Record the message as applied; False when it already was (a duplicate delivery).

    A concurrent claim of the same id blocks on the unique key until the other
    transaction ends, so two consumers can never both apply one message.
    """
    stmt = (
        pg_insert(table)
        .values(message_id=message_id, message_type=message_type)
        .on_conflict_do_nothing(index_elements=["message_id"])
        .returning(table.c.message_id)
    )
    return (await conn.execute(stmt)).first() is not None
