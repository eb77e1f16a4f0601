"""Database engine creation and the transaction helper every consumer uses."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.platform.settings import Settings


def create_engine(settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    """An asyncpg engine; created in an app's lifespan and disposed there."""
    return create_async_engine(
        settings.database_url.get_secret_value(),
        pool_size=pool_size or settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_pre_ping=True,
        # Everything here is short transactions; READ COMMITTED plus row locks and
        # optimistic versions is the isolation the design relies on.
        isolation_level="READ COMMITTED",
    )
