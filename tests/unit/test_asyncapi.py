"""The committed AsyncAPI document is the generated one, and a client can be built from it alone.

Every topic has its typed envelope, its headers, its key and a fixed message_type; a real
encoded checkout, its headers and a real dead letter validate against the document's schemas.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel

from contracts import ALL_MESSAGES, DEAD_LETTER_TOPIC, CheckoutStarted, LineItem, MessageHeaders
from contracts.codec import encode, headers_for
from contracts.messages import WireModel
from contracts.topics import TOPICS, topic_for
from contracts.types import CheckoutPolicy
from services.platform.delivery import Delivery, dead_letter
from services.platform.settings import Settings
from services.runtime import asyncapi_json
from tests.support.pricing import priced, with_pricing

DOCUMENT = Path(__file__).parents[2] / "docs" / "asyncapi.json"
ENVELOPE_HEADERS = {
    "message_id",
    "message_type",
    "correlation_id",
    "schema_version",
    "content-type",
}
DEAD_LETTER_HEADERS = {
    "dlq_error",
    "dlq_original_topic",
    "dlq_original_partition",
    "dlq_original_offset",
    "dlq_attempts",
    "dlq_rejected_by",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DOCUMENT.read_text())
    return loaded


def _message(document: dict[str, Any], topic: str) -> dict[str, Any]:
    """The message a channel carries, its reference resolved."""
    ref = document["channels"][topic]["messages"]["Message"]["$ref"]
    message: dict[str, Any] = document["components"]["messages"][ref.rsplit("/", 1)[-1]]
    return message


def _schema_name(message: dict[str, Any]) -> str:
    return str(message["payload"]["$ref"].rsplit("/", 1)[-1])


def _validate(document: dict[str, Any], schema: dict[str, Any], instance: object) -> None:
    """Validate as an AsyncAPI 3 schema (a JSON Schema draft 7 superset), refs into the document."""
    rooted = {**schema, "components": document["components"]}
    jsonschema.Draft7Validator(rooted, format_checker=jsonschema.FormatChecker()).validate(instance)


def _payload_schema(document: dict[str, Any], topic: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{_schema_name(_message(document, topic))}"}


def test_committed_document_is_current() -> None:
    generated = asyncapi_json(Settings())
    assert DOCUMENT.read_text() == generated, (
        "docs/asyncapi.json is stale: run `checkout-saga asyncapi > docs/asyncapi.json`"
    )


def test_every_message_type_has_a_channel_with_its_typed_payload(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    for cls in ALL_MESSAGES:
        channel = document["channels"][topic_for(cls)]
        assert channel["description"] == (cls.__doc__ or "").strip()
        envelope = schemas[f"{cls.__name__}Envelope"]
        assert set(envelope["required"]) >= {"message_id", "message_type", "payload"}
        payload_ref = envelope["properties"]["payload"]["$ref"].rsplit("/", 1)[-1]
        assert "order_id" in schemas[payload_ref]["properties"]


def test_the_channels_are_the_topics_and_nothing_else(document: dict[str, Any]) -> None:
    assert set(document["channels"]) == {*TOPICS.values(), DEAD_LETTER_TOPIC}


def test_every_message_documents_its_headers_as_strings_and_its_key(
    document: dict[str, Any],
) -> None:
    for topic in document["channels"]:
        message = _message(document, topic)
        headers = message["headers"]
        wanted = DEAD_LETTER_HEADERS if topic == DEAD_LETTER_TOPIC else ENVELOPE_HEADERS
        assert set(headers["required"]) == wanted, topic
        assert "UTF-8" in headers["description"]
        assert all(p["type"] == "string" for p in headers["properties"].values()), topic
        key = message["bindings"]["kafka"]["key"]
        assert key["type"] == "string"
        assert key["description"]


def test_message_type_is_a_constant_equal_to_the_topics_type(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for cls in ALL_MESSAGES:
        message = _message(document, topic_for(cls))
        envelope = schemas[_schema_name(message)]
        assert envelope["properties"]["message_type"]["const"] == cls.message_type
        assert message["headers"]["properties"]["message_type"]["const"] == cls.message_type
        assert message["name"] == cls.message_type
        assert TOPICS[cls.message_type] == topic_for(cls)


def test_the_envelope_headers_document_their_optional_and_fixed_values(
    document: dict[str, Any],
) -> None:
    headers = _message(document, topic_for(CheckoutStarted))["headers"]["properties"]
    assert headers["causation_id"]["format"] == "uuid"
    assert headers["correlation_id"]["format"] == "uuid"
    assert headers["message_id"]["format"] == "uuid"
    assert headers["schema_version"]["const"] == "1"
    assert headers["content-type"]["const"] == "application/json"


def _marketplace_checkout() -> CheckoutStarted:
    """Two vendors, the partial policy: every marketplace addition of CheckoutStarted on the wire."""
    return CheckoutStarted(
        order_id=uuid.uuid4(),
        buyer_id="buyer-7",
        currency="EUR",
        policy=CheckoutPolicy.PARTIAL,
        items=[
            LineItem(sku="KB-1", quantity=1, unit_price=Decimal("49.90"), vendor_id="vendor-a"),
            LineItem(sku="MS-2", quantity=2, unit_price=Decimal("19.00"), vendor_id="vendor-b"),
        ],
    )


def test_a_real_marketplace_checkout_validates_against_the_document(
    document: dict[str, Any],
) -> None:
    checkout = _marketplace_checkout()
    envelope = checkout.to_envelope(causation_id=uuid.uuid4())
    body = json.loads(encode(envelope))
    assert body["payload"]["policy"] == "partial"
    assert {item["vendor_id"] for item in body["payload"]["items"]} == {"vendor-a", "vendor-b"}
    message = _message(document, topic_for(CheckoutStarted))
    _validate(document, _payload_schema(document, topic_for(CheckoutStarted)), body)
    _validate(document, message["headers"], headers_for(envelope))
    _validate(document, message["bindings"]["kafka"]["key"], str(checkout.order_id))


def test_a_real_priced_checkout_validates_against_the_document(document: dict[str, Any]) -> None:
    plain = _marketplace_checkout()
    pricing = priced(
        plain.items, discounts={"MS-2": "8.00"}, tax_rate="19", shipping=("4.90", "0.93")
    )
    body = json.loads(encode(with_pricing(plain, pricing).to_envelope()))
    assert body["payload"]["pricing"]["discounts"][0]["amount"] == "8.00"

    _validate(document, _payload_schema(document, topic_for(CheckoutStarted)), body)
    body["payload"]["pricing"]["prices_include_tax"] = "no"
    with pytest.raises(jsonschema.ValidationError):
        _validate(document, _payload_schema(document, topic_for(CheckoutStarted)), body)


def test_the_schemas_reject_what_the_consumers_reject(document: dict[str, Any]) -> None:
    topic = topic_for(CheckoutStarted)
    envelope = _marketplace_checkout().to_envelope()
    body = json.loads(encode(envelope))
    headers = _message(document, topic)["headers"]
    with pytest.raises(jsonschema.ValidationError):
        _validate(document, _payload_schema(document, topic), {**body, "message_type": "Other"})
    with pytest.raises(jsonschema.ValidationError):
        _validate(document, headers, {**headers_for(envelope), "message_type": "Other"})
    with pytest.raises(jsonschema.ValidationError):
        _validate(document, headers, {**headers_for(envelope), "schema_version": 1})
    incomplete = {k: v for k, v in headers_for(envelope).items() if k != "correlation_id"}
    with pytest.raises(jsonschema.ValidationError):
        _validate(document, headers, incomplete)
    key = _message(document, topic)["bindings"]["kafka"]["key"]
    with pytest.raises(jsonschema.ValidationError):
        _validate(document, key, str(envelope.correlation_id).upper())


def test_a_real_dead_letter_validates_against_the_document(document: dict[str, Any]) -> None:
    envelope = _marketplace_checkout().to_envelope()
    delivery = Delivery(
        value=b"not json",
        topic=topic_for(CheckoutStarted),
        partition=3,
        offset=1234,
        key=str(envelope.correlation_id),
        headers=headers_for(envelope),
    )
    letter = dead_letter(delivery, "malformed JSON", 1, "saga")
    message = _message(document, DEAD_LETTER_TOPIC)
    _validate(document, message["headers"], letter.headers)
    _validate(document, message["bindings"]["kafka"]["key"], letter.key)
    assert set(letter.headers) >= {MessageHeaders.ERROR, MessageHeaders.REJECTED_BY}


def _wire_models(cls: type[BaseModel], seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
    """A model and every wire model its fields hold (lists included), each once."""
    if cls in seen:
        return seen
    seen.add(cls)
    for field in cls.model_fields.values():
        for arg in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                _wire_models(arg, seen)
    return seen


def test_the_marketplace_additions_appear_with_their_descriptions(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    models: set[type[BaseModel]] = set()
    for cls in ALL_MESSAGES:
        _wire_models(cls, models)
    additions = [
        (model, name)
        for model in models
        if issubclass(model, WireModel)
        for name in model.ADDITIONS
    ]
    assert len(additions) >= 10, "the marketplace additions are there to be checked"
    for model, name in additions:
        documented = schemas[model.__name__]["properties"][name]
        assert "default" in documented, f"{model.__name__}.{name} must be optional"
        description = model.model_fields[name].description
        if description:
            assert documented["description"] == description, f"{model.__name__}.{name}"
