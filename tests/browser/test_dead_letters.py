"""The dead-letters pages: a malformed record is listed, inspected (bytes, reason) and replayed."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import Page, expect

from contracts import CheckoutStarted
from contracts.topics import topic_for
from tests.browser.helpers import snap
from tests.support.stack import Stack

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000
MALFORMED = b"\xff{not json"


async def _listed(console: Page, key: str, at_least: int) -> None:
    """Reload the list filtered by the key until at least that many letters show."""
    rows = console.locator("table.letters tr[data-letter]")
    for _ in range(60):
        await console.goto(f"dead-letters?text={key}")
        if await rows.count() >= at_least:
            return
        await console.wait_for_timeout(500)
    raise AssertionError(f"fewer than {at_least} dead letters with key {key}")


async def test_a_malformed_record_is_listed_inspected_and_replayed(
    console: Page, live: Stack, producer: AIOKafkaProducer, screenshots: Path
) -> None:
    key = str(uuid.uuid4())
    await producer.send_and_wait(topic_for(CheckoutStarted), MALFORMED, key=key.encode())
    # Both consumers of checkout_started (saga and orders) reject it: two letters.
    await _listed(console, key, 2)
    rows = console.locator("table.letters tr[data-letter]")
    await expect(rows).to_have_count(2)
    await expect(rows.first).to_contain_text("checkout.checkout_started")
    await snap(console, screenshots, "console-dead-letters")

    await rows.first.locator("a").click()
    await expect(console.locator("#reason")).not_to_be_empty()
    await expect(console.locator("#hex")).to_contain_text("ff 7b 6e 6f 74")
    await expect(console.locator("table.facts").first).to_contain_text(key)
    await snap(console, screenshots, "console-dead-letter")

    await console.click("button:text('Replay this letter')")
    await expect(console.locator("#replayed")).to_contain_text("Replayed 1 dead letter(s)")
    # Still malformed: both consumers reject the replayed copy again.
    await _listed(console, key, 4)
    await expect(rows).to_have_count(4)
