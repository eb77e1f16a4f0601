"""The batch consumer's guarantees, on PostgreSQL: poison isolated, duplicates once, steps in order.

Every batch here goes through `Consumer.process_batch` as the broker binding hands it over: a
list of (delivery, route) whose records carry their partition. Partition p runs in slot
p % parallel (2 in these settings), so partitions 0 and 2 share one transaction.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts import (
    Message,
    MessageHeaders,
    PaymentCompleted,
    PaymentFailed,
    Reservation,
    ReserveStockForOrder,
    StockReservationCompleted,
    StockReservationFailed,
)
from contracts.codec import Decoded
from contracts.topics import TOPICS
from saga import app as saga_app
from saga.tables import sagas
from services.inventory import repository as inventory_repo
from services.inventory.domain import ReservationStatus
from services.inventory.tables import reservations
from services.platform.consumer import (
    BatchHooks,
    Consumer,
    Delivery,
    Handler,
    Outcome,
    RetryLaterError,
    Route,
    dead_letter,
)
from services.platform.outbox import OutboxMessage
from services.platform.settings import ConsumerSettings, Settings
from tests.handlers import ServiceDriver
from tests.support.builders import (
    checkout_started,
    deduct_stock,
    delivery,
    new_id,
    raw_delivery,
    reserve_stock,
    unique_sku,
)

RESERVE = ReserveStockForOrder.message_type
Batch = list[tuple[Delivery, Route]]


@pytest.fixture
def saga(engine: AsyncEngine, handler_settings: Settings) -> ServiceDriver:
    """The saga orchestrator's consumer (its timeout poller is never started)."""
    return ServiceDriver.of(engine, saga_app.create_service(handler_settings), handler_settings)


def _route(driver: ServiceDriver, message_type: str) -> Route:
    """The route the runtime subscribes for this message type (use case and batch hooks)."""
    sub = driver.subscription(message_type)
    return Route(message_type, sub.handler, sub.hooks)


def _record(
    driver: ServiceDriver,
    message: Message,
    partition: int = 0,
    message_id: uuid.UUID | None = None,
    route: Route | None = None,
) -> tuple[Delivery, Route]:
    """One record of a batch: the message on its topic at this partition, with its route."""
    record = dataclasses.replace(delivery(message, message_id), partition=partition)
    return record, route or _route(driver, message.message_type)


def _poison(driver: ServiceDriver, key: uuid.UUID, partition: int) -> tuple[Delivery, Route]:
    """Bytes that are not a message at all, on the reservation topic."""
    record = raw_delivery(b'{"message_id": not json', TOPICS[RESERVE], key=str(key))
    return dataclasses.replace(record, partition=partition), _route(driver, RESERVE)


def _batch_sizes(consumer: Consumer) -> tuple[float, float]:
    """(transactions, records in them) as the group-commit histogram counted them."""
    registry, labels = consumer.telemetry.metrics.registry, {"service": consumer.service}
    count = registry.get_sample_value("checkout_consumer_batch_records_count", labels)
    total = registry.get_sample_value("checkout_consumer_batch_records_sum", labels)
    return count or 0.0, total or 0.0


def _counting(handler: Handler, calls: Counter[uuid.UUID]) -> Handler:
    """The handler, counting its calls per message id."""

    async def counted(conn: AsyncConnection, decoded: Decoded) -> Sequence[OutboxMessage]:
        calls[decoded.envelope.message_id] += 1
        return await handler(conn, decoded)

    return counted


# --- inventory helpers -------------------------------------------------------------------------


async def _stocked(engine: AsyncEngine, *levels: int) -> list[str]:
    skus = [unique_sku("BATCH") for _ in levels]
    async with engine.begin() as conn:
        for sku, available in zip(skus, levels, strict=True):
            await inventory_repo.set_stock(conn, sku, available)
    return skus


