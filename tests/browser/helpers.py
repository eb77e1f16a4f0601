"""What the browser tests share: screenshots, running checkouts, reading the flow page's counts."""

from __future__ import annotations

import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer
from playwright.async_api import Page

from contracts import CheckoutStarted
from tests.support.builders import checkout_started
from tests.support.payer import publish
from tests.support.stack import Stack

FLOW_IMAGE = "console-flow.png"
"""The name the README's picture has (docs/images/ when the tier runs with that directory)."""


async def snap(page: Page, directory: Path, name: str) -> Path:
    """A full-page screenshot for a person to look at."""
    path = directory / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def start_checkout(
    stack: Stack, producer: AIOKafkaProducer, quantity: int = 1, stock: int = 10
) -> CheckoutStarted:
    """A checkout of a product of its own (so its stock says what happened to this one only)."""
    sku = f"WEB-{uuid.uuid4().hex[:10]}"
    await stack.set_stock(sku, stock)
    start = checkout_started(items=[(sku, quantity, "12.50")], buyer_id="buyer-browser")
    await publish(producer, start)
    return start


async def count(page: Page, state: str) -> int:
    """The count the flow diagram shows in a state's box."""
    return int(await page.text_content(f"[data-count='{state}']") or "-1")
