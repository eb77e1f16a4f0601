"""Cart use case: clear the cart an order was checked out from, once per order."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import ClearCart
from contracts.codec import Decoded
from services.cart import repository as repo
from services.cart.domain import NothingToClear, NotTheBuyers, plan_clearance
from services.platform.consumer import RejectedMessageError
from services.platform.outbox import OutboxMessage

log = logging.getLogger("checkout_saga.cart")


async def clear_cart(conn: AsyncConnection, decoded: Decoded) -> list[OutboxMessage]:
    """Empty the order's cart and record it; a second ClearCart for the order changes nothing."""
    cmd = decoded.message
    assert isinstance(cmd, ClearCart)
    if not await repo.claim_clearance(conn, cmd.order_id):
        log.info("cart of order %s already cleared", cmd.order_id)
        return []
    cart = await repo.find_cart_for_order(conn, cmd.order_id, cmd.buyer_id, cmd.cart_id)
    plan = plan_clearance(cart, cmd.order_id, cmd.buyer_id)
    if isinstance(plan, NotTheBuyers):
        # Raising rolls back the claim too: nothing about this order is recorded.
        raise RejectedMessageError(plan.reason)
    if isinstance(plan, NothingToClear):
        # An upstream may start checkouts without a cart here; the record still proves
        # that the order's ClearCart was handled.
        log.info("no cart for order %s of buyer %r; nothing to clear", cmd.order_id, cmd.buyer_id)
        return []
    removed = await repo.empty_cart(conn, plan.cart_id)
    await repo.record_clearance(conn, cmd.order_id, plan.cart_id, removed)
    return []
