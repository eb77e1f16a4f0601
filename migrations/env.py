"""Alembic environment: runs migrations over an asyncpg connection, URL passed in or from env."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.platform.settings import Settings


def _url() -> str:
    url = context.config.attributes.get("database_url")
    return str(url) if url else Settings().database_url.get_secret_value()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, include_schemas=True, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), literal_binds=True, include_schemas=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
