"""Cart API use cases: change a buyer's active cart, or check it out, in the caller's transaction.

Each change locks the buyer's cart, checks the client's version (If-Match), applies the pure
rules of `domain`, writes the lines, bumps the version and emits one cart event per line that
moved. A checkout turns the cart into a checkout group of one vendor order per vendor
(`groups`). Refusals raise the domain's errors before anything is written.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import CheckoutPolicy, CheckoutStarted, LineItem
from contracts.pricing import AppliedDiscount, CheckoutPricing, ShippingCharge
from contracts.pricing import LineCharge as WireLineCharge
from contracts.vendor_orders import VendorOrder
from services.cart import catalog, events, groups, redemptions, store
from services.cart import repository as repo
from services.cart.checkout_rules import PriceChangedError, checkout_violations, reprice
from services.cart.domain import (
    CartLine,
    CartNotFoundError,
    CartRuleError,
    ShoppingCart,
    Violation,
    check_add,
    check_quantity,
    check_replacement,
    check_version,
    line_changes,
)
from services.cart.pricing import Pricer
from services.cart.promotion_types import Promotion
from services.cart.quote import CartQuote
from services.cart.totals import Difference as TotalsDifference
from services.cart.totals import Totals
from services.cart.totals import differences as total_differences

NO_CURRENCY = "XXX"
"""ISO 4217's 'no currency': a cart created empty (PUT of no items) until it holds a product."""


@dataclass(frozen=True, slots=True)
class Checkout:
    """A checked-out cart: the checkout group it became and the group's vendor orders."""

    group_id: uuid.UUID
    cart_id: uuid.UUID
    policy: CheckoutPolicy
    currency: str
    total: Decimal
    orders: tuple[VendorOrder, ...]


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


async def existing(conn: AsyncConnection, buyer_id: str, if_match: int | None) -> ShoppingCart:
    """The buyer's active cart, locked and at the expected version; CartNotFoundError if none."""
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
    quantity = check_add(cart, sku, qty, offer, buyer_id)
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
    cart = await existing(conn, buyer_id, if_match)
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
    cart = await existing(conn, buyer_id, if_match)
    line = _line(cart, item_id)
    await store.remove_lines(conn, cart.cart_id, [line.sku])
    await store.touch(conn, cart.cart_id)
    return await _changed(conn, buyer_id, cart.lines, lanes)


async def discard(conn: AsyncConnection, buyer_id: str, if_match: int | None, lanes: int) -> None:
    """Throw the active cart away (every line leaves it)."""
    cart = await existing(conn, buyer_id, if_match)
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
    currency = check_replacement(items, offers, buyer_id) or (
        cart.currency if cart else NO_CURRENCY
    )
    cart_id = cart.cart_id if cart else await store.open_cart(conn, buyer_id, currency)
    before = cart.lines if cart else ()
    keep = {sku for sku, _ in items}
    await store.remove_lines(conn, cart_id, [ln.sku for ln in before if ln.sku not in keep])
    for sku, qty in items:
        await store.put_line(conn, cart_id, qty, offers[sku])
    await store.touch(conn, cart_id, currency=currency)
    return await _changed(conn, buyer_id, before, lanes)


@dataclass(frozen=True, slots=True)
class CheckoutDetails:
    """What the buyer says at checkout: an e-mail, the policy, and the totals they saw."""

    buyer_email: str | None = None
    policy: CheckoutPolicy = CheckoutPolicy.ALL_OR_NOTHING
    expected: Totals | None = None


class TotalsChangedError(Exception):
    """Checkout refused: the cart's totals are not the ones the buyer saw."""

    def __init__(self, differences: Sequence[TotalsDifference], note: str) -> None:
        super().__init__(note)
        self.differences = tuple(differences)


async def _priced(
    conn: AsyncConnection, cart: ShoppingCart, details: CheckoutDetails, pricer: Pricer
) -> CartQuote:
    """The cart re-priced with the current rules; refused when incomplete or not as seen."""
    quote = await pricer.quote(conn, cart)
    # Totals the buyer confirmed (expected_totals) accept codes that no longer apply; without
    # them an entered code that does not apply blocks, so no discount vanishes unseen.
    confirmed = details.expected is not None
    blockers = [b for b in quote.blockers if not (confirmed and b.field.startswith("coupons."))]
    if quote.totals.grand_total <= 0:
        # A payment of nothing cannot be requested: the saga would refuse the checkout.
        blockers.append(
            Violation("totals.grand_total", "a cart that costs nothing cannot be checked out")
        )
    if blockers:
        raise CartRuleError(*blockers)
    if details.expected is not None:
        changed = total_differences(details.expected, quote.totals)
        if changed:
            raise TotalsChangedError(changed, "the cart's totals changed since they were shown")
    return quote


