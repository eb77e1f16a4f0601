"""Stuck sagas (ops/admin/stuck.py): past their state's limit, oldest first, with why they wait."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import Reservation, StockReservationCompleted
from ops.admin.queries import SagaStateProbe
from ops.admin.stuck import StuckSaga, limits_of, stuck_sagas
from saga import app as saga_app
from saga.instance import SagaState
from services.platform.settings import SagaSettings, Settings, StuckAfterSettings
from services.platform.telemetry import Metrics
from tests.handlers import ServiceDriver
from tests.support.builders import checkout_started, new_id

HOUR = timedelta(hours=1)
LIMITS = {SagaState.SUBMITTED: HOUR, SagaState.STOCK_RESERVED: HOUR}
"""Only sagas this test ages by a day are past these."""


@pytest.fixture
def saga(engine: AsyncEngine, handler_settings: Settings) -> ServiceDriver:
    """The saga orchestrator's consumer (no relay: its outbox rows stay unsent until marked)."""
    return ServiceDriver.of(engine, saga_app.create_service(handler_settings), handler_settings)


async def execute(engine: AsyncEngine, sql: str, **params: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(sql), params)


async def age(engine: AsyncEngine, order_id: uuid.UUID, days: int = 1) -> None:
    """Move the saga's last write a day back (more, for an older one)."""
    sql = "UPDATE saga.sagas SET updated_at = now() - make_interval(days => :d) WHERE id = :o"
    await execute(engine, sql, o=order_id, d=days)


async def mark_sent(engine: AsyncEngine, order_id: uuid.UUID) -> None:
    """What the relay does once Kafka has the saga's commands."""
    sql = "UPDATE saga.outbox SET sent_at = now() WHERE message_key = :k AND sent_at IS NULL"
    await execute(engine, sql, k=str(order_id))


async def stuck(engine: AsyncEngine) -> dict[uuid.UUID, StuckSaga]:
    async with engine.connect() as conn:
        return {s.order_id: s for s in await stuck_sagas(conn, LIMITS, 10_000)}


async def test_why_a_stuck_saga_waits(saga: ServiceDriver) -> None:
    start = checkout_started()
    order_id = start.order_id
    await saga.send(start)
    assert order_id not in await stuck(saga.engine), "not past its limit yet"

    await age(saga.engine, order_id)
    found = (await stuck(saga.engine))[order_id]
    assert (found.state, found.waiting_for, found.why) == (
        SagaState.SUBMITTED,
        "ReserveStockForOrder",
        "relay backlog: ReserveStockForOrder not published yet",
    )
    assert found.age_s > 23 * 3600
    assert found.limit_s == 3600
    [command] = await saga.outbox(order_id)
    assert found.message_id == command.message_id

    await mark_sent(saga.engine, order_id)
    assert (await stuck(saga.engine))[order_id].why == "reservation not answered"

    held = Reservation(reservation_id=new_id(), sku=start.items[0].sku, quantity=2)
    await saga.send(StockReservationCompleted(order_id=order_id, reservations=[held]))
    await mark_sent(saga.engine, order_id)
    await age(saga.engine, order_id)
    found = (await stuck(saga.engine))[order_id]
    assert found.state == SagaState.STOCK_RESERVED
    assert found.why.startswith("payment not answered (deadline in ")
    deadline_back = (
        "UPDATE saga.sagas SET data = jsonb_set(data, '{payment_deadline}', "
        "to_jsonb(now() - interval '40 seconds')) WHERE id = :o"
    )
    await execute(saga.engine, deadline_back, o=order_id)
    why = (await stuck(saga.engine))[order_id].why
    passed = why.removeprefix("payment not answered (deadline passed ").removesuffix(" s ago)")
    assert 40 <= int(passed) < 60, why


async def test_oldest_first_and_final_sagas_are_never_stuck(saga: ServiceDriver) -> None:
    older, newer, final = checkout_started(), checkout_started(), checkout_started()
    for start in (older, newer, final):
        await saga.send(start)
    await execute(
        saga.engine, "UPDATE saga.sagas SET state = 'Failed' WHERE id = :o", o=final.order_id
    )
    await age(saga.engine, newer.order_id, days=2)
    await age(saga.engine, older.order_id, days=3)
    await age(saga.engine, final.order_id, days=4)
    listed = list(await stuck(saga.engine))
    assert final.order_id not in listed
    assert listed.index(older.order_id) < listed.index(newer.order_id)


async def test_the_gauge_counts_stuck_sagas_per_state(saga: ServiceDriver) -> None:
    metrics = Metrics()
    probe = SagaStateProbe(saga.engine, LIMITS)

    def gauge(state: str) -> float:
        value = metrics.registry.get_sample_value("checkout_sagas_stuck", {"state": state})
        assert value is not None, state
        return value

    await probe(metrics)
    before = gauge("Submitted")
    assert gauge("StockReserved") >= 0
    start = checkout_started()
    await saga.send(start)
    await age(saga.engine, start.order_id)
    await probe(metrics)
    assert gauge("Submitted") == before + 1
    assert metrics.registry.get_sample_value("checkout_sagas_stuck", {"state": "Failed"}) is None


def test_limits_default_to_the_payment_timeout_and_read_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert limits_of(SagaSettings(payment_timeout_s=60)) == {
        SagaState.SUBMITTED: timedelta(seconds=30),
        SagaState.STOCK_RESERVED: timedelta(seconds=90),
    }
    explicit = SagaSettings(stuck_after_s=StuckAfterSettings(submitted=5, stock_reserved=7))
    assert list(limits_of(explicit).values()) == [timedelta(seconds=5), timedelta(seconds=7)]
    monkeypatch.setenv("CHECKOUT_SAGA__STUCK_AFTER_S__SUBMITTED", "12")
    monkeypatch.setenv("CHECKOUT_SAGA__STUCK_AFTER_S__STOCK_RESERVED", "34")
    from_env = limits_of(Settings().saga)
    assert from_env == {
        SagaState.SUBMITTED: timedelta(seconds=12),
        SagaState.STOCK_RESERVED: timedelta(seconds=34),
    }
