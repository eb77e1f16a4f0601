"""Hot-path SQL on the asyncpg connection belongs to the SQLAlchemy transaction around it."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.platform import sql


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
