"""Saga persistence: one row per saga, written only with `WHERE version = :v` (optimistic)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, and_, bindparam, or_, select, true, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import ColumnElement, func
from sqlalchemy.sql.elements import Grouping

from saga.instance import FINAL_STATES, SagaData, SagaState
from saga.tables import sagas
from services.platform.consumer import ConflictError


@dataclass(frozen=True, slots=True)
class StoredSaga:
    """A saga as read: state, data and the version a write must match (and when it was written)."""

    id: uuid.UUID
    state: SagaState
    version: int
    data: SagaData
    created_at: datetime | None = None
    updated_at: datetime | None = None


def stored(row: Row[tuple[object, ...]]) -> StoredSaga:
    """A saga row as the handlers see it."""
    return StoredSaga(
        id=row.id,
        state=SagaState(row.state),
        version=row.version,
        data=SagaData.model_validate(row.data),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def load(conn: AsyncConnection, saga_id: uuid.UUID) -> StoredSaga | None:
    """The saga, or None when no CheckoutStarted created it yet."""
    row = (await conn.execute(select(sagas).where(sagas.c.id == saga_id))).first()
    return stored(row) if row is not None else None


async def create(
    conn: AsyncConnection, saga_id: uuid.UUID, state: SagaState, data: SagaData
) -> None:
    """Insert a new saga at version 1; a concurrent creator makes this a conflict."""
    inserted = await conn.execute(
        pg_insert(sagas)
        .values(
            id=saga_id,
            state=state,
            version=1,
            data=data.model_dump(mode="json"),
            payment_deadline=data.payment_deadline,
        )
        .on_conflict_do_nothing(index_elements=["id"])
    )
    if inserted.rowcount != 1:
        raise ConflictError(f"saga {saga_id} was created concurrently")


async def save(conn: AsyncConnection, saga: StoredSaga, state: SagaState, data: SagaData) -> None:
    """Write the next version; raise ConflictError when someone else wrote first."""
    result = await conn.execute(
        update(sagas)
        .where(sagas.c.id == saga.id, sagas.c.version == saga.version)
        .values(
            state=state,
            version=saga.version + 1,
            data=data.model_dump(mode="json"),
            payment_deadline=data.payment_deadline,
            updated_at=func.now(),
        )
    )
    if result.rowcount != 1:
        raise ConflictError(f"saga {saga.id} changed since version {saga.version}")


async def claim_due(
    conn: AsyncConnection,
    now: datetime,
    limit: int,
    released: Sequence[Sequence[datetime | None]] | None = None,
) -> list[StoredSaga]:
    """Lock sagas whose payment deadline passed; rows another poller holds are skipped.

    released (the deadline gate): per answer topic, per partition, the time up to which
    deadlines may fire (None: none may); a saga's partition is its key hash modulo the list's
    length. Held sagas are filtered here, so they never crowd released ones out of `limit`.
    Finished sagas are never held: their stale deadline is only cleared.
    """
    stmt = select(sagas).where(sagas.c.payment_deadline <= now)
    if released is not None:
        stmt = stmt.where(or_(sagas.c.state.in_(FINAL_STATES), _gate(released)))
    rows = await conn.execute(
        stmt.order_by(sagas.c.payment_deadline).limit(limit).with_for_update(skip_locked=True)
    )
    return [stored(r) for r in rows]


def _gate(released: Sequence[Sequence[datetime | None]]) -> ColumnElement[bool]:
    """The deadline is within its partition's release time of every answer topic."""
    conditions = []
    for i, times in enumerate(released):
        bound = bindparam(f"released_{i}", list(times), type_=ARRAY(DateTime(timezone=True)))
        # Parenthesised, or PostgreSQL reads the subscript as part of the cast's array type.
        times_by_partition = Grouping(bound)
        partition = sagas.c.key_hash % len(times) + 1  # SQL arrays count from 1
        conditions.append(sagas.c.payment_deadline <= times_by_partition[partition])
    return and_(*conditions) if conditions else true()


async def earliest_deadline(conn: AsyncConnection) -> datetime | None:
    """The earliest payment deadline set on any saga (None: none is set)."""
    earliest: datetime | None = await conn.scalar(select(func.min(sagas.c.payment_deadline)))
    return earliest


async def list_sagas(
    conn: AsyncConnection, state: SagaState | None = None, limit: int = 100
) -> list[StoredSaga]:
    """Newest sagas first, optionally in one state (for the CLI and the admin API)."""
    stmt = select(sagas).order_by(sagas.c.created_at.desc()).limit(limit)
    if state is not None:
        stmt = stmt.where(sagas.c.state == state)
    return [stored(r) for r in await conn.execute(stmt)]
