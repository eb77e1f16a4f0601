"""The transactional outbox: rows written with the state change, published later by the relay."""

from __future__ import annotations

import functools
import json
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    Uuid,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import Envelope, Message, MessageHeaders
from contracts.codec import encode, headers_for
from contracts.topics import topic_for
from services.platform import journal, sql

NOTIFY_CHANNEL = "checkout_outbox"
"""LISTEN/NOTIFY channel the outbox trigger signals; the payload is the schema name."""


def outbox_table(metadata: MetaData, schema: str) -> Table:
    """The outbox table of one service schema."""
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger, primary_key=True, autoincrement=True),
        Column("message_id", Uuid, nullable=False, unique=True),
        Column("topic", Text, nullable=False),
        Column("message_key", Text, nullable=False),
        Column("lane", SmallInteger, nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("headers", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("available_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("sent_at", DateTime(timezone=True)),
        Index(f"ix_{schema}_outbox_unsent", "lane", "id", postgresql_where=text("sent_at IS NULL")),
        Index(
            f"ix_{schema}_outbox_sent_at", "sent_at", postgresql_where=text("sent_at IS NOT NULL")
        ),
        schema=schema,
    )


def lane_of(key: str, lanes: int) -> int:
    """Stable lane of a key: every message of one key lands in one lane, hence stays ordered."""
    return zlib.crc32(key.encode()) % lanes


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One message to publish: where, under which key, the bytes and the headers."""

    message_id: uuid.UUID
    topic: str
    key: str
    payload: bytes
    headers: dict[str, str]
    available_at: datetime | None = field(default=None)

    @classmethod
    def of(
        cls,
        message: Message,
        *,
        message_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
        available_at: datetime | None = None,
    ) -> OutboxMessage:
        """Wrap a contract message in its envelope, ready for the outbox."""
        envelope: Envelope = message.to_envelope(message_id=message_id, causation_id=causation_id)
        return cls(
            message_id=envelope.message_id,
            topic=topic_for(message),
            key=str(message.order_id),
            payload=encode(envelope),
            headers=headers_for(envelope),
            available_at=available_at,
        )


@functools.cache
def _insert_statement(schema: str, name: str) -> str:
    # One round trip writes the outbox rows and the journal's rows of the transaction: the 'in'
    # rows of what it consumed and an 'out' row per outbox row. unnest keeps the rows in the
    # given order (WITH ORDINALITY makes it explicit), so ids, and with them the relay's
    # publishing order per key and the journal's order, follow the order given. An 'out' row is
    # kept only for a message that really became an outbox row (a replay's copy is skipped).
    return (
        f"WITH o AS (INSERT INTO {schema}.{name} "
        "(message_id, topic, message_key, lane, payload, headers, available_at) "
        "SELECT m, t, k, l, p, CAST(h AS jsonb), coalesce(a, now()) FROM unnest("
        "$1::uuid[], $2::text[], $3::text[], $4::int2[], $5::bytea[], $6::text[], "
        "$7::timestamptz[]) WITH ORDINALITY AS u(m, t, k, l, p, h, a, n) "
        "ORDER BY n ON CONFLICT (message_id) DO NOTHING RETURNING message_id) "
        f"INSERT INTO {schema}.journal "
        "(correlation_id, message_id, message_type, topic, direction, outcome, detail) "
        "SELECT c, m, y, t, d, r, x FROM unnest("
        "$8::text[], $9::uuid[], $10::text[], $11::text[], $12::text[], $13::text[], "
        "$14::text[]) WITH ORDINALITY AS j(c, m, y, t, d, r, x, n) "
        f"WHERE d = '{journal.IN}' OR m IN (SELECT message_id FROM o) ORDER BY n"
    )


async def write(
    conn: AsyncConnection,
    table: Table,
    messages: Sequence[OutboxMessage],
    lanes: int,
    consumed: Sequence[journal.Consumed] = (),
) -> None:
    """Insert messages in order and journal them with what was consumed, in one round trip.

    Ids already written (a replay) are skipped, and so is their journal row. `consumed` are the
    transaction's 'in' rows, each placed before the messages from its `before` on.
    """
    if not messages and not consumed:
        return
    rows = _journal_rows(messages, consumed)
    await sql.execute(
        conn,
        _insert_statement(str(table.schema), table.name),
        [m.message_id for m in messages],
        [m.topic for m in messages],
        [m.key for m in messages],
        [lane_of(m.key, lanes) for m in messages],
        [m.payload for m in messages],
        [json.dumps(m.headers) for m in messages],
        [m.available_at for m in messages],
        *(list(column) for column in zip(*rows, strict=True)),
    )


_JournalRow = tuple[str, uuid.UUID, str, str, str, str, str | None]


def _journal_rows(
    messages: Sequence[OutboxMessage], consumed: Sequence[journal.Consumed]
) -> list[_JournalRow]:
    """The journal's rows in order: each consumed record just before the messages it caused."""
    waiting = sorted(consumed, key=lambda c: c.before)  # stable: records keep their order
    rows: list[_JournalRow] = []
    at = 0
    for index, message in enumerate(messages):
        while at < len(waiting) and waiting[at].before <= index:
            rows.append(_in_row(waiting[at]))
            at += 1
        rows.append(_out_row(message))
    rows.extend(_in_row(c) for c in waiting[at:])
    return rows


def _in_row(c: journal.Consumed) -> _JournalRow:
    return (
        c.correlation_id,
        c.message_id,
        c.message_type,
        c.topic,
        journal.IN,
        c.outcome,
        c.detail,
    )


def _out_row(m: OutboxMessage) -> _JournalRow:
    message_type = m.headers.get(MessageHeaders.MESSAGE_TYPE, "")
    return (m.key, m.message_id, message_type, m.topic, journal.OUT, journal.PRODUCED, None)


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    """What one outbox holds: what the relay owes now, later, and what it sent (until purged)."""

    schema: str
    due: int
    """Unsent rows whose time has come: the relay's backlog."""
    delayed: int
    """Unsent rows not due yet (e.g. a scheduled retry)."""
    oldest_due_age_s: float
    """Age of the oldest due row (0 when none): how far behind the relay is."""
    sent: int
    """Sent rows the purge has not removed yet."""
    last_sent_at: datetime | None


async def backlog(conn: AsyncConnection, table: Table) -> tuple[int, float]:
    """Due unsent rows and the age of the oldest in seconds: cheap, it reads unsent rows only."""
    now = func.now()
    query = select(
        func.count(), func.coalesce(func.extract("epoch", now - func.min(table.c.available_at)), 0)
    ).where(table.c.sent_at.is_(None), table.c.available_at <= now)
    count, age = (await conn.execute(query)).one()
    return int(count), float(age)


async def status(conn: AsyncConnection, table: Table) -> OutboxStatus:
    """The backlog, plus delayed rows and the sent rows kept (this part reads the whole table)."""
    due, age = await backlog(conn, table)
    unsent_later = table.c.sent_at.is_(None) & (table.c.available_at > func.now())
    query = select(
        func.count().filter(unsent_later), func.count(table.c.sent_at), func.max(table.c.sent_at)
    )
    delayed, sent, last_sent_at = (await conn.execute(query)).one()
    return OutboxStatus(str(table.schema), due, delayed, age, sent, last_sent_at)


_REPLY_NAMESPACE = uuid.UUID("9d2b8f64-5f7e-4a8e-b0a4-2c3d8e1f7a55")


def reply(message: Message, cause: Envelope) -> OutboxMessage:
    """An answer to a received message: its id derives from the cause, its causation is the cause.

    A replayed cause therefore re-creates the same row, which the outbox skips.
    """
    return OutboxMessage.of(
        message,
        message_id=uuid.uuid5(_REPLY_NAMESPACE, f"{cause.message_id}:{message.message_type}"),
        causation_id=cause.message_id,
    )
