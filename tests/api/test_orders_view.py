"""GET /orders/{id}: the order's state as the order service's events reach the cart consumer."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import LineItem, OrderConfirmed, OrderCreated, OrderMarkedFailed
from services.cart.tables import order_status
from services.platform.consumer import Outcome
from tests.api import Shopper, new_sku, offer
from tests.handlers import ServiceDriver
from tests.support.builders import new_id


async def _checked_out(shopper: Shopper, engine: AsyncEngine, sku: str | None = None) -> uuid.UUID:
    await shopper.add(await offer(engine, sku, price="3.00"), 2)
    response = await shopper.checkout()
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["order_id"])


def _created(order_id: uuid.UUID, buyer_id: str) -> OrderCreated:
    return OrderCreated(
        order_id=order_id,
        buyer_id=buyer_id,
        currency="EUR",
        total=Decimal("6.00"),
        items=[LineItem(sku="X", quantity=2, unit_price=Decimal("3.00"))],
    )


async def _order(shopper: Shopper, order_id: uuid.UUID) -> dict[str, object]:
    response = await shopper.request("GET", f"/orders/{order_id}")
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_an_order_moves_from_submitted_to_confirmed(
    shopper: Shopper, engine: AsyncEngine, cart: ServiceDriver
) -> None:
    sku = new_sku()
    order_id = await _checked_out(shopper, engine, sku)
    pending = await _order(shopper, order_id)
    assert (pending["state"], pending["status"], pending["total"]) == (
        "Submitted",
        "pending",
        "6.00",
    )
    assert pending["items"] == [{"sku": sku, "quantity": 2, "unit_price": "3.00"}]

    assert await cart.send(_created(order_id, shopper.buyer_id)) is Outcome.APPLIED
    created = await _order(shopper, order_id)
    assert (created["state"], created["status"]) == ("Submitted", "created")

    assert (
        await cart.send(OrderConfirmed(order_id=order_id, payment_id=new_id())) is Outcome.APPLIED
    )
    confirmed = await _order(shopper, order_id)
    assert (confirmed["state"], confirmed["status"], confirmed["failure_reason"]) == (
        "Confirmed",
        "confirmed",
        None,
    )


async def test_a_failed_order_shows_why(
    shopper: Shopper, engine: AsyncEngine, cart: ServiceDriver
) -> None:
    order_id = await _checked_out(shopper, engine)
    await cart.send(_created(order_id, shopper.buyer_id))

    await cart.send(OrderMarkedFailed(order_id=order_id, reason="payment declined"))

    failed = await _order(shopper, order_id)
    assert (failed["state"], failed["status"], failed["failure_reason"]) == (
        "Failed",
        "failed",
        "payment declined",
    )


async def test_a_late_event_never_moves_an_order_back(
    shopper: Shopper, engine: AsyncEngine, cart: ServiceDriver
) -> None:
    order_id = await _checked_out(shopper, engine)

    # order_confirmed overtook order_created (they travel on different topics).
    await cart.send(OrderConfirmed(order_id=order_id, payment_id=new_id()))
    await cart.send(_created(order_id, shopper.buyer_id))
    await cart.send(OrderMarkedFailed(order_id=order_id, reason="too late"))

    assert (await _order(shopper, order_id))["state"] == "Confirmed"


async def test_a_duplicate_event_is_applied_once(
    shopper: Shopper, engine: AsyncEngine, cart: ServiceDriver
) -> None:
    order_id = await _checked_out(shopper, engine)
    event, message_id = _created(order_id, shopper.buyer_id), uuid.uuid4()

    assert await cart.send(event, message_id) is Outcome.APPLIED
    assert await cart.send(event, message_id) is Outcome.DUPLICATE


async def test_orders_not_checked_out_here_are_ignored(cart: ServiceDriver) -> None:
    order_id = new_id()

    assert await cart.send(_created(order_id, "someone")) is Outcome.APPLIED
    assert (
        await cart.send(OrderConfirmed(order_id=order_id, payment_id=new_id())) is Outcome.APPLIED
    )

    async with cart.engine.connect() as conn:
        found = await conn.execute(select(order_status).where(order_status.c.order_id == order_id))
        assert found.first() is None
    assert await cart.outbox(order_id) == []


async def test_only_the_buyer_sees_their_order(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    owner, stranger = Shopper(client), Shopper(client)
    order_id = await _checked_out(owner, engine)

    assert (await stranger.request("GET", f"/orders/{order_id}")).status_code == 404
    assert (await owner.request("GET", f"/orders/{uuid.uuid4()}")).status_code == 404
    assert (await owner.request("GET", "/orders/not-a-uuid")).status_code == 422