async def _counters(engine: AsyncEngine, skus: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """(available, reserved, deducted) per product."""
    async with engine.connect() as conn:
        rows = await inventory_repo.stock(conn, skus)
    return {
        str(r["sku"]): (int(str(r["available"])), int(str(r["reserved"])), int(str(r["deducted"])))
        for r in rows
    }


async def _held(engine: AsyncEngine, skus: Sequence[str]) -> dict[str, int]:
    """Quantities held (reserved, not settled) per product, from the reservation rows."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(reservations.c.sku, func.sum(reservations.c.quantity))
            .where(
                reservations.c.sku.in_(list(skus)),
                reservations.c.status == ReservationStatus.HELD.value,
            )
            .group_by(reservations.c.sku)
        )
        return {sku: int(total) for sku, total in rows}


async def _answer(inventory: ServiceDriver, order_id: uuid.UUID) -> Message | None:
    """The one answer inventory wrote for the order, None when it wrote none."""
    answers = [d.message for d in await inventory.sent(order_id)]
    assert len(answers) <= 1, answers
    return answers[0] if answers else None


async def _reserved(inventory: ServiceDriver, order_id: uuid.UUID) -> bool:
    return isinstance(await _answer(inventory, order_id), StockReservationCompleted)


# --- 1. poison isolated ------------------------------------------------------------------------


async def test_invalid_bytes_are_dead_lettered_in_the_batch_and_the_rest_applies(
    inventory: ServiceDriver,
) -> None:
    x, y = await _stocked(inventory.engine, 100, 100)
    orders = [new_id() for _ in range(5)]
    poison_key = new_id()
    poison = _poison(inventory, poison_key, partition=1)
    batch: Batch = [
        _record(inventory, reserve_stock(orders[0], [(x, 1), (y, 1)]), partition=0),
        _record(inventory, reserve_stock(orders[1], [(x, 2)]), partition=1),
        poison,
        _record(inventory, reserve_stock(orders[2], [(y, 3)]), partition=1),
        _record(inventory, reserve_stock(orders[3], [(x, 1)]), partition=2),
        _record(inventory, reserve_stock(orders[4], [(y, 1)]), partition=3),
    ]

    outcomes = await inventory.consumer.process_batch(batch)

    assert outcomes == [Outcome.APPLIED] * 2 + [Outcome.DEAD_LETTERED] + [Outcome.APPLIED] * 3
    assert inventory.consumer.outcomes == Counter({"applied": 5, "dead_lettered": 1})
    for order_id in orders:
        assert await _reserved(inventory, order_id), order_id
        assert await inventory.dead_letters(order_id) == []
    [letter] = await inventory.dead_letters(poison_key)
    assert letter.payload == poison[0].value
    assert letter.headers[MessageHeaders.ORIGINAL_OFFSET] == str(poison[0].offset)
    assert letter.headers[MessageHeaders.REJECTED_BY] == "inventory"
    assert await _counters(inventory.engine, [x, y]) == {x: (96, 4, 0), y: (95, 5, 0)}
    # Undecodable bytes need no fallback: each slot (partitions 0+2, 1+3) committed at once.
    assert _batch_sizes(inventory.consumer) == (2, 6)


@pytest.mark.parametrize(
    ("key", "headers"),
    [
        ("order\u0000", {}),
        (None, {"x-trace\u0000": "1"}),
        (None, {"message_type": "ReserveStockForOrder\u0000"}),
    ],
    ids=["nul in the key", "nul in a header name", "nul in a header value"],
)
async def test_a_record_with_nul_in_its_key_or_headers_is_dead_lettered_not_fatal(
    inventory: ServiceDriver, key: str | None, headers: dict[str, str]
) -> None:
    # Kafka keys and headers may hold NUL; PostgreSQL text and jsonb cannot. The dead letter
    # keeps them with NUL replaced, instead of failing its write and with it the batch (which
    # the batch loop would rewind and fail again, forever).
    (x,) = await _stocked(inventory.engine, 10)
    order_id = new_id()
    hostile = dataclasses.replace(
        raw_delivery(b"\x00 not json", TOPICS[RESERVE], key=key), headers=headers, partition=0
    )
    batch: Batch = [
        (hostile, _route(inventory, RESERVE)),
        _record(inventory, reserve_stock(order_id, [(x, 1)]), partition=0),
    ]

    outcomes = await inventory.consumer.process_batch(batch)

    assert outcomes == [Outcome.DEAD_LETTERED, Outcome.APPLIED]
    letter_id = dead_letter(hostile, "", 0, "inventory").message_id
    stored_key = key.replace("\u0000", "\ufffd") if key else "unknown"
    [letter] = [r for r in await inventory.dead_letters(stored_key) if r.message_id == letter_id]
    assert letter.payload == hostile.value  # the original bytes, NUL included
    stored = {
        k.replace("\ufffd", "\u0000"): v.replace("\ufffd", "\u0000")
        for k, v in letter.headers.items()
    }
    assert headers.items() <= stored.items()
    assert "malformed JSON" in letter.headers[MessageHeaders.ERROR]
    assert await _reserved(inventory, order_id)


async def test_a_rejected_record_is_dead_lettered_alone_once(inventory: ServiceDriver) -> None:
    x, y = await _stocked(inventory.engine, 100, 100)
    settled = new_id()
    await inventory.send(reserve_stock(settled, [(x, 4), (y, 4)]))
    ghost = new_id()  # no reservations: inventory rejects its DeductStock
    fresh = [new_id() for _ in range(3)]
    batch: Batch = [
        _record(inventory, reserve_stock(fresh[0], [(y, 1), (x, 1)]), partition=0),
        _record(inventory, deduct_stock(ghost), partition=0),
        _record(inventory, reserve_stock(fresh[1], [(x, 2)]), partition=0),
        _record(inventory, deduct_stock(settled), partition=1),
        _record(inventory, reserve_stock(fresh[2], [(y, 3)]), partition=2),
    ]

    outcomes = await inventory.consumer.process_batch(batch)

    assert outcomes == [Outcome.APPLIED, Outcome.DEAD_LETTERED] + [Outcome.APPLIED] * 3
    # Not a conflict: the failed slot goes record by record at once, nothing is retried.
    assert inventory.consumer.outcomes == Counter({"applied": 1 + 4, "dead_lettered": 1})
    for order_id in fresh:
        assert await _reserved(inventory, order_id), order_id
    [letter] = await inventory.dead_letters(ghost)
    assert letter.headers[MessageHeaders.ERROR] == f"no reservations for order {ghost} to deduct"
    assert letter.headers[MessageHeaders.ATTEMPTS] == "1"
    assert await inventory.dead_letters(settled) == []
    assert await _counters(inventory.engine, [x, y]) == {x: (93, 3, 4), y: (92, 4, 4)}

    # The dead-lettered record was never claimed: a replay of it is rejected again, not skipped,
    # and its dead letter (same position) is not written twice.
    [(ghost_record, ghost_route)] = [b for b in batch if b[0].key == str(ghost)]
    assert await inventory.consumer.process_batch([(ghost_record, ghost_route)]) == [
        Outcome.DEAD_LETTERED
    ]
    assert len(await inventory.dead_letters(ghost)) == 1


# --- 2. duplicates -----------------------------------------------------------------------------


async def test_a_message_id_applies_once_within_and_across_batches(
    inventory: ServiceDriver,
) -> None:
    [x] = await _stocked(inventory.engine, 100)
    calls: Counter[uuid.UUID] = Counter()
    subscribed = _route(inventory, RESERVE)
    route = dataclasses.replace(subscribed, handler=_counting(subscribed.handler, calls))
    repeated, repeated_id = new_id(), uuid.uuid4()
    others = [new_id() for _ in range(3)]
    command = reserve_stock(repeated, [(x, 5)])

    first = await inventory.consumer.process_batch(
        [
            _record(inventory, command, 0, repeated_id, route),
            _record(inventory, reserve_stock(others[0], [(x, 1)]), 0, route=route),
            _record(inventory, command, 0, repeated_id, route),
            # The same id in another slot: its claim waits for the first slot's, then skips it.
            _record(inventory, command, 1, repeated_id, route),
            _record(inventory, reserve_stock(others[1], [(x, 1)]), 1, route=route),
        ]
    )
    second = await inventory.consumer.process_batch(
        [
            _record(inventory, reserve_stock(others[2], [(x, 1)]), 0, route=route),
            _record(inventory, command, 0, repeated_id, route),
        ]
    )

    assert calls[repeated_id] == 1
    # The copy later in its own slot is a duplicate; of the two slots, whichever claims first
    # applies it and the other finds it claimed.
    assert first[1:3] == [Outcome.APPLIED, Outcome.DUPLICATE]
    assert first[4] == Outcome.APPLIED
    assert sorted([first[0], first[3]]) == [Outcome.APPLIED, Outcome.DUPLICATE]
    assert second == [Outcome.APPLIED, Outcome.DUPLICATE]
    assert inventory.consumer.outcomes == Counter({"applied": 4, "duplicate": 3})
    assert await _reserved(inventory, repeated)
    assert await _counters(inventory.engine, [x]) == {x: (92, 8, 0)}


# --- 3. sagas stepped several times in one batch -----------------------------------------------


def _stock_ok(order_id: uuid.UUID, sku: str = "SKU-1") -> StockReservationCompleted:
    held = Reservation(reservation_id=uuid.uuid4(), sku=sku, quantity=2)
    return StockReservationCompleted(order_id=order_id, reservations=[held])


def _paid(order_id: uuid.UUID, amount: str = "19.98") -> PaymentCompleted:
    """A payment of the default checkout's total (2 x 9.99 EUR)."""
    return PaymentCompleted(
        order_id=order_id, payment_id=uuid.uuid4(), amount=Decimal(amount), currency="EUR"
    )


def _declined(order_id: uuid.UUID) -> PaymentFailed:
    return PaymentFailed(order_id=order_id, payment_id=uuid.uuid4(), reason="card declined")


async def _sagas(
    engine: AsyncEngine, order_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, int]]:
    """(state, version) of each saga that exists."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(sagas.c.id, sagas.c.state, sagas.c.version).where(sagas.c.id.in_(order_ids))
        )
        return {r.id: (r.state, r.version) for r in rows}


async def _commands(saga: ServiceDriver, order_id: uuid.UUID) -> list[tuple[str, uuid.UUID | None]]:
    """(message type, causation id) of the saga's outbox rows for the order, in order."""
    return [(d.envelope.message_type, d.envelope.causation_id) for d in await saga.sent(order_id)]


