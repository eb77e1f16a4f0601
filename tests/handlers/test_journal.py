"""The journal, on PostgreSQL: every consumed record and every outbox row, written with the effects.

Each test reads the journal of its own order ids (a uuid4 each), so tests sharing the database
never see each other's rows.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts import (
    DEAD_LETTER_TOPIC,
    PaymentRequested,
    Reservation,
    ReserveStockForOrder,
    StockReservationCompleted,
    StockReservationFailed,
)
from contracts.codec import Decoded
from contracts.topics import TOPICS
from saga import app as saga_app
from saga import repository as saga_repo
from saga import timeouts
from saga.handlers import policy_of
from services.inventory import repository as inventory_repo
from services.platform import journal, outbox
from services.platform.consumer import Delivery, Outcome, Route
from services.platform.items import UNREADABLE
from services.platform.outbox import OutboxMessage
from services.platform.settings import Settings
from tests.handlers import ServiceDriver
from tests.support.builders import (
    checkout_started,
    delivery,
    new_id,
    raw_delivery,
    release_stock,
    reserve_stock,
    unique_sku,
)

CHECKOUT, STOCK_OK = "CheckoutStarted", StockReservationCompleted.message_type
RESERVE = ReserveStockForOrder.message_type


@pytest.fixture
def saga(engine: AsyncEngine, handler_settings: Settings) -> ServiceDriver:
    """The saga orchestrator's consumer (its timeout poller is never started)."""
    return ServiceDriver.of(engine, saga_app.create_service(handler_settings), handler_settings)


async def _journal(engine: AsyncEngine, schema: str, key: uuid.UUID | str) -> list[dict[str, Any]]:
    """The schema's journal rows of one correlation id, in the order they were written."""
    query = (
        "SELECT direction, outcome, message_type, message_id, topic, detail "
        f"FROM {schema}.journal WHERE correlation_id = :key ORDER BY id"
    )
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(text(query), {"key": str(key)})]


