"""A delivery on its way through a consumer's batch: read, applied or not, and its journal row.

Split from the consumer so that it holds the transaction shape alone; imports no service.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from contracts import MessageHeaders
from contracts.codec import Decoded, InvalidMessageError, check_headers, check_key, decode
from services.platform import journal
from services.platform.delivery import BatchHooks, Delivery, Outcome, Route

UNREADABLE = "(unreadable)"
"""The type logged, counted and journaled for a record that is no message (e.g. malformed JSON)."""


@dataclass(slots=True)
class Item:
    """One delivery of a batch on its way through: decoded (or why not) and what became of it."""

    delivery: Delivery
    route: Route
    decoded: Decoded | None = None
    error: str | None = None
    outcome: Outcome | None = None


def hooks_of(items: list[Item]) -> list[tuple[BatchHooks, list[Decoded]]]:
    """The batch-aware handlers among the items' routes, each with its records in order."""
    found: dict[int, tuple[BatchHooks, list[Decoded]]] = {}
    for item in items:
        hooks = item.route.hooks
        if hooks is not None and item.decoded is not None:
            found.setdefault(id(hooks), (hooks, []))[1].append(item.decoded)
    return list(found.values())


def duplicates(items: list[Item], fresh: list[Item], before: int) -> list[journal.Consumed]:
    """'in' rows of the decoded records not applied: in the inbox already, or twice in the batch."""
    applied = {id(i) for i in fresh}
    return [
        entry(i, Outcome.DUPLICATE, None, before)
        for i in items
        if i.decoded is not None and id(i) not in applied
    ]


def entry(item: Item, outcome: Outcome, detail: str | None, before: int) -> journal.Consumed:
    """The journal's 'in' row of a record: keyed like the record, its envelope's id when read."""
    delivery, envelope = item.delivery, item.decoded.envelope if item.decoded else None
    key = delivery.key
    if key is None:  # refused for it, but still this checkout's if its envelope says so
        key = str(envelope.correlation_id) if envelope else ""
    return journal.Consumed(
        correlation_id=journal.cut(key),
        message_id=envelope.message_id if envelope else _header_id(delivery),
        message_type=type_of(item),
        topic=delivery.topic,
        outcome=outcome.value,
        detail=journal.cut(detail) if detail else None,
        before=before,
    )


def type_of(item: Item) -> str:
    """The record's message type as read; an unreadable record is no message of its topic's type."""
    return item.decoded.envelope.message_type if item.decoded else UNREADABLE


def _header_id(delivery: Delivery) -> uuid.UUID:
    """An unreadable record's id as its header says, else the nil UUID (it has none to give)."""
    try:
        return uuid.UUID(delivery.headers.get(MessageHeaders.MESSAGE_ID, ""))
    except ValueError:
        return uuid.UUID(int=0)


def read(delivery: Delivery, route: Route) -> Item:
    """The delivery decoded and checked against its key and headers, or with why not."""
    item = Item(delivery, route)
    try:
        decoded = decode(delivery.value, route.message_type)
        check_key(decoded.envelope, delivery.key)
        check_headers(decoded.envelope, delivery.headers)
        item.decoded = decoded
    except InvalidMessageError as exc:
        item.error = str(exc)
    return item
