"""Hot-path statements: constant SQL run on the transaction's own asyncpg connection.

Profiles of `checkout-saga bench` at ~115 sagas/s put 41 % of the services' CPU inside
SQLAlchemy Core (building clauses, cache keys, compiling, processing results) for statements
that never change. asyncpg prepares a constant SQL string once per connection and runs it for a
fraction of that. The connection is the one SQLAlchemy's transaction runs on, so a statement
here commits or rolls back with everything else the transaction does. Errors are asyncpg's
own, or the asyncpg adapter's copy of one for the BEGIN; `delivery.is_transient` knows both.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection


async def driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection under a SQLAlchemy connection, inside its transaction.

    SQLAlchemy's asyncpg adapter sends BEGIN lazily, with its first statement; a statement
    sent here first would run outside the transaction and commit on its own (an inbox claim
    that survives a rollback: a message lost). So the BEGIN is sent first when it is due. This
    leans on the adapter's private `_transaction`/`_start_transaction`; a test guards it. A BEGIN
    that finds the connection lost (e.g. it died idle in the pool) invalidates it, so the retry
    gets a new one; the adapter's error it raises is judged by its driver cause (is_transient).
    """
    proxied = await conn.get_raw_connection()
    adapter: Any = proxied.dbapi_connection
    driver_connection: Any = proxied.driver_connection
    if conn.in_transaction() and adapter._transaction is None:
        try:
            await adapter._start_transaction()
        except Exception as exc:
            if driver_connection.is_closed():
                # SQLAlchemy never sees this failure (the BEGIN is not its statement), so it
                # would pool the dead connection again and fail every later transaction on it.
                await conn.invalidate(exc)
            raise
    return driver_connection


async def fetch(conn: AsyncConnection, sql: str, *args: object) -> list[asyncpg.Record]:
    """Rows of a constant statement."""
    rows: list[asyncpg.Record] = await (await driver(conn)).fetch(sql, *args)
    return rows


async def fetchrow(conn: AsyncConnection, sql: str, *args: object) -> asyncpg.Record | None:
    """The first row of a constant statement, or None."""
    row: asyncpg.Record | None = await (await driver(conn)).fetchrow(sql, *args)
    return row


async def execute(conn: AsyncConnection, sql: str, *args: object) -> int:
    """Run a constant statement; returns the rows it affected (from the command tag)."""
    tag: str = await (await driver(conn)).execute(sql, *args)
    last = tag.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0
