"""Snapshots of every service table, and the account of what changed between two of them.

A snapshot is each table's rows as JSON text (outbox rows without `sent_at`, which delivering
them sets, and without `payload`, which is large and judged elsewhere). Between two snapshots
every added or removed row must be explained: a row of a valid checkout (it names one of its
ids or products), a row of a sandbox message (it names its order id), an inbox claim of a
message that was valid, or a dead letter the fuzz expects. Anything else is state that
invalid input changed.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import DEAD_LETTER_TOPIC, MessageHeaders

SCHEMAS = ("saga", "inventory", "orders", "cart", "payments")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

Snapshot = dict[str, Counter[str]]
"""schema.table -> its rows as JSON text (a multiset: rows need no key of their own)."""


async def snapshot(engine: AsyncEngine) -> Snapshot:
    """Every row of every service table, now."""
    taken: Snapshot = {}
    async with engine.connect() as conn:
        tables = await conn.execute(
            text(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema = ANY(:s) AND table_type = 'BASE TABLE'"
            ),
            {"s": list(SCHEMAS)},
        )
        for schema, table in tables.all():
            drop = " - 'sent_at' - 'payload'" if table == "outbox" else ""
            rows = await conn.execute(
                text(f'SELECT (to_jsonb(t){drop})::text FROM "{schema}"."{table}" t')
            )
            taken[f"{schema}.{table}"] = Counter(r[0] for r in rows)
    return taken


@dataclass
class Allowed:
    """What may have changed: the ids and products of valid flows, and the expected letters."""

    ids: set[str] = field(default_factory=set)
    """Order ids (and other ids) whose rows may change: valid checkouts, sandbox orders."""
    skus: set[str] = field(default_factory=set)
    message_ids: set[str] = field(default_factory=set)
    """Messages that were valid: the inboxes may claim them."""
    letters: set[str] = field(default_factory=set)
    """Dead letters the fuzz expects (ids derived from the records' positions)."""
    refusable: set[str] = field(default_factory=set)
    """Messages the services sent one another for sandbox orders: their dead letters may exist."""
    produced: set[str] = field(default_factory=set)
    """Outbox rows explained (filled by `unexplained`): their journal 'out' rows are too."""


def unexplained(before: Snapshot, after: Snapshot, allowed: Allowed) -> list[str]:
    """Rows added or removed between the snapshots that `allowed` does not explain."""
    # A journal 'out' row stands for an outbox row of the same message id (its key may be a
    # vendor order's id that only the outbox row's payload ties to an allowed order).
    produced = {
        str(json.loads(row)["message_id"])
        for table, rows in after.items()
        if table.endswith(".outbox")
        for row in rows
        if _explained(table, row, allowed)
    }
    allowed = dataclasses.replace(allowed, produced=allowed.produced | produced)
    found = []
    for table in sorted(after.keys() | before.keys()):
        old, new = before.get(table, Counter()), after.get(table, Counter())
        changed = [("added", r) for r in (new - old).elements()]
        changed += [("removed", r) for r in (old - new).elements()]
        found += [
            f"{table} {how}: {row[:400]}"
            for how, row in changed
            if not _explained(table, row, allowed)
        ]
    return found


def _explained(table: str, row: str, allowed: Allowed) -> bool:
    values = json.loads(row)
    if table.endswith(".inbox"):
        return str(values["message_id"]) in allowed.message_ids
    if table.endswith(".journal"):
        return _journaled(values, row, allowed)
    if table.endswith(".outbox") and values["topic"] == DEAD_LETTER_TOPIC:
        original = values["headers"].get(MessageHeaders.MESSAGE_ID)
        return str(values["message_id"]) in allowed.letters or original in allowed.refusable
    return _names_any(row, allowed.ids) or any(sku in row for sku in allowed.skus)


def _journaled(values: dict[str, str], row: str, allowed: Allowed) -> bool:
    """A journal row is explained by what it records: a record dead-lettered (its letter is
    checked on its own), a valid message consumed, or a message sent for an allowed order."""
    if values["direction"] == "in":
        if values["outcome"] == "dead_lettered":
            return True
        return str(values["message_id"]) in allowed.message_ids or _names_any(row, allowed.ids)
    if str(values["message_id"]) in allowed.produced:
        return True
    if values["topic"] == DEAD_LETTER_TOPIC:
        return str(values["message_id"]) in allowed.letters or _names_any(row, allowed.ids)
    return _names_any(row, allowed.ids)


def _names_any(row: str, ids: Collection[str]) -> bool:
    return any(found in ids for found in _UUID.findall(row))


def named_ids(value: bytes | str) -> set[str]:
    """Every id (lowercase UUID text) that a message or a row names."""
    text_ = value.decode(errors="replace") if isinstance(value, bytes) else value
    return set(_UUID.findall(text_))


def ids_named(after: Snapshot, schema: str) -> set[str]:
    """Every id that rows of one service's tables name (dead letters, inbox, journal aside).

    The inbox and the journal record what was consumed, refused records included; what a
    service keeps of an order is in its other tables.
    """
    named: set[str] = set()
    for table, rows in after.items():
        if table.startswith(f"{schema}.") and not table.endswith((".inbox", ".journal")):
            for row in rows:
                if f'"topic": "{DEAD_LETTER_TOPIC}"' not in row:
                    named.update(_UUID.findall(row))
    return named
