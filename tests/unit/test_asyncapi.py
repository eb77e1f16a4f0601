"""The committed AsyncAPI document is the generated one, and it covers every message type."""

from __future__ import annotations

import json
from pathlib import Path

from contracts import ALL_MESSAGES
from contracts.topics import topic_for
from services.platform.settings import Settings
from services.runtime import asyncapi_json

DOCUMENT = Path(__file__).parents[2] / "docs" / "asyncapi.json"


def test_committed_document_is_current() -> None:
    generated = asyncapi_json(Settings())
    assert DOCUMENT.read_text() == generated, (
        "docs/asyncapi.json is stale: run `checkout-saga asyncapi > docs/asyncapi.json`"
    )


def test_every_message_type_has_a_channel_with_its_typed_payload() -> None:
    document = json.loads(DOCUMENT.read_text())
    schemas = document["components"]["schemas"]
    for cls in ALL_MESSAGES:
        channel = document["channels"][topic_for(cls)]
        assert channel["description"] == (cls.__doc__ or "").strip()
        envelope = schemas[f"{cls.__name__}Envelope"]
        assert set(envelope["required"]) >= {"message_id", "message_type", "payload"}
        payload_ref = envelope["properties"]["payload"]["$ref"].rsplit("/", 1)[-1]
        assert "order_id" in schemas[payload_ref]["properties"]
