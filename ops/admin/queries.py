"""Read models of the admin API: views of sagas, orders, stock and dead letters, and the saga gauges.

An operator tool reads every service's tables through their repositories (and the outboxes
directly, for dead letters); it writes only stock, through the inventory's repository.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import MetaData, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts import DEAD_LETTER_TOPIC, MessageHeaders
from ops.admin.stuck import Limits, stuck_counts
from saga.instance import SagaState
from saga.repository import StoredSaga
from saga.tables import sagas
from services.platform.outbox import outbox_table
from services.platform.telemetry import Metrics


class SagaView(BaseModel):
    """One saga: state, version, timestamps and everything it remembers."""

    id: uuid.UUID
    state: SagaState
    version: int
    created_at: datetime | None
    updated_at: datetime | None
    data: dict[str, Any]

    @classmethod
    def of(cls, saga: StoredSaga) -> SagaView:
        """The view of a stored saga."""
        return cls(
            id=saga.id,
            state=saga.state,
            version=saga.version,
            created_at=saga.created_at,
            updated_at=saga.updated_at,
            data=saga.data.model_dump(mode="json"),
        )


class OrderView(BaseModel):
    """One order as the orders service keeps it."""

    order_id: uuid.UUID
    buyer_id: str
    status: str
    currency: str
    total: Decimal
    items: list[dict[str, Any]]
    payment_id: uuid.UUID | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    checkout_group_id: uuid.UUID
    """The checkout group (the CheckoutStarted's order_id); a plain order is its own group."""
    vendor_id: str | None
    marketplace: bool
    rejected: list[dict[str, Any]]
    """Lines a partial checkout went on without: sku, quantity, reason."""
    adjusted_total: Decimal | None
    """The total of the accepted lines, once the order is final."""


class StockView(BaseModel):
    """Counters of one product."""

    sku: str
    available: int
    reserved: int
    deducted: int


class StockChange(BaseModel):
    """The new available count of a product (reserved and deducted units stay); nothing else."""

    model_config = ConfigDict(extra="forbid")

    available: int = Field(ge=0, le=1_000_000_000)

    @field_validator("available", mode="before")
    @classmethod
    def _a_json_integer(cls, value: object) -> object:
        """As JSON Schema's integer: 5 and 5.0, but not "5" or true (pydantic would take them)."""
        if isinstance(value, str | bool):
            raise ValueError("a JSON number is wanted, not a string or a boolean")
        return value


class DeadLetterView(BaseModel):
    """A rejected message as its service parked it: where it came from, why, and its bytes."""

    schema_name: str
    id: int
    message_id: uuid.UUID
    key: str
    original_topic: str | None
    error: str | None
    rejected_by: str | None
    attempts: int | None
    headers: dict[str, str]
    payload: str
    created_at: datetime
    sent_at: datetime | None


async def dead_letters(
    conn: AsyncConnection, schemas: Sequence[str], limit: int
) -> list[DeadLetterView]:
    """Newest dead letters first, from the outbox of every schema (sent or still waiting)."""
    metadata = MetaData()
    found: list[DeadLetterView] = []
    for schema in schemas:
        table = outbox_table(metadata, schema)
        rows = await conn.execute(
            select(table)
            .where(table.c.topic == DEAD_LETTER_TOPIC)
            .order_by(table.c.id.desc())
            .limit(limit)
        )
        found.extend(_dead_letter(schema, row._mapping) for row in rows)
    found.sort(key=lambda letter: (letter.created_at, letter.id), reverse=True)
    return found[:limit]


def _dead_letter(schema: str, row: Any) -> DeadLetterView:
    headers = {str(k): str(v) for k, v in row["headers"].items()}
    attempts = headers.get(MessageHeaders.ATTEMPTS, "")
    return DeadLetterView(
        schema_name=schema,
        id=row["id"],
        message_id=row["message_id"],
        key=row["message_key"],
        original_topic=headers.get(MessageHeaders.ORIGINAL_TOPIC),
        error=headers.get(MessageHeaders.ERROR),
        rejected_by=headers.get(MessageHeaders.REJECTED_BY),
        attempts=int(attempts) if attempts.isdigit() else None,
        headers=headers,
        payload=bytes(row["payload"]).decode("utf-8", errors="replace"),
        created_at=row["created_at"],
        sent_at=row["sent_at"],
    )


class SagaStateProbe:
    """Sets the sagas-per-state gauge, and with limits the stuck-sagas one (zeros included)."""

    def __init__(self, engine: AsyncEngine, stuck_limits: Limits | None = None) -> None:
        self.engine = engine
        self.stuck_limits = stuck_limits

    async def __call__(self, metrics: Metrics) -> None:
        """One GROUP BY over the state index, and one over the sagas past their limit."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(sagas.c.state, func.count()).group_by(sagas.c.state))
            counts = {str(state): int(n) for state, n in rows}
            stuck = await stuck_counts(conn, self.stuck_limits) if self.stuck_limits else {}
        for state in SagaState:
            metrics.sagas.labels(state.value).set(counts.get(state.value, 0))
        for limited, n in stuck.items():
            metrics.sagas_stuck.labels(limited.value).set(n)

    async def close(self) -> None:
        """Nothing to release: the engine belongs to the caller."""
