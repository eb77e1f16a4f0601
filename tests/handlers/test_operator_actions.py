"""Operator actions (saga/operator.py) against the real consumers of every service, on PostgreSQL.

Commands travel from one service's outbox to the next service's consumer under their message
ids, as the relay and Kafka would carry them; the operator acts in between.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import (
    ConfirmOrder,
    Message,
    OrderFailed,
    PaymentCompleted,
    PaymentRefunded,
    PaymentRequested,
    RefundPayment,
    ReleaseStockReservations,
    Reservation,
    ReserveStockForOrder,
    StockReservationCompleted,
)
from saga import app as saga_app
from saga.handlers import policy_of
from saga.operator import Action, ActionOutcome, ActionResult, act
from services.inventory import repository as inventory_repo
from services.platform.consumer import Outcome
from services.platform.settings import Settings
from tests.handlers import ServiceDriver
from tests.support.builders import checkout_started, new_id, unique_sku

ACTOR = "alice"
REASON = "payer unreachable"


@pytest.fixture
def saga(engine: AsyncEngine, handler_settings: Settings) -> ServiceDriver:
    """The saga orchestrator's consumer (its timeout poller is never started)."""
    return ServiceDriver.of(engine, saga_app.create_service(handler_settings), handler_settings)


@pytest.fixture
def operator(engine: AsyncEngine, handler_settings: Settings) -> Any:
    """act() with the handler settings' policy and lanes."""
    policy = policy_of(handler_settings.saga.payment_timeout_s)

    async def run(order_id: uuid.UUID, action: Action, actor: str = ACTOR) -> ActionResult:
        lanes = handler_settings.relay.lanes
        return await act(engine, order_id, action, actor, REASON, policy, lanes=lanes)

    return run


async def carry(
    source: ServiceDriver, target: ServiceDriver, order_id: uuid.UUID, kind: type[Message]
) -> list[Outcome]:
    """Deliver every `kind` message source wrote for the order to target, under its id."""
    outcomes = []
    for decoded in await source.sent(order_id):
        if isinstance(decoded.message, kind):
            outcomes.append(await target.send(decoded.message, decoded.envelope.message_id))
    return outcomes


async def of_type(driver: ServiceDriver, order_id: uuid.UUID, kind: type[Message]) -> list[Any]:
    return [d.message for d in await driver.sent(order_id) if isinstance(d.message, kind)]


