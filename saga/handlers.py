"""Saga use case: load the saga, run the pure step, save with a version check, emit commands."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import CheckoutStarted, PaymentCompleted
from contracts.codec import Decoded
from contracts.envelope import utcnow
from saga import machine
from saga.instance import FINAL_STATES, SagaData
from saga.machine import (
    CONFLICT,
    NO_SAGA,
    ORPHAN_REFUND,
    Outcome,
    SagaEvent,
    SagaPolicy,
    StepResult,
    trigger_name,
)
from saga.repository import StoredSaga
from saga.working_set import WorkingSet
from services.platform import journal
from services.platform.consumer import ConflictError, RejectedMessageError
from services.platform.outbox import OutboxMessage
from services.platform.telemetry import scope

log = logging.getLogger("checkout_saga.saga")


class SagaNotFoundYetError(ConflictError):
    """A message for a saga that does not exist yet: retried while it may still be overtaking."""


_working: ContextVar[WorkingSet | None] = ContextVar("saga_working_set", default=None)
"""The sagas of the consumer transaction running in this task (set by before_batch)."""


@dataclass(frozen=True)
class SagaHandler:
    """Applies incoming messages to their sagas inside the consumer's batch transaction.

    The batch's sagas are read at once before the steps and written at once after them
    (platform BatchHooks); each step works on the saga as the batch's earlier steps left it.
    """

    policy: SagaPolicy
    orphan_grace: timedelta

    async def before_batch(self, conn: AsyncConnection, batch: Sequence[Decoded]) -> None:
        """Read every saga the batch touches."""
        working = WorkingSet()
        # Payments refunded as orphans matter where a saga may start or a payment may be taken.
        paying = [d.message.order_id for d in batch if isinstance(d.message, _PAYING)]
        await working.load(conn, [d.message.order_id for d in batch], paying)
        _working.set(working)

    async def after_batch(self, conn: AsyncConnection) -> None:
        """Write back the sagas the batch changed (ConflictError when someone wrote first)."""
        working, _ = _working.get(), _working.set(None)
        if working is not None:
            await working.flush(conn)

    async def __call__(self, conn: AsyncConnection, decoded: Decoded) -> list[OutboxMessage]:
        """Advance the saga by this message; returns the commands to write to the outbox."""
        working = _working.get()
        if working is None:  # called outside a consumer batch: a batch of one
            await self.before_batch(conn, [decoded])
            messages = await self(conn, decoded)
            await self.after_batch(conn)
            return messages
        return self._step(working, decoded)

    def _step(self, working: WorkingSet, decoded: Decoded) -> list[OutboxMessage]:
        event, envelope = decoded.message, decoded.envelope
        now = utcnow()
        saga = working.get(event.order_id)
        if saga is None:
            if not isinstance(event, CheckoutStarted):
                return self._orphan(working, event, envelope.occurred_at, now)
            refunded = working.refunded_orphans(event.order_id)
            result = machine.start(event, now, self.policy, refunded)
            record_step(None, result, event, now)
            journal.note(transition_text(NO_SAGA, result))
        else:
            data = _knowing(saga.data, working.refunded_orphans(event.order_id))
            result = machine.step(saga.state, data, event, now, self.policy)
            record_step(saga, result, event, now)
            journal.note(transition_text(saga.state.value, result))
            _check(result, event.order_id)
            if result.anomaly:
                log.error(
                    "saga anomaly",
                    extra={"order_id": str(event.order_id), "anomaly": result.anomaly},
                )
            if result.outcome is Outcome.DUPLICATE:
                return []
        working.put(event.order_id, result.state, result.data, now)
        return [
            OutboxMessage.of(c.message, message_id=c.message_id, causation_id=envelope.message_id)
            for c in result.commands
        ]

    def _orphan(
        self, working: WorkingSet, event: SagaEvent, occurred_at: datetime, now: datetime
    ) -> list[OutboxMessage]:
        """A message for an order that has no saga: wait for it, refund it, or refuse it."""
        name, age = type(event).__name__, now - occurred_at
        if -self.orphan_grace < age < self.orphan_grace:
            # It may have overtaken its CheckoutStarted (another topic): let Kafka redeliver.
            # A producer's clock a little ahead is waited for too, but one dated further ahead
            # than the grace would hold its partition until that date: it is refused.
            raise SagaNotFoundYetError(f"{name} before its saga exists")
        if isinstance(event, PaymentCompleted) and age > timedelta(0):
            return self._refund_orphan(working, event)
        _count_rejection(NO_SAGA, trigger_name(event))
        if age < timedelta(0):
            raise RejectedMessageError(
                f"{name} for an order that has no saga, dated {occurred_at.isoformat()}: "
                f"ahead of this clock by more than the orphan grace ({self.orphan_grace})"
            )
        raise RejectedMessageError(f"{name} for an order that has no saga")

    def _refund_orphan(self, working: WorkingSet, payment: PaymentCompleted) -> list[OutboxMessage]:
        """Give back a payment whose saga never came within the grace (machine.refund_orphan)."""
        if payment.payment_id in working.refunded_orphans(payment.order_id):
            scope.observe(lambda m: m.transitions.labels(ORPHAN_REFUND, "duplicate").inc())
            journal.note(f"{ORPHAN_REFUND}: {NO_SAGA}, payment already refunded")
            return []
        journal.note(f"{ORPHAN_REFUND}: {NO_SAGA}, no saga within the grace: payment refunded")
        working.refund_orphan(payment.order_id, payment.payment_id)
        log.warning(
            "payment for an order without a saga refunded",
            extra={"order_id": str(payment.order_id), "payment_id": str(payment.payment_id)},
        )
        scope.observe(lambda m: m.transitions.labels(ORPHAN_REFUND, "applied").inc())
        refund = machine.refund_orphan(payment)
        return [OutboxMessage.of(refund.message, message_id=refund.message_id)]


_PAYING = (CheckoutStarted, PaymentCompleted)


def _knowing(data: SagaData, refunded: list[UUID]) -> SagaData:
    """The saga's data with every orphan refund of its order among its refunded payments.

    A saga started while its orphan payment was being refunded elsewhere did not see the
    refund; any later copy of that payment travels on the payment's partition, after the
    refund committed, and is read here with it: the saga never takes a refunded payment.
    """
    missing = [p for p in refunded if p not in data.refunded_payment_ids]
    if not missing:
        return data
    return data.model_copy(update={"refunded_payment_ids": [*data.refunded_payment_ids, *missing]})


def _check(result: StepResult, order_id: object) -> None:
    if result.outcome is Outcome.REJECTED:
        # Unlisted (state, event) pairs are parked in the dead-letter topic, never dropped.
        log.warning(
            "saga rejected a message", extra={"order_id": str(order_id), "reason": result.reason}
        )
        raise RejectedMessageError(result.reason or "rejected by the saga")


def transition_text(before: str, result: StepResult) -> str:
    """The step as the journal tells it: "stock_reserved: Submitted → StockReserved", or why not."""
    row = result.transition or "unknown"
    if result.outcome is Outcome.REJECTED:
        return f"rejected in {before}: {result.reason}"
    if result.outcome is Outcome.DUPLICATE:
        return f"{row}: {before}, unchanged ({result.reason or 'duplicate'})"
    return f"{row}: {before} → {result.state.value}"


def record_step(
    stored: StoredSaga | None, result: StepResult, event: SagaEvent, now: datetime
) -> None:
    """Count a step: its transition, rejection or anomaly, time in the state left, total time.

    Counted when the transaction commits (a rejection at once: its transaction rolls back).
    """
    if result.outcome is Outcome.REJECTED:
        state = stored.state.value if stored else NO_SAGA
        if result.transition == CONFLICT:  # a row that refuses: not a missing row
            scope.observe(lambda m: m.checkout_conflicts.labels(state).inc(), on_commit=False)
        else:
            _count_rejection(state, trigger_name(event))
        return
    row, outcome = result.transition or "unknown", result.outcome.value
    scope.observe(lambda m: m.transitions.labels(row, outcome).inc())
    if result.anomaly:
        scope.observe(lambda m: m.anomalies.labels(row).inc())
    if stored is None or result.state == stored.state:
        return
    left = stored.state.value
    if stored.updated_at is not None:
        in_state = max(0.0, (now - stored.updated_at).total_seconds())
        scope.observe(lambda m: m.time_in_state.labels(left).observe(in_state))
    if result.state in FINAL_STATES and stored.created_at is not None:
        total, final = max(0.0, (now - stored.created_at).total_seconds()), result.state.value
        scope.observe(lambda m: m.duration.labels(final).observe(total))


def _count_rejection(state: str, event: str) -> None:
    scope.observe(lambda m: m.rejections.labels(state, event).inc(), on_commit=False)


def policy_of(payment_timeout_s: float) -> SagaPolicy:
    """The saga policy from settings."""
    return SagaPolicy(payment_timeout=timedelta(seconds=payment_timeout_s))
