"""The token guards every console page and action; a cookie from another site's page is refused."""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.async_api import BrowserContext, Page, expect

from ops.console.auth import COOKIE, session_value
from tests.browser.conftest import TOKEN, console_url
from tests.support.stack import Stack

pytestmark = pytest.mark.browser

PAGES = [
    "/",
    "/flow/figures",
    "/stuck",
    "/checkouts",
    f"/checkouts/{uuid.uuid4()}",
    "/dead-letters",
    f"/dead-letters/{uuid.uuid4()}",
]
ACTIONS = [
    "/dead-letters/replay",
    f"/sagas/{uuid.uuid4()}/abort",
    f"/sagas/{uuid.uuid4()}/retry",
]


@pytest.mark.parametrize("path", PAGES)
async def test_a_page_without_the_token_goes_to_the_login_page(
    anonymous: BrowserContext, live: Stack, path: str
) -> None:
    page = await anonymous.new_page()
    await page.goto(console_url(live.settings) + path)
    await expect(page).to_have_url(
        f"{console_url(live.settings)}/login?next=%2Fconsole" + _quoted(path)
    )
    await expect(page.locator("input[name=token]")).to_be_visible()


def _quoted(path: str) -> str:
    return path.replace("/", "%2F")


@pytest.mark.parametrize("path", ACTIONS)
async def test_an_action_without_the_token_is_refused(
    anonymous: BrowserContext, live: Stack, path: str
) -> None:
    base = console_url(live.settings)
    response = await anonymous.request.post(
        base + path,
        form={"reason": "test", "letter": str(uuid.uuid4()), "scope": "matching"},
        headers={"Origin": base.removesuffix("/console")},
        max_redirects=0,
    )
    assert response.status == 303
    assert response.headers["location"].startswith("/console/login?next=")


async def test_a_wrong_token_does_not_log_in(anonymous: BrowserContext, live: Stack) -> None:
    page = await anonymous.new_page()
    await page.goto(f"{console_url(live.settings)}/login")
    await page.fill("input[name=token]", TOKEN + "x")
    await page.click("button:text('Log in')")
    await expect(page.locator("[role=alert]")).to_have_text("That is not the token.")
    assert COOKIE not in {cookie["name"] for cookie in await anonymous.cookies()}


async def test_the_cookie_is_http_only_strict_and_not_the_token(
    console: Page, anonymous: BrowserContext
) -> None:
    cookies = {cookie["name"]: cookie for cookie in await anonymous.cookies()}
    cookie = cookies[COOKIE]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["value"] == session_value(TOKEN) != TOKEN
    assert await console.evaluate("document.cookie") == ""  # out of scripts' reach


async def test_an_action_from_another_site_is_refused_even_with_the_cookie(
    console: Page, live: Stack
) -> None:
    cookie = {COOKIE: session_value(TOKEN)}
    base = console_url(live.settings)
    async with httpx.AsyncClient(cookies=cookie) as client:
        for path in ACTIONS:
            response = await client.post(
                base + path, data={"reason": "x"}, headers={"Origin": "http://evil.example"}
            )
            assert response.status_code == 403, (path, response.text)
        api = await client.post(
            base.removesuffix("/console") + "/admin/v1/dead-letters/replay",
            json={"ids": [str(uuid.uuid4())]},
            headers={"Origin": "http://evil.example"},
        )
        assert api.status_code == 403


async def test_the_api_still_wants_the_bearer_token(live: Stack) -> None:
    base = console_url(live.settings).removesuffix("/console")
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{base}/admin/v1/sagas")).status_code == 401
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.get(f"{base}/admin/v1/sagas", headers=good)).status_code == 200
