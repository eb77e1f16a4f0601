"""Checkout re-prices promotions, shipping and tax: blockers, changed totals, promotion uses and races."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import CheckoutStarted, OrderConfirmed, OrderMarkedFailed
from services.cart import redemptions as redemptions_store
from services.cart.promotion_types import AppliedPromotion
from services.cart.tables import (
    promotion_buyer_uses,
    promotion_uses,
    promotions,
    redemptions,
    tax_rates,
)
from services.platform.consumer import Outcome
from tests.api import Shopper, field_errors, offer, sent
from tests.api.shop_rules import Shop, new_code
from tests.handlers import ServiceDriver

CURRENCY = "NOK"


def _country() -> str:
    return "Q" + "MNOPQRSTUVWXYZ"[uuid.uuid4().int % 14]


async def _uses(engine: AsyncEngine, promotion_id: str) -> int:
    async with engine.connect() as conn:
        found = await conn.scalar(
            select(promotion_uses.c.uses).where(promotion_uses.c.promotion_id == promotion_id)
        )
    return found or 0


async def test_checkout_is_refused_until_the_delivery_is_chosen(
    shopper: Shopper, engine: AsyncEngine, shop: Shop
) -> None:
    country = _country()
    method = await shop.shipping(CURRENCY, [country], [(10_000, "79.00")])
    await shopper.add(await offer(engine, price="100.00", currency=CURRENCY), 1)

    nowhere = await shopper.checkout()
    await shopper.request("PUT", "/cart/delivery", {"country": country})
    no_method = await shopper.checkout()
    await shopper.request("PUT", "/cart/delivery", {"country": country, "shipping_method": method})
    accepted = await shopper.checkout()

    assert nowhere.status_code == 422
    assert field_errors(nowhere) == {"delivery.country": "choose where the order is shipped"}
    assert no_method.status_code == 422
    assert field_errors(no_method) == {"delivery.shipping_method": "choose a shipping method"}
    assert accepted.status_code == 202, accepted.text


async def test_totals_other_than_the_ones_shown_are_409_with_the_differences(
    shopper: Shopper, engine: AsyncEngine, shop: Shop
) -> None:
    country = _country()
    await shop.tax(country, "0.10")
    await shopper.add(await offer(engine, price="50.00", currency=CURRENCY), 1)
    shown = (await shopper.request("PUT", "/cart/delivery", {"country": country})).json()
    async with engine.begin() as conn:
        await conn.execute(
            update(tax_rates).where(tax_rates.c.area == country).values(standard=Decimal("0.2"))
        )

    refused = await shopper.checkout(body={"expected_totals": shown["totals"]})
    fresh = (await shopper.cart()).json()
    accepted = await shopper.checkout(body={"expected_totals": fresh["totals"]})

    assert refused.status_code == 409
    assert refused.json()["total_differences"] == [
        {"field": "tax", "was": "5.00", "now": "10.00"},
        {"field": "grand_total", "was": "55.00", "now": "60.00"},
    ]
    assert accepted.status_code == 202, accepted.text


async def test_an_expired_promotion_is_a_changed_total(
    shopper: Shopper, engine: AsyncEngine, shop: Shop
) -> None:
    code = new_code()
    promotion_id = await shop.promotion(code=code, value=Decimal(20))
    await shopper.add(await offer(engine, price="10.00", currency=CURRENCY), 1)
    shown = (await shopper.request("POST", "/cart/coupons", {"code": code})).json()
    async with engine.begin() as conn:
        await conn.execute(
            update(promotions).where(promotions.c.promotion_id == promotion_id).values(active=False)
        )

    refused = await shopper.checkout(body={"expected_totals": shown["totals"]})

    assert refused.status_code == 409
    changed = {d["field"]: (d["was"], d["now"]) for d in refused.json()["total_differences"]}
    assert changed[f"discount:{promotion_id}"] == ("2.00", None)
    assert changed["grand_total"] == ("8.00", "10.00")


async def test_checkout_takes_a_use_and_records_the_redemption(
    shopper: Shopper, engine: AsyncEngine, shop: Shop
) -> None:
    code = new_code()
    promotion_id = await shop.promotion(code=code, value=Decimal(10), limit_per_buyer=1)
    await shopper.add(await offer(engine, price="30.00", currency=CURRENCY), 1)
    await shopper.request("POST", "/cart/coupons", {"code": code})

    accepted = await shopper.checkout()
    await shopper.add(await offer(engine, price="30.00", currency=CURRENCY), 1)
    again = await shopper.request("POST", "/cart/coupons", {"code": code})

    assert accepted.status_code == 202, accepted.text
    assert await _uses(engine, promotion_id) == 1
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(redemptions).where(redemptions.c.promotion_id == promotion_id)
            )
        ).one()
        mine = await conn.scalar(
            select(promotion_buyer_uses.c.uses).where(
                promotion_buyer_uses.c.promotion_id == promotion_id,
                promotion_buyer_uses.c.buyer_id == shopper.buyer_id,
            )
        )
    assert (str(row.group_id), row.code, row.amount, row.returned_at) == (
        accepted.json()["checkout_group_id"],
        code,
        Decimal("3.00"),
        None,
    )
    assert mine == 1
    assert field_errors(again) == {
        "code": "You have already used this code as many times as it allows."
    }


async def test_two_checkouts_racing_for_the_last_use_of_a_code_make_one_order(
    client: httpx.AsyncClient, engine: AsyncEngine, shop: Shop
) -> None:
    code = new_code()
    promotion_id = await shop.promotion(code=code, value=Decimal(15), limit_total=1)
    buyers = [Shopper(client) for _ in range(2)]
    for buyer in buyers:
        await buyer.add(await offer(engine, price="40.00", currency=CURRENCY), 1)
        entered = await buyer.request("POST", "/cart/coupons", {"code": code})
        assert entered.status_code == 200, entered.text

    answers = await asyncio.gather(*(buyer.checkout() for buyer in buyers))

    # The loser either lost the use while taking it (409: the totals changed under it) or
    # priced the cart after the winner committed (422: the code no longer applies).
    statuses = sorted(a.status_code for a in answers)
    assert statuses in ([202, 409], [202, 422])
    refused = next(a for a in answers if a.status_code != 202)
    if refused.status_code == 409:
        assert refused.json()["total_differences"] == [
            {"field": f"discount:{promotion_id}", "was": "6.00", "now": None}
        ]
    else:
        assert field_errors(refused) == {"coupons.0": f"{code}: This code has been fully used."}
    assert await _uses(engine, promotion_id) == 1
    loser = buyers[answers.index(refused)]
    assert (await loser.cart()).json()["coupons"][0]["reason"] == "This code has been fully used."


async def test_a_code_entered_while_the_cart_changes_never_discounts_a_cart_that_does_not_qualify(
    client: httpx.AsyncClient, engine: AsyncEngine, shop: Shop
) -> None:
    code = new_code()
    await shop.promotion(
        code=code, value=Decimal(10), min_spend=Decimal("60.00"), currency=CURRENCY
    )
    for _ in range(5):
        shopper = Shopper(client)
        await shopper.add(await offer(engine, price="30.00", currency=CURRENCY), 2)
        item_id = (await shopper.cart()).json()["items"][0]["id"]

        entered, lowered = await asyncio.gather(
            shopper.request("POST", "/cart/coupons", {"code": code}),
            shopper.request("PATCH", f"/cart/items/{item_id}", {"qty": 1}),
        )

        final = (await shopper.cart()).json()
        assert lowered.status_code == 200
        assert entered.status_code in (200, 422)
        assert final["totals"]["discounts"] == []
        assert final["totals"]["grand_total"] == "30.00"
        assert [c["applied"] for c in final["coupons"]] in ([], [False])


async def test_a_failed_order_gives_its_promotion_use_back_once(
    shopper: Shopper, engine: AsyncEngine, shop: Shop, cart: ServiceDriver
) -> None:
    code = new_code()
    promotion_id = await shop.promotion(code=code, value=Decimal(10), limit_total=1)
    await shopper.add(await offer(engine, price="20.00", currency=CURRENCY), 1)
    await shopper.request("POST", "/cart/coupons", {"code": code})
    accepted = await shopper.checkout()
    order_id = uuid.UUID(accepted.json()["order_id"])
    assert await _uses(engine, promotion_id) == 1

    failed = OrderMarkedFailed(order_id=order_id, reason="payment declined")
    message_id = uuid.uuid4()
    first = await cart.send(failed, message_id)
    redelivered = await cart.send(failed, message_id)
    again = await cart.send(failed)  # another copy, under a new id

    assert first is Outcome.APPLIED
    assert redelivered is not Outcome.APPLIED
    assert again is Outcome.APPLIED
    assert await _uses(engine, promotion_id) == 0
    async with engine.connect() as conn:
        returned_at = await conn.scalar(
            select(redemptions.c.returned_at).where(redemptions.c.promotion_id == promotion_id)
        )
    assert returned_at is not None


async def test_a_confirmed_order_keeps_its_promotion_use(
    shopper: Shopper, engine: AsyncEngine, shop: Shop, cart: ServiceDriver
) -> None:
    code = new_code()
    promotion_id = await shop.promotion(code=code, value=Decimal(10))
    await shopper.add(await offer(engine, price="20.00", currency=CURRENCY), 1)
    await shopper.request("POST", "/cart/coupons", {"code": code})
    order_id = uuid.UUID((await shopper.checkout()).json()["order_id"])

    await cart.send(OrderConfirmed(order_id=order_id, payment_id=uuid.uuid4()))

    assert await _uses(engine, promotion_id) == 1


async def test_a_priced_checkout_carries_its_pricing_and_charges_the_grand_total(
    shopper: Shopper, engine: AsyncEngine, shop: Shop
) -> None:
    country = _country()
    method = await shop.shipping(CURRENCY, [country], [(5_000, "60.00")])
    await shop.tax(country, "0.25")
    code = new_code()
    promotion_id = await shop.promotion(code=code, value=Decimal(10))
    acme = await offer(engine, price="100.00", currency=CURRENCY, vendor="acme", weight_grams=500)
    globex = await offer(engine, price="50.00", currency=CURRENCY, vendor="globex")
    await shopper.add(acme, 1)
    await shopper.add(globex, 2)
    await shopper.request("POST", "/cart/coupons", {"code": code})
    shown = await shopper.request(
        "PUT", "/cart/delivery", {"country": country, "shipping_method": method}
    )

    accepted = await shopper.checkout(body={"expected_totals": shown.json()["totals"]})

    assert accepted.status_code == 202, accepted.text
    # 200 - 20 off + 60 shipping, + 25 % tax on 180 + 60.
    assert shown.json()["totals"]["grand_total"] == "300.00"
    assert accepted.json()["total"] == "300.00"
    assert sum(Decimal(o["total"]) for o in accepted.json()["orders"]) == Decimal("300.00")
    [started] = [
        m.message
        for m in await sent(engine, accepted.json()["order_id"])
        if isinstance(m.message, CheckoutStarted)
    ]
    assert started.total == Decimal("300.00")
    assert started.pricing is not None
    assert [(d.promotion_id, d.code, d.amount) for d in started.pricing.discounts] == [
        (promotion_id, code, Decimal("20.00"))
    ]
    assert started.pricing.shipping is not None
    assert (started.pricing.shipping.method_id, started.pricing.shipping.price) == (
        method,
        Decimal("60.00"),
    )
    group = await shopper.request("GET", f"/checkout-groups/{accepted.json()['checkout_group_id']}")
    assert group.json()["pricing"]["grand_total"] == "300.00"


async def test_an_unpriced_checkout_stays_a_version_one_message(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    await shopper.add(await offer(engine, price="12.00", currency=CURRENCY), 1)

    accepted = await shopper.checkout()

    rows = await sent(engine, accepted.json()["order_id"])
    [started] = [m.message for m in rows if isinstance(m.message, CheckoutStarted)]
    assert started.pricing is None
    assert "pricing" not in started.model_dump(mode="json")


async def test_a_cart_that_costs_nothing_cannot_check_out(
    shopper: Shopper, engine: AsyncEngine, shop: Shop
) -> None:
    code = new_code()
    await shop.promotion(code=code, value=Decimal(100))
    await shopper.add(await offer(engine, price="9.00", currency=CURRENCY), 1)
    await shopper.request("POST", "/cart/coupons", {"code": code})

    refused = await shopper.checkout()

    assert refused.status_code == 422
    assert "totals.grand_total" in field_errors(refused)


async def test_a_promotion_gone_between_pricing_and_taking_its_use_is_lost_not_taken(
    engine: AsyncEngine,
) -> None:
    applied = AppliedPromotion("promo-gone", "GONE", Decimal("1.00"), {"A": Decimal("1.00")})

    async with engine.begin() as conn:
        lost = await redemptions_store.take(conn, uuid.uuid4(), "b-1", "EUR", [applied], [])

    assert lost == [applied]
    assert await _uses(engine, "promo-gone") == 0
