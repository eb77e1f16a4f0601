"""Payment simulator use cases: answer a charge by the seeded rules, refund a payment once."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import (
    Envelope,
    PaymentCompleted,
    PaymentFailed,
    PaymentRefunded,
    PaymentRequested,
    RefundPayment,
)
from contracts.codec import Decoded
from contracts.envelope import utcnow
from services.payments import repository as repo
from services.payments.domain import Payment, Verdict, decide, payment_id_for, refund_refusal
from services.platform.consumer import RejectedMessageError
from services.platform.outbox import OutboxMessage, reply
from services.platform.settings import PaymentSimulatorSettings

log = logging.getLogger("checkout_saga.payments")

_DUPLICATE_NAMESPACE = uuid.UUID("e41b7c3a-0d9f-4b62-8a15-6f2e9c7d3b08")

Answer = PaymentCompleted | PaymentFailed


@dataclass(frozen=True)
class PaymentSimulator:
    """Answers PaymentRequested like a provider would, by the configured rules."""

    rules: PaymentSimulatorSettings

    async def take_payment(self, conn: AsyncConnection, decoded: Decoded) -> list[OutboxMessage]:
        """Decide the charge once per order; a repeated request gets the first decision again."""
        cmd = decoded.message
        assert isinstance(cmd, PaymentRequested)
        payment = await repo.payment_of_order(conn, cmd.order_id)
        duplicate = False
        if payment is None:
            decision = decide(cmd.order_id, cmd.amount, self.rules)
            payment = Payment(
                order_id=cmd.order_id,
                payment_id=payment_id_for(cmd.order_id),
                amount=cmd.amount,
                currency=cmd.currency,
                verdict=decision.verdict,
                reason=decision.reason,
            )
            if await repo.record_payment(conn, payment):
                duplicate = decision.duplicate
            else:
                # A concurrent request for this order decided first: answer as it did.
                payment = await repo.payment_of_order(conn, cmd.order_id)
                assert payment is not None
        answer = answer_of(payment)
        if answer is None:
            log.info("payment of order %s: staying silent", cmd.order_id)
            return []
        return self._outbox(answer, decoded.envelope, duplicate)

    def _outbox(self, answer: Answer, cause: Envelope, duplicate: bool) -> list[OutboxMessage]:
        # A delayed answer is written now and published once due: the relay skips future rows.
        due = (
            utcnow() + timedelta(milliseconds=self.rules.delay_ms) if self.rules.delay_ms else None
        )
        first = dataclasses.replace(reply(answer, cause), available_at=due)
        if not duplicate:
            return [first]
        # A provider that answers twice: same payload, its own message id (derived, so a
        # replayed request re-creates the same row and the outbox skips it).
        second = OutboxMessage.of(
            answer,
            message_id=uuid.uuid5(_DUPLICATE_NAMESPACE, str(first.message_id)),
            causation_id=cause.message_id,
            available_at=due,
        )
        return [first, second]


def answer_of(payment: Payment) -> Answer | None:
    """The provider's answer to a decided payment; None when it stays silent."""
    if payment.verdict is Verdict.SILENT:
        return None
    if payment.verdict is Verdict.COMPLETED:
        return PaymentCompleted(
            order_id=payment.order_id,
            payment_id=payment.payment_id,
            amount=payment.amount,
            currency=payment.currency,
        )
    return PaymentFailed(
        order_id=payment.order_id,
        payment_id=payment.payment_id,
        reason=payment.reason or "declined",
    )


async def refund_payment(conn: AsyncConnection, decoded: Decoded) -> list[OutboxMessage]:
    """Refund a payment exactly once per payment id, whoever made it and however often asked."""
    cmd = decoded.message
    assert isinstance(cmd, RefundPayment)
    refusal = refund_refusal(await repo.payment_by_id(conn, cmd.payment_id), cmd.order_id)
    if refusal is not None:
        raise RejectedMessageError(refusal)
    if not await repo.record_refund(conn, cmd):
        log.info("payment %s already refunded", cmd.payment_id)
        return []
    refunded = PaymentRefunded(
        order_id=cmd.order_id, payment_id=cmd.payment_id, amount=cmd.amount, currency=cmd.currency
    )
    return [reply(refunded, decoded.envelope)]
