"""Pricing at the edge: the shop's rules, kept in memory per rules version, and a cart's quote.

The rules (promotions, shipping methods, tax rates) change rarely and are read by every cart
answer, so a `Pricer` keeps them in memory and reloads them only when the rules version (bumped
by a trigger on any change, migration 0012) moved: one small read per quote instead of three.
Usage counts of limited promotions are read fresh every time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.cart import rules_store
from services.cart.domain import ShoppingCart
from services.cart.promotion_types import Promotion, Usage
from services.cart.quote import CartQuote, Rules, quote
from services.cart.shipping import ShippingMethod
from services.cart.tables import pricing_rules_version
from services.cart.tax import TaxRates

_STABLE_TRIES = 5


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The shop's rules as of one rules version."""

    version: int
    promotions: tuple[Promotion, ...]
    methods: Mapping[str, tuple[ShippingMethod, ...]]
    rates: TaxRates


async def _version(conn: AsyncConnection) -> int:
    found = await conn.scalar(select(pricing_rules_version.c.version))
    return int(found or 0)


async def load_rules(conn: AsyncConnection) -> RuleSet:
    """The rules as of one version: re-read when a change committed while they were read."""
    for _ in range(_STABLE_TRIES):
        before = await _version(conn)
        promotions = tuple(await rules_store.active_promotions(conn))
        methods = await rules_store.methods_by_currency(conn)
        rates = await rules_store.rates(conn)
        if await _version(conn) == before:
            return RuleSet(before, promotions, methods, rates)
    raise RuntimeError("the pricing rules kept changing while they were read")


@dataclass
class Pricer:
    """Quotes carts with the shop's rules; one per process (its rules are shared)."""

    prices_include_tax: bool = False
    _held: RuleSet | None = field(default=None, repr=False)

    async def rules(self, conn: AsyncConnection, version: int | None = None) -> RuleSet:
        """The current rules: the ones held when their version is still current.

        `version` is the rules version the caller read (with its cart); None reads it here.
        """
        held = self._held
        current = await _version(conn) if version is None else version
        if held is not None and held.version == current:
            return held
        self._held = await load_rules(conn)
        return self._held

    async def quote(
        self, conn: AsyncConnection, cart: ShoppingCart, now: datetime | None = None
    ) -> CartQuote:
        """The cart priced with the current rules and its products' current attributes."""
        ruleset = await self.rules(conn, cart.rules_version)
        rules = Rules(
            promotions=ruleset.promotions,
            usage=await _usage(conn, ruleset.promotions, cart.buyer_id),
            methods=ruleset.methods.get(cart.currency, ()),
            rates=ruleset.rates,
            prices_include_tax=self.prices_include_tax,
        )
        return quote(cart, rules, now=now or datetime.now(UTC))


async def _usage(conn: AsyncConnection, promotions: tuple[Promotion, ...], buyer_id: str) -> Usage:
    # Only limited promotions are checked against usage: the others need no round trip.
    limited = {p.promotion_id for p in promotions if p.limit_total or p.limit_per_buyer}
    return await rules_store.usage(conn, limited, buyer_id) if limited else Usage()
