"""`checkout-saga outbox status` on a real outbox: due, delayed and sent rows, and a stalled relay."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import MetaData, Table, insert, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from typer.testing import CliRunner, Result

from ops.cli import cli
from services.platform.outbox import outbox_table

pytestmark = pytest.mark.integration


@pytest.fixture
async def box(database_url: str) -> AsyncIterator[tuple[AsyncEngine, Table]]:
    """An outbox in a schema of this test alone (no relay serves it: it is no service's)."""
    schema = f"outboxtest_{secrets.token_hex(4)}"
    table = outbox_table(MetaData(), schema)
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
        await conn.run_sync(table.metadata.create_all)
    try:
        yield engine, table
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        await engine.dispose()


def _row(available: str, sent: str | None = None) -> dict[str, Any]:
    return {
        "message_id": uuid.uuid4(),
        "topic": "t",
        "message_key": "k",
        "lane": 0,
        "payload": b"{}",
        "headers": {},
        "available_at": text(f"now() + interval '{available}'"),
        "sent_at": text(f"now() + interval '{sent}'") if sent else None,
    }


def _status(database_url: str, schema: str, *args: str) -> Result:
    env = {"CHECKOUT_DATABASE_URL": database_url}
    return CliRunner().invoke(cli, ["outbox", "status", "--schema", schema, *args], env=env)


async def test_status_counts_due_delayed_and_sent_rows_and_flags_a_stall(
    box: tuple[AsyncEngine, Table], database_url: str
) -> None:
    engine, table = box
    rows = [_row("-2 minutes"), _row("0 seconds"), _row("1 hour")]
    rows += [_row("-1 hour", sent="-30 minutes") for _ in range(3)]
    async with engine.begin() as conn:
        for row in rows:  # one by one: the SQL expressions differ per row
            await conn.execute(insert(table).values(**row))

    result = await asyncio.to_thread(_status, database_url, str(table.schema), "--json")
    assert result.exit_code == 1, result.output  # a due row waited two minutes: stalled
    [found] = json.loads(result.stdout)
    assert (found["due"], found["delayed"], found["sent"]) == (2, 1, 3)
    assert 119 <= found["oldest_due_age_s"] < 600
    assert found["last_sent_at"] is not None

    async with engine.begin() as conn:
        await conn.execute(
            update(table).where(table.c.sent_at.is_(None)).values(sent_at=text("now()"))
        )
    result = await asyncio.to_thread(_status, database_url, str(table.schema))
    assert result.exit_code == 0, result.output
    [header, line] = result.stdout.splitlines()
    assert header.split()[:3] == ["SCHEMA", "DUE", "DELAYED"]
    assert line.split()[:5] == [str(table.schema), "0", "0", "0.0s", "6"]
