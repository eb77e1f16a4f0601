"""Durable payment deadlines: a poller claims due sagas with SKIP LOCKED and fails them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.envelope import utcnow
from saga import machine
from saga import repository as repo
from saga.handlers import record_step
from saga.instance import FINAL_STATES
from saga.machine import Outcome, PaymentDeadlinePassed, SagaPolicy
from saga.repository import StoredSaga
from services.platform import outbox
from services.platform.consumer import Mailbox
from services.platform.outbox import OutboxMessage
from services.platform.service import BackgroundLoop
from services.platform.settings import SagaSettings
from services.platform.telemetry import scope

log = logging.getLogger("checkout_saga.saga.timeouts")


async def fire_due(engine: AsyncEngine, mailbox: Mailbox, policy: SagaPolicy, limit: int) -> int:
    """Apply `payment_deadline_passed` to due sagas in one transaction; returns how many."""
    now = utcnow()
    # What the steps observe is counted only if this transaction commits.
    with scope.transaction():
        async with engine.begin() as conn:
            due = await repo.claim_due(conn, now, limit)
            for saga in due:
                await _fire(conn, saga, mailbox, policy, now)
    return len(due)


async def _fire(
    conn: AsyncConnection, saga: StoredSaga, mailbox: Mailbox, policy: SagaPolicy, now: datetime
) -> None:
    """Apply one due deadline to its saga: a state change, a cleared stale deadline, or nothing."""
    deadline = saga.data.payment_deadline
    assert deadline is not None  # claim_due selects by the deadline column
    event = PaymentDeadlinePassed(saga.id, deadline)
    result = machine.step(saga.state, saga.data, event, now, policy)
    record_step(saga, result, event, now)
    if result.outcome is Outcome.REJECTED:
        log.error("deadline rejected", extra={"order_id": str(saga.id), "reason": result.reason})
        return
    data = result.data
    if result.outcome is Outcome.DUPLICATE:
        if result.state not in FINAL_STATES:
            return  # not due yet, or moved: the row is claimed again when it is
        # A stale deadline on a finished saga is cleared so it is not claimed again.
        data = data.model_copy(update={"payment_deadline": None})
    await repo.save(conn, saga, result.state, data)
    await outbox.write(
        conn,
        mailbox.outbox,
        [OutboxMessage.of(c.message, message_id=c.message_id) for c in result.commands],
        mailbox.lanes,
    )


def timeout_loop(mailbox: Mailbox, policy: SagaPolicy, settings: SagaSettings) -> BackgroundLoop:
    """The background loop the runtime runs for the saga service."""

    async def run(engine: AsyncEngine, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                fired = await fire_due(engine, mailbox, policy, settings.timeout_batch_size)
            except Exception:
                log.exception("payment timeout pass failed; retrying")
                fired = 0
            if fired < settings.timeout_batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), settings.timeout_poll_interval_s)

    return run
