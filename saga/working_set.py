"""The sagas one consumer batch touches: read in one statement, stepped in memory, written in two.

New sagas are inserted together, changed ones updated together under their version check
(`WHERE version = :read`), so a batch costs the same three round trips whatever its size. A
saga stepped several times in one batch is written once, one version up.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import TextClause, any_, bindparam, null, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import Uuid

from saga.instance import SagaData, SagaState
from saga.repository import StoredSaga, stored
from saga.tables import orphan_refunds, sagas
from services.platform.consumer import ConflictError

_SELECT = select(sagas).where(sagas.c.id == any_(bindparam("ids", type_=ARRAY(Uuid))))

_SELECT_WITH_REFUNDS = (
    select(sagas, null().label("refunded"))
    .where(sagas.c.id == any_(bindparam("ids", type_=ARRAY(Uuid))))
    .union_all(
        select(
            orphan_refunds.c.order_id,
            *[null() for _ in range(len(sagas.c) - 1)],
            orphan_refunds.c.payment_id,
        ).where(orphan_refunds.c.order_id == any_(bindparam("paying", type_=ARRAY(Uuid))))
    )
)
"""The batch's sagas and, for the orders it may start or pay, the payments refunded as orphans: one
round trip (the refunds' half is an index probe of a table that stays nearly empty)."""

_INSERT_REFUNDS: TextClause = text(
    "INSERT INTO saga.orphan_refunds (payment_id, order_id) "
    "SELECT * FROM unnest(CAST(:payments AS uuid[]), CAST(:orders AS uuid[])) "
    "ON CONFLICT (payment_id) DO NOTHING"
)

_INSERT: TextClause = text(
    "INSERT INTO saga.sagas (id, state, version, data, payment_deadline) "
    "SELECT i, s, 1, CAST(d AS jsonb), p FROM unnest(CAST(:ids AS uuid[]), "
    "CAST(:states AS text[]), CAST(:datas AS text[]), CAST(:deadlines AS timestamptz[])) "
    "AS u(i, s, d, p) ON CONFLICT (id) DO NOTHING RETURNING id"
)

_UPDATE: TextClause = text(
    "UPDATE saga.sagas AS t SET state = u.s, version = t.version + 1, data = CAST(u.d AS jsonb), "
    "payment_deadline = u.p, updated_at = now() FROM unnest(CAST(:ids AS uuid[]), "
    "CAST(:versions AS int[]), CAST(:states AS text[]), CAST(:datas AS text[]), "
    "CAST(:deadlines AS timestamptz[])) AS u(i, v, s, d, p) "
    "WHERE t.id = u.i AND t.version = u.v RETURNING t.id"
)


@dataclass(slots=True)
class _Entry:
    read: StoredSaga | None
    """As read from the database (None: no saga yet); its version is what the write must match."""
    current: StoredSaga | None
    dirty: bool = False


class WorkingSet:
    """Sagas of one transaction, keyed by id."""

    def __init__(self) -> None:
        self._entries: dict[uuid.UUID, _Entry] = {}
        self._refunded: dict[uuid.UUID, list[uuid.UUID]] = {}
        """order id -> payments refunded as orphans (read for the orders a batch may start)."""
        self._new_refunds: list[tuple[uuid.UUID, uuid.UUID]] = []

    async def load(
        self, conn: AsyncConnection, ids: Iterable[uuid.UUID], paying: Iterable[uuid.UUID] = ()
    ) -> None:
        """Read every saga of these ids that is not held yet, in one statement; for the ids in
        `paying` (orders that a batch may start or pay) also their orphan refunds."""
        wanted = sorted(set(ids) - self._entries.keys())
        if not wanted:
            return
        fresh = sorted(set(paying) & set(wanted))
        if fresh:
            rows = await conn.execute(_SELECT_WITH_REFUNDS, {"ids": wanted, "paying": fresh})
        else:
            rows = await conn.execute(_SELECT, {"ids": wanted})
        found = {}
        for row in rows:
            if getattr(row, "refunded", None) is not None:
                self._refunded.setdefault(row.id, []).append(row.refunded)
            else:
                found[row.id] = stored(row)
        for saga_id in wanted:
            saga = found.get(saga_id)
            self._entries[saga_id] = _Entry(saga, saga)

    def refunded_orphans(self, order_id: uuid.UUID) -> list[uuid.UUID]:
        """Payments of this order refunded as orphans: read, and refunded by this batch."""
        return sorted(self._refunded.get(order_id, []))

    def refund_orphan(self, order_id: uuid.UUID, payment_id: uuid.UUID) -> None:
        """Record a payment refunded as an orphan; written by flush."""
        self._refunded.setdefault(order_id, []).append(payment_id)
        self._new_refunds.append((payment_id, order_id))

    def get(self, saga_id: uuid.UUID) -> StoredSaga | None:
        """The saga as the batch's earlier steps left it; None when it does not exist yet."""
        return self._entries[saga_id].current

    def put(self, saga_id: uuid.UUID, state: SagaState, data: SagaData, now: datetime) -> None:
        """Record a step's result; written by flush."""
        entry = self._entries[saga_id]
        previous = entry.current
        if previous is None:
            entry.current = StoredSaga(saga_id, state, 0, data, created_at=now, updated_at=now)
        else:
            entry.current = replace(previous, state=state, data=data, updated_at=now)
        entry.dirty = True

    async def flush(self, conn: AsyncConnection) -> None:
        """Insert the new sagas and update the changed ones; ConflictError if anyone wrote first."""
        dirty = [e for _, e in sorted(self._entries.items()) if e.dirty]
        created = [e.current for e in dirty if e.read is None and e.current is not None]
        changed = [(e.read, e.current) for e in dirty if e.read is not None and e.current]
        if created:
            await _insert(conn, created)
        if changed:
            await _update(conn, changed)
        for entry in dirty:
            entry.dirty = False
        if self._new_refunds:
            payments, orders = zip(*self._new_refunds, strict=True)
            await conn.execute(_INSERT_REFUNDS, {"payments": payments, "orders": orders})
            self._new_refunds = []


async def _insert(conn: AsyncConnection, created: list[StoredSaga]) -> None:
    rows = await conn.execute(
        _INSERT,
        {
            "ids": [s.id for s in created],
            "states": [s.state.value for s in created],
            "datas": [s.data.model_dump_json() for s in created],
            "deadlines": [s.data.payment_deadline for s in created],
        },
    )
    if len(rows.all()) != len(created):
        raise ConflictError("a saga of this batch was created concurrently")


async def _update(conn: AsyncConnection, changed: list[tuple[StoredSaga, StoredSaga]]) -> None:
    rows = await conn.execute(
        _UPDATE,
        {
            "ids": [read.id for read, _ in changed],
            "versions": [read.version for read, _ in changed],
            "states": [now.state.value for _, now in changed],
            "datas": [now.data.model_dump_json() for _, now in changed],
            "deadlines": [now.data.payment_deadline for _, now in changed],
        },
    )
    if len(rows.all()) != len(changed):
        raise ConflictError("a saga of this batch changed since it was read")
