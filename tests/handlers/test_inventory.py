"""Inventory through the real consumer: all-or-nothing holds, idempotent settles, no overselling."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import (
    CheckoutPolicy,
    MessageHeaders,
    RejectionReason,
    ReserveStockForOrder,
    StockReservationCompleted,
    StockReservationFailed,
    StockShortage,
)
from contracts.codec import encode
from contracts.topics import TOPICS
from services.inventory import repository as repo
from services.inventory.domain import reservation_id
from services.inventory.tables import reservations
from services.platform.consumer import Outcome
from services.platform.settings import Settings
from tests.handlers import ServiceDriver, through_the_runtime
from tests.support.builders import (
    deduct_stock,
    envelope,
    new_id,
    order_failed,
    raw_delivery,
    release_stock,
    reserve_stock,
    retyped,
    tampered,
    unique_sku,
)

RESERVE = ReserveStockForOrder.message_type


async def _stocked(engine: AsyncEngine, *levels: int) -> list[str]:
    """Fresh products with these available counts."""
    skus = [unique_sku() for _ in levels]
    async with engine.begin() as conn:
        for sku, available in zip(skus, levels, strict=True):
            await repo.set_stock(conn, sku, available)
    return skus


async def _counters(engine: AsyncEngine, sku: str) -> tuple[int, int, int]:
    """(available, reserved, deducted) of one product."""
    async with engine.connect() as conn:
        [row] = await repo.stock(conn, [sku])
    return int(str(row["available"])), int(str(row["reserved"])), int(str(row["deducted"]))


async def _statuses(engine: AsyncEngine, order_id: uuid.UUID) -> dict[str, str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(reservations.c.sku, reservations.c.status).where(
                reservations.c.order_id == order_id
            )
        )
        return {r.sku: r.status for r in rows}


async def _answers(inventory: ServiceDriver, order_id: uuid.UUID) -> list[object]:
    return [d.message for d in await inventory.sent(order_id)]


async def _reserved(inventory: ServiceDriver, items: list[tuple[str, int]]) -> uuid.UUID:
    order_id = new_id()
    await inventory.send(reserve_stock(order_id, items))
    [answer] = await _answers(inventory, order_id)
    assert isinstance(answer, StockReservationCompleted)
    return order_id


async def test_reserving_holds_every_line(inventory: ServiceDriver) -> None:
    a, b = await _stocked(inventory.engine, 5, 3)
    order_id, message_id = new_id(), uuid.uuid4()

    assert await inventory.send(reserve_stock(order_id, [(a, 2), (b, 3)]), message_id) is (
        Outcome.APPLIED
    )

    [answer] = await inventory.sent(order_id)
    assert answer.envelope.causation_id == message_id
    assert isinstance(answer.message, StockReservationCompleted)
    assert {(r.reservation_id, r.sku, r.quantity) for r in answer.message.reservations} == {
        (reservation_id(order_id, a), a, 2),
        (reservation_id(order_id, b), b, 3),
    }
    assert await _counters(inventory.engine, a) == (3, 2, 0)
    assert await _counters(inventory.engine, b) == (0, 3, 0)


async def test_an_unknown_product_refuses_the_whole_order(inventory: ServiceDriver) -> None:
    [known] = await _stocked(inventory.engine, 5)
    unknown, order_id = unique_sku(), new_id()

    await inventory.send(reserve_stock(order_id, [(known, 1), (unknown, 1)]))

    [answer] = await _answers(inventory, order_id)
    assert isinstance(answer, StockReservationFailed)
    assert answer.reason == f"unknown product(s): {unknown}"
    assert answer.shortages == [StockShortage(sku=unknown, requested=1, available=None)]
    assert await _counters(inventory.engine, known) == (5, 0, 0)
    assert await _statuses(inventory.engine, order_id) == {}


async def test_short_stock_refuses_the_whole_order(inventory: ServiceDriver) -> None:
    plenty, scarce = await _stocked(inventory.engine, 10, 1)
    order_id = new_id()

    await inventory.send(reserve_stock(order_id, [(plenty, 4), (scarce, 2)]))

    [answer] = await _answers(inventory, order_id)
    assert isinstance(answer, StockReservationFailed)
    assert answer.reason == f"insufficient stock for: {scarce}"
    assert answer.shortages == [StockShortage(sku=scarce, requested=2, available=1)]
    assert await _counters(inventory.engine, plenty) == (10, 0, 0)
    assert await _counters(inventory.engine, scarce) == (1, 0, 0)


PARTIAL = CheckoutPolicy.PARTIAL


async def test_a_partial_reservation_holds_what_it_can_and_rejects_the_rest(
    inventory: ServiceDriver,
) -> None:
    plenty, scarce = await _stocked(inventory.engine, 10, 1)
    unknown, order_id = unique_sku(), new_id()

    await inventory.send(reserve_stock(order_id, [(plenty, 4), (scarce, 2), (unknown, 1)], PARTIAL))

    [answer] = await _answers(inventory, order_id)
    assert isinstance(answer, StockReservationCompleted)
    assert [(r.sku, r.quantity) for r in answer.reservations] == [(plenty, 4)]
    assert {(s.sku, s.reason) for s in answer.rejected} == {
        (scarce, RejectionReason.INSUFFICIENT_STOCK),
        (unknown, RejectionReason.UNAVAILABLE),
    }
    assert await _counters(inventory.engine, plenty) == (6, 4, 0)
    assert await _counters(inventory.engine, scarce) == (1, 0, 0)  # a rejected line holds nothing
    assert await _statuses(inventory.engine, order_id) == {plenty: "held"}


async def test_a_partial_reservation_with_no_line_left_is_refused(
    inventory: ServiceDriver,
) -> None:
    [scarce] = await _stocked(inventory.engine, 1)
    order_id = new_id()

    await inventory.send(reserve_stock(order_id, [(scarce, 2)], PARTIAL))

    [answer] = await _answers(inventory, order_id)
    assert isinstance(answer, StockReservationFailed)
    assert answer.shortages == [StockShortage(sku=scarce, requested=2, available=1)]
    assert await _counters(inventory.engine, scarce) == (1, 0, 0)


async def test_a_repeated_partial_request_gets_the_same_rejections(
    inventory: ServiceDriver,
) -> None:
    plenty, scarce = await _stocked(inventory.engine, 10, 1)
    order_id = new_id()
    request = reserve_stock(order_id, [(plenty, 1), (scarce, 2)], PARTIAL)
    await inventory.send(request)
    async with inventory.engine.begin() as conn:
        await repo.set_stock(conn, scarce, 10)  # restocked meanwhile: the first answer stands

    await inventory.send(request)

    first, again = await _answers(inventory, order_id)
    assert isinstance(again, StockReservationCompleted)
    assert first == again
    assert await _counters(inventory.engine, scarce) == (10, 0, 0)


async def test_re_reserving_returns_the_same_reservations(inventory: ServiceDriver) -> None:
    [sku] = await _stocked(inventory.engine, 5)
    order_id, message_id = new_id(), uuid.uuid4()
    request = reserve_stock(order_id, [(sku, 2)])

    assert await inventory.send(request, message_id) is Outcome.APPLIED
    assert await inventory.send(request, message_id) is Outcome.DUPLICATE
    assert await inventory.send(request) is Outcome.APPLIED

    first, again = await _answers(inventory, order_id)
    assert first == again
    assert await _counters(inventory.engine, sku) == (3, 2, 0)


async def test_a_refused_order_is_refused_again_the_same_way(inventory: ServiceDriver) -> None:
    [sku] = await _stocked(inventory.engine, 1)
    order_id = new_id()
    request = reserve_stock(order_id, [(sku, 2)])
    await inventory.send(request)
    async with inventory.engine.begin() as conn:
        await repo.set_stock(conn, sku, 10)  # restocked meanwhile: the first answer stands

    await inventory.send(request)

    first, again = await _answers(inventory, order_id)
    assert isinstance(again, StockReservationFailed)
    assert first == again
    assert await _counters(inventory.engine, sku) == (10, 0, 0)


async def test_deducting_is_idempotent(inventory: ServiceDriver) -> None:
    [sku] = await _stocked(inventory.engine, 5)
    order_id = await _reserved(inventory, [(sku, 2)])

    assert await inventory.send(deduct_stock(order_id)) is Outcome.APPLIED
    assert await inventory.send(deduct_stock(order_id)) is Outcome.APPLIED

    assert await _counters(inventory.engine, sku) == (3, 0, 2)
    assert await _statuses(inventory.engine, order_id) == {sku: "deducted"}


async def test_releasing_is_idempotent(inventory: ServiceDriver) -> None:
    [sku] = await _stocked(inventory.engine, 5)
    order_id = await _reserved(inventory, [(sku, 2)])

    assert await inventory.send(release_stock(order_id)) is Outcome.APPLIED
    assert await inventory.send(release_stock(order_id)) is Outcome.APPLIED

    assert await _counters(inventory.engine, sku) == (5, 0, 0)
    assert await _statuses(inventory.engine, order_id) == {sku: "released"}


async def test_releasing_named_reservations_keeps_the_others(inventory: ServiceDriver) -> None:
    a, b = await _stocked(inventory.engine, 5, 5)
    order_id = await _reserved(inventory, [(a, 1), (b, 2)])

    await inventory.send(release_stock(order_id, [reservation_id(order_id, b)]))

    assert await _statuses(inventory.engine, order_id) == {a: "held", b: "released"}
    assert await _counters(inventory.engine, a) == (4, 1, 0)
    assert await _counters(inventory.engine, b) == (5, 0, 0)


async def test_a_deducted_reservation_is_never_released(inventory: ServiceDriver) -> None:
    [sku] = await _stocked(inventory.engine, 5)
    order_id = await _reserved(inventory, [(sku, 2)])
    await inventory.send(deduct_stock(order_id))

    assert await inventory.send(release_stock(order_id)) is Outcome.APPLIED
    assert await inventory.send(release_stock(order_id, [reservation_id(order_id, sku)])) is (
        Outcome.APPLIED
    )

    assert await _counters(inventory.engine, sku) == (3, 0, 2)
    assert await _statuses(inventory.engine, order_id) == {sku: "deducted"}


async def test_deducting_an_order_without_reservations_is_rejected(
    inventory: ServiceDriver,
) -> None:
    order_id = new_id()

    assert await inventory.send(deduct_stock(order_id)) is Outcome.DEAD_LETTERED

    [letter] = await inventory.dead_letters(order_id)
    assert "no reservations" in letter.headers[MessageHeaders.ERROR]


async def test_concurrent_reservations_never_oversell(inventory: ServiceDriver) -> None:
    stock = 15
    [sku] = await _stocked(inventory.engine, stock)
    order_ids = [new_id() for _ in range(20)]
    samples: list[tuple[int, int, int]] = []
    done = asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            samples.append(await _counters(inventory.engine, sku))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    outcomes = await asyncio.gather(
        *(inventory.send(reserve_stock(o, [(sku, 1)])) for o in order_ids)
    )
    done.set()
    await watcher

    assert set(outcomes) == {Outcome.APPLIED}
    answers = [(await _answers(inventory, o))[0] for o in order_ids]
    held = sum(isinstance(a, StockReservationCompleted) for a in answers)
    assert held == stock
    assert await _counters(inventory.engine, sku) == (0, stock, 0)
    samples.append(await _counters(inventory.engine, sku))
    assert all(
        available >= 0 and available + reserved == stock for available, reserved, _ in samples
    )


def _stock_items(count: int) -> list[dict[str, object]]:
    return [{"sku": f"S{i}", "quantity": 1} for i in range(count)]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("zero_quantity", "quantity"),
        ("negative_quantity", "quantity"),
        ("string_quantity", "quantity"),
        ("ten_thousand_items", "exceeds"),
        ("a_hundred_and_one_items", "at most 100 items"),
        ("repeated_sku", "each sku may appear only once"),
        ("unknown_type", "unknown message_type"),
        ("wrong_type", "does not belong on the topic"),
        ("malformed", "malformed JSON"),
    ],
)
async def test_invalid_reservations_are_dead_lettered_and_change_nothing(
    inventory: ServiceDriver, case: str, expected: str
) -> None:
    [sku] = await _stocked(inventory.engine, 5)
    order_id = new_id()
    request = reserve_stock(order_id, [(sku, 1)])
    bodies = {
        "zero_quantity": tampered(request, items=[{"sku": sku, "quantity": 0}]),
        "negative_quantity": tampered(request, items=[{"sku": sku, "quantity": -3}]),
        "string_quantity": tampered(request, items=[{"sku": sku, "quantity": "1"}]),
        "ten_thousand_items": tampered(request, items=_stock_items(10_000)),
        "a_hundred_and_one_items": tampered(request, items=_stock_items(101)),
        "repeated_sku": tampered(request, items=[{"sku": sku, "quantity": 1}] * 2),
        "unknown_type": retyped(request, "ReserveEverything"),
        "wrong_type": encode(envelope(order_failed(order_id))),
        "malformed": b"{",
    }
    record = raw_delivery(bodies[case], TOPICS[RESERVE], key=str(order_id))

    assert await inventory.deliver(record, RESERVE) is Outcome.DEAD_LETTERED

    assert await _counters(inventory.engine, sku) == (5, 0, 0)
    [letter] = await inventory.outbox(order_id)
    assert letter.topic == "checkout.dead_letter"
    assert expected in letter.headers[MessageHeaders.ERROR]
    assert letter.headers[MessageHeaders.REJECTED_BY] == "inventory"


async def test_a_non_uuid_order_id_is_dead_lettered(inventory: ServiceDriver) -> None:
    key = f"order-{uuid.uuid4().hex}"
    body = tampered(reserve_stock(), order_id=key)

    assert await inventory.deliver(raw_delivery(body, TOPICS[RESERVE], key), RESERVE) is (
        Outcome.DEAD_LETTERED
    )

    [letter] = await inventory.dead_letters(key)
    assert "order_id" in letter.headers[MessageHeaders.ERROR]


async def test_through_the_runtimes_routes(handler_settings: Settings, engine: AsyncEngine) -> None:
    [sku] = await _stocked(engine, 4)
    order_id = new_id()

    outcomes = await through_the_runtime(
        handler_settings, "inventory", reserve_stock(order_id, [(sku, 3)]), deduct_stock(order_id)
    )

    assert outcomes[Outcome.APPLIED] == 2
    assert await _counters(engine, sku) == (1, 0, 3)
