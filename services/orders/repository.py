"""Orders persistence: order rows locked for change, commands parked until their order exists."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.orders.domain import Change, NewOrder, Order, OrderStatus
from services.orders.tables import orders, pending_commands

# Namespaces the bigint advisory locks of this schema (the relay uses the two-int4 key space).
_ORDER_LOCK_SALT = 0x6F72646572730000  # "orders\0\0"


@dataclass(frozen=True, slots=True)
class ParkedCommand:
    """A command that arrived before its order: its id, type and payload, in arrival order."""

    id: int
    message_id: uuid.UUID
    message_type: str
    payload: dict[str, Any]


def _lock_key(order_id: uuid.UUID) -> int:
    # pg_advisory_xact_lock takes a signed bigint: fold the uuid's 128 bits into 64.
    folded = (order_id.int >> 64) ^ (order_id.int & (2**64 - 1)) ^ _ORDER_LOCK_SALT
    return folded - 2**64 if folded >= 2**63 else folded


async def lock_order_id(conn: AsyncConnection, order_id: uuid.UUID) -> None:
    """Serialize creating an order with parking its commands, even before its row exists.

    Without it a command could find no order, a concurrent CheckoutStarted could create it
    and read no parked commands, and then the command would be parked forever.
    """
    await conn.execute(select(func.pg_advisory_xact_lock(_lock_key(order_id))))


async def insert_order(conn: AsyncConnection, order: NewOrder) -> bool:
    """Create the order in status created; False when it already exists."""
    stmt = (
        pg_insert(orders)
        .values(
            order_id=order.order_id,
            buyer_id=order.buyer_id,
            status=OrderStatus.CREATED,
            currency=order.currency,
            total=order.total,
            items=order.items,
        )
        .on_conflict_do_nothing(index_elements=["order_id"])
        .returning(orders.c.order_id)
    )
    return (await conn.execute(stmt)).first() is not None


async def lock_order(conn: AsyncConnection, order_id: uuid.UUID) -> Order | None:
    """The order's row, locked until the transaction ends; None when it does not exist."""
    row = (
        await conn.execute(
            select(orders.c.order_id, orders.c.status, orders.c.payment_id, orders.c.failure_reason)
            .where(orders.c.order_id == order_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        return None
    return Order(row.order_id, OrderStatus(row.status), row.payment_id, row.failure_reason)


async def apply_change(conn: AsyncConnection, order_id: uuid.UUID, change: Change) -> None:
    """Write a status change decided by the rules."""
    await conn.execute(
        update(orders)
        .where(orders.c.order_id == order_id)
        .values(
            status=change.status,
            payment_id=change.payment_id,
            failure_reason=change.failure_reason,
            updated_at=func.now(),
        )
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
    rows = await conn.execute(
        delete(pending_commands)
        .where(pending_commands.c.order_id == order_id)
        .returning(
            pending_commands.c.id,
            pending_commands.c.message_id,
            pending_commands.c.message_type,
            pending_commands.c.payload,
        )
    )
    parked = [ParkedCommand(r.id, r.message_id, r.message_type, r.payload) for r in rows]
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