CONFIRM = ["ConfirmOrder", "DeductStock", "ClearCart"]


async def test_a_saga_started_and_finished_in_one_batch_is_written_once(
    saga: ServiceDriver,
) -> None:
    order_id = new_id()
    started, reserved, paid = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    outcomes = await saga.consumer.process_batch(
        [
            _record(saga, checkout_started(order_id), 1, started),
            _record(saga, _stock_ok(order_id), 1, reserved),
            _record(saga, _paid(order_id), 1, paid),
        ]
    )

    assert outcomes == [Outcome.APPLIED] * 3
    assert await _sagas(saga.engine, [order_id]) == {order_id: ("Confirmed", 1)}
    assert await _commands(saga, order_id) == [
        ("ReserveStockForOrder", started),
        ("PaymentRequested", reserved),
        *((name, paid) for name in CONFIRM),
    ]
    assert await saga.dead_letters(order_id) == []
    assert _batch_sizes(saga.consumer) == (1, 3)


async def test_many_sagas_in_one_batch_each_follow_their_own_records(
    saga: ServiceDriver,
) -> None:
    existing = new_id()  # created by an earlier batch: this one updates it
    assert await saga.send(checkout_started(existing)) is Outcome.APPLIED
    confirmed = [new_id() for _ in range(3)]
    failed = [new_id() for _ in range(2)]
    reserved = new_id()
    partition = {o: i % 4 for i, o in enumerate([*confirmed, *failed, reserved, existing])}

    def at(message: Message) -> tuple[Delivery, Route]:
        return _record(saga, message, partition[message.order_id])

    batch: Batch = []
    for order_id in [*confirmed, *failed, reserved]:
        batch.append(at(checkout_started(order_id)))
    batch.append(at(_stock_ok(existing)))
    for order_id in [*confirmed, *failed, reserved]:
        batch.append(at(_stock_ok(order_id)))
    batch += [at(_paid(o)) for o in confirmed] + [at(_declined(o)) for o in failed]

    outcomes = await saga.consumer.process_batch(batch)

    assert outcomes == [Outcome.APPLIED] * len(batch)
    assert await _sagas(saga.engine, [*confirmed, *failed, reserved, existing]) == {
        **{o: ("Confirmed", 1) for o in confirmed},
        **{o: ("Failed", 1) for o in failed},
        reserved: ("StockReserved", 1),
        existing: ("StockReserved", 2),
    }
    for order_id in confirmed:
        sent = [name for name, _ in await _commands(saga, order_id)]
        assert sent == ["ReserveStockForOrder", "PaymentRequested", *CONFIRM]
    for order_id in failed:
        sent = [name for name, _ in await _commands(saga, order_id)]
        assert sent == [
            "ReserveStockForOrder",
            "PaymentRequested",
            "ReleaseStockReservations",
            "OrderFailed",
        ]
    for order_id in (reserved, existing):
        sent = [name for name, _ in await _commands(saga, order_id)]
        assert sent == ["ReserveStockForOrder", "PaymentRequested"]
    # One transaction per slot: partitions 0+2 and 1+3.
    assert _batch_sizes(saga.consumer) == (2 + 1, len(batch) + 1)


