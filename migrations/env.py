"""Alembic environment: runs migrations over an asyncpg connection, URL passed in or from env."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.platform.db import connect_args
from services.platform.settings import Settings


def _target() -> tuple[str, dict[str, Any]]:
    """The database URL and driver options (TLS): passed in by the caller, else the settings."""
    url = context.config.attributes.get("database_url")
    if url:
        return str(url), dict(context.config.attributes.get("connect_args") or {})
    settings = Settings()
    return settings.database_url.get_secret_value(), connect_args(settings.database_tls)


def _run(connection: Connection) -> None:
    context.configure(connection=connection, include_schemas=True, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url, options = _target()
    engine = create_async_engine(url, connect_args=options)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_target()[0], literal_binds=True, include_schemas=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
