"""Cart persistence for the HTTP API: a buyer's active cart, its lines and their snapshots.

Every change of a buyer's cart runs under that buyer's transaction-scoped advisory lock and
with the cart row locked, so concurrent requests of one buyer apply one after the other and
never lose an update; each change bumps the cart's version (the ETag clients send back).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from typing import Any

from sqlalchemy import Text, bindparam, delete, func, literal, select, update
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.cart.domain import (
    Attributes,
    CartLine,
    CartStatus,
    Delivery,
    Offer,
    ShoppingCart,
    Snapshot,
)
from services.cart.tables import (
    cart_coupons,
    cart_items,
    carts,
    checkout_groups,
    offers,
    order_status,
    pricing_rules_version,
)

_LOCK_BUYER = select(
    func.pg_advisory_xact_lock(
        func.hashtextextended(literal("cart-buyer:") + bindparam("buyer_id", type_=Text), 0)
    )
)


async def lock_buyer(conn: AsyncConnection, buyer_id: str) -> None:
    """Serialize this buyer's cart changes until the transaction ends.

    The row lock alone cannot cover the first add, when there is no cart row yet: two
    concurrent first adds would each open a cart.
    """
    await conn.execute(_LOCK_BUYER, {"buyer_id": buyer_id})


# Built once: composing these statements cost more CPU per request than running them.
# The entered codes and the shop's pricing rules version ride along in the cart's round trip
# (the codes in the order they were entered; the version spares `pricing` a read of its own).
_CODES = (
    select(func.array_agg(aggregate_order_by(cart_coupons.c.code, cart_coupons.c.added_at)))
    .where(cart_coupons.c.cart_id == carts.c.cart_id)
    .scalar_subquery()
    .label("coupons")
)
_RULES_VERSION = select(pricing_rules_version.c.version).scalar_subquery().label("rules_version")
_ACTIVE = (
    select(carts, _CODES, _RULES_VERSION)
    .where(carts.c.buyer_id == bindparam("buyer_id"), carts.c.status == CartStatus.ACTIVE.value)
    .order_by(carts.c.created_at.desc(), carts.c.cart_id)
    .limit(1)
)
_ACTIVE_FOR_UPDATE = _ACTIVE.with_for_update(of=carts)
_LINES = (
    select(
        cart_items,
        func.coalesce(cart_items.c.currency, carts.c.currency).label("snapshot_currency"),
        # The product's attributes ride along (pricing reads them); a product without an
        # offer has none.
        offers.c.category,
        offers.c.brand,
        func.coalesce(offers.c.weight_grams, 0).label("weight_grams"),
    )
    .join(carts, carts.c.cart_id == cart_items.c.cart_id)
    .outerjoin(offers, offers.c.sku == cart_items.c.sku)
    .where(cart_items.c.cart_id == bindparam("cart_id"))
    .order_by(cart_items.c.sku)
)


async def active_cart(
    conn: AsyncConnection, buyer_id: str, *, for_update: bool = False
) -> ShoppingCart | None:
    """The buyer's active cart (their newest, should an upstream have left several), or None."""
    stmt = _ACTIVE_FOR_UPDATE if for_update else _ACTIVE
    row = (await conn.execute(stmt, {"buyer_id": buyer_id})).first()
    return None if row is None else await _with_lines(conn, row)


async def _with_lines(conn: AsyncConnection, row: Any) -> ShoppingCart:
    return ShoppingCart(
        cart_id=row.cart_id,
        buyer_id=row.buyer_id,
        status=CartStatus(row.status),
        currency=row.currency,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        lines=await cart_lines(conn, row.cart_id),
        coupons=tuple(row.coupons or ()),
        delivery=Delivery(row.ship_country, row.ship_region, row.shipping_method),
        rules_version=row.rules_version,
    )


async def cart_lines(conn: AsyncConnection, cart_id: uuid.UUID) -> tuple[CartLine, ...]:
    """A cart's lines with their price snapshots and their products' attributes, by SKU."""
    rows = await conn.execute(_LINES, {"cart_id": cart_id})
    return tuple(
        CartLine(
            item_id=r.id,
            sku=r.sku,
            quantity=r.quantity,
            snapshot=Snapshot(
                r.offer_id, r.unit_price, r.snapshot_currency, r.captured_at, r.vendor_id
            ),
            attributes=Attributes(r.category, r.brand, r.weight_grams),
        )
        for r in rows
    )


async def open_cart(conn: AsyncConnection, buyer_id: str, currency: str) -> uuid.UUID:
    """A new, empty, active cart of the buyer at version 0 (the change that opens it makes 1)."""
    cart_id = uuid.uuid4()
    await conn.execute(
        carts.insert().values(
            cart_id=cart_id,
            buyer_id=buyer_id,
            status=CartStatus.ACTIVE,
            currency=currency,
            version=0,
        )
    )
    return cart_id