async def test_a_saga_step_rejected_mid_batch_is_dead_lettered_and_the_rest_applies(
    saga: ServiceDriver,
) -> None:
    order_id, neighbour = new_id(), new_id()
    # Inventory cannot report an order unreservable once it reported it reserved: rejected.
    contradiction = StockReservationFailed(order_id=order_id, reason="out of stock")
    batch: Batch = [
        _record(saga, checkout_started(order_id), 0),
        _record(saga, checkout_started(neighbour), 2),
        _record(saga, _stock_ok(order_id), 0),
        _record(saga, contradiction, 0),
        _record(saga, _stock_ok(neighbour), 2),
        _record(saga, _paid(order_id), 0),
    ]

    outcomes = await saga.consumer.process_batch(batch)

    assert outcomes == [Outcome.APPLIED] * 3 + [Outcome.DEAD_LETTERED] + [Outcome.APPLIED] * 2
    assert saga.consumer.outcomes == Counter({"applied": 5, "dead_lettered": 1})
    # Record by record after the failed batch: each step its own write.
    assert await _sagas(saga.engine, [order_id, neighbour]) == {
        order_id: ("Confirmed", 3),
        neighbour: ("StockReserved", 2),
    }
    sent = [name for name, _ in await _commands(saga, order_id)]
    assert sent == ["ReserveStockForOrder", "PaymentRequested", *CONFIRM]
    [letter] = await saga.dead_letters(order_id)
    assert letter.payload == batch[3][0].value
    assert letter.headers[MessageHeaders.ERROR].endswith(
        "inventory already reported this order reserved"
    )


