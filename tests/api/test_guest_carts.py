"""Guest carts: tokens, what a guest may not do, and the merge into a buyer's cart on sign-in."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import CartItemAdded, CartItemRemoved, CheckoutStarted
from services.cart import guests
from tests.api import Shopper, field_errors, offer, sent, types
from tests.api.shop_rules import new_code, shop_rules


class Guest(Shopper):
    """A shopper without an account, known by the guest token the API issued."""

    def __init__(self, client: httpx.AsyncClient, token: str) -> None:
        super().__init__(client)
        self.token = token

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The guest token plus extra headers."""
        return {"Authorization": f"Guest {self.token}", **(extra or {})}


async def _guest(client: httpx.AsyncClient) -> Guest:
    response = await client.post("/guest-sessions")
    assert response.status_code == 201, response.text
    return Guest(client, response.json()["token"])


async def _merge(buyer: Shopper, token: str) -> httpx.Response:
    return await buyer.request("POST", "/cart/merge", {"guest_token": token})


async def _sql(engine: AsyncEngine, statement: str, **params: Any) -> list[Any]:
    async with engine.begin() as conn:
        result = await conn.execute(text(statement), params)
        return list(result) if result.returns_rows else []


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _expire(engine: AsyncEngine, token: str) -> None:
    await _sql(
        engine,
        "UPDATE cart.guest_sessions SET expires_at = now() - interval '1 second' "
        "WHERE token_sha256 = :h",
        h=_digest(token),
    )


