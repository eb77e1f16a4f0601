"""Shop pricing rules for API tests: promotions, shipping methods and tax rates, removed after.

Tax rates are shop-wide (every cart reads them), so a test that sets some removes them when it
ends; shipping methods are per currency, so tests price in a currency of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine

from services.cart.tables import (
    promotion_buyer_uses,
    promotion_uses,
    promotions,
    redemptions,
    shipping_methods,
    tax_rates,
)


def new_code(prefix: str = "SAVE") -> str:
    """A coupon code no other test uses."""
    return f"{prefix}{uuid.uuid4().hex[:8].upper()}"


@dataclass
class Shop:
    """Rules a test put in place; `close` removes every one of them."""

    engine: AsyncEngine
    promotion_ids: list[str] = field(default_factory=list)
    method_ids: list[str] = field(default_factory=list)
    areas: list[str] = field(default_factory=list)

    async def promotion(self, **columns: Any) -> str:
        """Insert a promotion (id generated unless given); returns its id."""
        promotion_id = columns.pop("promotion_id", f"promo-{uuid.uuid4().hex[:10]}")
        values = {"kind": "percentage", "stacking": "stackable", **columns}
        async with self.engine.begin() as conn:
            await conn.execute(promotions.insert().values(promotion_id=promotion_id, **values))
        self.promotion_ids.append(promotion_id)
        return promotion_id

    async def shipping(
        self,
        currency: str,
        serves: Sequence[str],
        bands: Sequence[tuple[int, str]],
        **columns: Any,
    ) -> str:
        """Insert a shipping method; returns its id."""
        method_id = columns.pop("method_id", f"ship-{uuid.uuid4().hex[:10]}")
        async with self.engine.begin() as conn:
            await conn.execute(
                shipping_methods.insert().values(
                    method_id=method_id,
                    name=columns.pop("name", method_id),
                    currency=currency,
                    serves=list(serves),
                    bands=[{"up_to_grams": g, "price": p} for g, p in bands],
                    **columns,
                )
            )
        self.method_ids.append(method_id)
        return method_id

    async def tax(
        self, area: str, standard: str, by_category: Mapping[str, str] | None = None
    ) -> None:
        """Set an area's tax rates (fractions as strings)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                tax_rates.insert().values(
                    area=area, standard=Decimal(standard), by_category=dict(by_category or {})
                )
            )
        self.areas.append(area)

    async def close(self) -> None:
        """Remove everything this shop put in place (usage and redemptions included)."""
        async with self.engine.begin() as conn:
            ids = self.promotion_ids
            for table in (redemptions, promotion_buyer_uses, promotion_uses):
                await conn.execute(delete(table).where(table.c.promotion_id.in_(ids)))
            await conn.execute(delete(promotions).where(promotions.c.promotion_id.in_(ids)))
            await conn.execute(
                delete(shipping_methods).where(shipping_methods.c.method_id.in_(self.method_ids))
            )
            await conn.execute(delete(tax_rates).where(tax_rates.c.area.in_(self.areas)))


@asynccontextmanager
async def shop_rules(engine: AsyncEngine) -> AsyncIterator[Shop]:
    """A Shop whose rules are gone when the block ends."""
    shop = Shop(engine)
    try:
        yield shop
    finally:
        await shop.close()
