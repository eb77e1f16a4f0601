"""One checkout as an operator sees it: its timeline from every service's journal, and its rows now.

The timeline is read from the journals the consumers write in their own transactions (never
from Kafka): every message each service consumed (applied, duplicate, dead-lettered, with the
saga's transition) and produced, plus the operator actions on its saga, in the order they
happened. A checkout group's id (a marketplace checkout) or any of its vendor orders' ids
finds the whole group: the saga and the group's records under the group id, and each vendor
order's own records.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import MetaData, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ops.admin.queries import OrderView, SagaView
from saga import repository as saga_repo
from saga.repository import StoredSaga
from saga.tables import operator_actions
from services.cart import repository as cart_repo
from services.cart.tables import carts
from services.inventory import repository as inventory_repo
from services.orders import repository as orders_repo
from services.platform.journal import journal_table

OPERATOR = "operator"
"""The `service` of a timeline entry that is an operator action rather than a message."""


class TimelineEntry(BaseModel):
    """One thing that happened to the checkout: a message a service consumed or produced, or an
    operator action on its saga."""

    kind: Literal["message", "operator_action"]
    service: str
    """The service schema that journaled it (`operator` for an operator action)."""
    at: datetime
    """When its transaction started: a consumer's always starts after its producer's committed."""
    correlation_id: str
    """The record key: the group id, or a vendor order's id for that order's own events."""
    direction: Literal["in", "out"] | None
    """in: consumed (or raised inside the service); out: written to the outbox. None: an action."""
    message_type: str
    """The message type, or the action (`abort`, `retry`)."""
    message_id: uuid.UUID | None
    topic: str | None
    outcome: str
    """in: applied, duplicate, dead_lettered; out: produced; an action: applied or refused."""
    detail: str | None
    """The saga's transition, a rejection's reason, or who asked for an action and why."""


class OperatorActionView(BaseModel):
    """An operator's abort or retry of the saga, and what the transition table made of it."""

    id: int
    action: str
    actor: str
    reason: str
    requested_at: datetime
    outcome: str
    from_state: str | None
    to_state: str | None
    detail: str | None


class ReservationView(BaseModel):
    """One stock reservation of the checkout (held, deducted or released)."""

    reservation_id: uuid.UUID
    sku: str
    quantity: int
    status: str


class ClearanceView(BaseModel):
    """The saga's ClearCart as the cart service applied it: which cart, how many lines, when."""

    cart_id: uuid.UUID | None
    items_removed: int
    cleared_at: datetime


class CartView(BaseModel):
    """The cart the checkout came from, and when the saga's ClearCart emptied it."""

    cart_id: uuid.UUID
    buyer_id: str
    status: str
    currency: str
    order_id: uuid.UUID | None
    items: list[dict[str, Any]]
    cleared: ClearanceView | None


class CheckoutView(BaseModel):
    """A checkout: what happened to it, in order, and where its saga, orders, stock and cart are."""

    checkout_id: uuid.UUID
    """The id asked for."""
    group_id: uuid.UUID
    """The checkout (group) id: the saga's id, the CheckoutStarted's order_id."""
    saga: SagaView | None
    orders: list[OrderView]
    """Every vendor order of the group (one for a plain checkout)."""
    reservations: list[ReservationView]
    cart: CartView | None
    timeline: list[TimelineEntry]
    operator_actions: list[OperatorActionView]


async def checkout_view(
    conn: AsyncConnection, schemas: Sequence[str], checkout_id: uuid.UUID
) -> CheckoutView | None:
    """Everything known about a checkout (by group or vendor order id); None when nothing is."""
    group_id, orders = await _group_of(conn, checkout_id)
    saga = await saga_repo.load(conn, group_id)
    keys = [str(group_id), *(str(o["order_id"]) for o in orders if o["order_id"] != group_id)]
    actions = await _operator_actions(conn, group_id)
    view = CheckoutView(
        checkout_id=checkout_id,
        group_id=group_id,
        saga=SagaView.of(saga) if saga else None,
        orders=[OrderView.model_validate(o) for o in orders],
        reservations=await _reservations(conn, group_id),
        cart=await _cart(conn, group_id, saga),
        timeline=_merged(await _journal(conn, schemas, keys), actions, str(group_id)),
        operator_actions=actions,
    )
    known = view.saga or view.orders or view.reservations or view.cart or view.timeline
    return view if known else None


