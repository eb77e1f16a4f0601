"""The AsyncAPI document of the wire: FastStream's, completed with each message's headers and key.

FastStream 0.7 documents a topic and its payload schema, but its message object has no headers
and no bindings. `WireAsyncAPI` adds them to every message once FastStream has built the
document, so the admin page and docs/asyncapi.json describe the same headers. Imports contracts
and FastStream only; the runtime decides which topics are documented.
"""

from __future__ import annotations

from typing import Any, Literal

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from faststream.specification.asyncapi.v2_6_0.schema.message import CorrelationId
from faststream.specification.asyncapi.v2_6_0.schema.message import Message as SpecMessage
from faststream.specification.asyncapi.v3_0_0.schema import ApplicationSchema
from faststream.specification.base import Specification
from pydantic import Field, RootModel, create_model

from contracts import ALL_MESSAGES, DEAD_LETTER_TOPIC, Envelope, Message, MessageHeaders
from contracts.envelope import SCHEMA_VERSION
from contracts.messages import CheckoutGroupCompleted
from contracts.topics import topic_for

KAFKA_BINDING_VERSION = "0.4.0"
"""The Kafka binding version FastStream writes for channels; messages use the same."""

JSON = "application/json"

_STRING_HEADERS = (
    "Kafka record headers. Every value is a UTF-8 string on the wire (header values are bytes: "
    "decode them as UTF-8). Other headers may be present, such as the W3C trace context "
    "(traceparent, tracestate); ignore the ones you do not know."
)
_DEFAULT_KEY = "The order id (= payload.order_id = correlation_id), as the UUID's text in UTF-8."
_KEY_RULE = (
    "Required, and exactly the envelope's correlation_id as text (lowercase, hyphenated): "
    "consumers dead-letter a record without a key or under any other key."
)
_CANONICAL_UUID = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_KEYS: dict[type[Message], str] = {
    CheckoutGroupCompleted: "The checkout group id (= payload.order_id = correlation_id, the "
    "CheckoutStarted's order_id), as the UUID's text in UTF-8.",
}


_ENVELOPE_HEADERS = (
    MessageHeaders.MESSAGE_ID,
    MessageHeaders.MESSAGE_TYPE,
    MessageHeaders.CORRELATION_ID,
    MessageHeaders.CAUSATION_ID,
    MessageHeaders.SCHEMA_VERSION,
    MessageHeaders.CONTENT_TYPE,
)


class DeadLetter(RootModel[Any]):
    """The rejected record's value, byte for byte: usually a JSON envelope, possibly not JSON."""


def typed_envelope(message_cls: type[Message]) -> type[Envelope]:
    """The envelope of one message type: its payload class, and its message_type as a constant."""
    # Literal of a value known only at run time (mypy accepts Literal only of literals).
    fixed: Any = Literal.__getitem__(message_cls.message_type)
    described = Field(description="Always this value on this topic; consumers key on it.")
    return create_model(
        f"{message_cls.__name__}Envelope",
        __base__=Envelope,
        message_type=(fixed, described),
        payload=(message_cls, ...),
    )


def document_topic(broker: KafkaBroker, message_cls: type[Message]) -> None:
    """A documentation-only publisher: puts the topic and its typed envelope in AsyncAPI."""
    broker.publisher(
        topic_for(message_cls),
        title=topic_for(message_cls),
        description=(message_cls.__doc__ or "").strip(),
        schema=typed_envelope(message_cls),
    )


def document_dead_letters(broker: KafkaBroker) -> None:
    """A documentation-only publisher for the dead-letter topic (any value, dlq_* headers)."""
    broker.publisher(
        DEAD_LETTER_TOPIC,
        title=DEAD_LETTER_TOPIC,
        description="Messages a consumer rejected for good (never processed, never retried): "
        "the original record's key, value and headers, plus dlq_* headers saying why.",
        schema=DeadLetter,
    )


def _text(description: str, **schema: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **schema}


def _uuid(description: str) -> dict[str, Any]:
    return _text(description, format="uuid")