# --- 4. two instances stepping the same sagas ---------------------------------------------------


@dataclasses.dataclass
class _Rendezvous:
    """Batch hooks that, on their first batch only, wait after the read until the other's read.

    Both instances then hold the same versions in memory, so exactly the same sagas are
    written twice from one read: one write must lose and be re-run from a fresh read.
    """

    inner: BatchHooks
    barrier: asyncio.Barrier
    waited: bool = False

    async def before_batch(self, conn: AsyncConnection, batch: Sequence[Decoded]) -> None:
        await self.inner.before_batch(conn, batch)
        if not self.waited:
            self.waited = True
            await self.barrier.wait()

    async def after_batch(self, conn: AsyncConnection) -> None:
        await self.inner.after_batch(conn)


def _second_instance(engine: AsyncEngine, driver: ServiceDriver, settings: Settings) -> Consumer:
    """Another process of the same service: its own consumer on the same schema."""
    return Consumer(engine, driver.spec.mailbox, driver.spec.name, settings.consumer)


@pytest.mark.parametrize("run", range(3))
async def test_two_instances_never_lose_a_step_of_a_shared_saga(
    saga: ServiceDriver, handler_settings: Settings, run: int
) -> None:
    orders = [new_id() for _ in range(4)]
    for order_id in orders:
        assert await saga.send(checkout_started(order_id)) is Outcome.APPLIED
    one, other = saga.consumer, _second_instance(saga.engine, saga, handler_settings)
    barrier = asyncio.Barrier(2)

    def gated(message_type: str) -> Route:
        route = _route(saga, message_type)
        assert route.hooks is not None
        return dataclasses.replace(route, hooks=_Rendezvous(route.hooks, barrier))

    stock, paid = gated(StockReservationCompleted.message_type), gated("PaymentCompleted")
    # Instance one consumes the stock answers, instance two the payments (another topic of the
    # same partition number): every saga gets one step from each, concurrently.
    batches = (
        (one, [_record(saga, _stock_ok(o), 0, route=stock) for o in orders]),
        (other, [_record(saga, _paid(o), 0, route=paid) for o in orders]),
    )
    if run % 2:
        batches = batches[::-1]

    # wait_for only guards against a hang; nothing is asserted about time.
    results = await asyncio.wait_for(
        asyncio.gather(*(c.process_batch(b) for c, b in batches)), timeout=120
    )

    assert results == [[Outcome.APPLIED] * len(orders)] * 2
    # Both steps are in every saga: created, then one write per instance.
    assert await _sagas(saga.engine, orders) == {o: ("Confirmed", 3) for o in orders}
    # Both read version 1 before either wrote: one batch lost its version check (or a deadlock
    # between the two updates) and was re-run from a fresh read.
    assert one.outcomes["retried"] + other.outcomes["retried"] >= 1
    for order_id in orders:
        sent = [name for name, _ in await _commands(saga, order_id)]
        assert sent[0] == "ReserveStockForOrder"
        assert sent[-3:] == CONFIRM
        assert Counter(sent) <= Counter(["ReserveStockForOrder", "PaymentRequested", *CONFIRM])


