"""Orders persistence: a group's vendor orders created and locked together, early commands parked.

Parked commands are keyed by the checkout group id, as the saga's commands are.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import LineCharge, LineItem, RejectedLine
from services.orders.domain import ZERO, Order, OrderStatus
from services.orders.tables import orders, pending_commands
from services.platform import sql

# Namespaces the bigint advisory locks of this schema (the relay uses the two-int4 key space).
_ORDER_LOCK_SALT = 0x6F72646572730000  # "orders\0\0"

_LINES = TypeAdapter(tuple[LineItem, ...])
_REJECTED = TypeAdapter(tuple[RejectedLine, ...])
_CHARGES = TypeAdapter(tuple[LineCharge, ...])


@dataclass(frozen=True, slots=True)
class ParkedCommand:
    """A command that arrived before its order: its id, type and payload, in arrival order."""

    id: int
    message_id: uuid.UUID
    message_type: str
    payload: dict[str, Any]


# Hot-path statements (services.platform.sql): constant SQL, prepared once per connection.
_LOCK_ORDER_ID = "SELECT pg_advisory_xact_lock($1::bigint)"
# A group is created whole or not at all, so one row of it means it exists: a second
# CheckoutStarted for it (even naming other vendors) creates nothing.
_INSERT_GROUP = (
    "INSERT INTO orders.orders (order_id, checkout_group_id, vendor_id, buyer_id, status, "
    "currency, marketplace, total, items, charges, shipping_share) "
    "SELECT u.o, $2, u.v, $3, $4, $5, $6, u.t, CAST(u.i AS jsonb), CAST(u.c AS jsonb), u.s "
    "FROM unnest($1::uuid[], $7::text[], $8::numeric[], $9::text[], $10::text[], "
    "$11::numeric[]) AS u(o, v, t, i, c, s) "
    "WHERE NOT EXISTS (SELECT 1 FROM orders.orders WHERE checkout_group_id = $2) "
    "ON CONFLICT (order_id) DO NOTHING RETURNING order_id"
)
# In order id order, so that two transactions lock a group's rows in the same order.
_LOCK_GROUP = (
    "SELECT order_id, checkout_group_id, vendor_id, buyer_id, currency, marketplace, status, "
    "items::text AS items, payment_id, failure_reason, rejected::text AS rejected, "
    "charges::text AS charges, shipping_share, adjusted_total "
    "FROM orders.orders WHERE checkout_group_id = $1 ORDER BY order_id FOR UPDATE"
)
_APPLY_CHANGES = (
    "UPDATE orders.orders AS o SET status = c.status, payment_id = c.payment_id, "
    "failure_reason = c.failure_reason, rejected = CAST(c.rejected AS jsonb), "
    "adjusted_total = c.adjusted_total, updated_at = now() "
    "FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::numeric[]) "
    "AS c(order_id, status, payment_id, failure_reason, rejected, adjusted_total) "
    "WHERE o.order_id = c.order_id"
)
_TAKE_PARKED = (
    "DELETE FROM orders.pending_commands WHERE order_id = $1 "
    "RETURNING id, message_id, message_type, payload::text AS payload"
)


def _lock_key(order_id: uuid.UUID) -> int:
    # pg_advisory_xact_lock takes a signed bigint: fold the uuid's 128 bits into 64.
    folded = (order_id.int >> 64) ^ (order_id.int & (2**64 - 1)) ^ _ORDER_LOCK_SALT
    return folded - 2**64 if folded >= 2**63 else folded


async def lock_order_id(conn: AsyncConnection, group_id: uuid.UUID) -> None:
    """Serialize creating a group's orders with parking its commands, even before they exist.

    Without it a command could find no order, a concurrent CheckoutStarted could create the
    group and read no parked commands, and then the command would be parked forever.
    """
    await sql.execute(conn, _LOCK_ORDER_ID, _lock_key(group_id))


async def insert_group(conn: AsyncConnection, group: Sequence[Order]) -> bool:
    """Create a group's vendor orders in status created; False when the group already exists."""
    first = group[0]
    rows = await sql.fetch(
        conn,
        _INSERT_GROUP,
        [order.order_id for order in group],
        first.checkout_group_id,
        first.buyer_id,
        OrderStatus.CREATED.value,
        first.currency,
        first.marketplace,
        [order.vendor_id for order in group],
        [order.total for order in group],
        [_LINES.dump_json(order.items).decode() for order in group],
        # NULL for an unpriced checkout's orders: their lines cost quantity x unit price.
        [_CHARGES.dump_json(o.charges).decode() if o.charges else None for o in group],
        [order.shipping_share if order.charges else None for order in group],
    )
    return bool(rows)


