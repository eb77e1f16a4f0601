"""The cart's view of the orders its carts became, kept current from the order service's events.

The cart never reads the orders schema: it records each checkout as `pending` and moves the
row forward on `order_created` (-> created), `order_confirmed` (-> confirmed) and
`order_marked_failed` (-> failed). Events may arrive in any order (they travel on different
topics), so a status only ever moves forward: a late `order_created` never undoes a final one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import CheckoutStarted
from services.cart.tables import order_status
from services.platform import sql


class OrderProgress(StrEnum):
    """What the cart knows of an order: checked out, created by orders, then final."""

    PENDING = "pending"
    CREATED = "created"
    CONFIRMED = "confirmed"
    FAILED = "failed"


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
_ADVANCE = (
    "UPDATE cart.order_status SET status = $2, failure_reason = $3, updated_at = now() "
    "WHERE order_id = $1 AND status = ANY($4::text[])"
)


@dataclass(frozen=True, slots=True)
class OrderView:
    """One order as its buyer sees it through the cart API."""

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

    @property
    def state(self) -> str:
        """Submitted, Confirmed or Failed."""
        return STATES[self.progress]


async def record_checkout(conn: AsyncConnection, started: CheckoutStarted) -> None:
    """Remember a checkout the cart started, as pending, with its line snapshot."""
    assert started.cart_id is not None
    await conn.execute(
        order_status.insert().values(
            order_id=started.order_id,
            buyer_id=started.buyer_id,
            cart_id=started.cart_id,
            status=OrderProgress.PENDING,
            currency=started.currency,
            total=started.total,
            items=[item.model_dump(mode="json") for item in started.items],
        )
    )


async def advance(
    conn: AsyncConnection, order_id: uuid.UUID, to: OrderProgress, reason: str | None = None
) -> bool:
    """Move an order forward; False when it is unknown here or already as far (or final)."""
    earlier = [p.value for p in _EARLIER[to]]
    return await sql.execute(conn, _ADVANCE, order_id, to.value, reason, earlier) == 1


async def find(conn: AsyncConnection, order_id: uuid.UUID, buyer_id: str) -> OrderView | None:
    """The buyer's order, or None (also when it is another buyer's)."""
    row = (
        await conn.execute(
            select(order_status).where(
                order_status.c.order_id == order_id, order_status.c.buyer_id == buyer_id
            )
        )
    ).first()
    if row is None:
        return None
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
    )
