"""Contracts: strict validation, the codec's reasons, the topic table and deterministic ids."""

from __future__ import annotations

import json
import re
import uuid
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from contracts import (
    ALL_MESSAGES,
    TOPICS,
    CheckoutStarted,
    PaymentCompleted,
    ReserveStockForOrder,
    command_id,
    topic_for,
)
from contracts.codec import InvalidMessageError, check_headers, decode, encode, headers_for
from contracts.envelope import MAX_MESSAGE_BYTES
from contracts.topics import all_topics


def _checkout(**overrides: Any) -> dict[str, Any]:
    order_id = str(uuid.uuid4())
    return {
        "order_id": order_id,
        "buyer_id": "buyer-1",
        "currency": "EUR",
        "items": [{"sku": "SKU-1", "quantity": 2, "unit_price": "9.99"}],
        **overrides,
    }


def _wire(payload: dict[str, Any], message_type: str = "CheckoutStarted") -> bytes:
    return json.dumps(
        {
            "message_id": str(uuid.uuid4()),
            "message_type": message_type,
            "correlation_id": payload.get("order_id", str(uuid.uuid4())),
            "occurred_at": "2026-11-22T10:00:00+00:00",
            "payload": payload,
        }
    ).encode()


def test_a_valid_checkout_round_trips_through_the_wire() -> None:
    message = CheckoutStarted.model_validate(_checkout())
    envelope = message.to_envelope()
    decoded = decode(encode(envelope), "CheckoutStarted")
    assert decoded.message == message
    assert decoded.envelope.correlation_id == message.order_id
    assert message.total == Decimal("19.98")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"items": [{"sku": "SKU-1", "quantity": 0, "unit_price": "1"}]}, "quantity"),
        ({"items": [{"sku": "SKU-1", "quantity": -1, "unit_price": "1"}]}, "quantity"),
        ({"items": [{"sku": "SKU-1", "quantity": "2", "unit_price": "1"}]}, "quantity"),
        ({"items": [{"sku": "SKU-1", "quantity": 1, "unit_price": "0"}]}, "unit_price"),
        ({"items": [{"sku": "SKU-1", "quantity": 1, "unit_price": "1.001"}]}, "unit_price"),
        ({"items": []}, "items"),
        (
            {"items": [{"sku": f"S{i}", "quantity": 1, "unit_price": "1"} for i in range(101)]},
            "items",
        ),
        ({"items": [{"sku": "A", "quantity": 1, "unit_price": "1"}] * 2}, "items"),
        ({"items": [{"sku": "bad sku!", "quantity": 1, "unit_price": "1"}]}, "sku"),
        ({"currency": "euro"}, "currency"),
        ({"order_id": "42"}, "order_id"),
        ({"buyer_email": "not-an-email"}, "buyer_email"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_invalid_checkouts_are_rejected_naming_the_field(
    overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as error:
        CheckoutStarted.model_validate(_checkout(**overrides))
    assert field in str(error.value)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "malformed JSON"),
        (b"\xff\xfe", "malformed JSON"),
        (b"[]", "invalid envelope"),
        (_wire(_checkout(), "CheckoutExploded"), "unknown message_type"),
        (_wire(_checkout(items=[])), "invalid CheckoutStarted payload"),
        (b" " * (MAX_MESSAGE_BYTES + 1), "exceeds"),
    ],
)
def test_decode_says_why_a_message_is_invalid(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessageError, match=reason):
        decode(raw, "CheckoutStarted")


@pytest.mark.parametrize(
    "overrides",
    [
        {"buyer_id": "buyer\x00-1"},
        {"buyer_email": "a\x00b@example.com"},
        {"items": [{"sku": "SKU-1", "quantity": 1, "unit_price": "1.00", "vendor_id": "v\x00"}]},
    ],
    ids=["buyer id", "e-mail", "vendor id"],
)
def test_a_nul_in_free_text_is_refused_by_the_contract_not_by_the_database(
    overrides: dict[str, Any],
) -> None:
    # PostgreSQL's text cannot hold NUL: accepted here, the record failed in the database and
    # was dead-lettered with the driver's error as its reason (found by the wire fuzz).
    with pytest.raises(InvalidMessageError, match=rf"{next(iter(overrides))}.*pattern"):
        decode(_wire(_checkout(**overrides)), "CheckoutStarted")


def test_a_valid_message_of_another_type_does_not_belong_on_the_topic() -> None:
    other = {"order_id": str(uuid.uuid4()), "items": [{"sku": "A", "quantity": 1}]}
    with pytest.raises(InvalidMessageError, match="does not belong on the topic"):
        decode(_wire(other, "ReserveStockForOrder"), "CheckoutStarted")


def test_correlation_id_must_be_the_order_id() -> None:
    payload = _checkout()
    document = json.loads(_wire(payload))
    document["correlation_id"] = str(uuid.uuid4())
    with pytest.raises(InvalidMessageError, match="correlation_id"):
        decode(json.dumps(document).encode())


