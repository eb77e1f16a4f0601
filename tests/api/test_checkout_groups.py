"""Checkout groups through the HTTP API: one order per vendor, once per key, followed to the end.

Vendor order outcomes are fed as the order service sends them, through the cart's consumer.
"""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import (
    CheckoutPolicy,
    CheckoutStarted,
    ClearCart,
    LineItem,
    OrderConfirmed,
    OrderCreated,
    OrderMarkedFailed,
    RejectedLine,
    RejectionReason,
    topic_for,
)
from contracts.vendor_orders import split
from services.cart.tables import checkout_groups, order_status, outbox
from services.platform.consumer import Outcome
from tests.api import Shopper, new_sku, offer, sent
from tests.handlers import ServiceDriver
from tests.support.builders import new_id

VENDORS = ("acme", "globex", "initech")


async def _three_vendor_cart(shopper: Shopper, engine: AsyncEngine) -> dict[str, str]:
    """A cart of one product from each vendor, plus a second acme one: SKU by role."""
    skus = {
        "acme": await offer(engine, new_sku("ACME"), price="10.00", vendor="acme"),
        "acme2": await offer(engine, new_sku("ACME"), price="1.50", vendor="acme"),
        "globex": await offer(engine, new_sku("GLOBEX"), price="20.00", vendor="globex"),
        "initech": await offer(engine, new_sku("INITECH"), price="5.00", vendor="initech"),
    }
    for role, sku in skus.items():
        response = await shopper.add(sku, 2 if role == "acme2" else 1)
        assert response.status_code == 200, response.text
    return skus


async def _started(engine: AsyncEngine, group_id: str) -> list[CheckoutStarted]:
    return [
        m.message for m in await sent(engine, group_id) if isinstance(m.message, CheckoutStarted)
    ]


async def _started_count(engine: AsyncEngine, buyer_id: str) -> int:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(outbox.c.payload).where(outbox.c.topic == topic_for(CheckoutStarted))
        )
        return sum(buyer_id.encode() in row.payload for row in rows)


async def _follow(shopper: Shopper, url: str) -> httpx.Response:
    """GET a URL the API answered with (a path from the host's root)."""
    return await shopper.request("GET", f"http://cart.test{url}")


async def _group(shopper: Shopper, group_id: object) -> dict[str, Any]:
    response = await shopper.request("GET", f"/checkout-groups/{group_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _checked_out(
    shopper: Shopper, engine: AsyncEngine, policy: str = "partial"
) -> tuple[dict[str, Any], dict[str, str]]:
    skus = await _three_vendor_cart(shopper, engine)
    response = await shopper.checkout(body={"policy": policy})
    assert response.status_code == 202, response.text
    return response.json(), skus


