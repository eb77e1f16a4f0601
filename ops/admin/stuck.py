"""Stuck sagas: not final, in their state longer than its limit, oldest first, with why they wait.

A saga's time in its state is since its last write (updated_at). Why it waits is read from the
command it waits on (saga/pending.py, the id its row gave it): still unsent in the saga's outbox
means the relay has not published it; sent means the other side has not answered.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from saga import pending
from saga.instance import SagaState
from saga.repository import StoredSaga, stored
from saga.tables import outbox, sagas
from services.platform.settings import SagaSettings

Limits = Mapping[SagaState, timedelta]
"""How long a saga may stay in each state that is not final."""


class StuckSaga(BaseModel):
    """A saga past its state's limit: where it is, since when, and what it waits for."""

    order_id: uuid.UUID
    state: SagaState
    since: datetime
    """Its last write: when it entered its state, or last changed in it."""
    age_s: float
    limit_s: float
    waiting_for: str
    """The command whose answer it waits for, e.g. PaymentRequested."""
    message_id: uuid.UUID
    """That command's id (a retry re-sends it under this id)."""
    why: str


def limits_of(settings: SagaSettings) -> dict[SagaState, timedelta]:
    """The stuck limits the settings give, per state."""
    return {SagaState(k): timedelta(seconds=v) for k, v in settings.stuck_limits_s().items()}


def _past_limit(limits: Limits, now: ColumnElement[datetime]) -> ColumnElement[bool]:
    return or_(
        *(
            and_(sagas.c.state == state.value, sagas.c.updated_at < now - limit)
            for state, limit in limits.items()
        )
    )


async def stuck_sagas(conn: AsyncConnection, limits: Limits, limit: int) -> list[StuckSaga]:
    """Sagas past their state's limit, oldest first: two reads (the sagas, their outbox rows)."""
    now = func.now()
    query = (
        select(sagas, now.label("db_now"))
        .where(_past_limit(limits, now))
        .order_by(sagas.c.updated_at, sagas.c.id)
        .limit(limit)
    )
    rows = (await conn.execute(query)).all()
    found = [(stored(row), row.db_now) for row in rows]
    awaited = {saga.id: pending.awaited(saga.state, saga.data) for saga, _ in found}
    ids = [c.message_id for c in awaited.values() if c is not None]
    unsent = set(
        await conn.scalars(
            select(outbox.c.message_id).where(
                outbox.c.message_id.in_(ids), outbox.c.sent_at.is_(None)
            )
        )
    )
    stuck = []
    for saga, at in found:
        command = awaited[saga.id]
        if command is None or saga.updated_at is None:
            continue  # final meanwhile, or no state limit: not stuck
        stuck.append(
            StuckSaga(
                order_id=saga.id,
                state=saga.state,
                since=saga.updated_at,
                age_s=round((at - saga.updated_at).total_seconds(), 3),
                limit_s=limits[saga.state].total_seconds(),
                waiting_for=command.message.message_type,
                message_id=command.message_id,
                why=_why(saga, command.message.message_type, command.message_id in unsent, at),
            )
        )
    return stuck


def _why(saga: StoredSaga, command: str, unsent: bool, now: datetime) -> str:
    if unsent:
        return f"relay backlog: {command} not published yet"
    if saga.state is SagaState.SUBMITTED:
        return "reservation not answered"
    deadline = saga.data.payment_deadline
    if deadline is None:
        return "payment not answered"
    seconds = round(abs((deadline - now).total_seconds()))
    if deadline > now:
        return f"payment not answered (deadline in {seconds} s)"
    return f"payment not answered (deadline passed {seconds} s ago)"


async def stuck_counts(conn: AsyncConnection, limits: Limits) -> dict[SagaState, int]:
    """How many sagas are stuck per limited state (zero included): one GROUP BY."""
    query = (
        select(sagas.c.state, func.count())
        .where(_past_limit(limits, func.now()))
        .group_by(sagas.c.state)
    )
    counts = {str(state): int(n) for state, n in await conn.execute(query)}
    return {state: counts.get(state.value, 0) for state in limits}