# --- 5. inventory: overlapping batches never deadlock -------------------------------------------


@pytest.mark.parametrize("run", range(3))
async def test_overlapping_reservation_batches_do_not_deadlock_and_conserve_stock(
    inventory: ServiceDriver, handler_settings: Settings, run: int
) -> None:
    x, y, z = skus = await _stocked(inventory.engine, 40, 40, 5)
    before = await _counters(inventory.engine, skus)
    one, other = inventory.consumer, _second_instance(inventory.engine, inventory, handler_settings)
    # Within a batch the orders take the products in opposite orders: without every product
    # of the batch locked up front, one batch holds x waiting for y while the other holds y
    # waiting for x. z is scarce, so some orders are refused and hold nothing.
    lines_one = [[(x, 1)], [(y, 1)], [(x, 2), (y, 1)], [(z, 2), (x, 1)], [(y, 1), (z, 1)]]
    lines_other = [[(y, 1)], [(x, 1)], [(y, 2), (x, 1)], [(z, 2), (y, 1)], [(x, 1), (z, 1)]]
    orders_one = [new_id() for _ in lines_one]
    orders_other = [new_id() for _ in lines_other]
    batch_one = [
        _record(inventory, reserve_stock(o, lines), 0)
        for o, lines in zip(orders_one, lines_one, strict=True)
    ]
    batch_other = [
        _record(inventory, reserve_stock(o, lines), 0)
        for o, lines in zip(orders_other, lines_other, strict=True)
    ]

    results = await asyncio.wait_for(
        asyncio.gather(one.process_batch(batch_one), other.process_batch(batch_other)),
        timeout=120,
    )

    assert list(results) == [
        [Outcome.APPLIED] * len(lines_one),
        [Outcome.APPLIED] * len(lines_other),
    ]
    # Not even a deadlock retried away: both batches committed on their first attempt.
    assert one.outcomes == Counter({"applied": len(lines_one)})
    assert other.outcomes == Counter({"applied": len(lines_other)})
    after = await _counters(inventory.engine, skus)
    for sku in skus:
        assert sum(after[sku]) == sum(before[sku]), sku
        assert after[sku][2] == 0
    # Reserved is exactly what the reservation rows hold, and what the answers promised.
    held = await _held(inventory.engine, skus)
    assert {sku: after[sku][1] for sku in skus} == {sku: held.get(sku, 0) for sku in skus}
    lines = dict(zip(orders_one + orders_other, lines_one + lines_other, strict=True))
    promised: Counter[str] = Counter()
    for order_id, order_lines in lines.items():
        answer = await _answer(inventory, order_id)
        assert isinstance(answer, StockReservationCompleted | StockReservationFailed), order_id
        if isinstance(answer, StockReservationCompleted):
            promised.update({sku: q for sku, q in order_lines})
    assert Counter(held) == promised
    assert promised[z] <= 5 < sum(q for ls in lines.values() for sku, q in ls if sku == z)


