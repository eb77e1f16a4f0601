"""POST/DELETE /cart/coupons: codes that apply, refusals with reasons, codes that stop applying, guess limits."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.cart.http.app import create_http_app
from services.platform.settings import Settings
from tests.api import Shopper, field_errors, offer
from tests.api.shop_rules import Shop, new_code


def _address() -> str:
    # Each test its own client address: guess counts per address outlive a test run.
    raw = uuid.uuid4().bytes
    return f"10.{raw[0]}.{raw[1]}.{raw[2]}"


def _client(engine: AsyncEngine, settings: Settings, address: str) -> httpx.AsyncClient:
    app = create_http_app(settings, engine)
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://cart.test/api/v1")


@pytest.fixture
async def http(engine: AsyncEngine, handler_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(engine, handler_settings, _address()) as client:
        yield client


def _money(value: str) -> Decimal:
    return Decimal(value)


async def test_an_automatic_promotion_applies_without_a_code(
    http: httpx.AsyncClient, engine: AsyncEngine, shop: Shop
) -> None:
    brand = f"brand-{uuid.uuid4().hex[:8]}"
    sku = await offer(engine, price="20.00", brand=brand)
    promotion_id = await shop.promotion(value=Decimal(10), target={"brands": [brand]})
    shopper = Shopper(http)

    body = (await shopper.add(sku, 2)).json()

    totals = body["totals"]
    assert totals["discounts"] == [{"promotion_id": promotion_id, "code": None, "amount": "4.00"}]
    assert (_money(totals["subtotal"]), _money(totals["grand_total"])) == (40, 36)
    assert body["coupons"] == []
    assert body["checkout_blockers"] == []


async def test_a_code_that_applies_is_entered_once_and_bumps_the_version(
    http: httpx.AsyncClient, engine: AsyncEngine, shop: Shop
) -> None:
    code = new_code()
    promotion_id = await shop.promotion(
        code=code, kind="fixed", value=Decimal("5.00"), currency="EUR"
    )
    shopper = Shopper(http)
    added = await shopper.add(await offer(engine, price="30.00"), 1)

    entered = await shopper.request(
        "POST", "/cart/coupons", {"code": f" {code.lower()} "}, If_Match=added.headers["ETag"]
    )
    again = await shopper.request("POST", "/cart/coupons", {"code": code})

    assert entered.status_code == 200, entered.text
    body = entered.json()
    assert body["coupons"] == [
        {
            "code": code,
            "applied": True,
            "promotion_id": promotion_id,
            "amount": "5.00",
            "reason": None,
        }
    ]
    assert body["totals"]["grand_total"] == "25.00"
    assert body["version"] == added.json()["version"] + 1
    assert again.status_code == 200
    assert again.json()["version"] == body["version"]
    assert (await shopper.cart()).json()["coupons"] == body["coupons"]


async def test_an_unknown_code_is_refused_and_not_entered(
    http: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    shopper = Shopper(http)
    await shopper.add(await offer(engine), 1)

    refused = await shopper.request("POST", "/cart/coupons", {"code": new_code("NOPE")})

    assert refused.status_code == 422
    assert field_errors(refused) == {"code": "This code is not valid."}
    assert (await shopper.cart()).json()["coupons"] == []


async def test_a_code_below_its_minimum_spend_is_refused_with_the_reason(
    http: httpx.AsyncClient, engine: AsyncEngine, shop: Shop
) -> None:
    code = new_code()
    await shop.promotion(code=code, value=Decimal(10), min_spend=Decimal("50.00"), currency="EUR")
    shopper = Shopper(http)
    await shopper.add(await offer(engine, price="10.00"), 1)

    refused = await shopper.request("POST", "/cart/coupons", {"code": code})

    assert refused.status_code == 422
    assert field_errors(refused) == {
        "code": "Spend at least 50.00 EUR on qualifying items to use this code."
    }


async def test_an_entered_code_that_stops_applying_stays_and_applies_again(
    http: httpx.AsyncClient, engine: AsyncEngine, shop: Shop
) -> None:
    code = new_code()
    await shop.promotion(code=code, value=Decimal(10), min_spend=Decimal("40.00"), currency="EUR")
    shopper = Shopper(http)
    sku = await offer(engine, price="20.00")
    await shopper.add(sku, 2)
    assert (await shopper.request("POST", "/cart/coupons", {"code": code})).status_code == 200
    item_id = (await shopper.cart()).json()["items"][0]["id"]

    lowered = (await shopper.request("PATCH", f"/cart/items/{item_id}", {"qty": 1})).json()
    raised = (await shopper.request("PATCH", f"/cart/items/{item_id}", {"qty": 3})).json()

    assert lowered["coupons"][0]["applied"] is False
    assert lowered["coupons"][0]["reason"].startswith("Spend at least 40.00 EUR")
    assert lowered["totals"]["discounts"] == []
    assert raised["coupons"][0]["applied"] is True
    assert raised["totals"]["discount_total"] == "6.00"


async def test_removing_a_code_restores_the_totals_and_an_absent_one_is_404(
    http: httpx.AsyncClient, engine: AsyncEngine, shop: Shop
) -> None:
    code = new_code()
    await shop.promotion(code=code, value=Decimal(50))
    shopper = Shopper(http)
    await shopper.add(await offer(engine, price="8.00"), 1)
    await shopper.request("POST", "/cart/coupons", {"code": code})

    removed = await shopper.request("DELETE", f"/cart/coupons/{code.lower()}")
    absent = await shopper.request("DELETE", f"/cart/coupons/{code}")

    assert removed.status_code == 200
    assert removed.json()["coupons"] == []
    assert removed.json()["totals"]["grand_total"] == "8.00"
    assert absent.status_code == 404


async def test_a_code_needs_a_cart_and_a_well_formed_body(http: httpx.AsyncClient) -> None:
    shopper = Shopper(http)

    no_cart = await shopper.request("POST", "/cart/coupons", {"code": "WELCOME"})
    malformed = await shopper.request("POST", "/cart/coupons", {"code": "no spaces inside"})

    assert no_cart.status_code == 404
    assert malformed.status_code == 422
    assert "code" in field_errors(malformed)


def _limited(settings: Settings, per_buyer: int, per_client: int) -> Settings:
    cart = settings.cart.model_copy(
        update={"coupon_guesses_per_buyer": per_buyer, "coupon_guesses_per_client": per_client}
    )
    return settings.model_copy(update={"cart": cart})


async def test_guesses_are_limited_per_buyer(
    engine: AsyncEngine, handler_settings: Settings, shop: Shop
) -> None:
    good = new_code()
    await shop.promotion(code=good, value=Decimal(5))
    settings = _limited(handler_settings, per_buyer=3, per_client=100)
    async with _client(engine, settings, _address()) as http:
        guesser, other = Shopper(http), Shopper(http)
        for who in (guesser, other):
            await who.add(await offer(engine), 1)
        statuses = [
            (await guesser.request("POST", "/cart/coupons", {"code": new_code("X")})).status_code
            for _ in range(3)
        ]
        blocked = await guesser.request("POST", "/cart/coupons", {"code": good})
        unblocked = await other.request("POST", "/cart/coupons", {"code": good})

    assert statuses == [422, 422, 422]
    assert blocked.status_code == 429, blocked.text
    assert 1 <= int(blocked.headers["Retry-After"]) <= handler_settings.cart.coupon_guess_window_s
    assert blocked.headers["content-type"].startswith("application/problem+json")
    assert unblocked.status_code == 200


async def test_guesses_are_limited_per_client_address_across_buyers(
    engine: AsyncEngine, handler_settings: Settings
) -> None:
    settings = _limited(handler_settings, per_buyer=100, per_client=2)
    address = _address()
    async with (
        _client(engine, settings, address) as http,
        _client(engine, settings, _address()) as elsewhere,
    ):
        shoppers = [Shopper(http) for _ in range(3)]
        for shopper in shoppers:
            await shopper.add(await offer(engine), 1)
        statuses = [
            (await s.request("POST", "/cart/coupons", {"code": new_code("Y")})).status_code
            for s in shoppers
        ]
        other_address = Shopper(elsewhere)
        await other_address.add(await offer(engine), 1)
        allowed = await other_address.request("POST", "/cart/coupons", {"code": new_code("Z")})

    assert statuses == [422, 422, 429]
    assert allowed.status_code == 422
