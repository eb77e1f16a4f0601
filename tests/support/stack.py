"""The in-process stack for integration tests: services as Runtimes, plus probes of their tables."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import DEAD_LETTER_TOPIC
from contracts.topics import TOPICS
from saga.tables import sagas
from services.inventory import repository as inventory_repo
from services.platform.settings import Settings
from services.platform.telemetry import Telemetry
from services.runtime import Runtime

Admin = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
"""Opens an admin API client on the stack; keyword arguments change its settings."""


@dataclass
class Stack:
    """Runtimes of one test session, and an engine to look at every service's tables."""

    settings: Settings
    engine: AsyncEngine
    main: Runtime
    inventory: Runtime | None
    telemetry: Telemetry | None = None

    async def restart_inventory(self) -> None:
        """Start the inventory service again (after a test stopped it)."""
        self.inventory = Runtime(self.settings, ["inventory"], telemetry=self.telemetry)
        await self.inventory.start()

    async def stop_inventory(self) -> None:
        """Stop the inventory service: its commands wait in Kafka until it is back."""
        if self.inventory is not None:
            await self.inventory.stop()
            self.inventory = None

    async def set_stock(self, sku: str, available: int) -> None:
        """Create or restock a product."""
        async with self.engine.begin() as conn:
            await inventory_repo.set_stock(conn, sku, available)

    async def stock(self, sku: str) -> dict[str, Any]:
        """available / reserved / deducted of one product."""
        async with self.engine.connect() as conn:
            rows = await inventory_repo.stock(conn, [sku])
        return dict(rows[0])

    async def saga(self, order_id: uuid.UUID) -> dict[str, Any] | None:
        """The saga row (state, version, data), or None."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(sagas).where(sagas.c.id == order_id))).first()
        return dict(row._mapping) if row else None

    async def saga_state(self, order_id: uuid.UUID) -> str | None:
        """Just the saga's state."""
        row = await self.saga(order_id)
        return row["state"] if row else None

    async def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """Run a read-only query and return dict rows."""
        async with self.engine.connect() as conn:
            result = await conn.execute(text(sql), params)
            return [dict(r._mapping) for r in result]

    async def rows_write(self, sql: str, **params: Any) -> None:
        """Run a write statement in its own transaction (test setup only)."""
        async with self.engine.begin() as conn:
            await conn.execute(text(sql), params)

    async def sent(
        self, schema: str, message_type: str, order_id: uuid.UUID
    ) -> list[dict[str, Any]]:
        """Outbox rows of a schema for one order and message type (sent or not)."""
        topic = DEAD_LETTER_TOPIC if message_type == "dead_letter" else TOPICS[message_type]
        return await self.rows(
            f"SELECT message_id, payload, headers, sent_at FROM {schema}.outbox "
            "WHERE message_key = :key AND topic = :topic ORDER BY id",
            key=str(order_id),
            topic=topic,
        )

    async def final(self, order_ids: Sequence[uuid.UUID]) -> bool:
        """True when every listed saga is Confirmed or Failed."""
        rows = await self.rows(
            "SELECT count(*) AS n FROM saga.sagas WHERE id = ANY(:ids) "
            "AND state IN ('Confirmed', 'Failed')",
            ids=list(order_ids),
        )
        return rows[0]["n"] == len(order_ids)