async def _take_uses(
    conn: AsyncConnection,
    group_id: uuid.UUID,
    cart: ShoppingCart,
    quote: CartQuote,
    promotions: Sequence[Promotion],
) -> None:
    """Consume the applied promotions' uses; a use another checkout took first refuses (409)."""
    applied = quote.discounts.applied
    lost = await redemptions.take(conn, group_id, cart.buyer_id, cart.currency, applied, promotions)
    if lost:
        changed = [TotalsDifference(f"discount:{p.promotion_id}", p.amount, None) for p in lost]
        raise TotalsChangedError(changed, "a promotion's last use was just taken")


async def check_out(
    conn: AsyncConnection,
    buyer_id: str,
    if_match: int | None,
    details: CheckoutDetails,
    lanes: int,
    pricer: Pricer,
) -> Checkout:
    """Re-price and check the cart; it becomes a checkout group, CheckoutStarted in the outbox."""
    cart = await existing(conn, buyer_id, if_match)
    if not cart.lines:
        raise CartRuleError(Violation("items", "the cart is empty"))
    offers = await catalog.get_offers(conn, [ln.sku for ln in cart.lines])
    differences = reprice(cart.lines, offers)
    if differences:
        raise PriceChangedError(differences)
    violations = checkout_violations(cart.lines, offers, buyer_id)
    if violations:
        raise CartRuleError(*violations)
    quote = await _priced(conn, cart, details, pricer)
    group_id = uuid.uuid4()
    await _take_uses(
        conn, group_id, cart, quote, (await pricer.rules(conn, cart.rules_version)).promotions
    )
    # The cart names the group: ClearCart comes back with the group id as its order id.
    if not await repo.mark_checked_out(conn, cart.cart_id, group_id):
        raise RuntimeError(f"cart {cart.cart_id} is locked yet no longer active")
    started = _started(cart, group_id, details, quote)
    orders = await groups.record_checkout(conn, started)
    await events.emit(conn, lanes, [started, events.checked_out(cart, group_id)])
    return Checkout(group_id, cart.cart_id, started.policy, cart.currency, started.total, orders)


def _started(
    cart: ShoppingCart, group_id: uuid.UUID, details: CheckoutDetails, quote: CartQuote
) -> CheckoutStarted:
    """The saga's CheckoutStarted of a cart: its lines at their snapshot prices and vendors,
    and its pricing when promotions, shipping or tax make the charge other than the lines."""
    return CheckoutStarted(
        order_id=group_id,
        buyer_id=cart.buyer_id,
        buyer_email=details.buyer_email,
        cart_id=cart.cart_id,
        currency=cart.currency,
        items=[
            LineItem(
                sku=ln.sku,
                quantity=ln.quantity,
                unit_price=ln.snapshot.unit_price,
                vendor_id=ln.snapshot.vendor_id,
            )
            for ln in cart.lines
        ],
        policy=details.policy,
        pricing=checkout_pricing(quote),
    )


def checkout_pricing(quote: CartQuote) -> CheckoutPricing | None:
    """The wire form of a quote; None for a cart charged its lines' amounts, nothing else.

    Unpriced checkouts stay byte for byte what version-1 consumers read (`pricing` is an
    addition): only discounts, a shipping method or tax make a checkout priced.
    """
    totals, delivery = quote.totals, quote.delivery
    if not (totals.discounts or delivery.chosen or totals.tax):
        return None
    shipping = None
    if delivery.chosen is not None and delivery.destination is not None:
        shipping = ShippingCharge(
            method_id=delivery.chosen.method_id,
            country=delivery.destination.country,
            region=delivery.destination.region,
            price=delivery.chosen.price,
            tax=delivery.shipping_tax,
        )
    return CheckoutPricing(
        prices_include_tax=totals.prices_include_tax,
        subtotal=totals.subtotal,
        discounts=[
            AppliedDiscount(promotion_id=d.promotion_id, code=d.code, amount=d.amount)
            for d in totals.discounts
        ],
        discount_total=totals.discount_total,
        shipping=shipping,
        tax=totals.tax,
        grand_total=totals.grand_total,
        lines=[
            WireLineCharge(sku=c.sku, discount=c.discount, tax=c.tax, charge=c.charge)
            for c in quote.lines
        ],
    )