# --- 6. a record that must come back later --------------------------------------------------------


def _failing_for(handler: Handler, order_id: uuid.UUID, calls: Counter[uuid.UUID]) -> Handler:
    """The handler, failing transiently (a lost connection) for one order, counting calls."""

    async def flaky(conn: AsyncConnection, decoded: Decoded) -> Sequence[OutboxMessage]:
        calls[decoded.message.order_id] += 1
        if decoded.message.order_id == order_id:
            raise OperationalError("SELECT 1", {}, ConnectionResetError("server closed"))
        return await handler(conn, decoded)

    return flaky


async def test_a_record_failing_transiently_comes_back_later_without_being_overtaken(
    inventory: ServiceDriver,
) -> None:
    [x] = await _stocked(inventory.engine, 100)
    settings = ConsumerSettings(
        retry_attempts=2, retry_base_delay_s=0, parallel=2, parallel_min_records=1
    )
    consumer = Consumer(inventory.engine, inventory.spec.mailbox, "inventory", settings)
    stuck = new_id()
    calls: Counter[uuid.UUID] = Counter()
    subscribed = _route(inventory, RESERVE)
    route = dataclasses.replace(subscribed, handler=_failing_for(subscribed.handler, stuck, calls))
    before, behind, same_slot, other_slot, other_slot_2 = (new_id() for _ in range(5))
    batch: Batch = [
        _record(inventory, reserve_stock(before, [(x, 1)]), 0, route=route),
        _record(inventory, reserve_stock(stuck, [(x, 1)]), 0, route=route),
        _record(inventory, reserve_stock(behind, [(x, 1)]), 0, route=route),
        # Partition 2 shares partition 0's slot (2 % 2) but not its order: it goes on.
        _record(inventory, reserve_stock(same_slot, [(x, 1)]), 2, route=route),
        _record(inventory, reserve_stock(other_slot, [(x, 1)]), 1, route=route),
        _record(inventory, reserve_stock(other_slot_2, [(x, 1)]), 3, route=route),
    ]

    with pytest.raises(RetryLaterError):
        await consumer.process_batch(batch)

    for order_id in (before, same_slot, other_slot, other_slot_2):
        assert await _reserved(inventory, order_id), order_id
    for order_id in (stuck, behind):
        assert await _answer(inventory, order_id) is None
        assert await inventory.dead_letters(order_id) == []
    assert calls[behind] == 0  # the slot's batch stopped at stuck; alone it must wait for it
    assert calls[stuck] >= settings.retry_attempts
    assert await _counters(inventory.engine, [x]) == {x: (96, 4, 0)}
    assert consumer.outcomes["failed"] == 1
    assert consumer.outcomes["applied"] == 4
    assert "dead_lettered" not in consumer.outcomes

    # Kafka hands the whole batch back; now it goes through: the committed ones are duplicates.
    healed = [(record, subscribed) for record, _ in batch]
    outcomes = await consumer.process_batch(healed)

    assert outcomes == [
        Outcome.DUPLICATE,
        Outcome.APPLIED,
        Outcome.APPLIED,
        Outcome.DUPLICATE,
        Outcome.DUPLICATE,
        Outcome.DUPLICATE,
    ]
    assert await _reserved(inventory, stuck)
    assert await _reserved(inventory, behind)
    assert await _counters(inventory.engine, [x]) == {x: (94, 6, 0)}


