"""Inventory persistence: locked reads and conditional counter updates on the inventory schema."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import Reservation, StockShortage
from services.inventory.domain import ReservationStatus
from services.inventory.tables import products
from services.platform import sql

# Hot-path statements (services.platform.sql): constant SQL, prepared once per connection.
_LOCK_PRODUCTS = (
    "SELECT sku, available FROM inventory.products WHERE sku = ANY($1::text[]) "
    "ORDER BY sku FOR UPDATE"
)
_SKUS_OF_ORDERS = "SELECT DISTINCT sku FROM inventory.reservations WHERE order_id = ANY($1::uuid[])"
_HOLD = (
    "UPDATE inventory.products AS p SET available = p.available - u.q, "
    "reserved = p.reserved + u.q, updated_at = now() "
    "FROM unnest($1::text[], $2::int[]) AS u(sku, q) "
    "WHERE p.sku = u.sku AND p.available >= u.q RETURNING p.sku"
)
_INSERT_RESERVATIONS = (
    "INSERT INTO inventory.reservations (reservation_id, order_id, sku, quantity, status) "
    "SELECT r, $2, s, q, $5 FROM unnest($1::uuid[], $3::text[], $4::int[]) AS u(r, s, q)"
)
_RECORD_OUTCOME = (
    "INSERT INTO inventory.reservation_outcomes (order_id, succeeded, reason, shortages) "
    "VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (order_id) DO NOTHING"
)
_OUTCOME = (
    "SELECT succeeded, reason, shortages::text AS shortages "
    "FROM inventory.reservation_outcomes WHERE order_id = $1"
)
_RESERVATIONS = (
    "SELECT reservation_id, sku, quantity, status FROM inventory.reservations "
    "WHERE order_id = $1 ORDER BY sku"
)
_RESERVATIONS_LOCKED = _RESERVATIONS + " FOR UPDATE"
_DEDUCT = (
    "UPDATE inventory.products AS p SET reserved = p.reserved - u.q, "
    "deducted = p.deducted + u.q, updated_at = now() "
    "FROM unnest($1::text[], $2::int[]) AS u(sku, q) WHERE p.sku = u.sku"
)
_RELEASE = (
    "UPDATE inventory.products AS p SET reserved = p.reserved - u.q, "
    "available = p.available + u.q, updated_at = now() "
    "FROM unnest($1::text[], $2::int[]) AS u(sku, q) WHERE p.sku = u.sku"
)
_SETTLE_RESERVATIONS = (
    "UPDATE inventory.reservations SET status = $2, updated_at = now() "
    "WHERE reservation_id = ANY($1::uuid[]) AND status = 'held'"
)


class StockInvariantError(RuntimeError):
    """A conditional update matched no row although the locked read said it would."""


async def lock_available(conn: AsyncConnection, skus: Sequence[str]) -> dict[str, int]:
    """Lock the products' rows in sku order (so concurrent reservations never deadlock)."""
    rows = await sql.fetch(conn, _LOCK_PRODUCTS, sorted(set(skus)))
    return {row["sku"]: row["available"] for row in rows}


async def skus_of_orders(conn: AsyncConnection, order_ids: Sequence[uuid.UUID]) -> set[str]:
    """The products the orders' reservations are on."""
    if not order_ids:
        return set()
    return {row["sku"] for row in await sql.fetch(conn, _SKUS_OF_ORDERS, list(order_ids))}


async def hold(conn: AsyncConnection, order_id: uuid.UUID, held: Sequence[Reservation]) -> None:
    """Move stock from available to reserved and write the reservation rows."""
    skus, quantities = _per_sku(held)
    moved = await sql.fetch(conn, _HOLD, skus, quantities)
    if len(moved) != len(skus):
        raise StockInvariantError(
            f"stock of {sorted(set(skus) - {r['sku'] for r in moved})} changed under its row lock"
        )
    await sql.execute(
        conn,
        _INSERT_RESERVATIONS,
        [r.reservation_id for r in held],
        order_id,
        [r.sku for r in held],
        [r.quantity for r in held],
        ReservationStatus.HELD.value,
    )


def _per_sku(reservations_: Sequence[Reservation]) -> tuple[list[str], list[int]]:
    """Quantities summed per product, in sku order (one counter update per product)."""
    totals: dict[str, int] = {}
    for r in reservations_:
        totals[r.sku] = totals.get(r.sku, 0) + r.quantity
    ordered = sorted(totals)
    return ordered, [totals[sku] for sku in ordered]


async def record_outcome(
    conn: AsyncConnection,
    order_id: uuid.UUID,
    reason: str | None,
    shortages: Sequence[StockShortage] = (),
) -> None:
    """Remember the first answer to reserving this order."""
    document = json.dumps([s.model_dump(mode="json") for s in shortages])
    await sql.execute(conn, _RECORD_OUTCOME, order_id, reason is None, reason, document)


async def outcome(
    conn: AsyncConnection, order_id: uuid.UUID
) -> tuple[bool, str | None, list[StockShortage]] | None:
    """The recorded answer for an order, or None when it was never reserved."""
    row = await sql.fetchrow(conn, _OUTCOME, order_id)
    if row is None:
        return None
    shortages = [StockShortage.model_validate(s) for s in json.loads(row["shortages"])]
    return row["succeeded"], row["reason"], shortages


async def order_reservations(
    conn: AsyncConnection, order_id: uuid.UUID, *, lock: bool = False
) -> list[tuple[Reservation, ReservationStatus]]:
    """An order's reservations with their status, in sku order (locked when asked)."""
    rows = await sql.fetch(conn, _RESERVATIONS_LOCKED if lock else _RESERVATIONS, order_id)
    return [
        (
            Reservation(reservation_id=r["reservation_id"], sku=r["sku"], quantity=r["quantity"]),
            ReservationStatus(r["status"]),
        )
        for r in rows
    ]


async def settle(conn: AsyncConnection, held: Sequence[Reservation], to: ReservationStatus) -> None:
    """Turn held reservations into deducted (sold) or released (back to available) stock."""
    if not held:
        return
    skus, quantities = _per_sku(held)
    counters = _DEDUCT if to is ReservationStatus.DEDUCTED else _RELEASE
    await sql.execute(conn, counters, skus, quantities)
    await sql.execute(conn, _SETTLE_RESERVATIONS, [r.reservation_id for r in held], to.value)


async def set_stock(conn: AsyncConnection, sku: str, available: int) -> None:
    """Create a product or set its available count (reserved and deducted stay)."""
    await conn.execute(
        pg_insert(products)
        .values(sku=sku, available=available)
        .on_conflict_do_update(
            index_elements=["sku"], set_={"available": available, "updated_at": func.now()}
        )
    )


async def stock(
    conn: AsyncConnection, skus: Sequence[str] | None = None
) -> list[dict[str, object]]:
    """Counters per product, for the CLI, the admin API and tests."""
    stmt = select(products.c.sku, products.c.available, products.c.reserved, products.c.deducted)
    if skus is not None:
        stmt = stmt.where(products.c.sku.in_(list(skus)))
    rows = await conn.execute(stmt.order_by(products.c.sku))
    return [dict(r._mapping) for r in rows]
