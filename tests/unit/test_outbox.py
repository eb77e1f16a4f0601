"""Outbox rows and dead letters without I/O: lanes, envelopes, deterministic ids, retry policy."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import cast

import pytest
from sqlalchemy import MetaData
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import DEAD_LETTER_TOPIC, ConfirmOrder, MessageHeaders, OrderFailed
from contracts.codec import decode, headers_for
from contracts.topics import topic_for
from services.platform.consumer import (
    ConflictError,
    Consumer,
    Delivery,
    Mailbox,
    RejectedMessageError,
    dead_letter,
    is_transient,
)
from services.platform.inbox import inbox_table
from services.platform.outbox import OutboxMessage, lane_of, outbox_table, reply
from services.platform.settings import ConsumerSettings

ORDER = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
PAID = uuid.UUID("00000000-0000-4000-8000-0000000000bb")


def _delivery(offset: int = 7, key: str | None = str(ORDER)) -> Delivery:
    return Delivery(
        value=b'{"not": "a valid envelope"}',
        topic="checkout.confirm_order",
        partition=3,
        offset=offset,
        key=key,
        headers={MessageHeaders.MESSAGE_TYPE: "ConfirmOrder", "trace": "abc"},
    )


# --- lanes -------------------------------------------------------------------------------------


def test_a_key_always_maps_to_the_same_lane() -> None:
    # crc32, unlike hash(), does not change between processes: every relay agrees on the lane.
    assert lane_of(str(ORDER), 8) == lane_of(str(ORDER), 8)
    # Pinned: unsent rows keep the lane they were written with, so a new hash in a deploy would
    # split one key over two lanes (two relays) and could reorder it.
    assert lane_of("order-1", 8) == 7


@pytest.mark.parametrize("lanes", [1, 2, 8, 256])
def test_lanes_stay_in_range_and_are_all_used(lanes: int) -> None:
    counts = Counter(lane_of(str(uuid.UUID(int=i, version=4)), lanes) for i in range(5000))
    assert set(counts) == set(range(lanes))


# --- OutboxMessage.of and reply ----------------------------------------------------------------


def test_a_message_becomes_a_row_on_its_topic_keyed_by_order() -> None:
    message = ConfirmOrder(order_id=ORDER, payment_id=PAID)
    message_id, cause = uuid.uuid4(), uuid.uuid4()
    due = datetime(2030, 1, 1, tzinfo=UTC)

    row = OutboxMessage.of(message, message_id=message_id, causation_id=cause, available_at=due)

    assert row.topic == topic_for(ConfirmOrder) == "checkout.confirm_order"
    assert row.key == str(ORDER)
    assert row.message_id == message_id
    assert row.available_at == due
    decoded = decode(row.payload, "ConfirmOrder")
    assert decoded.message == message
    assert decoded.envelope.message_id == message_id
    assert decoded.envelope.causation_id == cause
    assert decoded.envelope.correlation_id == ORDER
    assert row.headers == headers_for(decoded.envelope)
    assert row.headers[MessageHeaders.CAUSATION_ID] == str(cause)


def test_a_message_without_an_id_gets_a_fresh_one_and_is_due_now() -> None:
    message = OrderFailed(order_id=ORDER, reason="out of stock")
    first, second = OutboxMessage.of(message), OutboxMessage.of(message)
    assert first.message_id != second.message_id
    assert first.available_at is None
    assert MessageHeaders.CAUSATION_ID not in first.headers


def test_a_reply_id_is_deterministic_per_cause_and_type() -> None:
    cause = ConfirmOrder(order_id=ORDER, payment_id=PAID).to_envelope(message_id=uuid.uuid4())
    other_cause = ConfirmOrder(order_id=ORDER, payment_id=PAID).to_envelope(message_id=uuid.uuid4())
    answer = OrderFailed(order_id=ORDER, reason="late")

    again = reply(answer, cause)
    assert reply(answer, cause).message_id == again.message_id
    assert reply(answer, other_cause).message_id != again.message_id
    # Two answers of different types to one cause must not collide in the outbox.
    assert reply(ConfirmOrder(order_id=ORDER, payment_id=PAID), cause).message_id != (
        again.message_id
    )
    assert decode(again.payload).envelope.causation_id == cause.message_id


# --- dead letters ------------------------------------------------------------------------------


def test_a_dead_letter_keeps_the_record_and_says_why_where_and_how_often() -> None:
    original = _delivery()
    letter = dead_letter(original, "invalid envelope", attempts=3, service="orders")

    assert letter.topic == DEAD_LETTER_TOPIC
    assert letter.key == str(ORDER)
    assert letter.payload == original.value
    assert letter.headers == {
        **original.headers,
        MessageHeaders.ERROR: "invalid envelope",
        MessageHeaders.ORIGINAL_TOPIC: "checkout.confirm_order",
        MessageHeaders.ORIGINAL_PARTITION: "3",
        MessageHeaders.ORIGINAL_OFFSET: "7",
        MessageHeaders.ATTEMPTS: "3",
        MessageHeaders.REJECTED_BY: "orders",
    }


def test_a_dead_letter_reason_is_capped_and_a_keyless_record_still_gets_a_key() -> None:
    letter = dead_letter(_delivery(key=None), "x" * 5000, attempts=1, service="orders")
    assert len(letter.headers[MessageHeaders.ERROR]) == 1000
    assert letter.key == "unknown"


def test_a_dead_letter_id_derives_from_the_record_position() -> None:
    first = dead_letter(_delivery(), "reason one", attempts=1, service="orders")
    # A redelivery of the same record, failing differently, is still the same dead letter.
    again = dead_letter(_delivery(), "reason two", attempts=5, service="orders")
    assert again.message_id == first.message_id
    assert dead_letter(_delivery(offset=8), "r", 1, "orders").message_id != first.message_id
    # Each service that rejects the record dead-letters it once of its own.
    assert dead_letter(_delivery(), "r", 1, "saga").message_id != first.message_id


# --- transient errors and backoff --------------------------------------------------------------


class _DriverError(Exception):
    """Stands in for the driver error SQLAlchemy wraps (asyncpg's adapter exposes sqlstate)."""

    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _db_error(sqlstate: str | None, *, invalidated: bool = False) -> DBAPIError:
    return DBAPIError("SELECT 1", {}, _DriverError(sqlstate), connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "exc",
    [
        ConflictError(),
        OperationalError("SELECT 1", {}, _DriverError(None)),
        InterfaceError("SELECT 1", {}, _DriverError(None)),
        ConnectionResetError(),
        _db_error("40001"),  # serialization failure
        _db_error("40P01"),  # deadlock
        _db_error("08006"),  # connection failure
        _db_error("57P01"),  # admin shutdown
        _db_error(None, invalidated=True),
    ],
    ids=repr,
)
def test_transient_errors_are_retried(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bug"),
        RejectedMessageError("unknown sku"),
        IntegrityError(
            "INSERT", {}, _DriverError("23505")
        ),  # unique violation: retrying cannot help
        _db_error("23514"),  # check violation
        _db_error("42P01"),  # undefined table
        _db_error(None),
    ],
    ids=repr,
)
def test_permanent_errors_are_not_retried(exc: BaseException) -> None:
    assert not is_transient(exc)


