"""The cart's view of the vendor orders its carts became, kept current from the order events.

The cart never reads the orders schema: it records each vendor order of a checkout as
`pending` and moves the row forward on `order_created` (-> created), `order_confirmed`
(-> confirmed) and `order_marked_failed` (-> failed). Events may arrive in any order (they
travel on different topics), so a status only ever moves forward: a late `order_created` never
undoes a final one. A final event of a marketplace checkout also says which lines went ahead,
which were rejected (and why) and the adjusted total; a plain one says none of it, and the
order's lines and total stay as checked out.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import CheckoutStarted, LineItem, RejectedLine
from contracts.vendor_orders import VendorOrder
from services.cart.checkout_rules import OrderProgress
from services.cart.tables import checkout_groups, order_status
from services.platform import sql

STATES: dict[OrderProgress, str] = {
    OrderProgress.PENDING: "Submitted",
    OrderProgress.CREATED: "Submitted",
    OrderProgress.CONFIRMED: "Confirmed",
    OrderProgress.FAILED: "Failed",
}
"""The order state the API shows for each progress (the saga's own words for its outcome)."""

_EARLIER: dict[OrderProgress, tuple[OrderProgress, ...]] = {
    OrderProgress.PENDING: (),
    OrderProgress.CREATED: (OrderProgress.PENDING,),
    OrderProgress.CONFIRMED: (OrderProgress.PENDING, OrderProgress.CREATED),
    OrderProgress.FAILED: (OrderProgress.PENDING, OrderProgress.CREATED),
}


# A hot-path statement (services.platform.sql): constant SQL, prepared once per connection.
# The outcome columns are only written when the event carries them ($5 not null).
_ADVANCE = (
    "UPDATE cart.order_status SET status = $2, failure_reason = $3, updated_at = now(), "
    "adjusted_total = COALESCE($5, adjusted_total), "
    "accepted_items = CASE WHEN $5::numeric IS NULL THEN accepted_items ELSE $6::jsonb END, "
    "rejected = CASE WHEN $5::numeric IS NULL THEN rejected ELSE $7::jsonb END "
    "WHERE order_id = $1 AND status = ANY($4::text[])"
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a final event says of a marketplace order: the lines going ahead, the rejected, total."""

    adjusted_total: Decimal
    accepted: Sequence[LineItem]
    rejected: Sequence[RejectedLine]


@dataclass(frozen=True, slots=True)
class OrderView:
    """One (vendor) order as its buyer sees it through the cart API."""

    order_id: uuid.UUID
    buyer_id: str
    cart_id: uuid.UUID
    progress: OrderProgress
    failure_reason: str | None
    currency: str
    total: Decimal
    items: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime
    checkout_group_id: uuid.UUID | None = None
    vendor_id: str | None = None
    outcome_total: Decimal | None = None
    accepted_items: list[dict[str, Any]] | None = None
    rejected: list[dict[str, Any]] = field(default_factory=list)

    @property
    def state(self) -> str:
        """Submitted, Confirmed or Failed."""
        return STATES[self.progress]

    @property
    def adjusted_total(self) -> Decimal:
        """The total after rejected lines; the checked-out total until an event says otherwise."""
        return self.total if self.outcome_total is None else self.outcome_total

    @property
    def accepted(self) -> list[dict[str, Any]]:
        """The lines going ahead; every checked-out line until an event says otherwise."""
        return self.items if self.accepted_items is None else self.accepted_items


def _lines(items: Sequence[LineItem]) -> list[dict[str, Any]]:
    return [item.model_dump(mode="json") for item in items]


async def record_vendor_orders(
    conn: AsyncConnection, started: CheckoutStarted, orders: Sequence[VendorOrder]
) -> None:
    """Remember each vendor order of a checkout the cart started, as pending, with its lines."""
    assert started.cart_id is not None
    await conn.execute(
        order_status.insert(),
        [
            {
                "order_id": order.order_id,
                "buyer_id": started.buyer_id,
                "cart_id": started.cart_id,
                "status": OrderProgress.PENDING,
                "currency": started.currency,
                "total": order.total,
                "items": _lines(order.items),
                "checkout_group_id": started.order_id,
                "vendor_id": order.vendor_id,
            }
            for order in orders
        ],
    )


async def advance(
    conn: AsyncConnection,
    order_id: uuid.UUID,
    to: OrderProgress,
    reason: str | None = None,
    outcome: Outcome | None = None,
) -> bool:
    """Move an order forward, with its outcome if known; False when unknown or already as far."""
    earlier = [p.value for p in _EARLIER[to]]
    total, accepted, rejected = None, None, None
    if outcome is not None:
        total = outcome.adjusted_total
        accepted = json.dumps(_lines(outcome.accepted))
        rejected = json.dumps([line.model_dump(mode="json") for line in outcome.rejected])
    args = (order_id, to.value, reason, earlier, total, accepted, rejected)
    return await sql.execute(conn, _ADVANCE, *args) == 1


def _of(row: Any) -> OrderView:
    return OrderView(
        order_id=row.order_id,
        buyer_id=row.buyer_id,
        cart_id=row.cart_id,
        progress=OrderProgress(row.status),
        failure_reason=row.failure_reason,
        currency=row.currency,
        total=row.total,
        items=row.items,
        created_at=row.created_at,
        updated_at=row.updated_at,
        checkout_group_id=row.checkout_group_id,
        vendor_id=row.vendor_id,
        outcome_total=row.adjusted_total,
        accepted_items=row.accepted_items,
        rejected=row.rejected,
    )


def _buyers(buyer_id: str) -> Select[Any]:
    return select(order_status).where(order_status.c.buyer_id == buyer_id)


async def find(conn: AsyncConnection, order_id: uuid.UUID, buyer_id: str) -> OrderView | None:
    """The buyer's order, or None (also when it is another buyer's)."""
    stmt = _buyers(buyer_id).where(order_status.c.order_id == order_id)
    row = (await conn.execute(stmt)).first()
    return None if row is None else _of(row)


async def of_group(conn: AsyncConnection, group_id: uuid.UUID, buyer_id: str) -> list[OrderView]:
    """The buyer's vendor orders of a checkout group, in split order (no vendor, then by vendor)."""
    stmt = _buyers(buyer_id).where(order_status.c.checkout_group_id == group_id)
    orders = [_of(row) for row in await conn.execute(stmt)]
    # Sorted here, not by the database's collation: split() orders vendors by Python's rules.
    return sorted(orders, key=lambda o: (o.vendor_id is not None, o.vendor_id or ""))


async def failed_group(conn: AsyncConnection, order_id: uuid.UUID) -> uuid.UUID | None:
    """The order's checkout group when every vendor order of it failed, else None.

    Locks the group's row first: two vendor orders failing at once are then judged one after
    the other, so the second always sees the first one's failure.
    """
    group_id = (
        await conn.execute(
            select(order_status.c.checkout_group_id).where(order_status.c.order_id == order_id)
        )
    ).scalar()
    if group_id is None:
        return None
    await conn.execute(
        select(checkout_groups.c.group_id)
        .where(checkout_groups.c.group_id == group_id)
        .with_for_update()
    )
    statuses = await conn.execute(
        select(order_status.c.status).where(order_status.c.checkout_group_id == group_id)
    )
    failed = [row.status == OrderProgress.FAILED for row in statuses]
    return group_id if failed and all(failed) else None