def _told(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(direction, outcome, message type) of each row: the story without ids and details."""
    return [(r["direction"], r["outcome"], r["message_type"]) for r in rows]


def _route(driver: ServiceDriver, message_type: str) -> Route:
    sub = driver.subscription(message_type)
    return Route(message_type, sub.handler, sub.hooks)


def _stock_ok(order_id: uuid.UUID) -> StockReservationCompleted:
    held = Reservation(reservation_id=uuid.uuid4(), sku="SKU-1", quantity=2)
    return StockReservationCompleted(order_id=order_id, reservations=[held])


async def test_a_saga_batch_journals_each_record_before_what_it_produced_with_its_transition(
    saga: ServiceDriver,
) -> None:
    order_id = new_id()
    started, reserved = delivery(checkout_started(order_id)), delivery(_stock_ok(order_id))

    # One transaction: both records on one partition, so the saga steps twice in memory.
    outcomes = await saga.consumer.process_batch(
        [(started, _route(saga, CHECKOUT)), (reserved, _route(saga, STOCK_OK))]
    )

    assert outcomes == [Outcome.APPLIED, Outcome.APPLIED]
    rows = await _journal(saga.engine, "saga", order_id)
    assert _told(rows) == [
        ("in", "applied", CHECKOUT),
        ("out", "produced", RESERVE),
        ("in", "applied", STOCK_OK),
        ("out", "produced", PaymentRequested.message_type),
    ]
    assert rows[0]["detail"] == "create_saga: (none) → Submitted"
    assert rows[2]["detail"] == "stock_reserved: Submitted → StockReserved"
    assert [r["topic"] for r in rows] == [
        started.topic,
        TOPICS[RESERVE],
        reserved.topic,
        TOPICS[PaymentRequested.message_type],
    ]
    # The 'out' rows are the outbox rows, id for id.
    written = [r.message_id for r in await saga.outbox(order_id)]
    assert [r["message_id"] for r in rows if r["direction"] == "out"] == written


async def test_a_redelivery_is_journaled_as_a_duplicate_and_a_rejected_pair_with_its_reason(
    saga: ServiceDriver,
) -> None:
    order_id = new_id()
    reserved = delivery(_stock_ok(order_id))
    await saga.send(checkout_started(order_id))
    await saga.deliver(reserved, STOCK_OK)

    assert await saga.deliver(reserved, STOCK_OK) == Outcome.DUPLICATE
    failed = StockReservationFailed(order_id=order_id, reason="out of stock")
    assert await saga.send(failed) == Outcome.DEAD_LETTERED

    rows = await _journal(saga.engine, "saga", order_id)
    assert _told(rows)[4:] == [
        ("in", "duplicate", STOCK_OK),
        ("in", "dead_lettered", StockReservationFailed.message_type),
        ("out", "produced", StockReservationFailed.message_type),
    ]
    duplicate, rejected, letter = rows[4:]
    assert duplicate["message_id"] == rows[2]["message_id"]  # the same message, seen again
    assert duplicate["detail"] is None
    assert "not expected in StockReserved" in rejected["detail"]
    assert letter["topic"] == DEAD_LETTER_TOPIC
    [parked] = await saga.dead_letters(order_id)
    assert letter["message_id"] == parked.message_id


async def test_an_unreadable_record_is_journaled_logged_and_counted_as_unreadable_with_why(
    inventory: ServiceDriver, caplog: pytest.LogCaptureFixture
) -> None:
    # Malformed JSON is no message of its topic's type: it was logged, counted and journaled
    # as one (ReserveStockForOrder here), and its text log did not say why it was refused.
    key = new_id()
    record = raw_delivery(b'{"message_id": not json', TOPICS[RESERVE], key=str(key))

    with caplog.at_level(logging.WARNING, logger="checkout_saga.consumer"):
        assert await inventory.deliver(record, RESERVE) == Outcome.DEAD_LETTERED

    [logged] = [r for r in caplog.records if getattr(r, "offset", None) == record.offset]
    assert logged.message_type == UNREADABLE  # type: ignore[attr-defined]
    assert logged.reason.startswith("malformed JSON")  # type: ignore[attr-defined]
    counted = inventory.consumer.telemetry.metrics.registry.get_sample_value(
        "checkout_messages_total",
        {"service": "inventory", "message_type": UNREADABLE, "outcome": "dead_lettered"},
    )
    assert counted == 1
    rows = await _journal(inventory.engine, "inventory", key)
    assert _told(rows) == [("in", "dead_lettered", UNREADABLE), ("out", "produced", "")]
    unread, letter = rows
    assert unread["message_id"] == uuid.UUID(int=0)  # it had none to give
    assert unread["topic"] == TOPICS[RESERVE]
    assert unread["detail"]
    assert letter["topic"] == DEAD_LETTER_TOPIC


async def test_a_handler_that_produces_nothing_is_journaled_alone(
    inventory: ServiceDriver,
) -> None:
    sku = unique_sku("JOURNAL")
    async with inventory.engine.begin() as conn:
        await inventory_repo.set_stock(conn, sku, 10)
    order_id = new_id()
    await inventory.send(reserve_stock(order_id, [(sku, 1)]))

    # A release of an order already released: applied, nothing to send.
    assert await inventory.send(release_stock(order_id)) == Outcome.APPLIED
    assert await inventory.send(release_stock(order_id)) == Outcome.APPLIED

    rows = await _journal(inventory.engine, "inventory", order_id)
    assert _told(rows)[-2:] == [("in", "applied", "ReleaseStockReservations")] * 2


async def test_a_record_re_run_alone_after_its_batch_failed_is_journaled_once(
    inventory: ServiceDriver,
) -> None:
    sku = unique_sku("JOURNAL")
    async with inventory.engine.begin() as conn:
        await inventory_repo.set_stock(conn, sku, 10)
    good, bad = new_id(), new_id()
    route = _route(inventory, RESERVE)

    async def failing(conn: AsyncConnection, decoded: Decoded) -> list[OutboxMessage]:
        if decoded.message.order_id == bad:
            raise ValueError("a bug in this record's use case")
        return list(await route.handler(conn, decoded))

    mixed = Route(RESERVE, failing, route.hooks)
    batch: list[tuple[Delivery, Route]] = [
        (delivery(reserve_stock(good, [(sku, 1)])), mixed),
        (delivery(reserve_stock(bad, [(sku, 1)])), mixed),
    ]

    # The batch's transaction fails on the bad record; each then goes alone.
    assert await inventory.consumer.process_batch(batch) == [
        Outcome.APPLIED,
        Outcome.DEAD_LETTERED,
    ]

    assert _told(await _journal(inventory.engine, "inventory", good)) == [
        ("in", "applied", RESERVE),
        ("out", "produced", STOCK_OK),
    ]
    assert _told(await _journal(inventory.engine, "inventory", bad)) == [
        ("in", "dead_lettered", RESERVE),
        ("out", "produced", RESERVE),
    ]


async def test_a_rolled_back_transaction_leaves_no_journal_row(inventory: ServiceDriver) -> None:
    order_id = new_id()
    message = OutboxMessage.of(_stock_ok(order_id))
    consumed = journal.Consumed(str(order_id), uuid.uuid4(), RESERVE, TOPICS[RESERVE], "applied")
    mailbox = inventory.spec.mailbox

    written_inside: list[Any] = []

    async def doomed() -> None:
        async with inventory.engine.begin() as conn:
            await outbox.write(conn, mailbox.outbox, [message], mailbox.lanes, [consumed])
            written_inside.extend(await _rows_in(conn, order_id))
            raise RuntimeError("the commit never comes")

    with pytest.raises(RuntimeError):
        await doomed()

    assert len(written_inside) == 2  # the 'in' and the 'out' row, inside the transaction

    assert await _journal(inventory.engine, "inventory", order_id) == []
    assert await inventory.outbox(order_id) == []


async def _rows_in(conn: AsyncConnection, key: uuid.UUID) -> list[Any]:
    query = text("SELECT id FROM inventory.journal WHERE correlation_id = :key")
    return list(await conn.execute(query, {"key": str(key)}))


async def test_a_replayed_message_gets_no_second_out_row(inventory: ServiceDriver) -> None:
    order_id = new_id()
    message = OutboxMessage.of(_stock_ok(order_id))
    mailbox = inventory.spec.mailbox

    for _ in range(2):
        async with inventory.engine.begin() as conn:
            await outbox.write(conn, mailbox.outbox, [message], mailbox.lanes)

    assert _told(await _journal(inventory.engine, "inventory", order_id)) == [
        ("out", "produced", STOCK_OK)
    ]


async def test_a_payment_deadline_is_journaled_as_an_internal_event_with_its_transition(
    saga: ServiceDriver, handler_settings: Settings
) -> None:
    order_id = new_id()
    await saga.send(checkout_started(order_id))
    await saga.send(_stock_ok(order_id))
    async with saga.engine.begin() as conn:
        stored = await saga_repo.load(conn, order_id)
        assert stored is not None
        assert stored.data.payment_deadline is not None
        late = stored.data.payment_deadline + timedelta(seconds=1)
        policy = policy_of(handler_settings.saga.payment_timeout_s)
        await timeouts._fire(conn, stored, saga.spec.mailbox, policy, late)

    rows = (await _journal(saga.engine, "saga", order_id))[4:]
    assert _told(rows) == [
        ("in", "applied", "PaymentDeadlinePassed"),
        ("out", "produced", "ReleaseStockReservations"),
        ("out", "produced", "OrderFailed"),
    ]
    assert rows[0]["topic"] == journal.INTERNAL_TOPIC
    assert rows[0]["detail"] == "payment_timed_out: StockReserved → Failed"
    deadline = stored.data.payment_deadline.isoformat()
    assert rows[0]["message_id"] == uuid.uuid5(
        timeouts._DEADLINE_NAMESPACE, f"{order_id}:{deadline}"
    )
