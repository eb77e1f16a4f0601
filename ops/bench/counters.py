"""Counters the bench reads before and after the load: PostgreSQL statistics, stock, saga rows.

PostgreSQL publishes a backend's statistics lazily (PG15+: at most once a second while busy, ten
seconds after it goes idle, and when it exits), so the final read happens after the service
processes stopped, or after a settle wait when the stack is not ours.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

BENCH_SKU_PREFIX = "BENCH-"


def bench_skus(count: int) -> list[str]:
    """The bench catalog's SKUs: BENCH-01, BENCH-02, ..."""
    return [f"{BENCH_SKU_PREFIX}{i:02d}" for i in range(1, count + 1)]


async def seed_bench_catalog(engine: AsyncEngine, skus: Sequence[str], stock: int) -> None:
    """Create the bench products that are missing with `stock` units; existing ones are kept."""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO inventory.products (sku, available) "
                "SELECT unnest(CAST(:skus AS text[])), :stock ON CONFLICT (sku) DO NOTHING"
            ),
            {"skus": list(skus), "stock": stock},
        )


@dataclass(frozen=True)
class DbCounters:
    """Cumulative counters of the database at one moment."""

    commits: int
    row_writes: int


async def _refresh_stats(conn: AsyncConnection) -> None:
    # Our own pending counters out (PG15+), and a fresh snapshot for the reads that follow.
    has_flush = await conn.scalar(
        text("SELECT count(*) FROM pg_proc WHERE proname = 'pg_stat_force_next_flush'")
    )
    if has_flush:
        await conn.execute(text("SELECT pg_stat_force_next_flush()"))
    await conn.execute(text("SELECT pg_stat_clear_snapshot()"))


async def db_counters(engine: AsyncEngine) -> DbCounters:
    """Commits (pg_stat_database) and inserted+updated+deleted rows (pg_stat_user_tables)."""
    async with engine.connect() as conn:
        await _refresh_stats(conn)
        await conn.commit()
        commits = await conn.scalar(
            text("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        )
        writes = await conn.scalar(
            text(
                "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) "
                "FROM pg_stat_user_tables"
            )
        )
    return DbCounters(int(commits or 0), int(writes or 0))


async def stock_totals(engine: AsyncEngine, skus: Sequence[str]) -> tuple[int, int]:
    """(available + reserved + deducted, reserved) summed over these products."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT coalesce(sum(available + reserved + deducted), 0), "
                    "coalesce(sum(reserved), 0) FROM inventory.products WHERE sku = ANY(:skus)"
                ),
                {"skus": list(skus)},
            )
        ).one()
    return int(row[0]), int(row[1])


async def held_stock(engine: AsyncEngine, skus: Sequence[str]) -> int:
    """Units reserved or sold (reserved + deducted) summed over these products."""
    async with engine.connect() as conn:
        held = await conn.scalar(
            text(
                "SELECT coalesce(sum(reserved + deducted), 0) FROM inventory.products "
                "WHERE sku = ANY(:skus)"
            ),
            {"skus": list(skus)},
        )
    return int(held or 0)


async def not_final(engine: AsyncEngine, order_ids: Sequence[uuid.UUID]) -> list[str]:
    """The order ids whose saga row is missing or not Confirmed/Failed."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT id FROM saga.sagas WHERE id = ANY(:ids) "
                "AND state IN ('Confirmed', 'Failed')"
            ),
            {"ids": list(order_ids)},
        )
        final = {row[0] for row in rows}
    return [str(order_id) for order_id in order_ids if order_id not in final]


async def unsent_outbox_rows(engine: AsyncEngine) -> int:
    """Due unsent rows over every schema's outbox table (what the relays still owe)."""
    async with engine.connect() as conn:
        schemas = await conn.scalars(
            text("SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox'")
        )
        total = 0
        for schema in schemas.all():
            count = await conn.scalar(
                text(
                    f'SELECT count(*) FROM "{schema}".outbox '
                    "WHERE sent_at IS NULL AND available_at <= now()"
                )
            )
            total += int(count or 0)
    return total
