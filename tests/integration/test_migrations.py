"""The Alembic history on a fresh database: up, down to base, up again, and agreement with tables.py."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

import saga.tables
import services.cart.tables
import services.inventory.tables
import services.orders.tables
import services.payments.tables
from services.platform import migrate
from services.platform.embedded import create_database, drop_database, url_with_database

pytestmark = pytest.mark.integration

METADATA: dict[str, MetaData] = {
    "saga": saga.tables.metadata,
    "inventory": services.inventory.tables.metadata,
    "orders": services.orders.tables.metadata,
    "cart": services.cart.tables.metadata,
    "payments": services.payments.tables.metadata,
}
"""Every service schema and the tables its code reads and writes."""

MAILBOX_TABLES = {"outbox", "inbox"}
EXPECTED_TABLES = {
    schema: {table.name for table in metadata.tables.values()}
    for schema, metadata in METADATA.items()
}
"""Tables each schema must have after a full upgrade (none others)."""


@pytest.fixture
async def fresh_url(pg_server_url: str) -> AsyncIterator[str]:
    """A database of its own (the session one is shared with the running stack)."""
    name = f"checkout_migrations_{secrets.token_hex(4)}"
    await create_database(pg_server_url, name)
    try:
        yield url_with_database(pg_server_url, name)
    finally:
        await drop_database(pg_server_url, name)


async def _tables(url: str) -> dict[str, set[str]]:
    """Tables per schema, outside PostgreSQL's own schemas."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT table_schema, table_name FROM information_schema.tables "
                    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
                )
            )
            found: dict[str, set[str]] = {}
            for schema, table in rows:
                found.setdefault(schema, set()).add(table)
            return found
    finally:
        await engine.dispose()


async def _schemas(url: str) -> set[str]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            names = await conn.scalars(text("SELECT nspname FROM pg_namespace"))
            return set(names)
    finally:
        await engine.dispose()


async def _upgrade(url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, url)


async def _downgrade(url: str) -> None:
    await asyncio.to_thread(migrate.downgrade, url)


def _assert_fully_migrated(found: dict[str, set[str]]) -> None:
    for schema, tables in EXPECTED_TABLES.items():
        assert found.get(schema) == tables, f"schema {schema}"
    assert found.get("public") == {"alembic_version"}
    assert set(found) == {*EXPECTED_TABLES, "public"}


async def test_upgrade_downgrade_upgrade(fresh_url: str) -> None:
    assert await _tables(fresh_url) == {}

    await _upgrade(fresh_url)
    _assert_fully_migrated(await _tables(fresh_url))

    await _downgrade(fresh_url)
    # Only Alembic's bookkeeping table is left, and none of our schemas.
    assert await _tables(fresh_url) == {"public": {"alembic_version"}}
    assert not (await _schemas(fresh_url)) & set(METADATA)

    await _upgrade(fresh_url)
    _assert_fully_migrated(await _tables(fresh_url))


def _differences(conn: Connection, schema: str, metadata: MetaData) -> list[Any]:
    """Autogenerate's diff of one service schema against its metadata."""

    def only_ours(name: str | None, type_: str, _parents: object) -> bool:
        # Compare this schema only: other schemas belong to other metadata (and public to Alembic).
        return type_ != "schema" or name == schema

    context = MigrationContext.configure(
        conn,
        opts={
            "include_schemas": True,
            "include_name": only_ours,
            "compare_type": True,
            "compare_server_default": True,
        },
    )
    return list(compare_metadata(context, metadata))


async def _diff(conn: AsyncConnection, schema: str, metadata: MetaData) -> list[Any]:
    return await conn.run_sync(_differences, schema, metadata)


async def test_migrated_schema_matches_every_services_metadata(fresh_url: str) -> None:
    await _upgrade(fresh_url)
    engine = create_async_engine(fresh_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            for schema, metadata in METADATA.items():
                assert await _diff(conn, schema, metadata) == [], f"schema {schema}"
    finally:
        await engine.dispose()


async def test_mailbox_exists_in_every_schema_with_its_trigger(fresh_url: str) -> None:
    await _upgrade(fresh_url)
    engine = create_async_engine(fresh_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            triggers = await conn.execute(
                text(
                    "SELECT event_object_schema FROM information_schema.triggers "
                    "WHERE trigger_name = 'outbox_notify' AND event_object_table = 'outbox'"
                )
            )
            assert {row[0] for row in triggers} == set(METADATA)
    finally:
        await engine.dispose()
    for schema, tables in EXPECTED_TABLES.items():
        assert tables >= MAILBOX_TABLES, schema
