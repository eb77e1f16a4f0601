"""PUT /cart/delivery and the cart's totals: shipping options by weight and destination, tax by destination."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.cart.http.app import create_http_app
from services.platform.settings import Settings
from tests.api import Shopper, field_errors, offer
from tests.api.shop_rules import Shop, new_code

# Shipping methods are per currency: this module's carts price in one no other test uses.
CURRENCY = "SEK"


def _country() -> str:
    # ISO 3166 keeps AA, QM..QZ, XA..XZ and ZZ for users: no real shop rule uses them.
    return "X" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[uuid.uuid4().int % 26]


async def _sek(engine: AsyncEngine, price: str, grams: int, category: str | None = None) -> str:
    return await offer(
        engine, price=price, currency=CURRENCY, weight_grams=grams, category=category
    )


async def test_a_cart_without_rules_for_its_currency_needs_no_delivery(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    body = (await shopper.add(await _sek(engine, "10.00", 100), 2)).json()

    assert body["checkout_blockers"] == []
    assert body["totals"] == {
        "currency": CURRENCY,
        "prices_include_tax": False,
        "subtotal": "20.00",
        "discounts": [],
        "discount_total": "0.00",
        "shipping": "0.00",
        "tax": "0.00",
        "grand_total": "20.00",
    }
    assert body["delivery"]["options"] == []


async def test_shipping_by_weight_band_and_tax_by_destination_make_the_grand_total(
    shopper: Shopper, engine: AsyncEngine, shop: Shop
) -> None:
    country = _country()
    post = await shop.shipping(CURRENCY, [country], [(1000, "49.00"), (5000, "99.00")], name="Post")
    await shop.tax(country, "0.25", {"food": "0.12"})
    await shopper.add(await _sek(engine, "100.00", 800), 1)
    await shopper.add(await _sek(engine, "50.00", 300, category="food"), 2)

    before = (await shopper.cart()).json()
    chosen = await shopper.request(
        "PUT", "/cart/delivery", {"country": country, "shipping_method": post}
    )

    assert {b["field"] for b in before["checkout_blockers"]} == {"delivery.country"}
    assert chosen.status_code == 200, chosen.text
    body = chosen.json()
    # 1,400 g: the second band. Tax: 100 x 25 % + 100 x 12 % + shipping 99 x 25 %.
    assert body["delivery"]["options"] == [
        {"method_id": post, "name": "Post", "price": "99.00", "free": False, "weight_grams": 1400}
    ]
    assert body["totals"]["shipping"] == "99.00"
    assert body["totals"]["tax"] == "61.75"
    assert body["totals"]["grand_total"] == "360.75"
    assert body["checkout_blockers"] == []


async def test_prices_stored_gross_show_the_tax_inside_the_total(
    engine: AsyncEngine, handler_settings: Settings, shop: Shop
) -> None:
    country = _country()
    await shop.tax(country, "0.25")
    cart = handler_settings.cart.model_copy(update={"prices_include_tax": True})
    app = create_http_app(handler_settings.model_copy(update={"cart": cart}), engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://cart.test/api/v1") as http:
        shopper = Shopper(http)
        await shopper.add(await _sek(engine, "125.00", 0), 1)
        body = (await shopper.request("PUT", "/cart/delivery", {"country": country})).json()

    assert body["totals"]["prices_include_tax"] is True
    assert body["totals"]["tax"] == "25.00"
    assert body["totals"]["grand_total"] == "125.00"


async def test_a_method_that_cannot_carry_the_cart_is_refused_with_the_reason(
    shopper: Shopper, engine: AsyncEngine, shop: Shop
) -> None:
    country = _country()
    light = await shop.shipping(CURRENCY, [country], [(500, "29.00")])
    heavy = await shop.shipping(
        CURRENCY, [country], [(20000, "149.00")], free_from=Decimal("1000.00")
    )
    await shopper.add(await _sek(engine, "400.00", 700), 1)

    refused = await shopper.request(
        "PUT", "/cart/delivery", {"country": country, "shipping_method": light}
    )
    listed = (await shopper.request("PUT", "/cart/delivery", {"country": country})).json()
    await shopper.add(await _sek(engine, "700.00", 10), 1)
    free = await shopper.request(
        "PUT", "/cart/delivery", {"country": country, "shipping_method": heavy}
    )

    assert refused.status_code == 422
    assert "700 g is above the 500 g limit" in field_errors(refused)["shipping_method"]
    assert [o["method_id"] for o in listed["delivery"]["options"]] == [heavy]
    assert listed["delivery"]["unavailable"][0]["method_id"] == light
    assert {b["field"] for b in listed["checkout_blockers"]} == {"delivery.shipping_method"}
    assert free.json()["totals"]["shipping"] == "0.00"
    assert free.json()["delivery"]["options"][0]["free"] is True


async def test_a_destination_without_tax_rates_blocks_checkout(
    shopper: Shopper, engine: AsyncEngine, shop: Shop
) -> None:
    taxed, untaxed = "XA", "XB"
    await shop.tax(f"{taxed}-{uuid.uuid4().hex[:4].upper()}", "0.10")  # a region elsewhere
    await shopper.add(await _sek(engine, "10.00", 0), 1)

    body = (await shopper.request("PUT", "/cart/delivery", {"country": untaxed})).json()

    assert body["checkout_blockers"] == [
        {"field": "delivery.country", "reason": f"the shop does not deliver to {untaxed}"}
    ]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"country": "de"}, "country"),
        ({"country": "DE", "region": "FR-75"}, "region"),
        ({"shipping_method": "post"}, "country"),
        ({"country": "DEU"}, "country"),
    ],
)
async def test_a_malformed_destination_is_refused(
    shopper: Shopper, engine: AsyncEngine, payload: dict[str, str], field: str
) -> None:
    await shopper.add(await _sek(engine, "10.00", 0), 1)

    refused = await shopper.request("PUT", "/cart/delivery", payload)

    assert refused.status_code == 422
    assert field in field_errors(refused)


async def test_discounts_lower_the_taxed_amount(
    shopper: Shopper, engine: AsyncEngine, shop: Shop
) -> None:
    country = _country()
    await shop.tax(country, "0.20")
    code = new_code()
    await shop.promotion(code=code, value=Decimal(10))
    await shopper.add(await _sek(engine, "100.00", 0), 1)
    await shopper.request("PUT", "/cart/delivery", {"country": country})

    body = (await shopper.request("POST", "/cart/coupons", {"code": code})).json()

    assert body["totals"]["discount_total"] == "10.00"
    assert body["totals"]["tax"] == "18.00"
    assert body["totals"]["grand_total"] == "108.00"