async def lock_group(conn: AsyncConnection, group_id: uuid.UUID) -> list[Order]:
    """The group's vendor orders, locked until the transaction ends; empty when none exists."""
    return [_order(row) for row in await sql.fetch(conn, _LOCK_GROUP, group_id)]


def _order(row: asyncpg.Record) -> Order:
    return Order(
        order_id=row["order_id"],
        checkout_group_id=row["checkout_group_id"],
        vendor_id=row["vendor_id"],
        buyer_id=row["buyer_id"],
        currency=row["currency"],
        marketplace=row["marketplace"],
        items=_LINES.validate_json(row["items"]),
        status=OrderStatus(row["status"]),
        payment_id=row["payment_id"],
        failure_reason=row["failure_reason"],
        rejected=_REJECTED.validate_json(row["rejected"]),
        charges=() if row["charges"] is None else _CHARGES.validate_json(row["charges"]),
        shipping_share=row["shipping_share"] or ZERO,
        settled_total=row["adjusted_total"],
    )


async def save_changes(conn: AsyncConnection, changed: Sequence[Order]) -> None:
    """Write the orders a step changed: status, payment or reason, rejected lines, adjusted total."""
    if not changed:
        return
    await sql.execute(
        conn,
        _APPLY_CHANGES,
        [order.order_id for order in changed],
        [order.status.value for order in changed],
        [order.payment_id for order in changed],
        [order.failure_reason for order in changed],
        [_REJECTED.dump_json(order.rejected).decode() for order in changed],
        [order.adjusted_total for order in changed],
    )


async def park(
    conn: AsyncConnection,
    order_id: uuid.UUID,
    message_id: uuid.UUID,
    message_type: str,
    payload: dict[str, Any],
) -> None:
    """Keep a command until its group (order_id) is created (a re-parked message id is ignored)."""
    await conn.execute(
        pg_insert(pending_commands)
        .values(
            order_id=order_id, message_id=message_id, message_type=message_type, payload=payload
        )
        .on_conflict_do_nothing(index_elements=["message_id"])
    )


async def take_parked(conn: AsyncConnection, order_id: uuid.UUID) -> list[ParkedCommand]:
    """Remove and return the group's parked commands, in the order they arrived."""
    rows = await sql.fetch(conn, _TAKE_PARKED, order_id)
    parked = [
        ParkedCommand(r["id"], r["message_id"], r["message_type"], json.loads(r["payload"]))
        for r in rows
    ]
    return sorted(parked, key=lambda p: p.id)


async def group_orders(conn: AsyncConnection, group_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every column of a group's vendor orders, by order id, for operators and tests."""
    rows = await conn.execute(
        select(orders).where(orders.c.checkout_group_id == group_id).order_by(orders.c.order_id)
    )
    return [dict(row._mapping) for row in rows]


async def get_order(conn: AsyncConnection, order_id: uuid.UUID) -> dict[str, Any] | None:
    """Every column of one order, for the API, the CLI and tests."""
    row = (await conn.execute(select(orders).where(orders.c.order_id == order_id))).first()
    return None if row is None else dict(row._mapping)


async def parked_commands(conn: AsyncConnection, order_id: uuid.UUID) -> list[ParkedCommand]:
    """The order's parked commands without removing them, for operators and tests."""
    rows = await conn.execute(
        select(
            pending_commands.c.id,
            pending_commands.c.message_id,
            pending_commands.c.message_type,
            pending_commands.c.payload,
        )
        .where(pending_commands.c.order_id == order_id)
        .order_by(pending_commands.c.id)
    )
    return [ParkedCommand(r.id, r.message_id, r.message_type, r.payload) for r in rows]
