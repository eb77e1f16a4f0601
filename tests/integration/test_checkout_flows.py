"""Checkouts through the real services, PostgreSQL and broker: every outcome the saga promises."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaProducer

from contracts import CheckoutStarted, LineItem, PaymentCompleted
from tests.support.payer import Answer, ScriptedPayer, eventually, publish
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

TIMEOUT = 60.0


def _sku() -> str:
    return f"SKU-{uuid.uuid4().hex[:10]}"


def checkout(
    sku: str, quantity: int = 1, price: str = "10.00", cart_id: uuid.UUID | None = None
) -> CheckoutStarted:
    """A CheckoutStarted for one line."""
    return CheckoutStarted(
        order_id=uuid.uuid4(),
        buyer_id=f"buyer-{uuid.uuid4().hex[:8]}",
        buyer_email="someone@example.com",
        cart_id=cart_id,
        currency="EUR",
        items=[LineItem(sku=sku, quantity=quantity, unit_price=Decimal(price))],
    )


async def _final_state(stack: Stack, order_id: uuid.UUID) -> str:
    async def probe() -> str | None:
        state = await stack.saga_state(order_id)
        return state if state in ("Confirmed", "Failed") else None

    return str(await eventually(probe, timeout=TIMEOUT))


async def _order(stack: Stack, order_id: uuid.UUID) -> dict[str, object]:
    async def probe() -> dict[str, object] | None:
        rows = await stack.rows("SELECT * FROM orders.orders WHERE order_id = :id", id=order_id)
        return rows[0] if rows and rows[0]["status"] != "created" else None

    return dict(await eventually(probe, timeout=TIMEOUT))  # type: ignore[call-overload]


async def _settled(stack: Stack, sku: str, **expected: int) -> None:
    async def probe() -> bool:
        current = await stack.stock(sku)
        return all(current[k] == v for k, v in expected.items())

    await eventually(probe, timeout=TIMEOUT)


async def _cart(stack: Stack, buyer_id: str, sku: str) -> uuid.UUID:
    cart_id = uuid.uuid4()
    await stack.rows_write(
        "INSERT INTO cart.carts (cart_id, buyer_id, status, currency) "
        "VALUES (:c, :b, 'checked_out', 'EUR')",
        c=cart_id,
        b=buyer_id,
    )
    await stack.rows_write(
        "INSERT INTO cart.cart_items (cart_id, sku, quantity, unit_price) VALUES (:c, :s, 1, 10)",
        c=cart_id,
        s=sku,
    )
    return cart_id


async def test_happy_path_confirms_deducts_and_clears_the_cart(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer
) -> None:
    sku = _sku()
    await stack.set_stock(sku, 5)
    start = checkout(sku, quantity=2)
    cart_id = await _cart(stack, start.buyer_id, sku)
    start = start.model_copy(update={"cart_id": cart_id})
    await publish(producer, start)

    assert await _final_state(stack, start.order_id) == "Confirmed"
    order = await _order(stack, start.order_id)
    assert order["status"] == "confirmed"
    assert order["total"] == Decimal("20.00")
    await _settled(stack, sku, available=3, reserved=0, deducted=2)

    async def cleared() -> list[dict[str, object]]:
        return await stack.rows(
            "SELECT * FROM cart.clearances WHERE order_id = :o", o=start.order_id
        )

    clearance = (await eventually(cleared, timeout=TIMEOUT))[0]  # type: ignore[index]
    assert clearance["cart_id"] == cart_id
    items = await stack.rows("SELECT * FROM cart.cart_items WHERE cart_id = :c", c=cart_id)
    assert items == []
    created = await stack.sent("orders", "order_created", start.order_id)
    assert len(created) == 1


async def test_declined_payment_releases_stock_and_fails_the_order(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer
) -> None:
    sku = _sku()
    await stack.set_stock(sku, 5)
    start = checkout(sku, quantity=3)
    cart_id = await _cart(stack, start.buyer_id, sku)
    start = start.model_copy(update={"cart_id": cart_id})
    payer.script[start.order_id] = Answer.DECLINE
    await publish(producer, start)

    assert await _final_state(stack, start.order_id) == "Failed"
    order = await _order(stack, start.order_id)
    assert order["status"] == "failed"
    assert "declined" in str(order["failure_reason"])
    await _settled(stack, sku, available=5, reserved=0, deducted=0)
    cart = await stack.rows("SELECT status FROM cart.carts WHERE cart_id = :c", c=cart_id)
    assert cart == [{"status": "checked_out"}]
    items = await stack.rows("SELECT sku FROM cart.cart_items WHERE cart_id = :c", c=cart_id)
    assert items == [{"sku": sku}]


async def test_short_stock_fails_the_order_and_reserves_nothing(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer
) -> None:
    sku, other = _sku(), _sku()
    await stack.set_stock(sku, 5)
    await stack.set_stock(other, 5)
    start = checkout(sku, quantity=6)
    start = start.model_copy(
        update={"items": [*start.items, LineItem(sku=other, quantity=1, unit_price=Decimal("1"))]}
    )
    await publish(producer, start)

    assert await _final_state(stack, start.order_id) == "Failed"
    order = await _order(stack, start.order_id)
    assert order["status"] == "failed"
    assert sku in str(order["failure_reason"])
    assert await stack.stock(sku) == {"sku": sku, "available": 5, "reserved": 0, "deducted": 0}
    assert await stack.stock(other) == {"sku": other, "available": 5, "reserved": 0, "deducted": 0}
    assert await stack.sent("saga", "PaymentRequested", start.order_id) == []


async def test_unanswered_payment_times_out_and_compensates(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer
) -> None:
    sku = _sku()
    await stack.set_stock(sku, 4)
    start = checkout(sku, quantity=4)
    payer.script[start.order_id] = Answer.SILENT
    await publish(producer, start)

    assert await _final_state(stack, start.order_id) == "Failed"
    order = await _order(stack, start.order_id)
    assert order["failure_reason"] == "payment timeout"
    await _settled(stack, sku, available=4, reserved=0, deducted=0)
    assert len(payer.requests[start.order_id]) == 1


async def test_the_same_checkout_three_times_makes_one_order_and_one_reservation(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer
) -> None:
    sku = _sku()
    await stack.set_stock(sku, 10)
    start = checkout(sku, quantity=2)
    message_id = uuid.uuid4()
    for _ in range(3):
        await publish(producer, start, message_id)
    await publish(producer, start)  # the same checkout under a new message id, too

    assert await _final_state(stack, start.order_id) == "Confirmed"
    await _settled(stack, sku, available=8, reserved=0, deducted=2)
    orders = await stack.rows("SELECT * FROM orders.orders WHERE order_id = :o", o=start.order_id)
    assert len(orders) == 1
    reservations = await stack.rows(
        "SELECT * FROM inventory.reservations WHERE order_id = :o", o=start.order_id
    )
    assert len(reservations) == 1
    assert len(await stack.sent("saga", "ReserveStockForOrder", start.order_id)) == 1
    assert len(payer.requests[start.order_id]) == 1


async def test_a_payment_before_the_reservation_is_applied_when_stock_is_held(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer
) -> None:
    sku = _sku()
    await stack.set_stock(sku, 3)
    start = checkout(sku, quantity=1)
    await stack.stop_inventory()
    try:
        await publish(producer, start)
        await eventually(lambda: stack.saga_state(start.order_id), timeout=TIMEOUT)
        payment = PaymentCompleted(
            order_id=start.order_id, payment_id=uuid.uuid4(), amount=start.total, currency="EUR"
        )
        await publish(producer, payment)

        async def remembered() -> bool:
            saga = await stack.saga(start.order_id)
            return bool(saga and saga["data"].get("early_payment"))

        await eventually(remembered, timeout=TIMEOUT)
        assert await stack.saga_state(start.order_id) == "Submitted"
    finally:
        await stack.restart_inventory()

    assert await _final_state(stack, start.order_id) == "Confirmed"
    await _settled(stack, sku, available=2, reserved=0, deducted=1)
    # The payer had already paid: it must not be asked again.
    assert start.order_id not in payer.requests
    assert await stack.sent("saga", "PaymentRequested", start.order_id) == []


async def test_a_payment_after_the_timeout_is_refunded_exactly_once(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer
) -> None:
    sku = _sku()
    await stack.set_stock(sku, 2)
    start = checkout(sku, quantity=1)
    payer.script[start.order_id] = Answer.SILENT
    await publish(producer, start)
    assert await _final_state(stack, start.order_id) == "Failed"

    late = PaymentCompleted(
        order_id=start.order_id, payment_id=uuid.uuid4(), amount=start.total, currency="EUR"
    )
    await publish(producer, late)
    await publish(producer, late)  # the provider says it twice, under two message ids

    async def refunds() -> list[dict[str, object]]:
        return await stack.sent("saga", "RefundPayment", start.order_id)

    await eventually(refunds, timeout=TIMEOUT)
    await asyncio.sleep(1.0)  # room for the second delivery to (wrongly) refund again
    assert len(await refunds()) == 1
    assert await stack.saga_state(start.order_id) == "Failed"
    await _settled(stack, sku, available=2, reserved=0, deducted=0)


async def test_fifty_checkouts_competing_for_ten_units_sell_exactly_ten(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer
) -> None:
    sku = _sku()
    await stack.set_stock(sku, 10)
    starts = [checkout(sku, quantity=1) for _ in range(50)]
    await asyncio.gather(*(publish(producer, s) for s in starts))
    ids = [s.order_id for s in starts]

    await eventually(lambda: stack.final(ids), timeout=TIMEOUT * 2)
    states = await stack.rows(
        "SELECT state, count(*) AS n FROM saga.sagas WHERE id = ANY(:ids) GROUP BY state", ids=ids
    )
    assert {r["state"]: r["n"] for r in states} == {"Confirmed": 10, "Failed": 40}
    await _settled(stack, sku, available=0, reserved=0, deducted=10)

    # The saga is final before ConfirmOrder reaches the orders service: wait for its effect.
    async def confirmed_orders() -> bool:
        rows = await stack.rows(
            "SELECT count(*) AS n FROM orders.orders"
            " WHERE order_id = ANY(:ids) AND status = 'confirmed'",
            ids=ids,
        )
        return rows == [{"n": 10}]

    await eventually(confirmed_orders, timeout=TIMEOUT)
