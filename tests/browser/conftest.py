"""Browser-tier fixtures: the services in-process on a broker and database of this tier, the admin
app (with the console) served by uvicorn on a free port, and Debian's Chromium driven by Playwright.

Its own broker, as the e2e tier: the integration stack consumes the same topics in the same
consumer groups and would take this tier's messages. Never a downloaded browser: Chromium is the
system's (`apt-get install chromium`); without it the tier fails under CI and is skipped elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import Browser, BrowserContext, Page, async_playwright
from pydantic import SecretStr

from ops.admin.serve import serve_admin
from services.platform.db import create_engine
from services.platform.embedded import free_port
from services.platform.settings import (
    AdminSettings,
    KafkaSettings,
    RelaySettings,
    SagaSettings,
    Settings,
    StuckAfterSettings,
)
from services.runtime import Runtime
from tests.support import infra
from tests.support.payer import ScriptedPayer, eventually
from tests.support.stack import Stack

TOKEN = "browser-tier-token"
PARTITIONS = 2
SCREENSHOTS_ENV = "CHECKOUT_SCREENSHOTS_DIR"
CHROMIUM_ENV = "CHECKOUT_CHROMIUM"
PAYMENT_TIMEOUT_S = 600.0
"""Long: a saga left without a payment answer waits in StockReserved for the operator."""
STUCK_AFTER_S = 1.0
"""Short: such a saga shows on the stuck page at once."""


def chromium_path() -> str | None:
    """Debian's chromium (or CHECKOUT_CHROMIUM), never one Playwright downloads."""
    return os.environ.get(CHROMIUM_ENV) or shutil.which("chromium")


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser binary; missing, the tier fails on CI (it must run there) and skips elsewhere."""
    path = chromium_path()
    if path is None:
        message = (
            "no chromium: `apt-get install chromium` (Debian's package), or set CHECKOUT_CHROMIUM"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where tests save a screenshot of every page they look at (printed, kept after the run)."""
    where = os.environ.get(SCREENSHOTS_ENV)
    path = Path(where) if where else Path(tempfile.mkdtemp(prefix="checkout-console-"))
    path.mkdir(parents=True, exist_ok=True)
    _SCREENSHOTS.append(path.resolve())
    return path


_SCREENSHOTS: list[Path] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say where the screenshots are (the tests' own output is captured)."""
    for path in _SCREENSHOTS:
        terminalreporter.write_line(f"console screenshots: {path}")


@pytest.fixture(scope="session")
def browser_bootstrap() -> Iterator[str]:
    """A Tansu broker of this tier only, every topic created up front."""
    with infra.tier_broker(PARTITIONS) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def browser_database_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, migrated database of this tier."""
    with infra.tier_database(pg_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def console_settings(browser_database_url: str, browser_bootstrap: str) -> Settings:
    """The stack's settings: the admin token set, the admin app on a free port."""
    return Settings(
        database_url=SecretStr(browser_database_url),
        kafka=KafkaSettings(
            bootstrap_servers=browser_bootstrap,
            topic_partitions=PARTITIONS,
            session_timeout_ms=2000,
        ),
        saga=SagaSettings(
            payment_timeout_s=PAYMENT_TIMEOUT_S,
            timeout_poll_interval_s=0.5,
            stuck_after_s=StuckAfterSettings(stock_reserved=STUCK_AFTER_S),
        ),
        relay=RelaySettings(poll_interval_s=0.5),
        admin=AdminSettings(token=SecretStr(TOKEN), http_port=free_port("127.0.0.1")),
    )


@pytest.fixture(scope="session")
async def live(console_settings: Settings) -> AsyncIterator[Stack]:
    """Every service but payments in one runtime, and the admin app serving the console."""
    runtime = Runtime(console_settings, ["saga", "orders", "cart", "inventory"])
    await runtime.start()
    stop = asyncio.Event()
    served = asyncio.create_task(serve_admin(console_settings, runtime, stop))
    engine = create_engine(console_settings, pool_size=3)
    try:
        await eventually(lambda: _answers(console_url(console_settings)), timeout=30)
        yield Stack(console_settings, engine, runtime, None, runtime.telemetry)
    finally:
        stop.set()
        await served
        await runtime.stop()
        await engine.dispose()


def console_url(settings: Settings) -> str:
    """The console's base URL on this stack."""
    return f"http://{settings.admin.http_host}:{settings.admin.http_port}/console"


async def _answers(url: str) -> bool:
    async with httpx.AsyncClient() as client:
        try:
            return (await client.get(f"{url}/login")).status_code == 200
        except httpx.HTTPError:
            return False


@pytest.fixture(scope="session")
async def payer(live: Stack, browser_bootstrap: str) -> AsyncIterator[ScriptedPayer]:
    """The payment provider (the simulator is not running): answers as each test scripts."""
    async with ScriptedPayer(browser_bootstrap) as scripted:
        yield scripted


@pytest.fixture(scope="session")
async def producer(browser_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """A plain producer, as an upstream service would use."""
    async with infra.plain_producer(browser_bootstrap) as producer:
        yield producer


@pytest.fixture(scope="session")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """Headless Chromium, the system's binary."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def anonymous(browser: Browser, live: Stack) -> AsyncIterator[BrowserContext]:
    """A browser context with no cookie (a fresh profile)."""
    context = await browser.new_context(
        base_url=console_url(live.settings) + "/", viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(20_000)
    try:
        yield context
    finally:
        await context.close()


@pytest.fixture
async def console(anonymous: BrowserContext, live: Stack) -> Page:
    """A page of a logged-in console (through the login form, as an operator would)."""
    page = await anonymous.new_page()
    await page.goto(f"{console_url(live.settings)}/login")
    await page.fill("input[name=token]", TOKEN)
    await page.click("button:text('Log in')")
    await page.wait_for_url(f"{console_url(live.settings)}/")
    return page