def test_one_topic_per_message_type_and_a_dead_letter_topic() -> None:
    assert len(set(TOPICS.values())) == len(ALL_MESSAGES)
    assert topic_for(CheckoutStarted) == "checkout.checkout_started"
    assert TOPICS["order_created"] == "checkout.order_created"
    assert "checkout.dead_letter" in all_topics()


def test_every_message_class_has_a_docstring_and_an_order_id() -> None:
    for cls in ALL_MESSAGES:
        assert cls.__doc__
        assert "\n" not in cls.__doc__.strip()
        assert "order_id" in cls.model_fields


def test_headers_mirror_the_envelope() -> None:
    message = PaymentCompleted(
        order_id=uuid.uuid4(), payment_id=uuid.uuid4(), amount=Decimal("5"), currency="EUR"
    )
    cause = uuid.uuid4()
    envelope = message.to_envelope(causation_id=cause)
    headers = headers_for(envelope)
    assert headers["message_type"] == "PaymentCompleted"
    assert headers["correlation_id"] == str(message.order_id)
    assert headers["causation_id"] == str(cause)
    assert headers["content-type"] == "application/json"


def test_command_ids_are_deterministic_per_saga_transition_and_type() -> None:
    saga = uuid.uuid4()
    first = command_id(saga, "create_saga", ReserveStockForOrder.message_type)
    assert first == command_id(saga, "create_saga", ReserveStockForOrder.message_type)
    assert first != command_id(saga, "create_saga", ReserveStockForOrder.message_type, attempt=1)
    assert first != command_id(uuid.uuid4(), "create_saga", ReserveStockForOrder.message_type)


def _headed(**changed: str | None) -> tuple[Any, dict[str, str]]:
    decoded = decode(_wire(_checkout()), "CheckoutStarted")
    headers = {**headers_for(decoded.envelope), **changed}
    return decoded.envelope, {k: v for k, v in headers.items() if v is not None}


@pytest.mark.parametrize(
    ("changed", "reason"),
    [
        ({"message_type": "PaymentCompleted"}, "header message_type 'PaymentCompleted'"),
        ({"message_id": str(uuid.uuid4())}, "header message_id"),
        ({"correlation_id": str(uuid.uuid4()).upper()}, "header correlation_id"),
        ({"schema_version": "2"}, "header schema_version"),
        ({"causation_id": str(uuid.uuid4())}, "names a cause"),
    ],
    ids=["type", "message id", "correlation id", "schema version", "cause"],
)
def test_headers_that_disagree_with_the_envelope_are_refused(
    changed: dict[str, str], reason: str
) -> None:
    # Found by the wire fuzz: such a record was applied as its envelope said, while anything
    # routing by its headers saw another message.
    envelope, headers = _headed(**changed)
    with pytest.raises(InvalidMessageError, match=reason):
        check_headers(envelope, headers)


@pytest.mark.parametrize(
    "changed",
    [
        {},
        {"message_type": None, "message_id": None, "correlation_id": None},
        {"content-type": "application/json; charset=utf-8", "traceparent": "00-abc-def-01"},
    ],
    ids=["all agree", "left out", "content type and others"],
)
def test_headers_that_agree_or_are_left_out_pass(changed: dict[str, str | None]) -> None:
    envelope, headers = _headed(**changed)
    check_headers(envelope, headers)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("schema_version", True),
        ("schema_version", "1"),
        ("schema_version", 1.0),
        ("occurred_at", 1_764_000_000),
        ("occurred_at", "1764000000"),
    ],
)
def test_the_envelope_takes_no_lax_coercion(field: str, value: object) -> None:
    # Found by the wire fuzz: `true` or "1" passed as schema version 1, and a number of seconds
    # as the time a message occurred.
    envelope = json.loads(_wire(_checkout()))
    envelope[field] = value
    with pytest.raises(InvalidMessageError, match=f"invalid envelope: {field}"):
        decode(json.dumps(envelope).encode(), "CheckoutStarted")


@pytest.mark.parametrize("key", ["message_id", "buyer_id", "quantity"])
def test_a_repeated_json_key_is_refused_wherever_it_is(key: str) -> None:
    # Found by the wire fuzz: the last of repeated keys was read (pydantic-core), so a parser
    # that reads the first would see another message in the same record. Here both copies hold
    # the same valid value (envelope, payload, line item): only the repeat is wrong.
    wire = _wire(_checkout())
    repeated = re.sub(rb'("%s": [^,}]+)' % key.encode(), rb"\1, \1", wire, count=1)
    assert repeated != wire
    with pytest.raises(InvalidMessageError, match=f"repeated JSON key '{key}'"):
        decode(repeated, "CheckoutStarted")
