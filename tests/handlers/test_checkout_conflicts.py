"""A second CheckoutStarted for an order in use: a conflict is dead-lettered once, a repeat is quiet.

The saga compares the checkout with what it keeps (saga.actions.checkout_differences) and refuses
one that differs, naming the difference; the orders service, which consumes the same topic,
keeps ignoring it quietly, so the upstream finds one dead letter, not two.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import CheckoutStarted, Message, MessageHeaders
from saga import app as saga_app
from saga.tables import sagas
from services.orders.tables import orders as orders_table
from services.platform.consumer import Delivery, Outcome, Route
from services.platform.settings import Settings
from tests.handlers import ServiceDriver
from tests.support.builders import checkout_started, delivery

CHECKOUT = CheckoutStarted.message_type
CONFLICTS = "checkout_saga_checkout_conflicts_total"


@pytest.fixture
def saga(engine: AsyncEngine, handler_settings: Settings) -> ServiceDriver:
    """The saga orchestrator's consumer (its timeout poller is never started)."""
    return ServiceDriver.of(engine, saga_app.create_service(handler_settings), handler_settings)


def _record(driver: ServiceDriver, message: Message, partition: int) -> tuple[Delivery, Route]:
    sub = driver.subscription(message.message_type)
    record = dataclasses.replace(delivery(message), partition=partition)
    return record, Route(message.message_type, sub.handler, sub.hooks)


def _conflicts(driver: ServiceDriver) -> float:
    registry = driver.consumer.telemetry.metrics.registry
    return registry.get_sample_value(CONFLICTS, {"state": "Submitted"}) or 0.0


async def _saga_row(engine: AsyncEngine, order_id: uuid.UUID) -> dict[str, object]:
    async with engine.connect() as conn:
        row = (await conn.execute(select(sagas).where(sagas.c.id == order_id))).one()
    return dict(row._mapping)


async def _order_rows(engine: AsyncEngine, order_id: uuid.UUID) -> list[dict[str, object]]:
    query = select(orders_table).where(orders_table.c.checkout_group_id == order_id)
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(query)]


async def test_a_conflicting_checkout_in_a_batch_is_dead_lettered_once_and_counted_once(
    saga: ServiceDriver, orders: ServiceDriver
) -> None:
    first = checkout_started(items=[("SKU-1", 2, "9.99")], buyer_id="buyer-first")
    await saga.send(first)
    await orders.send(first)
    saga_before = await _saga_row(saga.engine, first.order_id)
    orders_before = await _order_rows(orders.engine, first.order_id)
    other = checkout_started(first.order_id, items=[("SKU-1", 3, "9.99")], buyer_id="buyer-other")
    bystander = checkout_started()
    # Partitions 0 and 2 share a slot: the conflict fails that slot's transaction, which is then
    # re-run record by record (the conflict refused twice, counted once).
    batch = [_record(saga, other, 0), _record(saga, bystander, 2)]

    outcomes = await saga.consumer.process_batch(batch)
    for record, _ in batch:
        assert await orders.deliver(record, CHECKOUT) in (Outcome.APPLIED, Outcome.DUPLICATE)

    assert outcomes == [Outcome.DEAD_LETTERED, Outcome.APPLIED]
    [letter] = await saga.dead_letters(first.order_id)
    assert letter.payload == batch[0][0].value
    assert letter.headers[MessageHeaders.ERROR] == (
        f"CheckoutStarted conflicts with the checkout that started order {first.order_id}, "
        "which stands: buyer_id 'buyer-other' (the saga has 'buyer-first'); quantities of SKU-1; "
        "amount 29.97 (the saga has 19.98)"
    )
    assert _conflicts(saga) == 1
    assert await _saga_row(saga.engine, first.order_id) == saga_before
    assert await orders.dead_letters(first.order_id) == []
    assert await _order_rows(orders.engine, first.order_id) == orders_before
    assert len(await _order_rows(orders.engine, bystander.order_id)) == 1


async def test_a_repeated_identical_checkout_stays_a_quiet_duplicate(
    saga: ServiceDriver, orders: ServiceDriver
) -> None:
    first = checkout_started()
    await saga.send(first)
    await orders.send(first)
    saga_before = await _saga_row(saga.engine, first.order_id)
    again = checkout_started(first.order_id)  # the same content under a new message id

    assert await saga.send(again) is Outcome.APPLIED  # a new id, the table's duplicate row
    assert await orders.send(again) is Outcome.APPLIED

    assert await saga.dead_letters(first.order_id) == []
    assert await orders.dead_letters(first.order_id) == []
    assert _conflicts(saga) == 0
    assert await _saga_row(saga.engine, first.order_id) == saga_before
    assert len(await _order_rows(orders.engine, first.order_id)) == 1
    assert [d.envelope.message_type for d in await saga.sent(first.order_id)] == [
        "ReserveStockForOrder"
    ]
