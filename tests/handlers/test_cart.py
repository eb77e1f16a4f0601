"""Cart through the real consumer: ClearCart finds the cart, clears it once, spares others."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import ClearCart, MessageHeaders
from contracts.codec import encode
from contracts.topics import TOPICS
from services.cart import repository as repo
from services.cart.domain import Cart, CartStatus
from services.cart.tables import carts
from services.platform.consumer import Outcome
from services.platform.settings import Settings
from tests.handlers import ServiceDriver, through_the_runtime
from tests.support.builders import (
    clear_cart,
    confirm_order,
    envelope,
    line_items,
    new_id,
    raw_delivery,
    tampered,
)

CLEAR = ClearCart.message_type


def _buyer() -> str:
    return f"buyer-{uuid.uuid4().hex[:8]}"


async def _cart(engine: AsyncEngine, buyer_id: str, order_id: uuid.UUID | None = None) -> uuid.UUID:
    """A cart of two lines, checked out into order_id when given."""
    async with engine.begin() as conn:
        cart_id = await repo.create_cart(
            conn, buyer_id, "EUR", line_items([("SKU-1", 2, "9.99"), ("SKU-2", 1, "5.00")])
        )
        if order_id is not None:
            assert await repo.mark_checked_out(conn, cart_id, order_id)
    return cart_id


async def _get(engine: AsyncEngine, cart_id: uuid.UUID) -> Cart:
    async with engine.connect() as conn:
        cart = await repo.get_cart(conn, cart_id)
    assert cart is not None
    return cart


async def _clearance(engine: AsyncEngine, order_id: uuid.UUID) -> dict[str, object] | None:
    async with engine.connect() as conn:
        return await repo.get_clearance(conn, order_id)


async def test_create_get_and_check_out_a_cart(engine: AsyncEngine) -> None:
    buyer, order_id = _buyer(), new_id()
    cart_id = await _cart(engine, buyer)

    cart = await _get(engine, cart_id)
    assert (cart.buyer_id, cart.status, cart.currency, cart.order_id) == (
        buyer,
        CartStatus.ACTIVE,
        "EUR",
        None,
    )
    assert [(i.sku, i.quantity, str(i.unit_price)) for i in cart.items] == [
        ("SKU-1", 2, "9.99"),
        ("SKU-2", 1, "5.00"),
    ]
    async with engine.begin() as conn:
        assert await repo.mark_checked_out(conn, cart_id, order_id)
        # Only an active cart can be checked out.
        assert not await repo.mark_checked_out(conn, cart_id, new_id())
        assert await repo.get_cart(conn, uuid.uuid4()) is None
    cart = await _get(engine, cart_id)
    assert (cart.status, cart.order_id) == (CartStatus.CHECKED_OUT, order_id)


async def test_clear_by_cart_id(cart: ServiceDriver) -> None:
    buyer, order_id = _buyer(), new_id()
    cart_id = await _cart(cart.engine, buyer, order_id)

    assert await cart.send(clear_cart(order_id, buyer, cart_id)) is Outcome.APPLIED

    cleared = await _get(cart.engine, cart_id)
    assert (cleared.status, cleared.items) == (CartStatus.CLEARED, ())
    clearance = await _clearance(cart.engine, order_id)
    assert clearance is not None
    assert (clearance["cart_id"], clearance["items_removed"]) == (cart_id, 2)
    assert await cart.outbox(order_id) == []


async def test_clear_by_order_id(cart: ServiceDriver) -> None:
    buyer, order_id = _buyer(), new_id()
    cart_id = await _cart(cart.engine, buyer, order_id)

    assert await cart.send(clear_cart(order_id, buyer)) is Outcome.APPLIED

    assert (await _get(cart.engine, cart_id)).status is CartStatus.CLEARED
    clearance = await _clearance(cart.engine, order_id)
    assert clearance is not None
    assert clearance["cart_id"] == cart_id


async def test_clear_falls_back_to_the_buyers_checked_out_cart(cart: ServiceDriver) -> None:
    buyer, order_id = _buyer(), new_id()
    untied = await _cart(cart.engine, buyer)
    active = await _cart(cart.engine, buyer)
    of_another_order = await _cart(cart.engine, buyer, new_id())
    strangers = await _cart(cart.engine, _buyer())
    async with cart.engine.begin() as conn:
        # An upstream checked these out without telling us the order.
        await conn.execute(
            update(carts)
            .where(carts.c.cart_id.in_([untied, strangers]))
            .values(status=CartStatus.CHECKED_OUT)
        )

    assert await cart.send(clear_cart(order_id, buyer)) is Outcome.APPLIED

    assert (await _get(cart.engine, untied)).status is CartStatus.CLEARED
    for untouched in (active, of_another_order, strangers):
        assert len((await _get(cart.engine, untouched)).items) == 2


async def test_clearing_twice_clears_once(cart: ServiceDriver) -> None:
    buyer, order_id = _buyer(), new_id()
    cart_id = await _cart(cart.engine, buyer, order_id)
    command, message_id = clear_cart(order_id, buyer, cart_id), uuid.uuid4()

    assert await cart.send(command, message_id) is Outcome.APPLIED
    assert await cart.send(command, message_id) is Outcome.DUPLICATE
    assert await cart.send(command) is Outcome.APPLIED

    clearance = await _clearance(cart.engine, order_id)
    assert clearance is not None
    assert clearance["items_removed"] == 2


async def test_no_cart_still_records_the_clearance(cart: ServiceDriver) -> None:
    order_id = new_id()

    assert await cart.send(clear_cart(order_id, _buyer(), uuid.uuid4())) is Outcome.APPLIED

    clearance = await _clearance(cart.engine, order_id)
    assert clearance is not None
    assert (clearance["cart_id"], clearance["items_removed"]) == (None, 0)


@pytest.mark.parametrize("by_cart_id", [True, False])
async def test_another_buyers_cart_is_not_touched(cart: ServiceDriver, by_cart_id: bool) -> None:
    owner, order_id = _buyer(), new_id()
    cart_id = await _cart(cart.engine, owner, order_id)
    command = clear_cart(order_id, _buyer(), cart_id if by_cart_id else None)

    assert await cart.send(command) is Outcome.DEAD_LETTERED

    kept = await _get(cart.engine, cart_id)
    assert (kept.status, len(kept.items)) == (CartStatus.CHECKED_OUT, 2)
    assert await _clearance(cart.engine, order_id) is None
    [letter] = await cart.dead_letters(order_id)
    assert "another buyer" in letter.headers[MessageHeaders.ERROR]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("empty_buyer", "buyer_id"),
        ("bad_cart_id", "cart_id"),
        ("extra_field", "items_removed: Extra inputs"),
        ("wrong_type", "does not belong on the topic"),
        ("malformed", "malformed JSON"),
    ],
)
async def test_invalid_clear_cart_is_dead_lettered(
    cart: ServiceDriver, case: str, expected: str
) -> None:
    buyer, order_id = _buyer(), new_id()
    cart_id = await _cart(cart.engine, buyer, order_id)
    command = clear_cart(order_id, buyer, cart_id)
    bodies = {
        "empty_buyer": tampered(command, buyer_id=""),
        "bad_cart_id": tampered(command, cart_id="cart-7"),
        "extra_field": tampered(command, items_removed=3),
        "wrong_type": encode(envelope(confirm_order(order_id))),
        "malformed": b"\xff\xfe",
    }

    record = raw_delivery(bodies[case], TOPICS[CLEAR], key=str(order_id))
    assert await cart.deliver(record, CLEAR) is Outcome.DEAD_LETTERED

    assert len((await _get(cart.engine, cart_id)).items) == 2
    assert await _clearance(cart.engine, order_id) is None
    [letter] = await cart.dead_letters(order_id)
    assert expected in letter.headers[MessageHeaders.ERROR]


async def test_through_the_runtimes_routes(handler_settings: Settings, engine: AsyncEngine) -> None:
    buyer, order_id = _buyer(), new_id()
    cart_id = await _cart(engine, buyer, order_id)

    outcomes = await through_the_runtime(
        handler_settings, "cart", clear_cart(order_id, buyer, cart_id)
    )

    assert outcomes[Outcome.APPLIED] == 1
    assert (await _get(engine, cart_id)).status is CartStatus.CLEARED