async def _group_of(
    conn: AsyncConnection, checkout_id: uuid.UUID
) -> tuple[uuid.UUID, list[dict[str, Any]]]:
    """The checkout's group id and its vendor orders; a vendor order's id leads to its group."""
    order = await orders_repo.get_order(conn, checkout_id)
    group_id = order["checkout_group_id"] if order else checkout_id
    return group_id, await orders_repo.group_orders(conn, group_id)


async def _journal(
    conn: AsyncConnection, schemas: Sequence[str], keys: Sequence[str]
) -> list[TimelineEntry]:
    """Journal rows of these keys from every schema, in the order they happened."""
    metadata, found = MetaData(), []
    for schema in schemas:
        table = journal_table(metadata, schema)
        rows = await conn.execute(
            select(table).where(table.c.correlation_id.in_(keys)).order_by(table.c.id)
        )
        found += [(r.recorded_at, schema, r.id, _message_entry(schema, r)) for r in rows]
    # A consuming transaction starts after its producer's committed, so the start times order
    # the services causally; within one schema (one time for one transaction) the id does.
    found.sort(key=lambda f: (f[0], f[1], f[2]))
    return [entry for *_, entry in found]


def _message_entry(schema: str, row: Any) -> TimelineEntry:
    return TimelineEntry(
        kind="message",
        service=schema,
        at=row.recorded_at,
        correlation_id=row.correlation_id,
        direction=row.direction,
        message_type=row.message_type,
        message_id=row.message_id,
        topic=row.topic,
        outcome=row.outcome,
        detail=row.detail,
    )


async def _operator_actions(conn: AsyncConnection, group_id: uuid.UUID) -> list[OperatorActionView]:
    table = operator_actions
    rows = await conn.execute(
        select(table).where(table.c.order_id == group_id).order_by(table.c.id)
    )
    return [OperatorActionView.model_validate(dict(r._mapping)) for r in rows]


def _merged(
    messages: list[TimelineEntry], actions: list[OperatorActionView], group_id: str
) -> list[TimelineEntry]:
    """The messages with the operator actions among them, by time (a message first on a tie)."""
    entries = [*messages, *(_action_entry(a, group_id) for a in actions)]
    # sorted() is stable and the messages come first, so messages keep their own order.
    return sorted(entries, key=lambda e: e.at)


def _action_entry(action: OperatorActionView, group_id: str) -> TimelineEntry:
    states = f"{action.from_state or '?'} → {action.to_state or '?'}"
    said = f"by {action.actor}: {action.reason}; {states}"
    return TimelineEntry(
        kind="operator_action",
        service=OPERATOR,
        at=action.requested_at,
        correlation_id=group_id,
        direction=None,
        message_type=action.action,
        message_id=None,
        topic=None,
        outcome=action.outcome,
        detail=f"{said}; {action.detail}" if action.detail else said,
    )


async def _reservations(conn: AsyncConnection, group_id: uuid.UUID) -> list[ReservationView]:
    held = await inventory_repo.order_reservations(conn, group_id)
    return [
        ReservationView(
            reservation_id=r.reservation_id, sku=r.sku, quantity=r.quantity, status=status.value
        )
        for r, status in held
    ]


async def _cart(
    conn: AsyncConnection, group_id: uuid.UUID, saga: StoredSaga | None
) -> CartView | None:
    """The cart the saga names, else the cart checked out as this order."""
    cart_id = saga.data.cart_id if saga else None
    if cart_id is None:
        cart_id = await conn.scalar(select(carts.c.cart_id).where(carts.c.order_id == group_id))
    cart = await cart_repo.get_cart(conn, cart_id) if cart_id else None
    if cart is None:
        return None
    cleared = await cart_repo.get_clearance(conn, group_id)
    return CartView(
        cart_id=cart.cart_id,
        buyer_id=cart.buyer_id,
        status=cart.status.value,
        currency=cart.currency,
        order_id=cart.order_id,
        items=[item.model_dump(mode="json", exclude_defaults=True) for item in cart.items],
        cleared=ClearanceView.model_validate(cleared) if cleared else None,
    )
