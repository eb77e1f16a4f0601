"""A payment for an order with no saga, past the orphan grace, is refunded, not parked.

Its CheckoutStarted may only be stuck behind a backlog longer than the grace: parked as a dead
letter, the payer's money waited for an operator. Refunded, the saga that starts later asks for
the payment again and knows the refunded one, so a re-sent copy of it is never accepted.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import CheckoutStarted, PaymentCompleted, RefundPayment
from saga import app as saga_app
from saga.instance import SagaData
from saga.tables import orphan_refunds, sagas
from services.platform.consumer import Delivery, Outcome, Route
from services.platform.settings import Settings
from tests.handlers import ServiceDriver
from tests.support.builders import checkout_started, delivery, new_id

STALE = timedelta(hours=2)
"""Older than any orphan grace of the handler settings."""


@pytest.fixture
def saga(engine: AsyncEngine, handler_settings: Settings) -> ServiceDriver:
    """The saga orchestrator's consumer (its timeout poller is never started)."""
    assert timedelta(seconds=handler_settings.saga.orphan_grace_s) < STALE
    return ServiceDriver.of(engine, saga_app.create_service(handler_settings), handler_settings)


def _payment(order_id: uuid.UUID, payment_id: uuid.UUID | None = None) -> PaymentCompleted:
    return PaymentCompleted(
        order_id=order_id,
        payment_id=payment_id or uuid.uuid4(),
        amount=Decimal("19.98"),
        currency="EUR",
    )


def _stale(payment: PaymentCompleted) -> Delivery:
    """The payment dated STALE ago, under a message id of its own."""
    return delivery(payment.to_envelope(occurred_at=datetime.now(UTC) - STALE))


def _entry(saga: ServiceDriver, record: Delivery, message_type: str) -> tuple[Delivery, Route]:
    sub = saga.subscription(message_type)
    return record, Route(message_type, sub.handler, sub.hooks)


async def _refunds(saga: ServiceDriver, order_id: uuid.UUID) -> list[RefundPayment]:
    sent = [d.message for d in await saga.sent(order_id)]
    return [m for m in sent if isinstance(m, RefundPayment)]


async def _kept(engine: AsyncEngine, order_id: uuid.UUID) -> list[uuid.UUID]:
    async with engine.connect() as conn:
        query = select(orphan_refunds.c.payment_id).where(orphan_refunds.c.order_id == order_id)
        return list((await conn.execute(query)).scalars())


async def _saga(engine: AsyncEngine, order_id: uuid.UUID) -> tuple[str, SagaData] | None:
    async with engine.connect() as conn:
        query = select(sagas.c.state, sagas.c.data).where(sagas.c.id == order_id)
        row = (await conn.execute(query)).first()
    return None if row is None else (row.state, SagaData.model_validate(row.data))


async def test_a_stale_payment_without_a_saga_is_refunded_once_and_not_dead_lettered(
    saga: ServiceDriver, engine: AsyncEngine
) -> None:
    order_id = new_id()
    payment = _payment(order_id)

    assert await saga.deliver(_stale(payment), PaymentCompleted.message_type) is Outcome.APPLIED
    # The same payment again, under another message id (a payer that re-sent it).
    assert await saga.deliver(_stale(payment), PaymentCompleted.message_type) is Outcome.APPLIED

    [refund] = await _refunds(saga, order_id)
    assert (refund.payment_id, refund.amount, refund.currency) == (
        payment.payment_id,
        payment.amount,
        payment.currency,
    )
    assert await saga.dead_letters(order_id) == []
    assert await _kept(engine, order_id) == [payment.payment_id]
    assert await _saga(engine, order_id) is None


async def test_the_checkout_that_comes_later_knows_the_refund_and_never_accepts_that_payment(
    saga: ServiceDriver, engine: AsyncEngine
) -> None:
    start = checkout_started()
    payment = _payment(start.order_id)
    await saga.deliver(_stale(payment), PaymentCompleted.message_type)

    assert await saga.send(start) is Outcome.APPLIED
    resent = dataclasses.replace(delivery(payment), key=str(start.order_id))
    assert await saga.deliver(resent, PaymentCompleted.message_type) is Outcome.APPLIED

    found = await _saga(engine, start.order_id)
    assert found is not None
    state, data = found
    assert state == "Submitted"
    assert data.refunded_payment_ids == [payment.payment_id]
    assert data.early_payment is None  # a duplicate, not an early payment to keep
    assert len(await _refunds(saga, start.order_id)) == 1


async def test_a_refund_and_its_checkout_in_one_batch(
    saga: ServiceDriver, engine: AsyncEngine
) -> None:
    start: CheckoutStarted = checkout_started()
    payment = _payment(start.order_id)
    batch = [
        _entry(saga, _stale(payment), PaymentCompleted.message_type),
        _entry(saga, delivery(start), CheckoutStarted.message_type),
    ]

    assert await saga.consumer.process_batch(batch) == [Outcome.APPLIED, Outcome.APPLIED]

    found = await _saga(engine, start.order_id)
    assert found is not None
    assert found[1].refunded_payment_ids == [payment.payment_id]
    assert await _kept(engine, start.order_id) == [payment.payment_id]
    sent = [d.message.message_type for d in await saga.sent(start.order_id)]
    assert sent == ["RefundPayment", "ReserveStockForOrder"]


async def test_a_saga_that_started_while_its_payment_was_refunded_still_refuses_that_payment(
    saga: ServiceDriver, engine: AsyncEngine
) -> None:
    # Another saga process refunded the orphan while this one started the saga, neither
    # seeing the other's transaction: the saga's data does not name the refund.
    start = checkout_started()
    payment = _payment(start.order_id)
    assert await saga.send(start) is Outcome.APPLIED
    async with engine.begin() as conn:
        await conn.execute(
            orphan_refunds.insert().values(payment_id=payment.payment_id, order_id=start.order_id)
        )

    assert await saga.send(payment) is Outcome.APPLIED  # a copy, fresh, under its own id

    found = await _saga(engine, start.order_id)
    assert found is not None
    state, data = found
    assert state == "Submitted"
    assert data.early_payment is None
    assert await _refunds(saga, start.order_id) == []  # refunded once, by the other process