async def put_line(conn: AsyncConnection, cart_id: uuid.UUID, quantity: int, offer: Offer) -> None:
    """Set a line's quantity and re-take its price snapshot of the offer (a line keeps its id)."""
    insert = pg_insert(cart_items).values(
        id=uuid.uuid4(),
        cart_id=cart_id,
        sku=offer.sku,
        quantity=quantity,
        unit_price=offer.unit_price,
        currency=offer.currency,
        offer_id=offer.offer_id,
        vendor_id=offer.vendor_id,
    )
    await conn.execute(
        insert.on_conflict_do_update(
            index_elements=["cart_id", "sku"],
            set_={
                "quantity": insert.excluded.quantity,
                "unit_price": insert.excluded.unit_price,
                "currency": insert.excluded.currency,
                "offer_id": insert.excluded.offer_id,
                "vendor_id": insert.excluded.vendor_id,
                "captured_at": func.now(),
            },
        )
    )


async def set_quantity(conn: AsyncConnection, item_id: uuid.UUID, quantity: int) -> None:
    """Change a line's quantity; its snapshot stays as it was taken."""
    await conn.execute(
        update(cart_items).where(cart_items.c.id == item_id).values(quantity=quantity)
    )


async def remove_lines(
    conn: AsyncConnection, cart_id: uuid.UUID, skus: Collection[str] | None = None
) -> None:
    """Remove these lines of a cart (every line when skus is None)."""
    stmt = delete(cart_items).where(cart_items.c.cart_id == cart_id)
    if skus is not None:
        stmt = stmt.where(cart_items.c.sku.in_(sorted(skus)))
    await conn.execute(stmt)


async def touch(conn: AsyncConnection, cart_id: uuid.UUID, currency: str | None = None) -> None:
    """Record a buyer's change: next version, fresh activity time, and the currency if given."""
    values: dict[str, Any] = {
        "version": carts.c.version + 1,
        "updated_at": func.now(),
        "last_activity_at": func.now(),
    }
    if currency is not None:
        values["currency"] = currency
    await conn.execute(update(carts).where(carts.c.cart_id == cart_id).values(**values))


async def delete_cart(conn: AsyncConnection, cart_id: uuid.UUID) -> None:
    """Discard a cart and its lines (only ever an active one: it became no order)."""
    await conn.execute(delete(carts).where(carts.c.cart_id == cart_id))


async def put_snapshot_line(
    conn: AsyncConnection, cart_id: uuid.UUID, sku: str, quantity: int, snapshot: Snapshot
) -> None:
    """Set a line's quantity and this snapshot as it was taken (a merge keeps the newer one)."""
    columns = {
        "quantity": quantity,
        "unit_price": snapshot.unit_price,
        "currency": snapshot.currency,
        "offer_id": snapshot.offer_id,
        "vendor_id": snapshot.vendor_id,
        "captured_at": snapshot.captured_at,
    }
    insert = pg_insert(cart_items).values(id=uuid.uuid4(), cart_id=cart_id, sku=sku, **columns)
    await conn.execute(
        insert.on_conflict_do_update(index_elements=["cart_id", "sku"], set_=columns)
    )


async def mark_merged(conn: AsyncConnection, cart_id: uuid.UUID, into: uuid.UUID | None) -> None:
    """Close a guest cart as merged into a buyer's cart (its lines stay, for the record)."""
    await conn.execute(
        update(carts)
        .where(carts.c.cart_id == cart_id)
        .values(
            status=CartStatus.MERGED,
            merged_into=into,
            version=carts.c.version + 1,
            updated_at=func.now(),
        )
    )


async def add_coupon(conn: AsyncConnection, cart_id: uuid.UUID, code: str) -> bool:
    """Enter a (normalized) code on the cart; False when it was already entered."""
    stmt = pg_insert(cart_coupons).values(cart_id=cart_id, code=code).on_conflict_do_nothing()
    return (await conn.execute(stmt)).rowcount == 1


async def remove_coupon(conn: AsyncConnection, cart_id: uuid.UUID, code: str) -> bool:
    """Take a code off the cart; False when it was not entered."""
    stmt = delete(cart_coupons).where(
        cart_coupons.c.cart_id == cart_id, cart_coupons.c.code == code
    )
    return (await conn.execute(stmt)).rowcount == 1


async def set_delivery(conn: AsyncConnection, cart_id: uuid.UUID, delivery: Delivery) -> None:
    """Record where the cart ships and how (None parts: not chosen)."""
    await conn.execute(
        update(carts)
        .where(carts.c.cart_id == cart_id)
        .values(
            ship_country=delivery.country,
            ship_region=delivery.region,
            shipping_method=delivery.method_id,
        )
    )


async def take_coupons_and_delivery(
    conn: AsyncConnection, source: ShoppingCart, cart_id: uuid.UUID
) -> None:
    """Give a cart the codes of another (merged) one, and its delivery when it has none yet."""
    for code in source.coupons:
        await add_coupon(conn, cart_id, code)
    if source.delivery.country is not None:
        await conn.execute(
            update(carts)
            .where(carts.c.cart_id == cart_id, carts.c.ship_country.is_(None))
            .values(
                ship_country=source.delivery.country,
                ship_region=source.delivery.region,
                shipping_method=source.delivery.method_id,
            )
        )


async def adopt_orders(conn: AsyncConnection, guest_id: str, buyer_id: str) -> None:
    """Give a guest's checkout groups and orders (as the cart sees them) to a signed-in buyer.

    Only the cart's own view moves: the saga and the order service keep the guest's id, the
    buyer the checkout was made by.
    """
    for table in (checkout_groups, order_status):
        await conn.execute(
            update(table).where(table.c.buyer_id == guest_id).values(buyer_id=buyer_id)
        )
