"""Durable payment deadlines: a poller claims due sagas with SKIP LOCKED and fails them.

A deadline fires only once the saga consumer group has applied every payment answer that was
on the broker before it (saga/deadline_gate.py): a backlog of ours never times out a payer who
answered in time. Deadlines stay in the database; the broker is only asked whether they may
fire, and while it cannot be asked, none does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts import PaymentCompleted, PaymentFailed
from contracts.envelope import utcnow
from contracts.topics import topic_for
from saga import machine
from saga import repository as repo
from saga.deadline_gate import ReleaseBoard, Snapshot
from saga.handlers import record_step, transition_text
from saga.instance import FINAL_STATES
from saga.machine import Outcome, PaymentDeadlinePassed, SagaPolicy, StepResult
from saga.repository import StoredSaga
from services.platform import journal, outbox
from services.platform.consumer import Mailbox
from services.platform.outbox import OutboxMessage
from services.platform.progress import GroupProgress
from services.platform.service import BackgroundLoop
from services.platform.settings import KafkaSettings, SagaSettings
from services.platform.telemetry import scope

log = logging.getLogger("checkout_saga.saga.timeouts")

Released = list[list[datetime | None]]
"""Per answer topic, per partition: the time up to which deadlines may fire (None: held)."""


async def fire_due(
    engine: AsyncEngine,
    mailbox: Mailbox,
    policy: SagaPolicy,
    limit: int,
    released: Released | None = None,
) -> int:
    """Apply `payment_deadline_passed` to due sagas in one transaction; returns how many.

    released: the deadline gate's release times (see repo.claim_due); None fires every due one.
    """
    now = utcnow()
    # What the steps observe is counted only if this transaction commits.
    with scope.transaction():
        async with engine.begin() as conn:
            due = await repo.claim_due(conn, now, limit, released)
            for saga in due:
                await _fire(conn, saga, mailbox, policy, now)
    return len(due)


class DeadlineGate:
    """Snapshots the answer topics' end offsets and reads how far the saga group has come."""

    def __init__(self, progress: GroupProgress, max_snapshots: int) -> None:
        self.progress = progress
        self.max_snapshots = max_snapshots
        self.board: ReleaseBoard | None = None
        self.broker_down = False

    async def ask(self) -> Released | None:
        """The release times, or None (nothing may fire) while the broker cannot be asked."""
        try:
            released = await self.released()
        except Exception as exc:
            with contextlib.suppress(Exception):
                await self.close()  # new clients next time
            if not self.broker_down:
                log.warning("payment deadlines wait: the broker cannot be asked (%r)", exc)
            self.broker_down = True
            return None
        if self.broker_down:
            log.warning("payment deadlines resume: the broker answers again")
        self.broker_down = False
        held = sum(t is None for times in released for t in times)
        if held:
            log.debug("payment deadlines held in %d answer partitions behind the broker", held)
        return released

    async def released(self) -> Released:
        """Per answer topic (sorted by name), per partition: deadlines up to when may fire."""
        counts = await self.progress.partition_counts()
        if self.board is None or self.board.partitions != counts:
            self.board = ReleaseBoard(counts, self.max_snapshots)
        # Taken before the ends are asked for, so the ends cover every answer sent before it.
        taken_at, monotonic = utcnow(), time.monotonic()
        ends = await self.progress.ends()
        self.board.add(Snapshot(taken_at, ends, monotonic))
        times = self.board.release_times(await self.progress.committed())
        return [times[topic] for topic in sorted(times)]

    async def close(self) -> None:
        """Close the broker clients."""
        await self.progress.close()


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
        [_journaled(saga, deadline, result)],
    )


_DEADLINE_NAMESPACE = uuid.UUID("5f0c7a2e-8b1d-4c39-9e64-2a7d3b9c1f08")


def _journaled(saga: StoredSaga, deadline: datetime, result: StepResult) -> journal.Consumed:
    """The deadline as the journal's 'in' row: an event the saga raised itself, not consumed.

    Its id derives from the order and the deadline: one deadline, one id, like a message's.
    """
    return journal.Consumed(
        correlation_id=str(saga.id),
        message_id=uuid.uuid5(_DEADLINE_NAMESPACE, f"{saga.id}:{deadline.isoformat()}"),
        message_type=PaymentDeadlinePassed.__name__,
        topic=journal.INTERNAL_TOPIC,
        outcome=result.outcome.value,
        detail=transition_text(saga.state.value, result),
    )


def timeout_loop(
    mailbox: Mailbox, policy: SagaPolicy, settings: SagaSettings, kafka: KafkaSettings, group: str
) -> BackgroundLoop:
    """The background loop the runtime runs for the saga service (group: the saga's consumers)."""

    async def run(engine: AsyncEngine, stop: asyncio.Event) -> None:
        topics = [topic_for(PaymentCompleted), topic_for(PaymentFailed)]
        gate = DeadlineGate(GroupProgress(kafka, group, topics), settings.timeout_gate_snapshots)
        try:
            while not stop.is_set():
                fired = await _pass(engine, mailbox, policy, settings, gate)
                if fired < settings.timeout_batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), settings.timeout_poll_interval_s)
        finally:
            await gate.close()

    return run


async def _pass(
    engine: AsyncEngine,
    mailbox: Mailbox,
    policy: SagaPolicy,
    settings: SagaSettings,
    gate: DeadlineGate,
) -> int:
    """One poll: ask the gate only when a deadline is due, then fire what it releases."""
    try:
        async with engine.connect() as conn:
            earliest = await repo.earliest_deadline(conn)
        if earliest is None or earliest > utcnow():
            return 0
        released = await gate.ask()
        if released is None:
            return 0
        return await fire_due(engine, mailbox, policy, settings.timeout_batch_size, released)
    except Exception:
        log.exception("payment timeout pass failed; retrying")
        return 0