async def test_a_three_vendor_checkout_makes_one_group_of_three_vendor_orders(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    skus = await _three_vendor_cart(shopper, engine)

    response = await shopper.checkout(body={"policy": "partial"})

    assert response.status_code == 202, response.text
    accepted = response.json()
    group_id = accepted["checkout_group_id"]
    group_url = f"/api/v1/checkout-groups/{group_id}"
    assert accepted["order_id"] == group_id
    assert (accepted["state"], accepted["policy"], accepted["total"]) == (
        "Submitted",
        "partial",
        "38.00",
    )
    assert response.headers["Location"] == accepted["group_url"] == accepted["order_url"]
    assert accepted["group_url"] == group_url
    [started] = await _started(engine, group_id)
    assert started.policy is CheckoutPolicy.PARTIAL
    assert {i.sku: i.vendor_id for i in started.items} == {
        sku: role.removesuffix("2") for role, sku in skus.items()
    }
    summaries = accepted["orders"]
    assert [(o["order_id"], o["vendor_id"]) for o in summaries] == [
        (str(v.order_id), v.vendor_id) for v in split(started)
    ]
    assert [o["vendor_id"] for o in summaries] == list(VENDORS)
    assert [o["total"] for o in summaries] == ["13.00", "20.00", "5.00"]
    assert {line["sku"] for line in summaries[0]["items"]} == {skus["acme"], skus["acme2"]}
    for order in summaries:
        assert order["state"] == "Submitted"
        assert order["order_url"] == f"/api/v1/orders/{order['order_id']}"
        assert (await _follow(shopper, order["order_url"])).status_code == 200


async def test_a_single_vendor_checkout_is_its_groups_only_order(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    await shopper.add(await offer(engine, price="3.00", vendor="acme"), 2)

    accepted = (await shopper.checkout()).json()

    group_id = accepted["checkout_group_id"]
    assert accepted["order_url"] == f"/api/v1/orders/{group_id}"
    assert [o["order_id"] for o in accepted["orders"]] == [group_id]
    assert accepted["policy"] == "all_or_nothing"
    [started] = await _started(engine, group_id)
    assert started.policy is CheckoutPolicy.ALL_OR_NOTHING
    group = await _group(shopper, group_id)
    assert (group["status"], group["total"], len(group["orders"])) == ("processing", "6.00", 1)


async def test_the_group_outlives_its_cart(
    shopper: Shopper, engine: AsyncEngine, cart: ServiceDriver
) -> None:
    accepted, _ = await _checked_out(shopper, engine)
    group_id = uuid.UUID(accepted["checkout_group_id"])
    before = await _group(shopper, group_id)

    clear = ClearCart(order_id=group_id, buyer_id=shopper.buyer_id)
    assert await cart.send(clear) is Outcome.APPLIED

    assert (await shopper.cart()).status_code == 404
    after = await _group(shopper, group_id)
    assert after == before
    assert (after["cart_id"], after["policy"]) == (accepted["cart_id"], "partial")


async def test_the_same_key_returns_the_same_group_and_reserves_once(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    await _three_vendor_cart(shopper, engine)

    first = await shopper.checkout("group-1", {"policy": "partial"})
    second = await shopper.checkout("group-1", {"policy": "partial"})

    assert (first.status_code, second.status_code) == (202, 202)
    assert second.content == first.content
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await _started_count(engine, shopper.buyer_id) == 1
    async with engine.connect() as conn:
        orders = await conn.scalar(
            select(func.count()).where(order_status.c.buyer_id == shopper.buyer_id)
        )
    assert orders == 3


async def test_the_default_policy_named_or_not_is_one_request(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    await _three_vendor_cart(shopper, engine)

    first = await shopper.checkout("plain")
    second = await shopper.checkout("plain", {"policy": "all_or_nothing"})

    assert (second.status_code, second.content) == (202, first.content)


async def test_another_policy_under_the_same_key_is_409(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    await _three_vendor_cart(shopper, engine)
    assert (await shopper.checkout("k", {"policy": "partial"})).status_code == 202

    response = await shopper.checkout("k", {"policy": "all_or_nothing"})

    assert response.status_code == 409
    assert response.json()["type"].endswith("idempotency-key-reused")
    assert await _started_count(engine, shopper.buyer_id) == 1


async def test_racing_checkouts_with_one_key_make_one_group(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    await _three_vendor_cart(shopper, engine)

    responses = await asyncio.gather(
        *(shopper.checkout("raced", {"policy": "partial"}) for _ in range(4))
    )

    assert [r.status_code for r in responses] == [202] * 4
    assert len({r.content for r in responses}) == 1
    assert await _started_count(engine, shopper.buyer_id) == 1
    async with engine.connect() as conn:
        groups = await conn.scalar(
            select(func.count()).where(checkout_groups.c.buyer_id == shopper.buyer_id)
        )
    assert groups == 1


def _created(order: dict[str, Any], group_id: uuid.UUID, buyer_id: str) -> OrderCreated:
    return OrderCreated(
        order_id=order["order_id"],
        buyer_id=buyer_id,
        currency="EUR",
        total=Decimal(order["total"]),
        items=[LineItem.model_validate(i) for i in order["items"]],
        checkout_group_id=group_id,
        vendor_id=order["vendor_id"],
    )


def _final(
    order: dict[str, Any], group_id: uuid.UUID, rejected_skus: set[str], fail: str | None = None
) -> OrderConfirmed | OrderMarkedFailed:
    """The orders service's final event of a vendor order, naming its rejected lines."""
    items = [LineItem.model_validate(i) for i in order["items"]]
    accepted = [i for i in items if i.sku not in rejected_skus]
    rejected = [
        RejectedLine(sku=i.sku, quantity=i.quantity, reason=RejectionReason.INSUFFICIENT_STOCK)
        for i in items
        if i.sku in rejected_skus
    ]
    fields: dict[str, Any] = {
        "order_id": order["order_id"],
        "checkout_group_id": group_id,
        "vendor_id": order["vendor_id"],
        "currency": "EUR",
        "total": sum((i.unit_price * i.quantity for i in accepted), Decimal("0.00")),
        "items": accepted,
        "rejected": rejected,
    }
    if fail is not None:
        return OrderMarkedFailed(**fields, reason=fail)
    return OrderConfirmed(**fields, payment_id=new_id())


async def test_the_group_moves_from_processing_to_partially_completed(
    shopper: Shopper, engine: AsyncEngine, cart: ServiceDriver
) -> None:
    accepted, skus = await _checked_out(shopper, engine)
    group_id = uuid.UUID(accepted["checkout_group_id"])
    acme, globex, initech = accepted["orders"]
    for order in (acme, globex, initech):
        assert await cart.send(_created(order, group_id, shopper.buyer_id)) is Outcome.APPLIED
    assert (await _group(shopper, group_id))["status"] == "processing"

    # Partial: acme goes on without its second line; initech has nothing left and fails.
    await cart.send(_final(acme, group_id, {skus["acme2"]}))
    midway = await _group(shopper, group_id)
    assert (midway["status"], midway["balance_due"]) == ("processing", "10.00")
    await cart.send(_final(globex, group_id, set()))
    await cart.send(_final(initech, group_id, {skus["initech"]}, fail="every line was rejected"))

    group = await _group(shopper, group_id)
    assert (group["status"], group["total"], group["balance_due"]) == (
        "partially_completed",
        "38.00",
        "30.00",
    )
    by_vendor = {o["vendor_id"]: o for o in group["orders"]}
    assert [o["vendor_id"] for o in group["orders"]] == list(VENDORS)
    shown = by_vendor["acme"]
    assert (shown["state"], shown["total"], shown["adjusted_total"]) == (
        "Confirmed",
        "13.00",
        "10.00",
    )
    assert [line["sku"] for line in shown["accepted"]] == [skus["acme"]]
    assert shown["rejected"] == [
        {"sku": skus["acme2"], "quantity": 2, "reason": "insufficient_stock"}
    ]
    failed = by_vendor["initech"]
    assert (failed["state"], failed["failure_reason"], failed["adjusted_total"]) == (
        "Failed",
        "every line was rejected",
        "0.00",
    )
    assert [r["sku"] for r in failed["rejected"]] == [skus["initech"]]


async def test_a_vendor_order_on_its_own_shows_its_group_and_outcome(
    shopper: Shopper, engine: AsyncEngine, cart: ServiceDriver
) -> None:
    accepted, skus = await _checked_out(shopper, engine)
    group_id = uuid.UUID(accepted["checkout_group_id"])
    acme = accepted["orders"][0]
    await cart.send(_final(acme, group_id, {skus["acme2"]}))

    response = await _follow(shopper, acme["order_url"])

    assert response.status_code == 200
    order = response.json()
    assert (order["order_id"], order["checkout_group_id"], order["vendor_id"]) == (
        acme["order_id"],
        str(group_id),
        "acme",
    )
    assert order["group_url"] == accepted["group_url"]
    assert (order["state"], order["total"], order["adjusted_total"]) == (
        "Confirmed",
        "13.00",
        "10.00",
    )
    assert len(order["items"]) == 2
    assert [line["sku"] for line in order["accepted"]] == [skus["acme"]]
    assert [r["reason"] for r in order["rejected"]] == ["insufficient_stock"]


async def test_every_vendor_order_confirmed_completes_the_group(
    shopper: Shopper, engine: AsyncEngine, cart: ServiceDriver
) -> None:
    accepted, _ = await _checked_out(shopper, engine, "all_or_nothing")
    group_id = uuid.UUID(accepted["checkout_group_id"])

    for order in accepted["orders"]:
        await cart.send(_final(order, group_id, set()))

    group = await _group(shopper, group_id)
    assert (group["status"], group["balance_due"], group["policy"]) == (
        "completed",
        "38.00",
        "all_or_nothing",
    )
    assert all(o["rejected"] == [] for o in group["orders"])


async def test_every_vendor_order_failed_fails_the_group(
    shopper: Shopper, engine: AsyncEngine, cart: ServiceDriver
) -> None:
    accepted, _ = await _checked_out(shopper, engine, "all_or_nothing")
    group_id = uuid.UUID(accepted["checkout_group_id"])

    for order in accepted["orders"]:
        await cart.send(_final(order, group_id, set(), fail="payment declined"))

    group = await _group(shopper, group_id)
    assert (group["status"], group["balance_due"]) == ("failed", "0.00")
    assert {o["state"] for o in group["orders"]} == {"Failed"}


async def test_plain_order_events_still_finish_a_group(
    shopper: Shopper, engine: AsyncEngine, cart: ServiceDriver
) -> None:
    await shopper.add(await offer(engine, price="4.00"), 2)
    group_id = uuid.UUID((await shopper.checkout()).json()["checkout_group_id"])

    # An event without the marketplace fields: lines and total stay as checked out.
    await cart.send(OrderConfirmed(order_id=group_id, payment_id=new_id()))

    group = await _group(shopper, group_id)
    assert (group["status"], group["balance_due"]) == ("completed", "8.00")
    [order] = group["orders"]
    assert (order["adjusted_total"], order["accepted"], order["rejected"]) == (
        "8.00",
        order["items"],
        [],
    )


async def test_only_the_buyer_sees_their_group(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    owner, stranger = Shopper(client), Shopper(client)
    accepted, _ = await _checked_out(owner, engine)
    group_url = accepted["group_url"]

    assert (await _follow(owner, group_url)).status_code == 200
    assert (await _follow(stranger, group_url)).status_code == 404
    assert (await owner.request("GET", f"/checkout-groups/{uuid.uuid4()}")).status_code == 404
    assert (await owner.request("GET", "/checkout-groups/nope")).status_code == 422
    for order in accepted["orders"]:
        assert (await _follow(owner, order["order_url"])).status_code == 200
        assert (await _follow(stranger, order["order_url"])).status_code == 404
