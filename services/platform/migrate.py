"""Run the Alembic history programmatically (the CLI's `migrate` and the test fixtures use it)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config


def alembic_config(database_url: str, connect_args: Mapping[str, Any] | None = None) -> Config:
    """An Alembic config for the packaged migrations, bound to one database (and driver options)."""
    root = resources.files("migrations")
    config = Config(str(root / "alembic.ini"))
    config.set_main_option("script_location", str(root))
    config.set_main_option("version_locations", str(root / "versions"))
    config.attributes["database_url"] = database_url
    config.attributes["connect_args"] = dict(connect_args or {})
    return config


def upgrade(
    database_url: str, revision: str = "head", *, connect_args: Mapping[str, Any] | None = None
) -> None:
    """Migrate the database up to a revision (default: the newest); connect_args carry TLS."""
    command.upgrade(alembic_config(database_url, connect_args), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """Migrate the database down to a revision (default: nothing left)."""
    command.downgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    """upgrade() from async code: Alembic's env runs its own event loop, so use a thread."""
    await asyncio.to_thread(upgrade, database_url, revision)
