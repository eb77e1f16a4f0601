"""Pricing at the edge: load the shop's rules for a cart and quote it (services/cart/quote.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.cart import catalog, rules_store
from services.cart.domain import ShoppingCart
from services.cart.promotion_types import Promotion, Usage
from services.cart.quote import CartQuote, Rules, quote


async def rules_for(
    conn: AsyncConnection, cart: ShoppingCart, *, prices_include_tax: bool
) -> Rules:
    """The rules that price this cart, with the usage of its limited promotions."""
    promotions = await rules_store.active_promotions(conn)
    return Rules(
        promotions=promotions,
        usage=await _usage(conn, promotions, cart.buyer_id),
        methods=await rules_store.methods_in(conn, cart.currency),
        rates=await rules_store.rates(conn),
        prices_include_tax=prices_include_tax,
    )


async def _usage(conn: AsyncConnection, promotions: list[Promotion], buyer_id: str) -> Usage:
    # Only limited promotions are checked against usage: the others need no round trip.
    limited = {p.promotion_id for p in promotions if p.limit_total or p.limit_per_buyer}
    return await rules_store.usage(conn, limited, buyer_id) if limited else Usage()


async def quote_cart(
    conn: AsyncConnection,
    cart: ShoppingCart,
    *,
    prices_include_tax: bool,
    now: datetime | None = None,
) -> CartQuote:
    """The cart priced with the current rules and its products' current attributes."""
    offers = await catalog.get_offers(conn, [line.sku for line in cart.lines])
    rules = await rules_for(conn, cart, prices_include_tax=prices_include_tax)
    return quote(cart, offers, rules, now=now or datetime.now(UTC))
