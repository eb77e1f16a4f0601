"""The Kafka key must be the correlation id: a record without one, or under another, is refused.

A key picks the partition, so a message under another key may overtake or be overtaken by the
rest of its order, and the saga's payment-deadline gate would watch the wrong partition. Every
consumer therefore dead-letters such a record in its decode step (contracts.codec.check_key),
before the inbox, with a reason, and applies nothing of it. Headers that mirror the envelope
(contracts.codec.check_headers) are held to it the same way.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import Message, MessageHeaders
from contracts.codec import InvalidMessageError, check_key, decode
from saga import app as saga_app
from services.cart import events as cart_events
from services.platform.consumer import Delivery, Outcome, dead_letter
from services.platform.outbox import OutboxMessage
from services.platform.settings import Settings
from tests.handlers import ServiceDriver
from tests.support.builders import (
    checkout_started,
    clear_cart,
    delivery,
    new_id,
    payment_requested,
    reserve_stock,
)

SAMPLES: dict[str, Callable[[], Message]] = {
    "saga": lambda: checkout_started(),
    "inventory": lambda: reserve_stock(items=[(f"KEYS-{uuid.uuid4().hex[:8]}", 1)]),
    "orders": lambda: checkout_started(),
    "cart": lambda: clear_cart(new_id()),
    "payments": lambda: payment_requested(),
}
"""A valid message each service consumes; under the right key each applies."""


@pytest.fixture
def drivers(
    engine: AsyncEngine,
    handler_settings: Settings,
    inventory: ServiceDriver,
    orders: ServiceDriver,
    cart: ServiceDriver,
    payments: ServiceDriver,
) -> dict[str, ServiceDriver]:
    """Every service's consumer by name."""
    saga = ServiceDriver.of(engine, saga_app.create_service(handler_settings), handler_settings)
    return {d.spec.name: d for d in (saga, inventory, orders, cart, payments)}


def _keys(order_id: uuid.UUID) -> dict[str, str | None]:
    return {
        "missing": None,
        "another order's id": str(new_id()),
        "upper case": str(order_id).upper(),
        "braced": "{" + str(order_id) + "}",
        "with a space": f"{order_id} ",
    }


async def _inbox_has(driver: ServiceDriver, message_id: uuid.UUID) -> bool:
    inbox = driver.spec.mailbox.inbox
    async with driver.engine.connect() as conn:
        found = await conn.execute(select(inbox).where(inbox.c.message_id == message_id))
        return found.first() is not None


async def _rows_for(driver: ServiceDriver, record: Delivery) -> list[dict[str, object]]:
    """Outbox rows under the order's key, and this record's dead letter under any key."""
    outbox = driver.spec.mailbox.outbox
    letter_id = dead_letter(record, "", 0, driver.spec.name).message_id
    order_id = str(decode(record.value).envelope.correlation_id)
    query = select(outbox.c.message_id, outbox.c.message_key, outbox.c.topic, outbox.c.headers)
    where = (outbox.c.message_key == order_id) | (outbox.c.message_id == letter_id)
    async with driver.engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(query.where(where))]


async def _only_letter(driver: ServiceDriver, record: Delivery) -> str:
    """The reason of the record's one dead letter; nothing else was written for its order."""
    [letter] = await _rows_for(driver, record)
    assert letter["topic"] == "checkout.dead_letter"
    assert letter["message_key"] == (record.key or "unknown")
    headers = letter["headers"]
    assert isinstance(headers, dict)
    return str(headers[MessageHeaders.ERROR])


@pytest.mark.parametrize("service", list(SAMPLES))
@pytest.mark.parametrize("case", list(_keys(uuid.UUID(int=0))))
async def test_a_record_not_keyed_by_its_correlation_id_is_dead_lettered(
    drivers: dict[str, ServiceDriver], service: str, case: str
) -> None:
    driver, message = drivers[service], SAMPLES[service]()
    record = dataclasses.replace(delivery(message), key=_keys(message.order_id)[case])
    message_id = decode(record.value).envelope.message_id

    assert await driver.deliver(record, message.message_type) is Outcome.DEAD_LETTERED

    reason = await _only_letter(driver, record)
    expected = "no Kafka key" if record.key is None else "is not the correlation_id"
    assert expected in reason
    assert str(message.order_id) in reason
    assert not await _inbox_has(driver, message_id)


@pytest.mark.parametrize("service", list(SAMPLES))
async def test_the_same_record_keyed_by_its_correlation_id_applies(
    drivers: dict[str, ServiceDriver], service: str
) -> None:
    # The control of the test above: the key alone decided the refusal.
    driver, message = drivers[service], SAMPLES[service]()
    record = delivery(message)
    assert record.key == str(message.order_id)

    assert await driver.deliver(record, message.message_type) is Outcome.APPLIED

    assert await _inbox_has(driver, decode(record.value).envelope.message_id)
    assert all(row["topic"] != "checkout.dead_letter" for row in await _rows_for(driver, record))


def test_a_huge_key_is_quoted_short_in_the_reason() -> None:
    envelope = checkout_started().to_envelope()
    with pytest.raises(InvalidMessageError, match="is not the correlation_id") as refused:
        check_key(envelope, "k" * 100_000)
    assert len(str(refused.value)) < 300


def test_cart_events_are_keyed_by_the_cart_id_their_order_id_carries() -> None:
    # Cart events travel under the cart id; the rule holds because order_id carries it too.
    cart_id = new_id()
    event = cart_events.abandoned(cart_id, "buyer-keys", datetime.now(UTC), item_count=2)
    row = OutboxMessage.of(event)

    envelope = decode(row.payload).envelope
    assert row.key == str(cart_id) == str(envelope.correlation_id)
    check_key(envelope, row.key)


@pytest.mark.parametrize("service", list(SAMPLES))
async def test_a_record_whose_headers_contradict_its_envelope_is_dead_lettered(
    drivers: dict[str, ServiceDriver], service: str
) -> None:
    # Found by the wire fuzz: such a record was applied as its envelope said, while anything
    # routing by its headers saw a message of another type.
    driver, message = drivers[service], SAMPLES[service]()
    plain = delivery(message)
    record = dataclasses.replace(
        plain, headers={**plain.headers, MessageHeaders.MESSAGE_TYPE: "PaymentCompleted"}
    )

    assert await driver.deliver(record, message.message_type) is Outcome.DEAD_LETTERED

    reason = await _only_letter(driver, record)
    assert "header message_type 'PaymentCompleted' disagrees" in reason
    assert not await _inbox_has(driver, decode(record.value).envelope.message_id)
