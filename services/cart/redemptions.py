"""Promotion uses: taken by a checkout in its own transaction, given back when its order fails.

Taking a use is one conditional upsert per counter (overall, and the buyer's): it adds one only
while the count is below the limit, so of two checkouts racing for a code's last use exactly one
gets it (the other's upsert waits on the row lock, then sees the new count and updates nothing).
Each use taken is a `redemptions` row of the checkout group; giving the group's uses back marks
those rows returned first, so a redelivered failure gives nothing back twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Table, func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.cart.promotion_types import AppliedPromotion, Promotion
from services.cart.tables import promotion_buyer_uses, promotion_uses, redemptions


async def take(
    conn: AsyncConnection,
    group_id: uuid.UUID,
    buyer_id: str,
    currency: str,
    applied: Sequence[AppliedPromotion],
    promotions: Sequence[Promotion],
) -> list[AppliedPromotion]:
    """Take one use of each applied promotion for the group; the ones whose limit ran out."""
    by_id = {p.promotion_id: p for p in promotions}
    lost = []
    for promotion in applied:
        rules = by_id.get(promotion.promotion_id)
        if rules is None:  # deactivated since the cart was priced: no use to take
            lost.append(promotion)
            continue
        overall = await _count(
            conn, promotion_uses, {"promotion_id": promotion.promotion_id}, rules.limit_total
        )
        keys = {"promotion_id": promotion.promotion_id, "buyer_id": buyer_id}
        mine = await _count(conn, promotion_buyer_uses, keys, rules.limit_per_buyer)
        if not (overall and mine):
            lost.append(promotion)
            continue
        await conn.execute(
            redemptions.insert().values(
                group_id=group_id,
                promotion_id=promotion.promotion_id,
                buyer_id=buyer_id,
                code=promotion.code,
                amount=promotion.amount,
                currency=currency,
            )
        )
    return lost


async def _count(
    conn: AsyncConnection, table: Table, keys: dict[str, str], limit: int | None
) -> bool:
    """Add one use to a counter row unless it reached the limit; whether it was added."""
    insert = pg_insert(table).values(**keys, uses=1)
    upsert = insert.on_conflict_do_update(
        index_elements=list(keys),
        set_={"uses": table.c.uses + 1},
        where=None if limit is None else table.c.uses < limit,
    ).returning(table.c.uses)
    return (await conn.execute(upsert)).first() is not None


async def give_back(conn: AsyncConnection, group_id: uuid.UUID) -> int:
    """Return the uses a (failed) checkout group took; how many (0 when already returned)."""
    returned = await conn.execute(
        update(redemptions)
        .where(redemptions.c.group_id == group_id, redemptions.c.returned_at.is_(None))
        .values(returned_at=func.now())
        .returning(redemptions.c.promotion_id, redemptions.c.buyer_id)
    )
    rows = returned.all()
    for row in rows:
        await conn.execute(
            update(promotion_uses)
            .where(promotion_uses.c.promotion_id == row.promotion_id)
            .values(uses=func.greatest(promotion_uses.c.uses - 1, 0))
        )
        await conn.execute(
            update(promotion_buyer_uses)
            .where(
                promotion_buyer_uses.c.promotion_id == row.promotion_id,
                promotion_buyer_uses.c.buyer_id == row.buyer_id,
            )
            .values(uses=func.greatest(promotion_buyer_uses.c.uses - 1, 0))
        )
    return len(rows)
