"""Payment simulator persistence: one decided payment per order, one refund per payment id."""

from __future__ import annotations

import uuid

from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import RefundPayment
from services.payments.domain import Payment, Verdict
from services.payments.tables import payments, refunds
from services.platform import sql

# Hot-path statements (services.platform.sql): constant SQL, prepared once per connection.
_PAYMENT_OF_ORDER = (
    "SELECT order_id, payment_id, amount, currency, decision, reason "
    "FROM payments.payments WHERE order_id = $1"
)
_RECORD_PAYMENT = (
    "INSERT INTO payments.payments (order_id, payment_id, amount, currency, decision, reason) "
    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id) DO NOTHING RETURNING order_id"
)


async def payment_of_order(conn: AsyncConnection, order_id: uuid.UUID) -> Payment | None:
    """The payment decided for an order, or None when it was never requested."""
    row = await sql.fetchrow(conn, _PAYMENT_OF_ORDER, order_id)
    if row is None:
        return None
    return Payment(
        order_id=row["order_id"],
        payment_id=row["payment_id"],
        amount=row["amount"],
        currency=row["currency"],
        verdict=Verdict(row["decision"]),
        reason=row["reason"],
    )


async def payment_by_id(conn: AsyncConnection, payment_id: uuid.UUID) -> Payment | None:
    """A payment this simulator decided, by its id; None for anyone else's."""
    return await _one(conn, select(payments).where(payments.c.payment_id == payment_id))


async def _one(conn: AsyncConnection, stmt: Select[tuple[object, ...]]) -> Payment | None:
    row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    return Payment(
        order_id=row.order_id,
        payment_id=row.payment_id,
        amount=row.amount,
        currency=row.currency,
        verdict=Verdict(row.decision),
        reason=row.reason,
    )


async def record_payment(conn: AsyncConnection, payment: Payment) -> bool:
    """Store the decision for an order; False when a decision for it already exists.

    A concurrent request for the same order waits on the primary key, then sees the
    first decision, so an order never gets two different answers.
    """
    row = await sql.fetchrow(
        conn,
        _RECORD_PAYMENT,
        payment.order_id,
        payment.payment_id,
        payment.amount,
        payment.currency,
        payment.verdict.value,
        payment.reason,
    )
    return row is not None


async def record_refund(conn: AsyncConnection, refund: RefundPayment) -> bool:
    """Record the refund of a payment; False when that payment id was already refunded."""
    stmt = (
        pg_insert(refunds)
        .values(
            payment_id=refund.payment_id,
            order_id=refund.order_id,
            amount=refund.amount,
            currency=refund.currency,
            reason=refund.reason,
        )
        .on_conflict_do_nothing(index_elements=["payment_id"])
        .returning(refunds.c.payment_id)
    )
    return (await conn.execute(stmt)).first() is not None
