"""The envelope every message travels in, its Kafka headers and deterministic command ids."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

SCHEMA_VERSION = 1
"""Version of the envelope and payload schemas this code writes and accepts."""

COMMAND_NAMESPACE = uuid.UUID("6c1f4a52-8d0e-4c1b-9a53-3f0b8e7d2a10")
"""Namespace of deterministic command ids, so a replayed transition re-emits the same ids."""

MAX_MESSAGE_BYTES = 256 * 1024
"""Larger values are rejected before parsing; a checkout of 100 items is about 15 KiB."""


def command_id(
    saga_id: uuid.UUID, transition: str, message_type: str, attempt: int = 0
) -> uuid.UUID:
    """Deterministic message id of a command the saga sends on one transition."""
    return uuid.uuid5(COMMAND_NAMESPACE, f"{saga_id}:{transition}:{message_type}:{attempt}")


def utcnow() -> datetime:
    """Current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]")
"""How an RFC 3339 date-time begins."""


class Envelope(BaseModel):
    """Metadata around every payload: identity, type, causality, and the payload itself."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    message_id: uuid.UUID
    message_type: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    correlation_id: uuid.UUID = Field(description="The order id = saga id = Kafka key.")
    causation_id: uuid.UUID | None = Field(
        default=None, description="message_id of the message that caused this one."
    )
    # A JSON integer, never true or "1"; occurred_at is a date-time, never a count of seconds.
    occurred_at: AwareDatetime
    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION, strict=True)
    payload: dict[str, Any]

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _a_date_not_a_count(cls, value: object) -> object:
        # pydantic would read a number, or a string of digits, as seconds since 1970.
        if isinstance(value, datetime) or (isinstance(value, str) and _DATE_TIME.match(value)):
            return value
        raise ValueError("must be an RFC 3339 date-time (YYYY-MM-DDThh:mm:ss with an offset)")


class MessageHeaders:
    """Names of the Kafka headers every message carries (values are UTF-8 strings)."""

    MESSAGE_ID = "message_id"
    MESSAGE_TYPE = "message_type"
    CORRELATION_ID = "correlation_id"
    CAUSATION_ID = "causation_id"
    SCHEMA_VERSION = "schema_version"
    CONTENT_TYPE = "content-type"
    # Dead letters carry these in addition.
    ERROR = "dlq_error"
    ORIGINAL_TOPIC = "dlq_original_topic"
    ORIGINAL_PARTITION = "dlq_original_partition"
    ORIGINAL_OFFSET = "dlq_original_offset"
    ATTEMPTS = "dlq_attempts"
    REJECTED_BY = "dlq_rejected_by"
