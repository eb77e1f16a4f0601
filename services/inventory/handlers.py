"""Inventory use cases: reserve, deduct and release stock, each inside the consumer transaction."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import (
    CheckoutPolicy,
    DeductStock,
    ReleaseStockReservations,
    ReserveStockForOrder,
    StockReservationCompleted,
    StockReservationFailed,
    StockShortage,
)
from contracts.codec import Decoded
from services.inventory import repository as repo
from services.inventory.domain import (
    Refused,
    ReservationStatus,
    deductible,
    plan_reservation,
    releasable,
)
from services.platform.consumer import RejectedMessageError
from services.platform.outbox import OutboxMessage, reply

log = logging.getLogger("checkout_saga.inventory")


class LockStockFirst:
    """Batch hooks: lock every product a batch touches, in sku order, before any step runs.

    One order's rows are locked in sku order by its step; a batch of several orders would take
    them in order per order only, and two batches could deadlock. Locked up front, the steps
    find every lock already held.
    """

    async def before_batch(self, conn: AsyncConnection, batch: Sequence[Decoded]) -> None:
        """Lock the products of every reservation and settlement in the batch."""
        skus = {
            item.sku
            for d in batch
            if isinstance(d.message, ReserveStockForOrder)
            for item in d.message.items
        }
        settling = [
            d.message.order_id
            for d in batch
            if isinstance(d.message, DeductStock | ReleaseStockReservations)
        ]
        skus |= await repo.skus_of_orders(conn, settling)
        if skus:
            await repo.lock_available(conn, sorted(skus))

    async def after_batch(self, conn: AsyncConnection) -> None:
        """Nothing to write back: each step wrote its own rows."""


async def reserve_stock(conn: AsyncConnection, decoded: Decoded) -> list[OutboxMessage]:
    """Hold the lines (all or none, or partial: what can be); a repeat gets the first answer."""
    cmd = decoded.message
    assert isinstance(cmd, ReserveStockForOrder)
    previous = await repo.outcome(conn, cmd.order_id)
    if previous is None:
        available = await repo.lock_available(conn, [i.sku for i in cmd.items])
        partial = cmd.policy is CheckoutPolicy.PARTIAL
        plan = plan_reservation(cmd.order_id, cmd.items, available, partial=partial)
        if isinstance(plan, Refused):
            await repo.record_outcome(conn, cmd.order_id, plan.reason, plan.shortages)
            answer: StockReservationCompleted | StockReservationFailed = StockReservationFailed(
                order_id=cmd.order_id, reason=plan.reason, shortages=list(plan.shortages)
            )
        else:
            await repo.hold(conn, cmd.order_id, plan.reservations)
            # A success keeps its rejected lines as its shortages, for a repeated request.
            await repo.record_outcome(conn, cmd.order_id, None, plan.rejected)
            answer = StockReservationCompleted(
                order_id=cmd.order_id,
                reservations=list(plan.reservations),
                rejected=list(plan.rejected),
            )
    else:
        answer = await _previous_answer(conn, cmd, previous)
    return [reply(answer, decoded.envelope)]


async def _previous_answer(
    conn: AsyncConnection,
    cmd: ReserveStockForOrder,
    previous: tuple[bool, str | None, list[StockShortage]],
) -> StockReservationCompleted | StockReservationFailed:
    succeeded, reason, shortages = previous
    if not succeeded:
        return StockReservationFailed(
            order_id=cmd.order_id, reason=reason or "refused", shortages=shortages
        )
    held = [r for r, _ in await repo.order_reservations(conn, cmd.order_id)]
    return StockReservationCompleted(order_id=cmd.order_id, reservations=held, rejected=shortages)


async def deduct_stock(conn: AsyncConnection, decoded: Decoded) -> list[OutboxMessage]:
    """Turn the order's held reservations into sold stock; deducting twice changes nothing."""
    cmd = decoded.message
    assert isinstance(cmd, DeductStock)
    rows = await repo.order_reservations(conn, cmd.order_id, lock=True)
    if not rows:
        raise RejectedMessageError(f"no reservations for order {cmd.order_id} to deduct")
    statuses = {r.reservation_id: s for r, s in rows}
    ids = set(deductible(statuses))
    if any(s is ReservationStatus.RELEASED for s in statuses.values()):
        # The saga only confirms from StockReserved, so this is a bug upstream: say so loudly.
        log.error("DeductStock for an order with released reservations: %s", cmd.order_id)
    await repo.settle(
        conn, [r for r, _ in rows if r.reservation_id in ids], ReservationStatus.DEDUCTED
    )
    return []


async def release_stock_reservations(
    conn: AsyncConnection, decoded: Decoded
) -> list[OutboxMessage]:
    """Give held stock back; deducted reservations stay sold, released ones stay released."""
    cmd = decoded.message
    assert isinstance(cmd, ReleaseStockReservations)
    rows = await repo.order_reservations(conn, cmd.order_id, lock=True)
    ids = set(releasable({r.reservation_id: s for r, s in rows}, cmd.reservation_ids))
    await repo.settle(
        conn, [r for r, _ in rows if r.reservation_id in ids], ReservationStatus.RELEASED
    )
    return []