async def test_a_payment_ahead_of_its_checkout_in_one_batch_waits_for_it_not_for_retries(
    saga: ServiceDriver,
) -> None:
    # A payer that answers early: its PaymentCompleted (one topic) comes before the order's
    # CheckoutStarted (another topic) in one fetched batch. The batch fails as a whole (no
    # saga yet for the payment); one by one, the payment must let the checkout go first
    # rather than burn its retries and send the whole batch back to Kafka.
    order_id = new_id()
    started, paid = uuid.uuid4(), uuid.uuid4()
    retried_before = saga.consumer.outcomes["retried"]

    outcomes = await saga.consumer.process_batch(
        [
            _record(saga, _paid(order_id), 1, paid),
            _record(saga, checkout_started(order_id), 1, started),
        ]
    )

    assert outcomes == [Outcome.APPLIED, Outcome.APPLIED]
    assert saga.consumer.outcomes["retried"] == retried_before  # no backoff was needed
    state, _ = (await _sagas(saga.engine, [order_id]))[order_id]
    assert state == "Submitted"  # the early payment is remembered until stock is held
    assert [name for name, _ in await _commands(saga, order_id)] == ["ReserveStockForOrder"]


@pytest.mark.parametrize(
    ("ahead", "outcome"),
    [(timedelta(days=365 * 7000), Outcome.DEAD_LETTERED), (timedelta(seconds=-1), None)],
    ids=["dated thousands of years ahead", "dated a moment ago"],
)
async def test_an_orphan_answer_waits_for_its_saga_only_within_the_grace(
    saga: ServiceDriver, handler_settings: Settings, ahead: timedelta, outcome: Outcome | None
) -> None:
    # An answer for an order with no saga may have overtaken its CheckoutStarted: it is retried
    # while it is younger than the orphan grace. One dated far ahead of this clock was never
    # going to age into the grace: it blocked its partition for good. Found by the wire fuzz.
    assert handler_settings.saga.orphan_grace_s >= 30  # a moment ago is well inside it
    order_id = new_id()
    occurred = datetime.now(UTC) + ahead
    record = delivery(_declined(order_id).to_envelope(occurred_at=occurred))

    if outcome is None:
        with pytest.raises(RetryLaterError):
            await saga.deliver(record, PaymentFailed.message_type)
        return
    assert await saga.deliver(record, PaymentFailed.message_type) is outcome
    [letter] = await saga.dead_letters(order_id)
    assert "ahead of this clock" in letter.headers[MessageHeaders.ERROR]
    assert await _sagas(saga.engine, [order_id]) == {}


def _handled(consumer: Consumer, message_type: str) -> float:
    """How many records of this type the handling histogram counted."""
    registry = consumer.telemetry.metrics.registry
    labels = {"service": consumer.service, "message_type": message_type}
    return registry.get_sample_value("checkout_message_handling_seconds_count", labels) or 0.0


async def test_handling_time_is_counted_once_per_applied_record_in_a_batch(
    saga: ServiceDriver,
) -> None:
    orders = [(new_id(), uuid.uuid4()) for _ in range(3)]
    first, first_id = orders[0]
    before = _handled(saga.consumer, "CheckoutStarted")

    await saga.consumer.process_batch(
        [_record(saga, checkout_started(o), 2, message_id) for o, message_id in orders]
        # The same message again (same id): the inbox drops it, its handler never runs.
        + [_record(saga, checkout_started(first), 2, first_id)]
    )

    assert _handled(saga.consumer, "CheckoutStarted") == before + 3
