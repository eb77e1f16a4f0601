"""One checkout in the console: found by id, its timeline in order; a stuck saga aborted."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import Page, expect

from tests.browser.helpers import snap, start_checkout
from tests.support.payer import Answer, ScriptedPayer, eventually
from tests.support.stack import Stack

pytestmark = pytest.mark.browser

TIMEOUT = 60.0
CONFIRMED_FLOW = [
    ("saga", "in", "CheckoutStarted"),
    ("saga", "out", "ReserveStockForOrder"),
    ("inventory", "in", "ReserveStockForOrder"),
    ("inventory", "out", "StockReservationCompleted"),
    ("saga", "in", "StockReservationCompleted"),
    ("saga", "out", "PaymentRequested"),
    ("saga", "in", "PaymentCompleted"),
]
"""The causal spine of a paid checkout: each pair must appear, and in this order."""


async def _timeline(page: Page) -> list[tuple[str, str, str]]:
    rows = page.locator("#timeline tr[data-type]")
    found = []
    for i in range(await rows.count()):
        cells = rows.nth(i).locator("td")
        service, arrow = await cells.nth(2).inner_text(), await cells.nth(3).inner_text()
        message = (await cells.nth(4).inner_text()).splitlines()[0]
        found.append((service, "in" if "in" in arrow else "out", message))
    return found


async def test_a_checkout_is_found_by_id_with_its_timeline_in_order(
    console: Page, live: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer, screenshots: Path
) -> None:
    start = await start_checkout(live, producer)
    await eventually(lambda: live.final([start.order_id]), timeout=TIMEOUT)

    await console.fill("header input[name=id]", str(start.order_id))
    await console.click("header button:text('Find')")
    await expect(console.locator("#saga-state")).to_have_text("Confirmed")
    # The journal rows of the last hops may commit just after the saga's: reload until complete.
    for _ in range(40):
        timeline = await _timeline(console)
        if all(step in timeline for step in CONFIRMED_FLOW):
            break
        await console.wait_for_timeout(250)
        await console.reload()
    positions = [timeline.index(step) for step in CONFIRMED_FLOW]
    assert positions == sorted(positions), timeline
    applied = console.locator("#timeline tr[data-type='PaymentCompleted'] td").nth(6)
    await expect(applied).to_contain_text("payment_completed")
    await expect(console.locator("#orders")).to_contain_text("confirmed")
    await expect(console.locator("#reservations .reservation-status")).to_have_text(["deducted"])
    await snap(console, screenshots, "console-checkout")


async def test_a_search_for_something_unknown_says_so(console: Page) -> None:
    await console.goto("checkouts?id=not-a-uuid")
    await expect(console.locator("[role=alert]")).to_have_text("An order or group id is a UUID.")
    await console.goto("checkouts/00000000-0000-4000-8000-000000000000")
    await expect(console.locator("[role=alert]")).to_contain_text("Nothing is known of")


async def test_a_stuck_saga_is_aborted_and_its_stock_released(
    console: Page, live: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer, screenshots: Path
) -> None:
    start = await start_checkout(live, producer, quantity=2, stock=5)
    sku = start.items[0].sku
    payer.script[start.order_id] = Answer.SILENT
    await eventually(lambda: _state_is(live, start, "StockReserved"), timeout=TIMEOUT)
    assert (await live.stock(sku))["reserved"] == 2

    row = console.locator(f"#stuck tr[data-order='{start.order_id}']")
    for _ in range(40):
        await console.goto("stuck")
        if await row.count():
            break
        await console.wait_for_timeout(250)
    await expect(row).to_contain_text("payment not answered")
    await snap(console, screenshots, "console-stuck")

    await row.locator("a").click()
    await expect(console.locator("#saga-state")).to_have_text("StockReserved")
    await console.click("#abort-form button")  # no reason: the browser refuses to send it
    await expect(console.locator("#saga-state")).to_have_text("StockReserved")
    await console.fill("#abort-form input[name=reason]", "payment provider lost this one")
    await console.fill("#abort-form input[name=operator]", "ana")
    await console.click("#abort-form button")
    await expect(console.locator("#done")).to_contain_text("abort")
    await expect(console.locator("#saga-state")).to_have_text("Failed")
    await expect(console.locator("#actions")).to_contain_text("payment provider lost this one")

    async def released() -> bool:
        stock = await live.stock(sku)
        return bool(stock["reserved"] == 0 and stock["available"] == 5)

    await eventually(released, timeout=TIMEOUT)
    await console.reload()
    await expect(console.locator("#reservations .reservation-status")).to_have_text(["released"])
    await expect(console.locator("#orders")).to_contain_text("failed")
    await snap(console, screenshots, "console-aborted")

    # Final now: the table refuses a second abort, and the page says why.
    await console.goto(f"checkouts/{start.order_id}")
    await expect(console.locator("#abort-form")).to_have_count(0)


async def _state_is(live: Stack, start: object, state: str) -> bool:
    return await live.saga_state(start.order_id) == state  # type: ignore[attr-defined]
