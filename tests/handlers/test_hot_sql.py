"""Hot-path SQL on the asyncpg connection belongs to the SQLAlchemy transaction around it, and a
connection lost under it fails that transaction transiently and leaves the pool."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.platform import sql
from services.platform.delivery import is_transient
from services.platform.embedded import free_port
from tests.support.pg_proxy import PgProxy, server_of, through


class _AbortError(Exception):
    pass


async def _insert_then_abort(engine: AsyncEngine, message_id: uuid.UUID) -> None:
    async with engine.begin() as conn:
        await sql.execute(
            conn,
            "INSERT INTO saga.inbox (message_id, message_type) VALUES ($1, 'Probe')",
            message_id,
        )
        raise _AbortError


async def test_a_raw_statement_sent_first_rolls_back_with_its_transaction(
    engine: AsyncEngine,
) -> None:
    # The inbox claim is the first statement of every consumer transaction: had it run before
    # the adapter's lazy BEGIN, it would commit on its own and a retried batch would find its
    # messages "already applied".
    message_id = uuid.uuid4()
    with pytest.raises(_AbortError):
        await _insert_then_abort(engine, message_id)
    async with engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT count(*) FROM saga.inbox WHERE message_id = :id"), {"id": message_id}
        )
    assert found == 0


async def test_a_raw_statement_commits_with_its_transaction(engine: AsyncEngine) -> None:
    message_id = uuid.uuid4()
    async with engine.begin() as conn:
        await sql.execute(
            conn,
            "INSERT INTO saga.inbox (message_id, message_type) VALUES ($1, 'Probe')",
            message_id,
        )
    async with engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT count(*) FROM saga.inbox WHERE message_id = :id"), {"id": message_id}
        )
    assert found == 1


async def _select_one(engine: AsyncEngine) -> int:
    async with engine.begin() as conn:
        return await sql.execute(conn, "SELECT 1")


async def _cut_inside(engine: AsyncEngine, proxy: PgProxy) -> None:
    async with engine.begin() as conn:
        await sql.execute(conn, "SELECT 1")
        await asyncio.to_thread(proxy.cut)
        proxy.restore()
        await sql.execute(conn, "SELECT 1")


async def _failure(attempt: Awaitable[object]) -> Exception:
    """What the attempt raised (it must raise)."""
    try:
        await attempt
    except Exception as exc:
        return exc
    raise AssertionError("the attempt did not fail")


async def test_a_connection_lost_in_the_pool_fails_its_next_transaction_once_and_transiently(
    database_url: str,
) -> None:
    # The hot path sends BEGIN itself (sql.driver), so SQLAlchemy never saw a failure there:
    # it raised the adapter's own error (dead-lettered as permanent) and put the dead
    # connection back in the pool, where every later transaction failed the same way.
    with PgProxy(free_port(), server_of(database_url)) as proxy:
        engine = create_async_engine(through(database_url, proxy), pool_size=1, max_overflow=0)
        try:
            await _select_one(engine)
            proxy.cut()  # the pooled connection dies while idle, as when PostgreSQL restarts
            proxy.restore()
            lost = await _failure(_select_one(engine))
            assert is_transient(lost), repr(lost)
            assert await _select_one(engine) == 1
        finally:
            await engine.dispose()


async def test_a_connection_lost_inside_a_transaction_fails_it_transiently_and_only_it(
    database_url: str,
) -> None:
    with PgProxy(free_port(), server_of(database_url)) as proxy:
        engine = create_async_engine(through(database_url, proxy), pool_size=1, max_overflow=0)
        try:
            lost = await _failure(_cut_inside(engine, proxy))
            assert is_transient(lost), repr(lost)
            assert await _select_one(engine) == 1
        finally:
            await engine.dispose()
