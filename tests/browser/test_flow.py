"""The flow page on a live stack: the diagram's counts move by themselves as checkouts run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import Page, expect

from tests.browser.helpers import FLOW_IMAGE, count, snap, start_checkout
from tests.support.payer import ScriptedPayer, eventually
from tests.support.stack import Stack

pytestmark = pytest.mark.browser

TIMEOUT = 60.0
CHECKOUTS = 3


async def test_the_counts_move_as_checkouts_run(
    console: Page, live: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer, screenshots: Path
) -> None:
    await expect(console.locator("svg .node")).to_have_count(5)
    before = await count(console, "Confirmed")
    starts = await asyncio.gather(*(start_checkout(live, producer) for _ in range(CHECKOUTS)))
    await eventually(lambda: live.final([s.order_id for s in starts]), timeout=TIMEOUT)

    # No reload: the page polls its figures.
    async def moved() -> bool:
        return await count(console, "Confirmed") >= before + CHECKOUTS

    await eventually(moved, timeout=TIMEOUT)
    assert await console.text_content("#throughput") != "0.0 sagas/min"
    await expect(console.locator("#backlog tr")).not_to_have_count(1)
    await snap(console, screenshots, FLOW_IMAGE.removesuffix(".png"))
