"""Orders persistence: order rows locked for change, commands parked until their order exists."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.orders.domain import Change, NewOrder, Order, OrderStatus
from services.orders.tables import orders, pending_commands
from services.platform import sql

# Namespaces the bigint advisory locks of this schema (the relay uses the two-int4 key space).
_ORDER_LOCK_SALT = 0x6F72646572730000  # "orders\0\0"


@dataclass(frozen=True, slots=True)
class ParkedCommand:
    """A command that arrived before its order: its id, type and payload, in arrival order."""

    id: int
    message_id: uuid.UUID
    message_type: str
    payload: dict[str, Any]


# Hot-path statements (services.platform.sql): constant SQL, prepared once per connection.
_LOCK_ORDER_ID = "SELECT pg_advisory_xact_lock($1::bigint)"
_INSERT_ORDER = (
    "INSERT INTO orders.orders (order_id, buyer_id, status, currency, total, items) "
    "VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT (order_id) DO NOTHING RETURNING order_id"
)
_LOCK_ORDER = (
    "SELECT order_id, status, payment_id, failure_reason FROM orders.orders "
    "WHERE order_id = $1 FOR UPDATE"
)
_APPLY_CHANGE = (
    "UPDATE orders.orders SET status = $2, payment_id = $3, failure_reason = $4, "
    "updated_at = now() WHERE order_id = $1"
)
_TAKE_PARKED = (
    "DELETE FROM orders.pending_commands WHERE order_id = $1 "
    "RETURNING id, message_id, message_type, payload::text AS payload"
)


def _lock_key(order_id: uuid.UUID) -> int:
    # pg_advisory_xact_lock takes a signed bigint: fold the uuid's 128 bits into 64.
    folded = (order_id.int >> 64) ^ (order_id.int & (2**64 - 1)) ^ _ORDER_LOCK_SALT
    return folded - 2**64 if folded >= 2**63 else folded


async def lock_order_id(conn: AsyncConnection, order_id: uuid.UUID) -> None:
    """Serialize creating an order with parking its commands, even before its row exists.

    Without it a command could find no order, a concurrent CheckoutStarted could create it
    and read no parked commands, and then the command would be parked forever.
    """
    await sql.execute(conn, _LOCK_ORDER_ID, _lock_key(order_id))


async def insert_order(conn: AsyncConnection, order: NewOrder) -> bool:
    """Create the order in status created; False when it already exists."""
    row = await sql.fetchrow(
        conn,
        _INSERT_ORDER,
        order.order_id,
        order.buyer_id,
        OrderStatus.CREATED.value,
        order.currency,
        order.total,
        json.dumps(order.items),
    )
    return row is not None


async def lock_order(conn: AsyncConnection, order_id: uuid.UUID) -> Order | None:
    """The order's row, locked until the transaction ends; None when it does not exist."""
    row = await sql.fetchrow(conn, _LOCK_ORDER, order_id)
    if row is None:
        return None
    return Order(
        row["order_id"], OrderStatus(row["status"]), row["payment_id"], row["failure_reason"]
    )


async def apply_change(conn: AsyncConnection, order_id: uuid.UUID, change: Change) -> None:
    """Write a status change decided by the rules."""
    await sql.execute(
        conn, _APPLY_CHANGE, order_id, change.status.value, change.payment_id, change.failure_reason
    )


async def park(
    conn: AsyncConnection,
    order_id: uuid.UUID,
    message_id: uuid.UUID,
    message_type: str,
    payload: dict[str, Any],
) -> None:
    """Keep a command until its order is created (a re-parked message id is ignored)."""
    await conn.execute(
        pg_insert(pending_commands)
        .values(
            order_id=order_id, message_id=message_id, message_type=message_type, payload=payload
        )
        .on_conflict_do_nothing(index_elements=["message_id"])
    )


async def take_parked(conn: AsyncConnection, order_id: uuid.UUID) -> list[ParkedCommand]:
    """Remove and return the order's parked commands, in the order they arrived."""
    rows = await sql.fetch(conn, _TAKE_PARKED, order_id)
    parked = [
        ParkedCommand(r["id"], r["message_id"], r["message_type"], json.loads(r["payload"]))
        for r in rows
    ]
    return sorted(parked, key=lambda p: p.id)


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
