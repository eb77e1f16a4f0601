"""A priced checkout end to end: a guest's cart with a coupon is merged on sign-in, shipped, taxed,
charged its grand total and confirmed; a second checkout that fails gives the coupon's use back.

The cart API runs in this process on the integration stack (saga, orders, cart and inventory
consuming over the broker) with the scripted payer answering every payment request.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from services.cart.http.app import create_http_app
from services.platform.db import create_engine
from tests.api import Shopper, offer
from tests.api.shop_rules import Shop, new_code, shop_rules
from tests.api.test_guest_carts import Guest
from tests.support.payer import ScriptedPayer, eventually
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

TIMEOUT = 60.0
CURRENCY = "DKK"  # shipping methods are per currency: one no other test of this tier prices in


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    engine = create_engine(stack.settings, pool_size=3)
    app = create_http_app(stack.settings, engine)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://cart/api/v1") as client:
            yield client
    finally:
        await engine.dispose()


@pytest.fixture
async def shop(stack: Stack) -> AsyncIterator[Shop]:
    async with shop_rules(stack.engine) as rules:
        yield rules


async def _group(shopper: Shopper, group_id: str, status: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body: dict[str, Any] = (await shopper.request("GET", f"/checkout-groups/{group_id}")).json()
        return body if body["status"] == status else None

    found = await eventually(probe, timeout=TIMEOUT)
    assert isinstance(found, dict)
    return found


async def _uses(stack: Stack, promotion_id: str) -> int:
    rows = await stack.rows(
        "SELECT uses FROM cart.promotion_uses WHERE promotion_id = :p", p=promotion_id
    )
    return int(rows[0]["uses"]) if rows else 0


async def test_guest_coupon_merge_and_checkout_confirm_the_discounted_taxed_shipped_total(
    api: httpx.AsyncClient, stack: Stack, shop: Shop, payer: ScriptedPayer
) -> None:
    country = "XQ"
    book = await offer(
        stack.engine,
        price="40.00",
        currency=CURRENCY,
        vendor="acme",
        category="books",
        weight_grams=600,
    )
    lamp = await offer(stack.engine, price="25.00", currency=CURRENCY, weight_grams=900)
    for sku in (book, lamp):
        await stack.set_stock(sku, 10)
    method = await shop.shipping(CURRENCY, [country], [(1_000, "19.00"), (3_000, "29.00")])
    await shop.tax(country, "0.25", {"books": "0.10"})
    code = new_code("WELCOME")
    promotion_id = await shop.promotion(code=code, value=Decimal(10), limit_total=2)

    # A guest shops and enters the code ...
    issued = await api.post("/guest-sessions")
    guest = Guest(api, issued.json()["token"])
    await guest.add(book, 2)
    await guest.add(lamp, 1)
    entered = await guest.request("POST", "/cart/coupons", {"code": code})
    assert entered.status_code == 200, entered.text
    # ... signs in, and the cart (with its code) becomes the buyer's.
    buyer = Shopper(api)
    merged = await buyer.request("POST", "/cart/merge", {"guest_token": guest.token})
    assert merged.status_code == 200, merged.text
    assert merged.json()["cart"]["coupons"][0]["applied"] is True
    shown = await buyer.request(
        "PUT", "/cart/delivery", {"country": country, "shipping_method": method}
    )
    totals = shown.json()["totals"]
    # 105.00 - 10.50 off = 94.50; the parcel weighs 2,100 g: shipping 29.00 (second band);
    # tax: books 72.00 x 10 % = 7.20, lamp 22.50 x 25 % = 5.63, shipping 29.00 x 25 % = 7.25.
    assert (totals["discount_total"], totals["shipping"], totals["tax"]) == (
        "10.50",
        "29.00",
        "20.08",
    )
    assert totals["grand_total"] == "143.58"

    accepted = await buyer.checkout(body={"expected_totals": totals})
    assert accepted.status_code == 202, accepted.text
    group_id = accepted.json()["checkout_group_id"]

    group = await _group(buyer, group_id, "completed")
    assert group["balance_due"] == "143.58"
    assert sum(Decimal(o["adjusted_total"]) for o in group["orders"]) == Decimal("143.58")
    requests = payer.requests[uuid.UUID(group_id)]
    assert {r.amount for r in requests} == {Decimal("143.58")}
    assert await _uses(stack, promotion_id) == 1

    # A second buyer uses the code too, but their order fails: the use comes back.
    await stack.set_stock(lamp, 0)
    second = Shopper(api)
    await second.add(lamp, 1)
    await second.request("POST", "/cart/coupons", {"code": code})
    await second.request("PUT", "/cart/delivery", {"country": country, "shipping_method": method})
    failed = await second.checkout()
    assert failed.status_code == 202, failed.text
    assert await _uses(stack, promotion_id) == 2

    await _group(second, failed.json()["checkout_group_id"], "failed")
    assert await eventually(lambda: _returned(stack, promotion_id), timeout=TIMEOUT)
    third = Shopper(api)
    await third.add(book, 1)
    again = await third.request("POST", "/cart/coupons", {"code": code})
    assert again.status_code == 200, again.text


async def _returned(stack: Stack, promotion_id: str) -> bool:
    return await _uses(stack, promotion_id) == 1