async def stock(engine: AsyncEngine, sku: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        return dict((await inventory_repo.stock(conn, [sku]))[0])


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with engine.begin() as conn:
        return [dict(r._mapping) for r in await conn.execute(text(sql), params)]


async def execute(engine: AsyncEngine, sql: str, **params: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(sql), params)


async def submitted(saga: ServiceDriver, orders: ServiceDriver, sku: str) -> uuid.UUID:
    """A checkout of 2 x sku at 4.50 that the saga and orders have seen; stock 5 units."""
    async with saga.engine.begin() as conn:
        await inventory_repo.set_stock(conn, sku, 5)
    start = checkout_started(items=[(sku, 2, "4.50")])
    assert await saga.send(start) == Outcome.APPLIED
    assert await orders.send(start) == Outcome.APPLIED
    return start.order_id


async def reserved(
    saga: ServiceDriver, orders: ServiceDriver, inventory: ServiceDriver, sku: str
) -> uuid.UUID:
    """A checkout whose stock inventory reserved and the saga recorded (StockReserved)."""
    order_id = await submitted(saga, orders, sku)
    await carry(saga, inventory, order_id, ReserveStockForOrder)
    assert await carry(inventory, saga, order_id, StockReservationCompleted) == [Outcome.APPLIED]
    return order_id


async def test_abort_while_paying_releases_stock_and_fails_the_order(
    saga: ServiceDriver,
    orders: ServiceDriver,
    inventory: ServiceDriver,
    payments: ServiceDriver,
    operator: Any,
) -> None:
    sku = unique_sku()
    order_id = await reserved(saga, orders, inventory, sku)
    assert (await stock(saga.engine, sku))["reserved"] == 2

    result = await operator(order_id, Action.ABORT)

    assert (result.outcome, result.from_state, result.to_state, result.detail) == (
        ActionOutcome.APPLIED,
        "StockReserved",
        "Failed",
        "aborted_while_paying",
    )
    await carry(saga, inventory, order_id, ReleaseStockReservations)
    await carry(saga, orders, order_id, OrderFailed)
    assert (await stock(saga.engine, sku))["available"] == 5
    assert (await stock(saga.engine, sku))["reserved"] == 0
    [order] = await rows(saga.engine, "SELECT * FROM orders.orders WHERE order_id = :o", o=order_id)
    assert order["status"] == "failed"
    assert order["failure_reason"] == f"aborted by {ACTOR}: {REASON}"
    # The payer answers the request after all: the payment is given back, the order stays failed.
    await carry(saga, payments, order_id, PaymentRequested)
    assert await carry(payments, saga, order_id, PaymentCompleted) == [Outcome.APPLIED]
    [refund] = await of_type(saga, order_id, RefundPayment)
    assert refund.reason == "late payment"
    [action] = await rows(
        saga.engine, "SELECT * FROM saga.operator_actions WHERE order_id = :o", o=order_id
    )
    assert (action["action"], action["actor"], action["reason"], action["outcome"]) == (
        "abort",
        ACTOR,
        REASON,
        "applied",
    )
    assert (action["from_state"], action["to_state"], action["detail"]) == (
        "StockReserved",
        "Failed",
        "aborted_while_paying",
    )
    assert action["requested_at"] is not None


async def test_abort_before_the_reservation_refunds_an_early_payment_and_releases_late_stock(
    saga: ServiceDriver,
    orders: ServiceDriver,
    inventory: ServiceDriver,
    payments: ServiceDriver,
    operator: Any,
) -> None:
    sku = unique_sku()
    order_id = await submitted(saga, orders, sku)
    early = PaymentCompleted(
        order_id=order_id, payment_id=new_id(), amount=Decimal("9.00"), currency="EUR"
    )
    assert await saga.send(early) == Outcome.APPLIED

    result = await operator(order_id, Action.ABORT)

    assert (result.outcome, result.to_state, result.detail) == (
        ActionOutcome.APPLIED,
        "Failed",
        "aborted_while_reserving",
    )
    [refund] = await of_type(saga, order_id, RefundPayment)
    assert (refund.payment_id, refund.amount) == (early.payment_id, early.amount)
    await carry(saga, payments, order_id, RefundPayment)
    assert [m.payment_id for m in await of_type(payments, order_id, PaymentRefunded)] == [
        early.payment_id
    ]
    await carry(saga, orders, order_id, OrderFailed)
    [order] = await rows(saga.engine, "SELECT * FROM orders.orders WHERE order_id = :o", o=order_id)
    assert order["status"] == "failed"
    # Inventory had not yet reserved: it does now, and the saga releases what it reported.
    await carry(saga, inventory, order_id, ReserveStockForOrder)
    assert (await stock(saga.engine, sku))["reserved"] == 2
    assert await carry(inventory, saga, order_id, StockReservationCompleted) == [Outcome.APPLIED]
    await carry(saga, inventory, order_id, ReleaseStockReservations)
    assert (await stock(saga.engine, sku))["available"] == 5
    assert (await stock(saga.engine, sku))["reserved"] == 0
    assert await of_type(saga, order_id, ConfirmOrder) == []


async def _outbox_row(engine: AsyncEngine, message_id: uuid.UUID) -> list[dict[str, Any]]:
    return await rows(engine, "SELECT * FROM saga.outbox WHERE message_id = :m", m=message_id)


async def test_retry_resends_the_payment_request_under_its_id_and_nothing_is_doubled(
    saga: ServiceDriver,
    orders: ServiceDriver,
    inventory: ServiceDriver,
    payments: ServiceDriver,
    operator: Any,
) -> None:
    order_id = await reserved(saga, orders, inventory, unique_sku())
    [request] = [d for d in await saga.sent(order_id) if isinstance(d.message, PaymentRequested)]
    request_id = request.envelope.message_id
    await execute(
        saga.engine, "UPDATE saga.outbox SET sent_at = now() WHERE message_id = :m", m=request_id
    )
    assert await carry(saga, payments, order_id, PaymentRequested) == [Outcome.APPLIED]

    result = await operator(order_id, Action.RETRY)

    assert (result.outcome, result.from_state, result.to_state, result.detail) == (
        ActionOutcome.APPLIED,
        "StockReserved",
        "StockReserved",
        "payment_request_retried",
    )
    assert result.message_ids == (request_id,)
    [row] = await _outbox_row(saga.engine, request_id)
    assert row["sent_at"] is None, "the relay is to publish it again"
    # The payer's inbox knows the id: it answers once, whatever it was sent.
    assert await carry(saga, payments, order_id, PaymentRequested) == [Outcome.DUPLICATE]
    assert len(await of_type(payments, order_id, PaymentCompleted)) == 1


async def test_retry_rewrites_a_purged_reservation_request_with_the_same_id_and_content(
    saga: ServiceDriver, orders: ServiceDriver, inventory: ServiceDriver, operator: Any
) -> None:
    sku = unique_sku()
    order_id = await submitted(saga, orders, sku)
    [before] = await saga.sent(order_id)
    message_id = before.envelope.message_id
    await execute(saga.engine, "DELETE FROM saga.outbox WHERE message_id = :m", m=message_id)

    result = await operator(order_id, Action.RETRY)

    assert (result.outcome, result.detail) == (ActionOutcome.APPLIED, "reservation_retried")
    [after] = await saga.sent(order_id)
    assert (after.envelope.message_id, after.message) == (message_id, before.message)
    # Applied once: the second delivery of the same id is a duplicate, the stock held once.
    assert await carry(saga, inventory, order_id, ReserveStockForOrder) == [Outcome.APPLIED]
    assert await inventory.send(after.message, message_id) == Outcome.DUPLICATE
    assert (await stock(saga.engine, sku))["reserved"] == 2


@pytest.mark.parametrize("action", list(Action))
async def test_an_action_on_a_final_saga_is_refused_with_the_reason_and_recorded(
    saga: ServiceDriver,
    orders: ServiceDriver,
    inventory: ServiceDriver,
    payments: ServiceDriver,
    operator: Any,
    action: Action,
) -> None:
    order_id = await reserved(saga, orders, inventory, unique_sku())
    await carry(saga, payments, order_id, PaymentRequested)
    await carry(payments, saga, order_id, PaymentCompleted)
    [before] = await rows(saga.engine, "SELECT * FROM saga.sagas WHERE id = :o", o=order_id)
    assert before["state"] == "Confirmed"
    sent_before = await saga.outbox(order_id)

    result = await operator(order_id, action, actor="bob")

    why = f"the saga is final (Confirmed): nothing to {action.value}"
    assert (result.outcome, result.detail, result.message_ids) == (ActionOutcome.REFUSED, why, ())
    assert await rows(saga.engine, "SELECT * FROM saga.sagas WHERE id = :o", o=order_id) == [before]
    assert await saga.outbox(order_id) == sent_before
    [recorded] = await rows(
        saga.engine, "SELECT * FROM saga.operator_actions WHERE order_id = :o", o=order_id
    )
    assert (recorded["actor"], recorded["action"], recorded["outcome"], recorded["detail"]) == (
        "bob",
        action.value,
        "refused",
        why,
    )
    assert (recorded["from_state"], recorded["to_state"]) == ("Confirmed", "Confirmed")


async def test_an_unknown_saga_is_reported_and_not_recorded(
    operator: Any, engine: AsyncEngine
) -> None:
    order_id = new_id()
    result = await operator(order_id, Action.ABORT)
    assert (result.outcome, result.from_state) == (ActionOutcome.NOT_FOUND, None)
    assert (
        await rows(engine, "SELECT 1 FROM saga.operator_actions WHERE order_id = :o", o=order_id)
        == []
    )


async def test_an_actor_and_a_reason_are_required(operator: Any, engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="actor and a reason"):
        await operator(new_id(), Action.ABORT, actor=" ")


RACES = 12


async def _racing_saga(saga: ServiceDriver) -> tuple[uuid.UUID, PaymentCompleted]:
    """A saga waiting for its payment, and the payment that is about to arrive."""
    start = checkout_started(items=[(unique_sku(), 2, "4.50")])
    await saga.send(start)
    held = Reservation(reservation_id=new_id(), sku=start.items[0].sku, quantity=2)
    await saga.send(StockReservationCompleted(order_id=start.order_id, reservations=[held]))
    payment = PaymentCompleted(
        order_id=start.order_id, payment_id=new_id(), amount=Decimal("9.00"), currency="EUR"
    )
    return start.order_id, payment


async def test_an_abort_racing_a_payment_is_decided_once_by_the_table(
    saga: ServiceDriver, operator: Any
) -> None:
    winners: set[str] = set()
    for _ in range(RACES):
        order_id, payment = await _racing_saga(saga)
        paid, aborted = await asyncio.gather(saga.send(payment), operator(order_id, Action.ABORT))
        assert paid == Outcome.APPLIED
        [state] = await rows(saga.engine, "SELECT state FROM saga.sagas WHERE id = :o", o=order_id)
        confirms = await of_type(saga, order_id, ConfirmOrder)
        failures = await of_type(saga, order_id, OrderFailed)
        refunds = await of_type(saga, order_id, RefundPayment)
        [recorded] = await rows(
            saga.engine, "SELECT * FROM saga.operator_actions WHERE order_id = :o", o=order_id
        )
        assert recorded["outcome"] == aborted.outcome.value
        if state["state"] == "Confirmed":  # the payment came first: the abort is refused
            assert aborted.outcome == ActionOutcome.REFUSED
            assert (len(confirms), failures, refunds) == (1, [], [])
        else:  # the abort came first: the payment is a late one, given back
            assert state["state"] == "Failed"
            assert aborted.outcome == ActionOutcome.APPLIED
            assert (confirms, len(failures)) == ([], 1)
            assert [r.payment_id for r in refunds] == [payment.payment_id]
        winners.add(state["state"])
    print(f"\nraces won: {sorted(winners)}")
