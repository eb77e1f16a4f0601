"""Orders through the real consumer: creation, final transitions, parked commands, bad input."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import (
    CheckoutStarted,
    MessageHeaders,
    OrderConfirmed,
    OrderCreated,
    OrderMarkedFailed,
)
from contracts.codec import encode
from contracts.topics import TOPICS, topic_for
from services.orders import repository as repo
from services.platform.consumer import Delivery, Outcome
from services.platform.settings import Settings
from tests.handlers import ServiceDriver, through_the_runtime
from tests.support.builders import (
    checkout_started,
    confirm_order,
    delivery,
    envelope,
    new_id,
    order_failed,
    raw_delivery,
    retyped,
    tampered,
)

CHECKOUT = CheckoutStarted.message_type


async def _order(engine: AsyncEngine, order_id: uuid.UUID) -> dict[str, object] | None:
    async with engine.connect() as conn:
        return await repo.get_order(conn, order_id)


async def _parked(engine: AsyncEngine, order_id: uuid.UUID) -> list[repo.ParkedCommand]:
    async with engine.connect() as conn:
        return await repo.parked_commands(conn, order_id)


async def _created(orders: ServiceDriver) -> uuid.UUID:
    order_id = new_id()
    assert await orders.send(checkout_started(order_id)) is Outcome.APPLIED
    return order_id


async def test_checkout_creates_the_order_and_announces_it(orders: ServiceDriver) -> None:
    order_id = new_id()
    event = checkout_started(order_id, [("SKU-A", 2, "9.99"), ("SKU-B", 3, "0.50")])
    message_id = uuid.uuid4()

    assert await orders.send(event, message_id) is Outcome.APPLIED

    order = await _order(orders.engine, order_id)
    assert order is not None
    assert order["status"] == "created"
    assert order["total"] == Decimal("21.48")
    assert order["buyer_id"] == "buyer-1"
    assert order["items"] == [
        {"sku": "SKU-A", "quantity": 2, "unit_price": "9.99"},
        {"sku": "SKU-B", "quantity": 3, "unit_price": "0.50"},
    ]
    [created] = await orders.sent(order_id)
    assert created.envelope.message_type == "order_created"
    assert created.envelope.causation_id == message_id
    assert isinstance(created.message, OrderCreated)
    assert created.message.total == Decimal("21.48")
    assert created.message.items == event.items


async def test_a_second_checkout_for_the_same_order_is_a_no_op(orders: ServiceDriver) -> None:
    order_id = await _created(orders)

    other = checkout_started(order_id, [("SKU-Z", 9, "99.00")])
    assert await orders.send(other) is Outcome.APPLIED

    order = await _order(orders.engine, order_id)
    assert order is not None
    assert order["total"] == Decimal("19.98")
    assert len(await orders.sent(order_id)) == 1


async def test_the_same_message_twice_has_one_effect(orders: ServiceDriver) -> None:
    order_id = new_id()
    message_id = uuid.uuid4()
    assert await orders.send(checkout_started(order_id), message_id) is Outcome.APPLIED
    assert await orders.send(checkout_started(order_id), message_id) is Outcome.DUPLICATE
    confirm, confirm_id = confirm_order(order_id), uuid.uuid4()
    assert await orders.send(confirm, confirm_id) is Outcome.APPLIED
    assert await orders.send(confirm, confirm_id) is Outcome.DUPLICATE

    types = [d.envelope.message_type for d in await orders.sent(order_id)]
    assert types == ["order_created", "order_confirmed", "checkout_group_completed"]


async def test_confirm_records_the_payment_and_announces_it(orders: ServiceDriver) -> None:
    order_id = await _created(orders)
    payment_id = uuid.uuid4()

    assert await orders.send(confirm_order(order_id, payment_id)) is Outcome.APPLIED

    order = await _order(orders.engine, order_id)
    assert order is not None
    assert (order["status"], order["payment_id"]) == ("confirmed", payment_id)
    _, confirmed, _ = await orders.sent(order_id)
    assert confirmed.message == OrderConfirmed(order_id=order_id, payment_id=payment_id)


async def test_confirming_again_with_the_same_payment_changes_nothing(
    orders: ServiceDriver,
) -> None:
    order_id = await _created(orders)
    payment_id = uuid.uuid4()
    await orders.send(confirm_order(order_id, payment_id))

    assert await orders.send(confirm_order(order_id, payment_id)) is Outcome.APPLIED

    types = [d.envelope.message_type for d in await orders.sent(order_id)]
    assert types == ["order_created", "order_confirmed", "checkout_group_completed"]


async def test_confirming_with_another_payment_is_rejected(orders: ServiceDriver) -> None:
    order_id = await _created(orders)
    first = uuid.uuid4()
    await orders.send(confirm_order(order_id, first))

    assert await orders.send(confirm_order(order_id)) is Outcome.DEAD_LETTERED

    order = await _order(orders.engine, order_id)
    assert order is not None
    assert order["payment_id"] == first
    [letter] = await orders.dead_letters(order_id)
    assert "cannot be confirmed again" in letter.headers[MessageHeaders.ERROR]


async def test_fail_records_the_reason_and_announces_it(orders: ServiceDriver) -> None:
    order_id = await _created(orders)

    assert await orders.send(order_failed(order_id, "out of stock")) is Outcome.APPLIED

    order = await _order(orders.engine, order_id)
    assert order is not None
    assert (order["status"], order["failure_reason"]) == ("failed", "out of stock")
    _, marked, _ = await orders.sent(order_id)
    assert marked.message == OrderMarkedFailed(order_id=order_id, reason="out of stock")


async def test_failing_again_keeps_the_first_reason(orders: ServiceDriver) -> None:
    order_id = await _created(orders)
    await orders.send(order_failed(order_id, "out of stock"))

    assert await orders.send(order_failed(order_id, "payment timeout")) is Outcome.APPLIED

    order = await _order(orders.engine, order_id)
    assert order is not None
    assert order["failure_reason"] == "out of stock"
    assert len(await orders.sent(order_id)) == 3


async def test_a_failed_order_cannot_be_confirmed(orders: ServiceDriver) -> None:
    order_id = await _created(orders)
    await orders.send(order_failed(order_id, "payment timeout"))

    assert await orders.send(confirm_order(order_id)) is Outcome.DEAD_LETTERED

    order = await _order(orders.engine, order_id)
    assert order is not None
    assert (order["status"], order["payment_id"]) == ("failed", None)
    [letter] = await orders.dead_letters(order_id)
    assert "cannot be confirmed" in letter.headers[MessageHeaders.ERROR]
    assert letter.headers[MessageHeaders.REJECTED_BY] == "orders"


async def test_a_confirmed_order_cannot_be_failed(orders: ServiceDriver) -> None:
    order_id = await _created(orders)
    await orders.send(confirm_order(order_id))

    assert await orders.send(order_failed(order_id)) is Outcome.DEAD_LETTERED

    order = await _order(orders.engine, order_id)
    assert order is not None
    assert order["status"] == "confirmed"
    [letter] = await orders.dead_letters(order_id)
    assert "cannot be marked failed" in letter.headers[MessageHeaders.ERROR]


async def test_a_command_before_its_order_is_parked_then_applied_on_creation(
    orders: ServiceDriver,
) -> None:
    order_id = new_id()
    payment_id = uuid.uuid4()
    confirm_id = uuid.uuid4()

    assert await orders.send(confirm_order(order_id, payment_id), confirm_id) is Outcome.APPLIED
    assert await _order(orders.engine, order_id) is None
    assert [p.message_id for p in await _parked(orders.engine, order_id)] == [confirm_id]
    assert await orders.outbox(order_id) == []

    assert await orders.send(checkout_started(order_id)) is Outcome.APPLIED

    order = await _order(orders.engine, order_id)
    assert order is not None
    assert (order["status"], order["payment_id"]) == ("confirmed", payment_id)
    assert await _parked(orders.engine, order_id) == []
    created, confirmed, _ = await orders.sent(order_id)
    assert created.envelope.message_type == "order_created"
    assert confirmed.message == OrderConfirmed(order_id=order_id, payment_id=payment_id)
    assert confirmed.envelope.causation_id == confirm_id


async def test_parked_commands_apply_in_arrival_order(orders: ServiceDriver) -> None:
    order_id = new_id()
    await orders.send(order_failed(order_id, "payment declined"))
    await orders.send(order_failed(order_id, "payment timeout"))
    await orders.send(confirm_order(order_id))

    assert await orders.send(checkout_started(order_id)) is Outcome.APPLIED

    order = await _order(orders.engine, order_id)
    assert order is not None
    assert (order["status"], order["failure_reason"]) == ("failed", "payment declined")
    types = [d.envelope.message_type for d in await orders.sent(order_id)]
    assert types == ["order_created", "order_marked_failed", "checkout_group_completed"]
    # The contradicting confirm is not lost silently: it is dead-lettered with why.
    [letter] = await orders.dead_letters(order_id)
    assert letter.headers[MessageHeaders.MESSAGE_TYPE] == "ConfirmOrder"
    assert "cannot be confirmed" in letter.headers[MessageHeaders.ERROR]
    assert await _parked(orders.engine, order_id) == []


async def test_commands_racing_their_checkout_are_never_lost(orders: ServiceDriver) -> None:
    order_ids = [new_id() for _ in range(15)]
    payment_ids = {order_id: uuid.uuid4() for order_id in order_ids}

    await asyncio.gather(
        *(orders.send(checkout_started(order_id)) for order_id in order_ids),
        *(orders.send(confirm_order(o, payment_ids[o])) for o in order_ids),
    )

    for order_id in order_ids:
        order = await _order(orders.engine, order_id)
        assert order is not None
        assert (order["status"], order["payment_id"]) == ("confirmed", payment_ids[order_id])
        assert await _parked(orders.engine, order_id) == []
        assert len(await orders.sent(order_id)) == 3


def _items(count: int) -> list[dict[str, object]]:
    return [{"sku": f"S{i}", "quantity": 1, "unit_price": "1.00"} for i in range(count)]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("malformed", "malformed JSON"),
        ("unknown_type", "unknown message_type"),
        ("zero_quantity", "quantity"),
        ("too_many_items", "exceeds"),
        ("too_many_small_items", "at most 100 items"),
        ("wrong_type", "does not belong on the topic"),
        ("negative_price", "unit_price"),
    ],
)
async def test_invalid_checkouts_are_dead_lettered_and_change_nothing(
    orders: ServiceDriver, case: str, expected: str
) -> None:
    order_id = new_id()
    event = checkout_started(order_id)
    bodies = {
        "malformed": b'{"message_id": ',
        "unknown_type": retyped(event, "CheckoutExploded"),
        "zero_quantity": tampered(event, items=[{"sku": "A", "quantity": 0, "unit_price": "1"}]),
        "too_many_items": tampered(event, items=_items(10_000)),
        "too_many_small_items": tampered(event, items=_items(101)),
        "wrong_type": encode(envelope(confirm_order(order_id))),
        "negative_price": tampered(event, items=[{"sku": "A", "quantity": 1, "unit_price": "-1"}]),
    }
    record = raw_delivery(bodies[case], topic_for(CheckoutStarted), key=str(order_id))

    assert await orders.deliver(record, CHECKOUT) is Outcome.DEAD_LETTERED

    assert await _order(orders.engine, order_id) is None
    [letter] = await orders.outbox(order_id)
    assert letter.topic == "checkout.dead_letter"
    assert letter.payload == bodies[case]
    assert expected in letter.headers[MessageHeaders.ERROR]
    assert letter.headers[MessageHeaders.ORIGINAL_TOPIC] == TOPICS[CHECKOUT]


async def test_a_non_uuid_order_id_is_dead_lettered(orders: ServiceDriver) -> None:
    key = f"not-a-uuid-{uuid.uuid4().hex}"
    body = tampered(checkout_started(), order_id=key)

    outcome = await orders.deliver(raw_delivery(body, TOPICS[CHECKOUT], key=key), CHECKOUT)

    assert outcome is Outcome.DEAD_LETTERED
    [letter] = await orders.dead_letters(key)
    assert "order_id" in letter.headers[MessageHeaders.ERROR]


async def test_a_redelivered_poison_message_is_dead_lettered_once(orders: ServiceDriver) -> None:
    order_id = new_id()
    record = raw_delivery(b"not json", TOPICS[CHECKOUT], key=str(order_id))

    assert await orders.deliver(record, CHECKOUT) is Outcome.DEAD_LETTERED
    assert await orders.deliver(record, CHECKOUT) is Outcome.DEAD_LETTERED

    assert len(await orders.dead_letters(order_id)) == 1


async def test_through_the_runtimes_routes(handler_settings: Settings, engine: AsyncEngine) -> None:
    order_id = new_id()

    outcomes = await through_the_runtime(
        handler_settings, "orders", checkout_started(order_id), confirm_order(order_id)
    )

    assert outcomes[Outcome.APPLIED] == 2
    order = await _order(engine, order_id)
    assert order is not None
    assert order["status"] == "confirmed"


def test_delivery_builder_encodes_the_envelope() -> None:
    event = checkout_started()
    record = delivery(event)

    assert isinstance(record, Delivery)
    assert record.topic == "checkout.checkout_started"
    assert record.key == str(event.order_id)
    assert record.headers[MessageHeaders.MESSAGE_TYPE] == CHECKOUT
