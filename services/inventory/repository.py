"""Inventory persistence: locked reads and conditional counter updates on the inventory schema."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import Reservation, StockShortage
from services.inventory.domain import ReservationStatus
from services.inventory.tables import products, reservation_outcomes, reservations


class StockInvariantError(RuntimeError):
    """A conditional update matched no row although the locked read said it would."""


async def lock_available(conn: AsyncConnection, skus: Sequence[str]) -> dict[str, int]:
    """Lock the products' rows in sku order (so concurrent reservations never deadlock)."""
    rows = await conn.execute(
        select(products.c.sku, products.c.available)
        .where(products.c.sku.in_(sorted(skus)))
        .order_by(products.c.sku)
        .with_for_update()
    )
    return {row.sku: row.available for row in rows}


async def skus_of_orders(conn: AsyncConnection, order_ids: Sequence[uuid.UUID]) -> set[str]:
    """The products the orders' reservations are on."""
    if not order_ids:
        return set()
    rows = await conn.execute(
        select(reservations.c.sku).distinct().where(reservations.c.order_id.in_(order_ids))
    )
    return {row.sku for row in rows}


async def hold(conn: AsyncConnection, order_id: uuid.UUID, held: Sequence[Reservation]) -> None:
    """Move stock from available to reserved and write the reservation rows."""
    for r in held:
        result = await conn.execute(
            update(products)
            .where(and_(products.c.sku == r.sku, products.c.available >= r.quantity))
            .values(
                available=products.c.available - r.quantity,
                reserved=products.c.reserved + r.quantity,
                updated_at=func.now(),
            )
        )
        if result.rowcount != 1:
            raise StockInvariantError(f"stock of {r.sku} changed under its row lock")
    await conn.execute(
        reservations.insert(),
        [
            {
                "reservation_id": r.reservation_id,
                "order_id": order_id,
                "sku": r.sku,
                "quantity": r.quantity,
                "status": ReservationStatus.HELD,
            }
            for r in held
        ],
    )


async def record_outcome(
    conn: AsyncConnection,
    order_id: uuid.UUID,
    reason: str | None,
    shortages: Sequence[StockShortage] = (),
) -> None:
    """Remember the first answer to reserving this order."""
    await conn.execute(
        pg_insert(reservation_outcomes)
        .values(
            order_id=order_id,
            succeeded=reason is None,
            reason=reason,
            shortages=[s.model_dump(mode="json") for s in shortages],
        )
        .on_conflict_do_nothing(index_elements=["order_id"])
    )


async def outcome(
    conn: AsyncConnection, order_id: uuid.UUID
) -> tuple[bool, str | None, list[StockShortage]] | None:
    """The recorded answer for an order, or None when it was never reserved."""
    row = (
        await conn.execute(
            select(reservation_outcomes).where(reservation_outcomes.c.order_id == order_id)
        )
    ).first()
    if row is None:
        return None
    return row.succeeded, row.reason, [StockShortage.model_validate(s) for s in row.shortages]


async def order_reservations(
    conn: AsyncConnection, order_id: uuid.UUID, *, lock: bool = False
) -> list[tuple[Reservation, ReservationStatus]]:
    """An order's reservations with their status, in sku order (locked when asked)."""
    stmt = (
        select(reservations).where(reservations.c.order_id == order_id).order_by(reservations.c.sku)
    )
    rows = await conn.execute(stmt.with_for_update() if lock else stmt)
    return [
        (
            Reservation(reservation_id=r.reservation_id, sku=r.sku, quantity=r.quantity),
            ReservationStatus(r.status),
        )
        for r in rows
    ]


async def settle(conn: AsyncConnection, held: Sequence[Reservation], to: ReservationStatus) -> None:
    """Turn held reservations into deducted (sold) or released (back to available) stock."""
    for r in sorted(held, key=lambda r: r.sku):
        counters = (
            {"deducted": products.c.deducted + r.quantity}
            if to is ReservationStatus.DEDUCTED
            else {"available": products.c.available + r.quantity}
        )
        await conn.execute(
            update(products)
            .where(products.c.sku == r.sku)
            .values(reserved=products.c.reserved - r.quantity, updated_at=func.now(), **counters)
        )
        await conn.execute(
            update(reservations)
            .where(
                reservations.c.reservation_id == r.reservation_id,
                reservations.c.status == ReservationStatus.HELD,
            )
            .values(status=to, updated_at=func.now())
        )


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