def _consumer(settings: ConsumerSettings) -> Consumer:
    metadata = MetaData()
    mailbox = Mailbox("unit", outbox_table(metadata, "unit"), inbox_table(metadata, "unit"), 8)
    # _backoff touches no I/O; any object will do as the engine.
    return Consumer(cast(AsyncEngine, object()), mailbox, "unit", settings)


@pytest.mark.parametrize(
    "settings",
    [
        ConsumerSettings(),
        ConsumerSettings(retry_attempts=50, retry_base_delay_s=0.5, retry_max_delay_s=3.0),
        ConsumerSettings(retry_base_delay_s=0, retry_max_delay_s=0),
    ],
    ids=repr,
)
def test_backoff_stays_within_the_exponential_ceiling_and_the_cap(
    settings: ConsumerSettings,
) -> None:
    consumer = _consumer(settings)
    for attempt in range(1, settings.retry_attempts + 1):
        ceiling = min(settings.retry_max_delay_s, settings.retry_base_delay_s * 2 ** (attempt - 1))
        delays = [consumer._backoff(attempt) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays), (attempt, max(delays))


def test_backoff_is_jittered() -> None:
    consumer = _consumer(ConsumerSettings(retry_base_delay_s=1.0, retry_max_delay_s=1.0))
    delays: set[float] = {consumer._backoff(3) for _ in range(50)}
    # Full jitter: many consumers retrying one outage do not stampede in lockstep.
    assert len(delays) > 40
