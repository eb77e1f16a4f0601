"""Checkout groups: the durable receipt of each checkout and the vendor orders it split into.

A checkout writes one group row (kept after its cart is gone) and one order-view row per
vendor order, with the ids `contracts.vendor_orders.split` gives, so they are the ids the
orders service derives from the same CheckoutStarted. The group's status and balance due are
computed from its vendor orders whenever it is read (`checkout_rules`), never stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import CheckoutPolicy, CheckoutStarted
from contracts.pricing import CheckoutPricing
from contracts.vendor_orders import VendorOrder, split
from services.cart import order_view
from services.cart.checkout_rules import GroupStatus, balance_due, group_status
from services.cart.order_view import OrderView
from services.cart.tables import checkout_groups


@dataclass(frozen=True, slots=True)
class GroupView:
    """One checkout group as its buyer sees it: the receipt and its vendor orders."""

    group_id: uuid.UUID
    buyer_id: str
    cart_id: uuid.UUID
    policy: CheckoutPolicy
    currency: str
    total: Decimal
    created_at: datetime
    orders: tuple[OrderView, ...]
    pricing: CheckoutPricing | None = None

    @property
    def status(self) -> GroupStatus:
        """processing, completed, partially_completed or failed."""
        return group_status(self.orders)

    @property
    def balance_due(self) -> Decimal:
        """The confirmed vendor orders' adjusted totals."""
        return balance_due(self.orders)


async def record_checkout(
    conn: AsyncConnection, started: CheckoutStarted
) -> tuple[VendorOrder, ...]:
    """Write the group of a checkout the cart started and its pending vendor orders."""
    assert started.cart_id is not None
    await conn.execute(
        checkout_groups.insert().values(
            group_id=started.order_id,
            buyer_id=started.buyer_id,
            cart_id=started.cart_id,
            policy=started.policy.value,
            currency=started.currency,
            total=started.total,
            pricing=None if started.pricing is None else started.pricing.model_dump(mode="json"),
        )
    )
    orders = split(started)
    await order_view.record_vendor_orders(conn, started, orders)
    return orders


async def find(conn: AsyncConnection, group_id: uuid.UUID, buyer_id: str) -> GroupView | None:
    """The buyer's checkout group with its vendor orders, or None (also when another buyer's)."""
    row = (
        await conn.execute(
            select(checkout_groups).where(
                checkout_groups.c.group_id == group_id, checkout_groups.c.buyer_id == buyer_id
            )
        )
    ).first()
    if row is None:
        return None
    return GroupView(
        group_id=row.group_id,
        buyer_id=row.buyer_id,
        cart_id=row.cart_id,
        policy=CheckoutPolicy(row.policy),
        currency=row.currency,
        total=row.total,
        created_at=row.created_at,
        orders=tuple(await order_view.of_group(conn, group_id, buyer_id)),
        pricing=None if row.pricing is None else CheckoutPricing.model_validate(row.pricing),
    )
