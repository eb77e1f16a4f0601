"""Cart rules through the HTTP API: limits, one currency, versions, no lost update, idempotency."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.cart.tables import idempotency_keys
from tests.api import Shopper, field_errors, new_sku, offer


@pytest.mark.parametrize("qty", [0, 21, -1, "2", 1.5, None])
async def test_quantity_outside_1_to_20_is_422_naming_the_field(
    shopper: Shopper, engine: AsyncEngine, qty: object
) -> None:
    sku = await offer(engine)
    response = await shopper.request("POST", "/cart/items", {"sku": sku, "qty": qty})
    assert response.status_code == 422
    assert "qty" in field_errors(response)

    item_id = (await shopper.add(sku, 1)).json()["items"][0]["id"]
    patched = await shopper.request("PATCH", f"/cart/items/{item_id}", {"qty": qty})
    assert patched.status_code == 422
    assert "qty" in field_errors(patched)
    assert await shopper.items() == {sku: 1}


async def test_more_than_20_units_in_total_is_refused(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    sku = await offer(engine)
    await shopper.add(sku, 15)

    response = await shopper.add(sku, 6)

    assert response.status_code == 422
    assert "at most 20" in field_errors(response)["qty"]
    assert await shopper.items() == {sku: 15}
    assert (await shopper.add(sku, 5)).status_code == 200


async def test_a_products_own_cap_applies(shopper: Shopper, engine: AsyncEngine) -> None:
    sku = await offer(engine, max_qty=3)
    assert (await shopper.add(sku, 4)).status_code == 422
    item_id = (await shopper.add(sku, 3)).json()["items"][0]["id"]

    response = await shopper.request("PATCH", f"/cart/items/{item_id}", {"qty": 4})

    assert response.status_code == 422
    assert "at most 3" in field_errors(response)["qty"]
    assert await shopper.items() == {sku: 3}


async def test_the_51st_distinct_product_is_refused(shopper: Shopper, engine: AsyncEngine) -> None:
    skus = [await offer(engine) for _ in range(51)]
    items = [{"sku": sku, "qty": 1} for sku in skus]
    assert (
        await shopper.request("PUT", "/cart", {"items": items[:50]}, Idempotency_Key="k")
    ).status_code == 200

    response = await shopper.add(skus[50])

    assert response.status_code == 422
    assert "at most 50" in field_errors(response)["sku"]
    assert len(await shopper.items()) == 50
    assert (await shopper.add(skus[0])).status_code == 200  # more of one it has is fine
    too_many = await shopper.request("PUT", "/cart", {"items": items}, Idempotency_Key="k2")
    assert too_many.status_code == 422
    assert "items" in field_errors(too_many)


async def test_unknown_and_inactive_products_are_refused(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    inactive = await offer(engine, active=False)

    unknown = await shopper.add(new_sku())
    off = await shopper.add(inactive)

    assert (unknown.status_code, off.status_code) == (422, 422)
    assert "unknown product" in field_errors(unknown)["sku"]
    assert "not available" in field_errors(off)["sku"]
    assert (await shopper.cart()).status_code == 404


async def test_a_cart_holds_one_currency(shopper: Shopper, engine: AsyncEngine) -> None:
    euros, dollars = await offer(engine, currency="EUR"), await offer(engine, currency="USD")
    item_id = (await shopper.add(euros)).json()["items"][0]["id"]

    response = await shopper.add(dollars)

    assert response.status_code == 422
    assert "one currency" in field_errors(response)["sku"]
    mixed = await shopper.request(
        "PUT",
        "/cart",
        {"items": [{"sku": euros, "qty": 1}, {"sku": dollars, "qty": 1}]},
        Idempotency_Key="m",
    )
    assert mixed.status_code == 422
    assert "items.1.sku" in field_errors(mixed)
    # An emptied cart takes the currency of its next product.
    await shopper.request("DELETE", f"/cart/items/{item_id}")
    assert (await shopper.add(dollars)).json()["currency"] == "USD"


async def test_a_stale_if_match_is_409(shopper: Shopper, engine: AsyncEngine) -> None:
    sku = await offer(engine)
    etag = (await shopper.add(sku)).headers["ETag"]
    fresh = await shopper.add(sku, 1, If_Match=etag)
    assert fresh.status_code == 200

    stale = await shopper.add(sku, 1, If_Match=etag)
    item_id = fresh.json()["items"][0]["id"]
    stale_patch = await shopper.request(
        "PATCH", f"/cart/items/{item_id}", {"qty": 9}, If_Match=etag
    )
    stale_delete = await shopper.request("DELETE", "/cart", If_Match=etag)

    assert [stale.status_code, stale_patch.status_code, stale_delete.status_code] == [409] * 3
    assert stale.json()["current_version"] == fresh.json()["version"]
    assert await shopper.items() == {sku: 2}
    assert (await shopper.add(sku, 1, If_Match=fresh.headers["ETag"])).status_code == 200
    assert (await shopper.add(sku, 1, If_Match="not a version")).status_code == 400


async def test_concurrent_adds_lose_no_update(shopper: Shopper, engine: AsyncEngine) -> None:
    sku, other = await offer(engine), await offer(engine)

    responses = await asyncio.gather(
        *(shopper.add(sku, 1) for _ in range(4)), shopper.add(other, 2)
    )

    assert [r.status_code for r in responses] == [200] * 5
    cart = (await shopper.cart()).json()
    assert ({i["sku"]: i["qty"] for i in cart["items"]}, cart["version"]) == ({sku: 4, other: 2}, 5)


async def test_concurrent_patches_are_both_applied(shopper: Shopper, engine: AsyncEngine) -> None:
    a, b = await offer(engine), await offer(engine)
    await shopper.add(a)
    cart = (await shopper.add(b)).json()
    ids = {item["sku"]: item["id"] for item in cart["items"]}

    responses = await asyncio.gather(
        shopper.request("PATCH", f"/cart/items/{ids[a]}", {"qty": 7}),
        shopper.request("PATCH", f"/cart/items/{ids[b]}", {"qty": 9}),
    )

    assert [r.status_code for r in responses] == [200, 200]
    after = (await shopper.cart()).json()
    assert ({i["sku"]: i["qty"] for i in after["items"]}, after["version"]) == (
        {a: 7, b: 9},
        cart["version"] + 2,
    )


async def test_an_add_with_a_key_is_applied_once(shopper: Shopper, engine: AsyncEngine) -> None:
    sku = await offer(engine)

    first = await shopper.add(sku, 2, Idempotency_Key="add-1")
    retried = await shopper.add(sku, 2, Idempotency_Key="add-1")
    raced = await asyncio.gather(*(shopper.add(sku, 1, Idempotency_Key="add-2") for _ in range(3)))

    assert retried.json() == first.json()
    assert "Idempotent-Replayed" not in first.headers
    assert await shopper.items() == {sku: 3}
    assert len({r.json()["version"] for r in raced}) == 1
    assert (await shopper.add(sku, 5, Idempotency_Key="add-1")).status_code == 409


async def test_an_expired_key_no_longer_replays(shopper: Shopper, engine: AsyncEngine) -> None:
    sku = await offer(engine)
    await shopper.add(sku, 2, Idempotency_Key="old")
    async with engine.begin() as conn:
        await conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.buyer_id == shopper.buyer_id)
            .values(created_at=text("now() - interval '7 days 1 minute'"))
        )

    again = await shopper.add(sku, 2, Idempotency_Key="old")

    assert "Idempotent-Replayed" not in again.headers
    assert await shopper.items() == {sku: 4}
    assert (await shopper.add(sku, 2, Idempotency_Key="old")).headers[
        "Idempotent-Replayed"
    ] == "true"


async def test_more_units_of_a_product_no_longer_sold_are_refused(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    sku = await offer(engine)
    item_id = (await shopper.add(sku, 3)).json()["items"][0]["id"]
    await offer(engine, sku, active=False)

    more = await shopper.request("PATCH", f"/cart/items/{item_id}", {"qty": 4})
    fewer = await shopper.request("PATCH", f"/cart/items/{item_id}", {"qty": 1})

    assert (more.status_code, fewer.status_code) == (422, 200)
    assert "not available" in field_errors(more)["qty"]
