"""The shop's pricing rules as stored: promotions and their usage, shipping methods, tax rates.

Reads rows into the pure types of promotions, shipping and tax (which validate them). The
JSON formats of the rule columns are described at their tables in tables.py.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.cart.promotion_types import DiscountKind, Promotion, Selection, Stacking, Usage
from services.cart.shipping import ShippingMethod, WeightBand
from services.cart.tables import (
    promotion_buyer_uses,
    promotion_uses,
    promotions,
    shipping_methods,
    tax_rates,
)
from services.cart.tax import RateTable, TaxRates


def selection(raw: Mapping[str, Any] | None) -> Selection | None:
    """A stored selection ({"skus": [...], "categories": [...], "brands": [...]}); None stays None."""
    if raw is None:
        return None
    return Selection(
        skus=frozenset(raw.get("skus", ())),
        categories=frozenset(raw.get("categories", ())),
        brands=frozenset(raw.get("brands", ())),
    )


def promotion_of(row: Any) -> Promotion:
    """A promotion row as the engine's type."""
    return Promotion(
        promotion_id=row.promotion_id,
        code=row.code,
        kind=DiscountKind(row.kind),
        value=Decimal(row.value).normalize() if row.kind == "percentage" else row.value,
        stacking=Stacking(row.stacking),
        target=selection(row.target),
        exclusions=selection(row.exclusions) or Selection(),
        min_spend=row.min_spend,
        currency=row.currency,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        limit_total=row.limit_total,
        limit_per_buyer=row.limit_per_buyer,
        priority=row.priority,
    )


async def active_promotions(conn: AsyncConnection) -> list[Promotion]:
    """Every active promotion (the engine itself checks validity windows and currencies)."""
    rows = await conn.execute(
        select(promotions).where(promotions.c.active).order_by(promotions.c.promotion_id)
    )
    return [promotion_of(row) for row in rows]


async def usage(
    conn: AsyncConnection, promotion_ids: Collection[str], buyer_id: str | None
) -> Usage:
    """Uses consumed so far of these promotions, overall and by this buyer."""
    ids = sorted(promotion_ids)
    if not ids:
        return Usage()
    total = await conn.execute(select(promotion_uses).where(promotion_uses.c.promotion_id.in_(ids)))
    by_buyer: dict[tuple[str, str], int] = {}
    if buyer_id is not None:
        rows = await conn.execute(
            select(promotion_buyer_uses).where(
                promotion_buyer_uses.c.promotion_id.in_(ids),
                promotion_buyer_uses.c.buyer_id == buyer_id,
            )
        )
        by_buyer = {(r.promotion_id, r.buyer_id): r.uses for r in rows}
    return Usage({r.promotion_id: r.uses for r in total}, by_buyer)


def method_of(row: Any) -> ShippingMethod:
    """A shipping method row as the shipping rules' type."""
    return ShippingMethod(
        method_id=row.method_id,
        name=row.name,
        serves=frozenset(row.serves),
        bands=tuple(WeightBand(b["up_to_grams"], Decimal(b["price"])) for b in row.bands),
        min_order_value=row.min_order_value,
        max_order_value=row.max_order_value,
        excluded_skus=frozenset(row.excluded_skus),
        excluded_categories=frozenset(row.excluded_categories),
        free_from=row.free_from,
    )


async def methods_by_currency(conn: AsyncConnection) -> dict[str, tuple[ShippingMethod, ...]]:
    """The active shipping methods by the currency they are priced in."""
    rows = await conn.execute(
        select(shipping_methods)
        .where(shipping_methods.c.active)
        .order_by(shipping_methods.c.method_id)
    )
    found: dict[str, list[ShippingMethod]] = {}
    for row in rows:
        found.setdefault(row.currency, []).append(method_of(row))
    return {currency: tuple(methods) for currency, methods in found.items()}


def rate_table_of(row: Any) -> RateTable:
    """A tax rate row as the tax rules' type."""
    categories = {name: Decimal(rate) for name, rate in row.by_category.items()}
    return RateTable(Decimal(row.standard).normalize(), categories)


async def rates(conn: AsyncConnection) -> TaxRates:
    """The shop's tax rate tables: countries ("DE") and regions ("US-CA")."""
    countries: dict[str, RateTable] = {}
    regions: dict[str, RateTable] = {}
    for row in await conn.execute(select(tax_rates)):
        (regions if "-" in row.area else countries)[row.area] = rate_table_of(row)
    return TaxRates(countries, regions)
