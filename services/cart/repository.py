"""Cart persistence: carts and their items, the lookups ClearCart needs, and clearance records."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import LineItem
from services.cart.domain import HOUSE_VENDOR, Cart, CartStatus
from services.cart.tables import cart_items, carts, clearances
from services.platform import sql

# Hot-path statements (services.platform.sql): constant SQL, prepared once per connection.
_CART_COLUMNS = "SELECT cart_id, buyer_id, status, currency, order_id FROM cart.carts "
_CART_BY_ID = _CART_COLUMNS + "WHERE cart_id = $1 FOR UPDATE"
_CART_BY_ORDER = _CART_COLUMNS + "WHERE order_id = $1 FOR UPDATE"
_BUYERS_NEWEST_CART = (
    _CART_COLUMNS + "WHERE buyer_id = $1 AND status = 'checked_out' AND order_id IS NULL "
    "ORDER BY updated_at DESC, cart_id LIMIT 1 FOR UPDATE"
)
_CART_LINES = (
    "SELECT sku, quantity, unit_price FROM cart.cart_items WHERE cart_id = $1 ORDER BY sku"
)
_CLAIM_CLEARANCE = (
    "INSERT INTO cart.clearances (order_id, cart_id, items_removed) VALUES ($1, NULL, 0) "
    "ON CONFLICT (order_id) DO NOTHING RETURNING order_id"
)


async def create_cart(
    conn: AsyncConnection, buyer_id: str, currency: str, items: Sequence[LineItem]
) -> uuid.UUID:
    """A new active cart holding these item snapshots; returns its id."""
    cart_id = uuid.uuid4()
    await conn.execute(
        carts.insert().values(
            cart_id=cart_id, buyer_id=buyer_id, status=CartStatus.ACTIVE, currency=currency
        )
    )
    if items:
        await conn.execute(
            cart_items.insert(),
            [
                {
                    "id": uuid.uuid4(),
                    "cart_id": cart_id,
                    "sku": i.sku,
                    "quantity": i.quantity,
                    "unit_price": i.unit_price,
                    "currency": currency,
                    "vendor_id": i.vendor_id or HOUSE_VENDOR,
                }
                for i in items
            ],
        )
    return cart_id


async def mark_checked_out(conn: AsyncConnection, cart_id: uuid.UUID, order_id: uuid.UUID) -> bool:
    """Tie an active cart to the order it became; False when no active cart has that id."""
    result = await conn.execute(
        update(carts)
        .where(carts.c.cart_id == cart_id, carts.c.status == CartStatus.ACTIVE)
        .values(
            status=CartStatus.CHECKED_OUT,
            order_id=order_id,
            version=carts.c.version + 1,
            updated_at=func.now(),
        )
    )
    return result.rowcount == 1


async def get_cart(conn: AsyncConnection, cart_id: uuid.UUID) -> Cart | None:
    """A cart with its items, or None."""
    return await _load(conn, select(carts).where(carts.c.cart_id == cart_id))


async def find_cart_for_order(
    conn: AsyncConnection, order_id: uuid.UUID, buyer_id: str, cart_id: uuid.UUID | None
) -> Cart | None:
    """The cart an order came from, locked: by cart id, else by order id, else the buyer's.

    The buyer's fallback is their newest checked-out cart not tied to another order, for
    upstreams that check out a cart without telling us its id.
    """
    lookups: list[tuple[str, object]] = [] if cart_id is None else [(_CART_BY_ID, cart_id)]
    lookups += [(_CART_BY_ORDER, order_id), (_BUYERS_NEWEST_CART, buyer_id)]
    for statement, key in lookups:
        row = await sql.fetchrow(conn, statement, key)
        if row is not None:
            lines = await sql.fetch(conn, _CART_LINES, row["cart_id"])
            return _cart(row, lines)
    return None


def _cart(row: Mapping[str, Any], lines: Sequence[Mapping[Any, Any]]) -> Cart:
    return Cart(
        cart_id=row["cart_id"],
        buyer_id=row["buyer_id"],
        status=CartStatus(row["status"]),
        currency=row["currency"],
        order_id=row["order_id"],
        items=tuple(
            LineItem(sku=r["sku"], quantity=r["quantity"], unit_price=r["unit_price"])
            for r in lines
        ),
    )


async def _load(conn: AsyncConnection, stmt: Select[Any]) -> Cart | None:
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    lines = await conn.execute(
        select(cart_items.c.sku, cart_items.c.quantity, cart_items.c.unit_price)
        .where(cart_items.c.cart_id == row.cart_id)
        .order_by(cart_items.c.sku)
    )
    return _cart(row._mapping, [r._mapping for r in lines])


async def empty_cart(conn: AsyncConnection, cart_id: uuid.UUID) -> int:
    """Delete the cart's items and mark it cleared; returns how many lines were removed."""
    removed = await conn.execute(delete(cart_items).where(cart_items.c.cart_id == cart_id))
    await conn.execute(
        update(carts)
        .where(carts.c.cart_id == cart_id)
        .values(status=CartStatus.CLEARED, version=carts.c.version + 1, updated_at=func.now())
    )
    return removed.rowcount


async def claim_clearance(conn: AsyncConnection, order_id: uuid.UUID) -> bool:
    """Reserve the order's clearance record; False when the order's cart was already cleared.

    A concurrent claim for the same order waits on the primary key until the first commits,
    so one order clears a cart at most once even under different message ids.
    """
    return await sql.fetchrow(conn, _CLAIM_CLEARANCE, order_id) is not None


async def record_clearance(
    conn: AsyncConnection, order_id: uuid.UUID, cart_id: uuid.UUID | None, items_removed: int
) -> None:
    """Complete the claimed clearance record with what was cleared."""
    await conn.execute(
        update(clearances)
        .where(clearances.c.order_id == order_id)
        .values(cart_id=cart_id, items_removed=items_removed)
    )


async def get_clearance(conn: AsyncConnection, order_id: uuid.UUID) -> dict[str, Any] | None:
    """The clearance record of an order, for the API and tests."""
    row = (await conn.execute(select(clearances).where(clearances.c.order_id == order_id))).first()
    return None if row is None else dict(row._mapping)
