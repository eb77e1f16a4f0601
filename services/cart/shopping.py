"""Cart API use cases: change a buyer's active cart, or check it out, in the caller's transaction.

Each change locks the buyer's cart, checks the client's version (If-Match), applies the pure
rules of `domain`, writes the lines, bumps the version and emits one cart event per line that
moved. Refusals raise the domain's errors before anything is written.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import CheckoutStarted, LineItem
from services.cart import catalog, events, order_view, store
from services.cart import repository as repo
from services.cart.domain import (
    CartLine,
    CartNotFoundError,
    CartRuleError,
    PriceChangedError,
    ShoppingCart,
    Violation,
    check_add,
    check_quantity,
    check_replacement,
    check_version,
    line_changes,
    reprice,
)

NO_CURRENCY = "XXX"
"""ISO 4217's 'no currency': a cart created empty (PUT of no items) until it holds a product."""


@dataclass(frozen=True, slots=True)
class Checkout:
    """A checked-out cart: the order it became."""

    order_id: uuid.UUID
    cart_id: uuid.UUID


async def view(conn: AsyncConnection, buyer_id: str) -> ShoppingCart:
    """The buyer's active cart; CartNotFoundError when there is none."""
    cart = await store.active_cart(conn, buyer_id)
    if cart is None:
        raise CartNotFoundError("no active cart")
    return cart


async def _locked(
    conn: AsyncConnection, buyer_id: str, if_match: int | None
) -> ShoppingCart | None:
    await store.lock_buyer(conn, buyer_id)
    cart = await store.active_cart(conn, buyer_id, for_update=True)
    check_version(if_match, cart.version if cart else None)
    return cart


async def _existing(conn: AsyncConnection, buyer_id: str, if_match: int | None) -> ShoppingCart:
    cart = await _locked(conn, buyer_id, if_match)
    if cart is None:
        raise CartNotFoundError("no active cart")
    return cart


def _line(cart: ShoppingCart, item_id: uuid.UUID) -> CartLine:
    for line in cart.lines:
        if line.item_id == item_id:
            return line
    raise CartNotFoundError(f"no item {item_id} in the cart")


async def _changed(
    conn: AsyncConnection, buyer_id: str, before: Sequence[CartLine], lanes: int
) -> ShoppingCart:
    """The cart after a change, with one event per line that moved."""
    after = await view(conn, buyer_id)
    changes = line_changes(before, after.lines)
    await events.emit(conn, lanes, events.item_events(after.cart_id, buyer_id, changes))
    return after


async def add_item(
    conn: AsyncConnection, buyer_id: str, sku: str, qty: int, if_match: int | None, lanes: int
) -> ShoppingCart:
    """Add units of a product (opening a cart if needed), re-taking the line's price snapshot."""
    cart = await _locked(conn, buyer_id, if_match)
    offer = (await catalog.get_offers(conn, [sku])).get(sku)
    quantity = check_add(cart, sku, qty, offer)
    assert offer is not None  # check_add refuses unknown products
    cart_id = cart.cart_id if cart else await store.open_cart(conn, buyer_id, offer.currency)
    await store.put_line(conn, cart_id, quantity, offer)
    # An emptied cart takes the currency of its next product.
    await store.touch(conn, cart_id, currency=offer.currency)
    return await _changed(conn, buyer_id, cart.lines if cart else (), lanes)


async def set_quantity(
    conn: AsyncConnection,
    buyer_id: str,
    item_id: uuid.UUID,
    qty: int,
    if_match: int | None,
    lanes: int,
) -> ShoppingCart:
    """Change one line's quantity; its price snapshot stays."""
    cart = await _existing(conn, buyer_id, if_match)
    line = _line(cart, item_id)
    offer = (await catalog.get_offers(conn, [line.sku])).get(line.sku)
    check_quantity(line, qty, offer)
    await store.set_quantity(conn, item_id, qty)
    await store.touch(conn, cart.cart_id)
    return await _changed(conn, buyer_id, cart.lines, lanes)


async def remove_item(
    conn: AsyncConnection, buyer_id: str, item_id: uuid.UUID, if_match: int | None, lanes: int
) -> ShoppingCart:
    """Remove one line."""
    cart = await _existing(conn, buyer_id, if_match)
    line = _line(cart, item_id)
    await store.remove_lines(conn, cart.cart_id, [line.sku])
    await store.touch(conn, cart.cart_id)
    return await _changed(conn, buyer_id, cart.lines, lanes)


async def discard(conn: AsyncConnection, buyer_id: str, if_match: int | None, lanes: int) -> None:
    """Throw the active cart away (every line leaves it)."""
    cart = await _existing(conn, buyer_id, if_match)
    await store.delete_cart(conn, cart.cart_id)
    changes = line_changes(cart.lines, ())
    await events.emit(conn, lanes, events.item_events(cart.cart_id, buyer_id, changes))


async def replace(
    conn: AsyncConnection,
    buyer_id: str,
    items: Sequence[tuple[str, int]],
    if_match: int | None,
    lanes: int,
) -> ShoppingCart:
    """Make the cart hold exactly these lines, with fresh price snapshots, all or nothing."""
    cart = await _locked(conn, buyer_id, if_match)
    offers = await catalog.get_offers(conn, {sku for sku, _ in items})
    currency = check_replacement(items, offers) or (cart.currency if cart else NO_CURRENCY)
    cart_id = cart.cart_id if cart else await store.open_cart(conn, buyer_id, currency)
    before = cart.lines if cart else ()
    keep = {sku for sku, _ in items}
    await store.remove_lines(conn, cart_id, [ln.sku for ln in before if ln.sku not in keep])
    for sku, qty in items:
        await store.put_line(conn, cart_id, qty, offers[sku])
    await store.touch(conn, cart_id, currency=currency)
    return await _changed(conn, buyer_id, before, lanes)


async def check_out(
    conn: AsyncConnection,
    buyer_id: str,
    if_match: int | None,
    buyer_email: str | None,
    lanes: int,
) -> Checkout:
    """Re-price the cart; unchanged, it becomes an order: CheckoutStarted goes to the outbox."""
    cart = await _existing(conn, buyer_id, if_match)
    if not cart.lines:
        raise CartRuleError(Violation("items", "the cart is empty"))
    differences = reprice(cart.lines, await catalog.get_offers(conn, [ln.sku for ln in cart.lines]))
    if differences:
        raise PriceChangedError(differences)
    order_id = uuid.uuid4()
    if not await repo.mark_checked_out(conn, cart.cart_id, order_id):
        raise RuntimeError(f"cart {cart.cart_id} is locked yet no longer active")
    started = _started(cart, order_id, buyer_email)
    await order_view.record_checkout(conn, started)
    await events.emit(conn, lanes, [started, events.checked_out(cart, order_id)])
    return Checkout(order_id=order_id, cart_id=cart.cart_id)


def _started(cart: ShoppingCart, order_id: uuid.UUID, buyer_email: str | None) -> CheckoutStarted:
    """The saga's CheckoutStarted of a cart: its lines at their snapshot prices."""
    return CheckoutStarted(
        order_id=order_id,
        buyer_id=cart.buyer_id,
        buyer_email=buyer_email,
        cart_id=cart.cart_id,
        currency=cart.currency,
        items=[
            LineItem(sku=ln.sku, quantity=ln.quantity, unit_price=ln.snapshot.unit_price)
            for ln in cart.lines
        ],
    )