def envelope_headers(message_type: str) -> dict[str, Any]:
    """The headers of a message of this type: they mirror its envelope."""
    properties = {
        MessageHeaders.MESSAGE_ID: _uuid("= envelope message_id; kept by redeliveries."),
        MessageHeaders.MESSAGE_TYPE: _text("= envelope message_type.", const=message_type),
        MessageHeaders.CORRELATION_ID: _uuid("= envelope correlation_id = the Kafka key."),
        MessageHeaders.CAUSATION_ID: _uuid(
            "= envelope causation_id; absent when the message has no cause (envelope null)."
        ),
        MessageHeaders.SCHEMA_VERSION: _text(
            "= envelope schema_version, as text.", const=str(SCHEMA_VERSION)
        ),
        MessageHeaders.CONTENT_TYPE: _text("The value's media type.", const=JSON),
    }
    required = [name for name in properties if name != MessageHeaders.CAUSATION_ID]
    return _headers(properties, required)


def dead_letter_headers() -> dict[str, Any]:
    """The headers of a dead letter: the original record's, plus why, where and how often."""
    number = {"pattern": "^[0-9]+$"}
    properties = {
        MessageHeaders.ERROR: _text("Why it was rejected (at most 1000 characters)."),
        MessageHeaders.ORIGINAL_TOPIC: _text("The topic the record was read from."),
        MessageHeaders.ORIGINAL_PARTITION: _text("Its partition, in decimal.", **number),
        MessageHeaders.ORIGINAL_OFFSET: _text("Its offset, in decimal.", **number),
        MessageHeaders.ATTEMPTS: _text("Deliveries tried before giving up, in decimal.", **number),
        MessageHeaders.REJECTED_BY: _text("The service that rejected it (saga, inventory, ...)."),
        **{
            name: _text(f"The original record's {name} header, when it had one.")
            for name in _ENVELOPE_HEADERS
        },
    }
    required = [name for name in properties if name.startswith("dlq_")]
    return _headers(properties, required)


def _headers(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "description": _STRING_HEADERS,
        "properties": properties,
        "required": required,
        "additionalProperties": {"type": "string"},
    }


def key_binding(key: dict[str, Any]) -> dict[str, Any]:
    """The Kafka message binding that documents the record key."""
    return {"kafka": {"key": key, "bindingVersion": KAFKA_BINDING_VERSION}}


def message_key(message_cls: type[Message]) -> dict[str, Any]:
    """The record key of a message type: its correlation id, as canonical text."""
    declared = message_cls.model_fields["order_id"].description
    described = f"{_KEYS.get(message_cls) or declared or _DEFAULT_KEY} {_KEY_RULE}"
    return {**_uuid(described), "pattern": _CANONICAL_UUID}


def _completion(message_cls: type[Message]) -> dict[str, Any]:
    return {
        "name": message_cls.message_type,
        "summary": (message_cls.__doc__ or "").strip(),
        "contentType": JSON,
        "headers": envelope_headers(message_cls.message_type),
        "bindings": key_binding(message_key(message_cls)),
    }


def _dead_letter_completion() -> dict[str, Any]:
    key = _text("The original record's key, or `unknown` when it had none.")
    return {
        "name": "DeadLetter",
        "summary": (DeadLetter.__doc__ or "").strip(),
        "contentType": "application/octet-stream",
        "headers": dead_letter_headers(),
        "bindings": key_binding(key),
        "correlationId": CorrelationId(
            location=f"$message.header#/{MessageHeaders.CORRELATION_ID}",
            description="The original record's correlation id, when it had one.",
        ),
    }


def completions() -> dict[str, dict[str, Any]]:
    """topic -> what its message gains beyond FastStream's document."""
    found = {topic_for(cls): _completion(cls) for cls in ALL_MESSAGES}
    found[DEAD_LETTER_TOPIC] = _dead_letter_completion()
    return found


class WireAsyncAPI(AsyncAPI):
    """FastStream's AsyncAPI factory, whose messages also state their headers and Kafka key."""

    def to_specification(self) -> Specification:
        """The document FastStream builds, with each known topic's message completed."""
        document = super().to_specification()
        if isinstance(document, ApplicationSchema) and document.components is not None:
            messages = document.components.messages or {}
            document.components.messages = _completed(messages, completions())
        return document


def _completed(
    messages: dict[str, SpecMessage], extra: dict[str, dict[str, Any]]
) -> dict[str, SpecMessage]:
    # Message keys are "<topic>:Message"; the message model keeps unknown fields (extra=allow).
    return {
        name: message.model_copy(update=extra.get(name.rsplit(":", 1)[0], {}))
        for name, message in messages.items()
    }
