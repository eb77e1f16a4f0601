"""Cart through the real consumer: ClearCart clears a cart once; order events feed the order view."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import (
    CheckoutPolicy,
    CheckoutStarted,
    ClearCart,
    LineItem,
    MessageHeaders,
    OrderConfirmed,
    OrderMarkedFailed,
    RejectedLine,
    RejectionReason,
)
from contracts.codec import encode
from contracts.topics import TOPICS
from contracts.vendor_orders import VendorOrder
from services.cart import groups
from services.cart import repository as repo
from services.cart.checkout_rules import GroupStatus, OrderProgress
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


async def _vendor_orders(engine: AsyncEngine, buyer: str) -> tuple[uuid.UUID, list[VendorOrder]]:
    """A two-vendor checkout recorded as the cart API records it: (group id, vendor orders)."""
    cart_id, group_id = await _cart(engine, buyer), new_id()
    started = CheckoutStarted(
        order_id=group_id,
        buyer_id=buyer,
        cart_id=cart_id,
        currency="EUR",
        items=[
            LineItem(sku="SKU-1", quantity=2, unit_price=Decimal("9.99"), vendor_id="acme"),
            LineItem(sku="SKU-2", quantity=1, unit_price=Decimal("5.00"), vendor_id="acme"),
            LineItem(sku="SKU-3", quantity=1, unit_price=Decimal("7.00"), vendor_id="globex"),
        ],
        policy=CheckoutPolicy.PARTIAL,
    )
    async with engine.begin() as conn:
        orders = await groups.record_checkout(conn, started)
    return group_id, list(orders)


async def _view(engine: AsyncEngine, group_id: uuid.UUID, buyer: str) -> groups.GroupView:
    async with engine.connect() as conn:
        found = await groups.find(conn, group_id, buyer)
    assert found is not None
    return found


async def test_final_order_events_keep_the_accepted_and_rejected_lines(cart: ServiceDriver) -> None:
    buyer = _buyer()
    group_id, [acme, globex] = await _vendor_orders(cart.engine, buyer)
    kept, dropped = acme.items
    confirmed = OrderConfirmed(
        order_id=acme.order_id,
        payment_id=new_id(),
        checkout_group_id=group_id,
        vendor_id="acme",
        currency="EUR",
        total=Decimal("19.98"),
        items=[kept],
        rejected=[RejectedLine(sku=dropped.sku, quantity=1, reason=RejectionReason.UNAVAILABLE)],
    )
    failed = OrderMarkedFailed(
        order_id=globex.order_id,
        reason="payment declined",
        checkout_group_id=group_id,
        vendor_id="globex",
        currency="EUR",
        total=Decimal("7.00"),
        items=list(globex.items),
    )

    assert await cart.send(confirmed) is Outcome.APPLIED
    assert await cart.send(failed) is Outcome.APPLIED

    group = await _view(cart.engine, group_id, buyer)
    shown_acme, shown_globex = group.orders
    assert (shown_acme.progress, shown_acme.total, shown_acme.adjusted_total) == (
        OrderProgress.CONFIRMED,
        Decimal("24.98"),
        Decimal("19.98"),
    )
    assert [line["sku"] for line in shown_acme.accepted] == ["SKU-1"]
    assert shown_acme.rejected == [{"sku": "SKU-2", "quantity": 1, "reason": "unavailable"}]
    assert (shown_globex.progress, shown_globex.failure_reason) == (
        OrderProgress.FAILED,
        "payment declined",
    )
    assert (group.status, group.balance_due) == (
        GroupStatus.PARTIALLY_COMPLETED,
        Decimal("19.98"),
    )


async def test_a_late_final_event_changes_neither_state_nor_lines(cart: ServiceDriver) -> None:
    buyer = _buyer()
    group_id, [acme, _] = await _vendor_orders(cart.engine, buyer)
    await cart.send(OrderConfirmed(order_id=acme.order_id, payment_id=new_id()))

    late = OrderMarkedFailed(
        order_id=acme.order_id,
        reason="too late",
        currency="EUR",
        total=Decimal("0.00"),
        rejected=[RejectedLine(sku="SKU-1", quantity=2, reason=RejectionReason.UNAVAILABLE)],
    )
    assert await cart.send(late) is Outcome.APPLIED

    shown = (await _view(cart.engine, group_id, buyer)).orders[0]
    assert (shown.progress, shown.adjusted_total, shown.rejected) == (
        OrderProgress.CONFIRMED,
        Decimal("24.98"),
        [],
    )
