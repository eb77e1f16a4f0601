"""Cart consumer use cases: clear an order's cart once; follow order events into the order view.

When every vendor order of a checkout failed, the promotion uses it took are given back.

The order events of a marketplace checkout name the vendor order; their final ones also carry
its accepted lines, rejected lines and adjusted total, which the view keeps. Plain events carry
none of it and move the status only, as before.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import ClearCart, OrderConfirmed, OrderCreated, OrderMarkedFailed
from contracts.codec import Decoded
from services.cart import order_view, redemptions
from services.cart import repository as repo
from services.cart.checkout_rules import OrderProgress
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
        log.debug("no cart for order %s of buyer %r; nothing to clear", cmd.order_id, cmd.buyer_id)
        return []
    removed = await repo.empty_cart(conn, plan.cart_id)
    await repo.record_clearance(conn, cmd.order_id, plan.cart_id, removed)
    return []


async def record_order_created(conn: AsyncConnection, decoded: Decoded) -> list[OutboxMessage]:
    """The order service created an order the cart checked out: show it as created."""
    event = decoded.message
    assert isinstance(event, OrderCreated)
    await _advance(conn, event.order_id, OrderProgress.CREATED)
    return []


async def record_order_confirmed(conn: AsyncConnection, decoded: Decoded) -> list[OutboxMessage]:
    """The order was paid and confirmed: show it as confirmed."""
    event = decoded.message
    assert isinstance(event, OrderConfirmed)
    await _advance(conn, event.order_id, OrderProgress.CONFIRMED, outcome=_outcome(event))
    return []


async def record_order_failed(conn: AsyncConnection, decoded: Decoded) -> list[OutboxMessage]:
    """The order failed: show it as failed, with the reason."""
    event = decoded.message
    assert isinstance(event, OrderMarkedFailed)
    await _advance(conn, event.order_id, OrderProgress.FAILED, event.reason, _outcome(event))
    group_id = await order_view.failed_group(conn, event.order_id)
    if group_id is not None:
        # Nothing was bought: the promotion uses the checkout took are free again.
        returned = await redemptions.give_back(conn, group_id)
        if returned:
            log.info("checkout %s failed: %d promotion use(s) given back", group_id, returned)
    return []


def _outcome(event: OrderConfirmed | OrderMarkedFailed) -> order_view.Outcome | None:
    """The lines and total a final event carries; None for a plain event (it carries none)."""
    if event.total is None:
        return None
    return order_view.Outcome(event.total, event.items, event.rejected)


async def _advance(
    conn: AsyncConnection,
    order_id: uuid.UUID,
    to: OrderProgress,
    reason: str | None = None,
    outcome: order_view.Outcome | None = None,
) -> None:
    if not await order_view.advance(conn, order_id, to, reason, outcome):
        # Orders started by upstreams without this cart, and events that arrive after a
        # later status (another topic overtook them), change nothing.
        log.debug("order %s not moved to %s", order_id, to)
