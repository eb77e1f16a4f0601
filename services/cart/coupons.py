"""Coupon and delivery use cases: enter or remove a code, choose where and how the cart ships.

Each runs in the caller's transaction under the buyer's cart lock, like every cart change, and
bumps the cart's version. A code is entered only when it applies to the cart now (otherwise it
is refused with the engine's reason); one entered earlier that stops applying (the cart
changed) stays on the cart and shows why, and applies again once the cart qualifies.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncConnection

from services.cart import shopping, store
from services.cart.domain import CartNotFoundError, CartRuleError, Delivery, ShoppingCart, Violation
from services.cart.pricing import Pricer
from services.cart.promotion_types import Reason, mask, normalize_code
from services.cart.shipping import Destination


class CouponRefusedError(Exception):
    """The code does not apply to this cart; `reason` is for the shopper, `unknown` for limits."""

    def __init__(self, code: str, reason: str, *, unknown: bool) -> None:
        # The message may reach logs: the code only masked.
        super().__init__(f"code {mask(code)} refused: {reason}")
        self.reason = reason
        self.unknown = unknown


async def enter_code(
    conn: AsyncConnection,
    buyer_id: str,
    code: str,
    if_match: int | None,
    pricer: Pricer,
) -> ShoppingCart:
    """Enter a code on the buyer's cart when it applies now; entering it again changes nothing."""
    cart = await shopping.existing(conn, buyer_id, if_match)
    normalized = normalize_code(code)
    if normalized in cart.coupons:
        return cart
    trial = _with_code(cart, normalized)
    quote = await pricer.quote(conn, trial)
    state = next(s for s in quote.coupons if s.code == normalized)
    if not state.applied:
        reason = state.reason or str(Reason.UNKNOWN)
        raise CouponRefusedError(normalized, reason, unknown=reason == str(Reason.UNKNOWN))
    await store.add_coupon(conn, cart.cart_id, normalized)
    await store.touch(conn, cart.cart_id)
    return await shopping.view(conn, buyer_id)


def _with_code(cart: ShoppingCart, code: str) -> ShoppingCart:
    return replace(cart, coupons=(*cart.coupons, code))


async def remove_code(
    conn: AsyncConnection, buyer_id: str, code: str, if_match: int | None
) -> ShoppingCart:
    """Take an entered code off the cart (404 when it is not on it)."""
    cart = await shopping.existing(conn, buyer_id, if_match)
    if not await store.remove_coupon(conn, cart.cart_id, normalize_code(code)):
        raise CartNotFoundError("this code is not on the cart")
    await store.touch(conn, cart.cart_id)
    return await shopping.view(conn, buyer_id)


async def choose_delivery(
    conn: AsyncConnection,
    buyer_id: str,
    delivery: Delivery,
    if_match: int | None,
    pricer: Pricer,
) -> ShoppingCart:
    """Set where the cart ships and (optionally) how; a method must be able to carry it there."""
    cart = await shopping.existing(conn, buyer_id, if_match)
    if delivery.country is None and delivery.method_id is not None:
        raise CartRuleError(Violation("country", "choose a destination with the method"))
    if delivery.country is not None:
        _destination(delivery)
    chosen = _replace_delivery(cart, delivery)
    if delivery.method_id is not None:
        quote = await pricer.quote(conn, chosen)
        refused = [b for b in quote.blockers if b.field == "delivery.shipping_method"]
        if refused:
            raise CartRuleError(Violation("shipping_method", refused[0].reason))
    await store.set_delivery(conn, cart.cart_id, delivery)
    await store.touch(conn, cart.cart_id)
    return await shopping.view(conn, buyer_id)


def _destination(delivery: Delivery) -> Destination:
    assert delivery.country is not None
    try:
        return Destination(delivery.country, delivery.region)
    except ValueError as bad:
        field = "region" if "region" in str(bad) else "country"
        raise CartRuleError(Violation(field, str(bad))) from bad


def _replace_delivery(cart: ShoppingCart, delivery: Delivery) -> ShoppingCart:
    return replace(cart, delivery=delivery)
