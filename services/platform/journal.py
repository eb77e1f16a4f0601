"""The journal: what a service consumed and produced per checkout, written with the effects.

The operations console's timeline of one checkout reads it (never Kafka). A row is written in
the same transaction as the inbox claim and the outbox rows, so the journal tells exactly what
committed; it is purged with the inbox's retention.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

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
        # BRIN: rows arrive in time order and only the purge reads by time, so a block range
        # index serves it at a fraction of a b-tree's cost per insert.
        Index(f"ix_{schema}_journal_recorded_at", "recorded_at", postgresql_using="brin"),
        schema=schema,
    )


IN, OUT = "in", "out"
"""Directions: a consumed record, a message written to the outbox."""
PRODUCED = "produced"
"""The outcome of every 'out' row; 'in' rows take the consumer's Outcome values."""
INTERNAL_TOPIC = "(internal)"
"""The topic of an event a service raised itself (the saga's payment deadline), not consumed."""


@dataclass(frozen=True, slots=True)
class Consumed:
    """One consumed record as its 'in' row tells it, placed among the transaction's 'out' rows.

    `before` is how many of the transaction's outbox messages precede it: the messages its
    handler wrote follow it, so one checkout's rows read as cause, then effects.
    """

    correlation_id: str
    message_id: uuid.UUID
    message_type: str
    topic: str
    outcome: str
    detail: str | None = None
    before: int = 0


_notes: ContextVar[list[str] | None] = ContextVar("journal_notes", default=None)


def note(text: str) -> None:
    """Attach a note (the saga's transition, say) to the record being handled, if any is.

    The consumer journals the notes of a record as the detail of its 'in' row; outside a
    consumer (a test calling a handler directly) the note goes nowhere.
    """
    notes = _notes.get()
    if notes is not None:
        notes.append(text)


@contextmanager
def noting() -> Iterator[list[str]]:
    """Collect the notes made inside the block (the consumer wraps each handler call in one)."""
    notes: list[str] = []
    token = _notes.set(notes)
    try:
        yield notes
    finally:
        _notes.reset(token)


def detail_of(notes: Sequence[str]) -> str | None:
    """The 'in' row's detail from a record's notes: None when nothing was said."""
    return cut("; ".join(notes)) if notes else None


def cut(text: str) -> str:
    """A detail as kept: short enough to read, without NUL (PostgreSQL text cannot hold it)."""
    return text[:_DETAIL_LIMIT].replace("\x00", "\ufffd")


_DETAIL_LIMIT = 1000
"""A detail is for reading, like a dead letter's error header (cut at the same length)."""
