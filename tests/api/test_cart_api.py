"""The cart API through an HTTP client: snapshots, identity, ownership, lines, events, OpenAPI."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import CartItemAdded, CartItemRemoved
from tests.api import Shopper, field_errors, new_sku, offer, sent, types


async def test_no_cart_is_404_problem(shopper: Shopper) -> None:
    response = await shopper.cart()
    assert response.status_code == 404
    assert response.json()["title"] == "Not found"
    field_errors(response)


async def test_adding_captures_the_offer_as_a_price_snapshot(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    sku = await offer(engine, price="12.50")
    before = datetime.now().astimezone()

    response = await shopper.add(sku, 2)

    assert response.status_code == 200, response.text
    cart = response.json()
    assert response.headers["ETag"] == f'"{cart["version"]}"'
    [item] = cart["items"]
    snapshot = item["snapshot"]
    assert (item["sku"], item["qty"], item["line_total"]) == (sku, 2, "25.00")
    assert (snapshot["unit_price"], snapshot["currency"]) == ("12.50", "EUR")
    assert uuid.UUID(snapshot["offer_id"])
    assert datetime.fromisoformat(snapshot["captured_at"]) >= before.replace(microsecond=0)
    assert (cart["status"], cart["currency"], cart["total"], cart["item_count"]) == (
        "active",
        "EUR",
        "25.00",
        1,
    )
    assert (await shopper.cart()).json() == cart


async def test_adding_again_increases_the_line_and_retakes_the_snapshot(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    sku = await offer(engine, price="5.00")
    first = (await shopper.add(sku, 1)).json()
    await offer(engine, sku, price="6.00")

    cart = (await shopper.add(sku, 3)).json()

    [item] = cart["items"]
    assert item["id"] == first["items"][0]["id"]
    assert (item["qty"], item["snapshot"]["unit_price"], cart["total"]) == (4, "6.00", "24.00")
    assert item["snapshot"]["offer_id"] != first["items"][0]["snapshot"]["offer_id"]
    assert cart["version"] == first["version"] + 1


async def test_a_bearer_token_names_the_buyer(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    sku = await offer(engine)
    buyer = Shopper(client)
    bearer = {"Authorization": f"Bearer {buyer.buyer_id}"}
    assert (
        await client.post("/cart/items", json={"sku": sku, "qty": 1}, headers=bearer)
    ).status_code == 200

    assert await buyer.items() == {sku: 1}
    assert (await client.get("/cart", headers=bearer)).json()["items"][0]["sku"] == sku


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Buyer-Id": " "},
        {"Authorization": "Bearer a", "X-Buyer-Id": "b"},
        {"X-Buyer-Id": "x" * 129},
    ],
)
async def test_without_one_buyer_identity_the_answer_is_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/cart", headers=headers)
    assert response.status_code == 401
    assert "Authorization" in field_errors(response)


async def test_a_buyer_never_sees_or_changes_another_buyers_cart(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    owner, stranger = Shopper(client), Shopper(client)
    sku = await offer(engine)
    item_id = (await owner.add(sku, 2)).json()["items"][0]["id"]

    assert (await stranger.cart()).status_code == 404
    patched = await stranger.request("PATCH", f"/cart/items/{item_id}", {"qty": 5})
    deleted = await stranger.request("DELETE", f"/cart/items/{item_id}")
    await stranger.add(await offer(engine))  # the stranger's own cart changes nothing
    also_patched = await stranger.request("PATCH", f"/cart/items/{item_id}", {"qty": 5})

    assert [patched.status_code, deleted.status_code, also_patched.status_code] == [404] * 3
    assert await owner.items() == {sku: 2}


async def test_patch_delete_item_and_delete_cart(shopper: Shopper, engine: AsyncEngine) -> None:
    a, b = await offer(engine, price="2.00"), await offer(engine, price="3.00")
    await shopper.add(a, 1)
    cart = (await shopper.add(b, 1)).json()
    ids = {item["sku"]: item["id"] for item in cart["items"]}

    patched = (await shopper.request("PATCH", f"/cart/items/{ids[a]}", {"qty": 4})).json()
    assert (patched["total"], {i["sku"]: i["qty"] for i in patched["items"]}) == (
        "11.00",
        {a: 4, b: 1},
    )
    removed = (await shopper.request("DELETE", f"/cart/items/{ids[b]}")).json()
    assert [i["sku"] for i in removed["items"]] == [a]
    assert (await shopper.request("DELETE", f"/cart/items/{ids[b]}")).status_code == 404

    assert (await shopper.request("DELETE", "/cart")).status_code == 204
    assert (await shopper.cart()).status_code == 404
    assert (await shopper.request("DELETE", "/cart")).status_code == 404


async def test_put_replaces_the_cart_atomically(shopper: Shopper, engine: AsyncEngine) -> None:
    a, b, c = await offer(engine), await offer(engine), await offer(engine)
    await shopper.add(a, 2)
    await shopper.add(b, 1)

    body = {"items": [{"sku": b, "qty": 3}, {"sku": c, "qty": 1}]}
    replaced = await shopper.request("PUT", "/cart", body, Idempotency_Key="r1")
    assert replaced.status_code == 200, replaced.text
    assert await shopper.items() == {b: 3, c: 1}

    # One bad line refuses the whole replacement.
    bad = {"items": [{"sku": a, "qty": 1}, {"sku": new_sku(), "qty": 1}]}
    refused = await shopper.request("PUT", "/cart", bad, Idempotency_Key="r2")
    assert refused.status_code == 422
    assert "items.1.sku" in field_errors(refused)
    assert await shopper.items() == {b: 3, c: 1}

    twice = {"items": [{"sku": a, "qty": 1}, {"sku": a, "qty": 2}]}
    assert (await shopper.request("PUT", "/cart", twice, Idempotency_Key="r3")).status_code == 422
    emptied = await shopper.request("PUT", "/cart", {"items": []}, Idempotency_Key="r4")
    assert (emptied.status_code, emptied.json()["items"]) == (200, [])


async def test_put_needs_an_idempotency_key_and_replays_it(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    sku = await offer(engine)
    body = {"items": [{"sku": sku, "qty": 2}]}

    missing = await shopper.request("PUT", "/cart", body)
    assert missing.status_code == 400
    assert "Idempotency-Key" in field_errors(missing)

    first = await shopper.request("PUT", "/cart", body, Idempotency_Key="p")
    await shopper.add(sku, 1)
    again = await shopper.request("PUT", "/cart", body, Idempotency_Key="p")
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await shopper.items() == {sku: 3}  # the replay changed nothing

    other = await shopper.request("PUT", "/cart", {"items": []}, Idempotency_Key="p")
    assert other.status_code == 409
    assert "Idempotency-Key" in field_errors(other)


async def test_item_changes_are_cart_events_keyed_by_cart(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    a, b = await offer(engine, price="4.00"), await offer(engine)
    await shopper.add(a, 2)
    cart = (await shopper.add(b, 1)).json()
    ids = {item["sku"]: item["id"] for item in cart["items"]}
    await shopper.request("PATCH", f"/cart/items/{ids[a]}", {"qty": 1})
    await shopper.request("DELETE", f"/cart/items/{ids[b]}")

    cart_id = uuid.UUID(cart["cart_id"])
    messages = await sent(engine, cart_id)

    assert types(messages) == ["cart.item.added"] * 2 + ["cart.item.removed"] * 2
    added, _, fewer, gone = (m.message for m in messages)
    assert isinstance(added, CartItemAdded)
    assert (added.sku, added.quantity, added.line_quantity, added.unit_price) == (
        a,
        2,
        2,
        Decimal("4.00"),
    )
    assert (added.cart_id, added.currency, added.buyer_id) == (cart_id, "EUR", shopper.buyer_id)
    assert isinstance(fewer, CartItemRemoved)
    assert isinstance(gone, CartItemRemoved)
    assert (fewer.sku, fewer.quantity, fewer.line_quantity) == (a, 1, 1)
    assert (gone.sku, gone.quantity, gone.line_quantity) == (b, 1, 0)
    assert all(m.envelope.correlation_id == cart_id for m in messages)


async def test_the_openapi_document_lists_every_endpoint(client: httpx.AsyncClient) -> None:
    response = await client.get("http://cart.test/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    operations = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    assert operations == {
        ("GET", "/api/v1/cart"),
        ("PUT", "/api/v1/cart"),
        ("DELETE", "/api/v1/cart"),
        ("POST", "/api/v1/cart/items"),
        ("PATCH", "/api/v1/cart/items/{item_id}"),
        ("DELETE", "/api/v1/cart/items/{item_id}"),
        ("POST", "/api/v1/checkout"),
        ("GET", "/api/v1/orders/{order_id}"),
        ("GET", "/api/v1/checkout-groups/{group_id}"),
        ("POST", "/api/v1/guest-sessions"),
        ("POST", "/api/v1/cart/merge"),
        ("POST", "/api/v1/cart/coupons"),
        ("DELETE", "/api/v1/cart/coupons/{code}"),
        ("PUT", "/api/v1/cart/delivery"),
    }
    checkout = paths["/api/v1/checkout"]["post"]
    headers = {p["name"]: p["required"] for p in checkout["parameters"] if p["in"] == "header"}
    assert headers["Idempotency-Key"] is True
    errors = [r for op in _operations(paths) for s, r in op["responses"].items() if s >= "400"]
    assert {tuple(r["content"]) for r in errors} == {("application/problem+json",)}
    schemes = response.json()["components"]["securitySchemes"]
    assert (schemes["HTTPBearer"]["scheme"], schemes["BuyerHeader"]["name"]) == (
        "bearer",
        "X-Buyer-Id",
    )
    assert schemes["GuestToken"]["name"] == "Authorization"
    security = {path: ops["post"]["security"] for path, ops in paths.items() if "post" in ops}
    assert security["/api/v1/guest-sessions"] == []
    assert {"GuestToken": []} not in security["/api/v1/cart/merge"]
    assert {"GuestToken": []} in security["/api/v1/cart/items"]
    assert not [op for op in _operations(paths) if "x-identity" in op]


def _operations(paths: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [op for ops in paths.values() for op in ops.values()]


async def test_a_line_written_without_the_api_shows_the_carts_currency(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    cart_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO cart.carts (cart_id, buyer_id, status, currency) "
                "VALUES (:c, :b, 'active', 'SEK')"
            ),
            {"c": cart_id, "b": shopper.buyer_id},
        )
        await conn.execute(
            text(
                "INSERT INTO cart.cart_items (cart_id, sku, quantity, unit_price) VALUES (:c, 'UP-1', 2, 7)"
            ),
            {"c": cart_id},
        )

    [item] = (await shopper.cart()).json()["items"]

    assert uuid.UUID(item["id"])
    assert (item["snapshot"]["currency"], item["snapshot"]["offer_id"], item["line_total"]) == (
        "SEK",
        None,
        "14.00",
    )