async def test_a_guest_session_issues_an_opaque_expiring_token(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    first, second = await client.post("/guest-sessions"), await client.post("/guest-sessions")

    assert first.status_code == 201
    assert first.headers["Cache-Control"] == "no-store"
    token, expires_at = first.json()["token"], first.json()["expires_at"]
    assert len(token) >= 43
    assert token != second.json()["token"]
    assert datetime.fromisoformat(expires_at) > datetime.now().astimezone() + timedelta(days=6)
    [row] = await _sql(
        engine,
        "SELECT session_id, token_sha256 FROM cart.guest_sessions WHERE token_sha256 = :h",
        h=_digest(token),
    )
    assert token not in (str(row.session_id), row.token_sha256)


async def test_a_guest_shops_under_a_buyer_id_of_its_own(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    guest = await _guest(client)
    sku = await offer(engine)

    added = await guest.add(sku, 2)

    assert added.status_code == 200, added.text
    assert await guest.items() == {sku: 2}
    [row] = await _sql(
        engine, "SELECT buyer_id FROM cart.carts WHERE cart_id = :c", c=added.json()["cart_id"]
    )
    assert row.buyer_id.startswith("guest:")
    assert (await Shopper(client, row.buyer_id).cart()).status_code == 401


@pytest.mark.parametrize("case", ["unknown", "expired", "empty", "with a buyer id"])
async def test_an_unusable_guest_token_is_401(
    client: httpx.AsyncClient, engine: AsyncEngine, case: str
) -> None:
    guest = await _guest(client)
    headers = {"Authorization": f"Guest {guest.token}"}
    if case == "unknown":
        headers["Authorization"] = "Guest " + "x" * 43
    elif case == "expired":
        await _expire(engine, guest.token)
    elif case == "empty":
        headers["Authorization"] = "Guest "
    else:
        headers["X-Buyer-Id"] = "buyer-1"

    response = await client.post("/cart/items", json={"sku": "X", "qty": 1}, headers=headers)

    assert response.status_code == 401
    assert "Authorization" in field_errors(response)


async def test_a_guest_checks_out_only_with_an_email(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    guest, buyer = await _guest(client), Shopper(client)
    sku = await offer(engine, price="4.00")
    await guest.add(sku, 2)
    await buyer.add(sku, 1)
    others = (await buyer.checkout(body={})).json()["order_id"]

    refused = await guest.checkout(body={})
    assert refused.status_code == 422
    assert "buyer_email" in field_errors(refused)
    assert await guest.items() == {sku: 2}

    accepted = await guest.checkout(body={"buyer_email": "guest@example.com"})
    assert accepted.status_code == 202, accepted.text
    [message] = await sent(engine, accepted.json()["order_id"])
    started = message.message
    assert isinstance(started, CheckoutStarted)
    assert started.buyer_id.startswith("guest:")
    assert (started.buyer_email, started.total) == ("guest@example.com", 8)
    order_url = accepted.json()["order_url"].removeprefix("/api/v1")
    assert (await guest.request("GET", order_url)).status_code == 200
    assert (await guest.request("GET", f"/orders/{others}")).status_code == 404


async def test_a_guest_cannot_merge(client: httpx.AsyncClient) -> None:
    guest, other = await _guest(client), await _guest(client)

    response = await _merge(guest, other.token)

    assert response.status_code == 403
    assert "Authorization" in field_errors(response)


async def test_a_signed_in_buyer_cannot_send_a_guest_id(client: httpx.AsyncClient) -> None:
    response = await Shopper(client, f"guest:{uuid.uuid4()}").cart()

    assert response.status_code == 401
    assert "reserved" in field_errors(response)["Authorization"]


async def test_merge_sums_keeps_the_newer_snapshot_and_reports_misfits(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    guest, buyer = await _guest(client), Shopper(client)
    summed, capped, gone = (
        await offer(engine, price="5.00"),
        await offer(engine, max_qty=3),
        await offer(engine),
    )
    fresh, own = await offer(engine), await offer(engine, vendor=buyer.buyer_id)
    await buyer.add(summed, 3)
    await buyer.add(capped, 2)
    await offer(engine, summed, price="6.00")  # the guest's snapshot is newer and dearer
    for sku, qty in [(summed, 2), (capped, 2), (gone, 1), (fresh, 4), (own, 1)]:
        assert (await guest.add(sku, qty)).status_code == 200
    guest_cart = (await guest.cart()).json()
    await offer(engine, gone, active=False)

    response = await _merge(buyer, guest.token)

    assert response.status_code == 200, response.text
    body = response.json()
    assert {m["sku"]: (m["added"], m["qty"]) for m in body["merged"]} == {
        summed: (2, 5),
        fresh: (4, 4),
    }
    assert {m["sku"]: (m["qty"], m["reason"]) for m in body["not_merged"]} == {
        capped: (2, "over_limit"),
        gone: (1, "unavailable"),
        own: (1, "own_store"),
    }
    assert await buyer.items() == {summed: 5, capped: 2, fresh: 4}
    lines = {item["sku"]: item for item in body["cart"]["items"]}
    assert lines[summed]["snapshot"]["unit_price"] == "6.00"
    assert body["cart"] == (await buyer.cart()).json()
    await _assert_closed(engine, guest, guest_cart["cart_id"], body)
    added = [m.message for m in await sent(engine, body["cart"]["cart_id"])]
    assert [(m.sku, m.quantity) for m in added[-2:] if isinstance(m, CartItemAdded)] == sorted(
        [(summed, 2), (fresh, 4)]
    )
    removed = await sent(engine, guest_cart["cart_id"])
    assert types(removed)[-5:] == ["cart.item.removed"] * 5
    assert all(isinstance(m.message, CartItemRemoved) for m in removed[-5:])


async def _assert_closed(
    engine: AsyncEngine, guest: Guest, cart_id: str, body: dict[str, Any]
) -> None:
    [row] = await _sql(
        engine, "SELECT status, merged_into FROM cart.carts WHERE cart_id = :c", c=cart_id
    )
    assert (row.status, str(row.merged_into)) == ("merged", body["cart"]["cart_id"])
    assert body["guest_cart_id"] == cart_id
    assert (await guest.cart()).status_code == 401  # the session ended


async def test_merge_of_another_currency_leaves_the_lines_out(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    guest, buyer = await _guest(client), Shopper(client)
    euros, dollars = await offer(engine), await offer(engine, currency="USD")
    await buyer.add(euros, 1)
    await guest.add(dollars, 1)

    body = (await _merge(buyer, guest.token)).json()

    assert [(m["sku"], m["reason"]) for m in body["not_merged"]] == [(dollars, "currency_mismatch")]
    assert (body["merged"], await buyer.items()) == ([], {euros: 1})


async def test_merge_into_no_cart_opens_one_and_an_empty_guest_merges_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    guest, empty, buyer = await _guest(client), await _guest(client), Shopper(client)
    sku = await offer(engine)
    await guest.add(sku, 2)

    nothing = await _merge(buyer, empty.token)
    opened = await _merge(buyer, guest.token)

    assert nothing.status_code == 200
    assert nothing.json() == {"guest_cart_id": None, "merged": [], "not_merged": [], "cart": None}
    assert (await empty.cart()).status_code == 401
    assert opened.json()["cart"]["version"] == 1
    assert await buyer.items() == {sku: 2}


async def test_a_retried_merge_answers_the_same_and_another_buyer_is_409(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    guest, buyer, stranger = await _guest(client), Shopper(client), Shopper(client)
    sku = await offer(engine)
    await guest.add(sku, 2)
    first = await _merge(buyer, guest.token)
    await buyer.add(sku, 1)  # the cart moves on; the retry still answers the merge

    retried = await _merge(buyer, guest.token)
    stolen = await _merge(stranger, guest.token)

    assert retried.status_code == 200
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert retried.content == first.content
    assert await buyer.items() == {sku: 3}
    assert stolen.status_code == 409
    assert "guest_token" in field_errors(stolen)
    assert await stranger.items() == {}


@pytest.mark.parametrize("case", ["unknown", "expired"])
async def test_merging_an_unusable_token_is_422(
    client: httpx.AsyncClient, engine: AsyncEngine, case: str
) -> None:
    guest, buyer = await _guest(client), Shopper(client)
    await guest.add(await offer(engine), 1)
    token = guest.token if case == "expired" else "no-such-token"
    if case == "expired":
        await _expire(engine, token)

    response = await _merge(buyer, token)

    assert response.status_code == 422
    assert "guest_token" in field_errors(response)
    assert await buyer.items() == {}


@pytest.mark.parametrize("body", [{}, {"guest_token": ""}, {"guest_token": "t", "x": 1}])
async def test_a_malformed_merge_request_is_422(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await Shopper(client).request("POST", "/cart/merge", body)

    assert response.status_code == 422
    assert field_errors(response)


async def test_two_racing_merges_apply_once_and_answer_alike(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    sku = await offer(engine)
    for _ in range(20):
        guest, buyer = await _guest(client), Shopper(client)
        await guest.add(sku, 2)
        cart_id = (await buyer.add(sku, 1)).json()["cart_id"]

        one, two = await asyncio.gather(_merge(buyer, guest.token), _merge(buyer, guest.token))

        assert (one.status_code, two.status_code) == (200, 200), (one.text, two.text)
        assert one.content == two.content
        replays = [r.headers.get("Idempotent-Replayed") for r in (one, two)]
        assert sorted(replays, key=str) == sorted([None, "true"], key=str)
        assert await buyer.items() == {sku: 3}
        assert types(await sent(engine, cart_id)) == ["cart.item.added"] * 2


async def test_a_guest_change_racing_the_merge_is_merged_or_refused_never_lost(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    first, late = await offer(engine), await offer(engine)
    for _ in range(10):
        guest, buyer = await _guest(client), Shopper(client)
        await guest.add(first, 1)

        added, merged = await asyncio.gather(guest.add(late, 1), _merge(buyer, guest.token))

        assert merged.status_code == 200
        assert added.status_code in (200, 401)
        expected = {first: 1, late: 1} if added.status_code == 200 else {first: 1}
        assert await buyer.items() == expected
        rows = await _sql(
            engine,
            "SELECT status FROM cart.carts WHERE buyer_id = "
            "(SELECT buyer_id FROM cart.carts WHERE cart_id = :c)",
            c=merged.json()["guest_cart_id"],
        )
        assert [r.status for r in rows] == ["merged"]


async def test_a_merge_brings_the_guests_codes_and_orders_to_the_buyer(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    guest, buyer = await _guest(client), Shopper(client)
    await guest.add(await offer(engine, price="5.00"), 1)
    ordered = await guest.checkout(body={"buyer_email": "guest@example.com"})
    assert ordered.status_code == 202, ordered.text
    group_url = f"/checkout-groups/{ordered.json()['checkout_group_id']}"
    await guest.add(await offer(engine, price="7.00"), 1)
    async with shop_rules(engine) as shop:
        code = new_code()
        await shop.promotion(code=code, value=Decimal(10))
        entered = await guest.request("POST", "/cart/coupons", {"code": code})
        assert entered.status_code == 200, entered.text

        merged = await _merge(buyer, guest.token)

        assert merged.status_code == 200, merged.text
        assert merged.json()["cart"]["coupons"][0]["code"] == code
        assert merged.json()["cart"]["totals"]["grand_total"] == "6.30"
    assert (await buyer.request("GET", group_url)).status_code == 200
    assert (await buyer.request("GET", f"/orders/{ordered.json()['order_id']}")).status_code == 200


async def test_guest_sessions_long_over_are_purged_with_their_dead_carts(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    merged_guest, live_guest, buyer = await _guest(client), await _guest(client), Shopper(client)
    merged_cart = (await merged_guest.add(await offer(engine), 1)).json()["cart_id"]
    live_cart = (await live_guest.add(await offer(engine), 1)).json()["cart_id"]
    await _merge(buyer, merged_guest.token)
    await _sql(
        engine,
        "UPDATE cart.guest_sessions SET ended_at = now() - interval '31 days' "
        "WHERE token_sha256 = :h",
        h=_digest(merged_guest.token),
    )

    async with engine.begin() as conn:
        purged = await guests.purge(conn, timedelta(days=30))

    assert purged >= 1
    sessions = await _sql(
        engine,
        "SELECT token_sha256 FROM cart.guest_sessions WHERE token_sha256 IN (:a, :b)",
        a=_digest(merged_guest.token),
        b=_digest(live_guest.token),
    )
    assert [row.token_sha256 for row in sessions] == [_digest(live_guest.token)]
    left = await _sql(
        engine,
        "SELECT cart_id::text AS id FROM cart.carts WHERE cart_id IN (:a, :b)",
        a=merged_cart,
        b=live_cart,
    )
    assert [row.id for row in left] == [live_cart]
    assert await buyer.items() != {}
