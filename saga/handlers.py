"""Saga use case: load the saga, run the pure step, save with a version check, emit commands."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import CheckoutStarted
from contracts.codec import Decoded
from contracts.envelope import utcnow
from saga import machine
from saga import repository as repo
from saga.machine import Outcome, SagaPolicy, StepResult
from services.platform.consumer import ConflictError, RejectedMessageError
from services.platform.outbox import OutboxMessage

log = logging.getLogger("checkout_saga.saga")


class SagaNotFoundYetError(ConflictError):
    """A message for a saga that does not exist yet: retried while it may still be overtaking."""


@dataclass(frozen=True)
class SagaHandler:
    """Applies one incoming message to its saga inside the consumer's transaction."""

    policy: SagaPolicy
    orphan_grace: timedelta

    async def __call__(self, conn: AsyncConnection, decoded: Decoded) -> list[OutboxMessage]:
        """Advance the saga by this message; returns the commands to write to the outbox."""
        event, envelope = decoded.message, decoded.envelope
        now = utcnow()
        stored = await repo.load(conn, event.order_id)
        if stored is None:
            result = self._start(event, envelope.occurred_at, now)
            await repo.create(conn, event.order_id, result.state, result.data)
        else:
            result = machine.step(stored.state, stored.data, event, now, self.policy)
            _check(result, event.order_id)
            if result.anomaly:
                log.error(
                    "saga anomaly",
                    extra={"order_id": str(event.order_id), "anomaly": result.anomaly},
                )
            if result.outcome is Outcome.DUPLICATE:
                return []
            await repo.save(conn, stored, result.state, result.data)
        return [
            OutboxMessage.of(c.message, message_id=c.message_id, causation_id=envelope.message_id)
            for c in result.commands
        ]

    def _start(self, event: object, occurred_at: datetime, now: datetime) -> StepResult:
        if isinstance(event, CheckoutStarted):
            return machine.start(event, now, self.policy)
        name = type(event).__name__
        if now - occurred_at < self.orphan_grace:
            # It may have overtaken its CheckoutStarted (another topic): let Kafka redeliver.
            raise SagaNotFoundYetError(f"{name} before its saga exists")
        raise RejectedMessageError(f"{name} for an order that has no saga")


def _check(result: StepResult, order_id: object) -> None:
    if result.outcome is Outcome.REJECTED:
        # Unlisted (state, event) pairs are parked in the dead-letter topic, never dropped.
        log.warning(
            "saga rejected a message", extra={"order_id": str(order_id), "reason": result.reason}
        )
        raise RejectedMessageError(result.reason or "rejected by the saga")


def policy_of(payment_timeout_s: float) -> SagaPolicy:
    """The saga policy from settings."""
    return SagaPolicy(payment_timeout=timedelta(seconds=payment_timeout_s))
