"""The cart's catalog: each product's current offer (terms, MOQ, cap) and its attributes."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.cart.domain import HOUSE_VENDOR, MAX_ITEM_QUANTITY, Offer
from services.cart.tables import offers


def _offer(row: Any) -> Offer:
    return Offer(
        sku=row.sku,
        offer_id=row.offer_id,
        unit_price=row.unit_price,
        currency=row.currency,
        active=row.active,
        max_qty=row.max_qty,
        vendor_id=row.vendor_id,
        moq=row.moq,
        category=row.category,
        brand=row.brand,
        weight_grams=row.weight_grams,
    )


async def set_offer(
    conn: AsyncConnection,
    sku: str,
    unit_price: Decimal,
    currency: str,
    *,
    active: bool = True,
    max_qty: int = MAX_ITEM_QUANTITY,
    vendor_id: str = HOUSE_VENDOR,
    moq: int = 1,
    category: str | None = None,
    brand: str | None = None,
    weight_grams: int = 0,
) -> Offer:
    """Create or change a product's offer; a new price, currency or vendor is a new offer id.

    The offer id names the terms a snapshot was taken of, so it changes exactly when the
    terms do; toggling `active`, the cap or the MOQ keeps it (checkout checks those against
    the current offer anyway). Category, brand and weight are attributes, not terms: changing
    them keeps the offer id too, and pricing reads them from the current offer.
    """
    values = {
        "sku": sku,
        "offer_id": uuid.uuid4(),
        "unit_price": unit_price,
        "currency": currency,
        "active": active,
        "max_qty": max_qty,
        "vendor_id": vendor_id,
        "moq": moq,
        "category": category,
        "brand": brand,
        "weight_grams": weight_grams,
    }
    return _offer((await conn.execute(_upsert(values))).one())


def _upsert(values: dict[str, Any]) -> Any:
    insert = pg_insert(offers).values(**values)
    proposed = insert.excluded
    same_terms = (
        (offers.c.unit_price == proposed.unit_price)
        & (offers.c.currency == proposed.currency)
        & (offers.c.vendor_id == proposed.vendor_id)
    )
    return insert.on_conflict_do_update(
        index_elements=["sku"],
        set_={
            "offer_id": case((same_terms, offers.c.offer_id), else_=proposed.offer_id),
            "unit_price": proposed.unit_price,
            "currency": proposed.currency,
            "active": proposed.active,
            "max_qty": proposed.max_qty,
            "vendor_id": proposed.vendor_id,
            "moq": proposed.moq,
            "category": proposed.category,
            "brand": proposed.brand,
            "weight_grams": proposed.weight_grams,
            "updated_at": func.now(),
        },
    ).returning(*offers.c)


async def get_offers(conn: AsyncConnection, skus: Collection[str]) -> dict[str, Offer]:
    """The current offers of these products, by SKU (unknown SKUs are absent)."""
    if not skus:
        return {}
    rows = await conn.execute(select(offers).where(offers.c.sku.in_(sorted(skus))))
    return {row.sku: _offer(row) for row in rows}


async def list_offers(conn: AsyncConnection) -> list[Offer]:
    """Every offer, by SKU."""
    rows = await conn.execute(select(offers).order_by(offers.c.sku))
    return [_offer(row) for row in rows]
