"""Payment simulator through the real consumer: seeded answers, silence, duplicates, refunds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import (
    MessageHeaders,
    PaymentCompleted,
    PaymentFailed,
    PaymentRefunded,
    PaymentRequested,
)
from contracts.codec import encode
from contracts.envelope import utcnow
from contracts.topics import TOPICS
from services.payments import app as payments_app
from services.payments.domain import Verdict, decide, payment_id_for
from services.payments.tables import payments as payments_table
from services.payments.tables import refunds
from services.platform.consumer import Outcome
from services.platform.settings import PaymentSimulatorSettings, Settings
from tests.handlers import ServiceDriver, through_the_runtime
from tests.support.builders import (
    envelope,
    new_id,
    payment_requested,
    raw_delivery,
    refund_payment,
    reserve_stock,
    tampered,
)

Simulator = Callable[..., ServiceDriver]
REQUESTED = PaymentRequested.message_type


async def _decision(engine: AsyncEngine, order_id: uuid.UUID) -> tuple[str, str | None] | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(payments_table.c.decision, payments_table.c.reason).where(
                    payments_table.c.order_id == order_id
                )
            )
        ).first()
    return None if row is None else (row.decision, row.reason)


async def _refund_count(engine: AsyncEngine, payment_id: uuid.UUID) -> int:
    async with engine.connect() as conn:
        rows = await conn.execute(select(refunds).where(refunds.c.payment_id == payment_id))
        return len(rows.all())


async def test_a_charge_completes_by_default(payments: ServiceDriver) -> None:
    request = payment_requested(amount="19.98")
    message_id = uuid.uuid4()

    assert await payments.send(request, message_id) is Outcome.APPLIED

    [answer] = await payments.sent(request.order_id)
    assert answer.message == PaymentCompleted(
        order_id=request.order_id,
        payment_id=payment_id_for(request.order_id),
        amount=Decimal("19.98"),
        currency="EUR",
    )
    assert answer.envelope.causation_id == message_id
    assert await _decision(payments.engine, request.order_id) == ("completed", None)


@pytest.mark.parametrize(
    ("amount", "verdict"), [("100.01", "declined"), ("100.00", "completed"), ("0.01", "completed")]
)
async def test_amounts_above_the_limit_are_declined(
    payments_with: Simulator, amount: str, verdict: str
) -> None:
    simulator = payments_with(decline_above=100)
    request = payment_requested(amount=amount)

    await simulator.send(request)

    [answer] = await simulator.sent(request.order_id)
    if verdict == "declined":
        assert answer.message == PaymentFailed(
            order_id=request.order_id,
            payment_id=payment_id_for(request.order_id),
            reason="amount above limit",
        )
    else:
        assert isinstance(answer.message, PaymentCompleted)
    assert (await _decision(simulator.engine, request.order_id) or ("",))[0] == verdict


async def test_decline_rate_declines_the_card(payments_with: Simulator) -> None:
    simulator = payments_with(decline_rate=1.0)
    request = payment_requested()

    await simulator.send(request)

    [answer] = await simulator.sent(request.order_id)
    assert isinstance(answer.message, PaymentFailed)
    assert answer.message.reason == "card declined"


async def test_seeded_decisions_are_reproducible(payments_with: Simulator) -> None:
    rules = PaymentSimulatorSettings(seed=7, decline_rate=0.5, silent_rate=0.2)
    simulator = payments_with(**rules.model_dump())
    requests = [payment_requested() for _ in range(60)]

    for request in requests:
        await simulator.send(request)

    recorded = [await _decision(simulator.engine, r.order_id) for r in requests]
    expected = [decide(r.order_id, r.amount, rules) for r in requests]
    assert recorded == [(d.verdict.value, d.reason) for d in expected]
    assert {d.verdict for d in expected} == set(Verdict)


async def test_a_repeated_request_gets_the_first_decision(payments_with: Simulator) -> None:
    request = payment_requested()
    await payments_with().send(request)

    # Even after the rules change, the order keeps its payment and its answer.
    declining = payments_with(decline_rate=1.0)
    assert await declining.send(request) is Outcome.APPLIED

    first, again = await declining.sent(request.order_id)
    assert first.message == again.message
    assert isinstance(again.message, PaymentCompleted)
    assert first.envelope.message_id != again.envelope.message_id


async def test_concurrent_requests_for_one_order_get_one_decision(
    payments_with: Simulator,
) -> None:
    request = payment_requested()
    simulators = [payments_with(seed=s, decline_rate=0.5) for s in range(6)]

    await asyncio.gather(*(s.send(request) for s in simulators))

    answers = {a.message for a in await simulators[0].sent(request.order_id)}
    assert len(answers) == 1


async def test_a_silent_provider_never_answers(payments_with: Simulator) -> None:
    simulator = payments_with(silent_rate=1.0, duplicate_rate=1.0)
    request = payment_requested()

    assert await simulator.send(request) is Outcome.APPLIED
    assert await simulator.send(request) is Outcome.APPLIED

    assert await simulator.outbox(request.order_id) == []
    assert await _decision(simulator.engine, request.order_id) == ("silent", None)


async def test_a_duplicating_provider_answers_twice(payments_with: Simulator) -> None:
    simulator = payments_with(duplicate_rate=1.0)
    request, message_id = payment_requested(), uuid.uuid4()

    assert await simulator.send(request, message_id) is Outcome.APPLIED
    assert await simulator.send(request, message_id) is Outcome.DUPLICATE

    first, second = await simulator.sent(request.order_id)
    assert first.envelope.message_id != second.envelope.message_id
    assert first.envelope.payload == second.envelope.payload
    assert first.envelope.causation_id == second.envelope.causation_id == message_id


async def test_a_delayed_answer_is_due_later(payments_with: Simulator) -> None:
    simulator = payments_with(delay_ms=60_000)
    request = payment_requested()
    before = utcnow()

    await simulator.send(request)

    [row] = await simulator.outbox(request.order_id)
    assert row.available_at >= before + timedelta(seconds=59)
    assert row.created_at < before + timedelta(seconds=30)


async def test_a_payment_is_refunded_once(payments: ServiceDriver) -> None:
    request = payment_requested()
    await payments.send(request)
    payment_id = payment_id_for(request.order_id)
    refund, message_id = refund_payment(request.order_id, payment_id), uuid.uuid4()

    assert await payments.send(refund, message_id) is Outcome.APPLIED
    assert await payments.send(refund, message_id) is Outcome.DUPLICATE
    assert await payments.send(refund) is Outcome.APPLIED

    completed, refunded = await payments.sent(request.order_id)
    assert isinstance(completed.message, PaymentCompleted)
    assert refunded.message == PaymentRefunded(
        order_id=request.order_id, payment_id=payment_id, amount=Decimal("19.98"), currency="EUR"
    )
    assert refunded.envelope.causation_id == message_id
    assert await _refund_count(payments.engine, payment_id) == 1


async def test_an_external_payers_payment_is_refunded_once(payments: ServiceDriver) -> None:
    order_id, payment_id = new_id(), uuid.uuid4()

    await payments.send(refund_payment(order_id, payment_id, "42.00"))
    await payments.send(refund_payment(order_id, payment_id, "42.00"))

    [refunded] = await payments.sent(order_id)
    assert isinstance(refunded.message, PaymentRefunded)
    assert refunded.message.payment_id == payment_id
    assert await _refund_count(payments.engine, payment_id) == 1


async def test_a_declined_payment_cannot_be_refunded(payments_with: Simulator) -> None:
    simulator = payments_with(decline_rate=1.0)
    request = payment_requested()
    await simulator.send(request)
    payment_id = payment_id_for(request.order_id)

    outcome = await simulator.send(refund_payment(request.order_id, payment_id))

    assert outcome is Outcome.DEAD_LETTERED
    assert await _refund_count(simulator.engine, payment_id) == 0
    [letter] = await simulator.dead_letters(request.order_id)
    assert "nothing to refund" in letter.headers[MessageHeaders.ERROR]


async def test_another_orders_payment_cannot_be_refunded(payments: ServiceDriver) -> None:
    request = payment_requested()
    await payments.send(request)
    payment_id, other_order = payment_id_for(request.order_id), new_id()

    assert await payments.send(refund_payment(other_order, payment_id)) is Outcome.DEAD_LETTERED

    assert await _refund_count(payments.engine, payment_id) == 0
    [letter] = await payments.dead_letters(other_order)
    assert "belongs to order" in letter.headers[MessageHeaders.ERROR]


def test_a_disabled_simulator_subscribes_to_nothing(handler_settings: Settings) -> None:
    settings = handler_settings.model_copy(
        update={"payments": PaymentSimulatorSettings(enabled=False)}
    )

    spec = payments_app.create_service(settings)

    assert (spec.name, spec.subscriptions, spec.publishes) == ("payments", (), ())
    enabled = payments_app.create_service(handler_settings)
    assert {s.message_cls.message_type for s in enabled.subscriptions} == {
        "PaymentRequested",
        "RefundPayment",
    }


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("zero_amount", "amount"),
        ("fractional_cents", "amount"),
        ("lowercase_currency", "currency"),
        ("wrong_type", "does not belong on the topic"),
        ("not_an_object", "invalid envelope"),
    ],
)
async def test_invalid_payment_requests_are_dead_lettered(
    payments: ServiceDriver, case: str, expected: str
) -> None:
    request = payment_requested()
    bodies = {
        "zero_amount": tampered(request, amount="0"),
        "fractional_cents": tampered(request, amount="1.001"),
        "lowercase_currency": tampered(request, currency="eur"),
        "wrong_type": encode(envelope(reserve_stock(request.order_id))),
        "not_an_object": b"[1, 2, 3]",
    }
    record = raw_delivery(bodies[case], TOPICS[REQUESTED], key=str(request.order_id))

    assert await payments.deliver(record, REQUESTED) is Outcome.DEAD_LETTERED

    assert await _decision(payments.engine, request.order_id) is None
    [letter] = await payments.outbox(request.order_id)
    assert letter.topic == "checkout.dead_letter"
    assert expected in letter.headers[MessageHeaders.ERROR]


async def test_through_the_runtimes_routes(handler_settings: Settings, engine: AsyncEngine) -> None:
    request = payment_requested()

    outcomes = await through_the_runtime(handler_settings, "payments", request)

    assert outcomes[Outcome.APPLIED] == 1
    assert await _decision(engine, request.order_id) == ("completed", None)
