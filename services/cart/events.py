"""The cart's events for downstream consumers, built from cart changes and written to its outbox."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import CartAbandoned, CartCheckedOut, CartItemAdded, CartItemRemoved, Message
from services.cart.domain import LineChange, ShoppingCart
from services.cart.tables import outbox as outbox_table
from services.platform import outbox
from services.platform.outbox import OutboxMessage


def item_events(cart_id: uuid.UUID, buyer_id: str, changes: Sequence[LineChange]) -> list[Message]:
    """One `cart.item.added` or `cart.item.removed` per line whose quantity moved."""
    return [
        _added(cart_id, buyer_id, c) if c.delta > 0 else _removed(cart_id, buyer_id, c)
        for c in changes
    ]


def _added(cart_id: uuid.UUID, buyer_id: str, change: LineChange) -> CartItemAdded:
    line = change.line
    return CartItemAdded(
        order_id=cart_id,
        buyer_id=buyer_id,
        item_id=line.item_id,
        sku=line.sku,
        quantity=change.delta,
        line_quantity=change.quantity,
        offer_id=line.snapshot.offer_id,
        unit_price=line.snapshot.unit_price,
        currency=line.snapshot.currency,
    )


def _removed(cart_id: uuid.UUID, buyer_id: str, change: LineChange) -> CartItemRemoved:
    return CartItemRemoved(
        order_id=cart_id,
        buyer_id=buyer_id,
        item_id=change.line.item_id,
        sku=change.line.sku,
        quantity=-change.delta,
        line_quantity=change.quantity,
    )


def checked_out(cart: ShoppingCart, order_id: uuid.UUID) -> CartCheckedOut:
    """`cart.checked_out`: the cart became this order."""
    return CartCheckedOut(
        order_id=cart.cart_id,
        buyer_id=cart.buyer_id,
        placed_order_id=order_id,
        currency=cart.currency,
        total=cart.total,
        item_count=len(cart.lines),
    )


def abandoned(
    cart_id: uuid.UUID, buyer_id: str, idle_since: datetime, item_count: int
) -> CartAbandoned:
    """`cart.abandoned`: the cart sat idle past the TTL."""
    return CartAbandoned(
        order_id=cart_id, buyer_id=buyer_id, idle_since=idle_since, item_count=item_count
    )


async def emit(conn: AsyncConnection, lanes: int, messages: Sequence[Message]) -> None:
    """Write messages to the cart's outbox, in this transaction, in order."""
    await outbox.write(conn, outbox_table, [OutboxMessage.of(m) for m in messages], lanes)
