"""Checkout through the HTTP API: re-pricing, one order per Idempotency-Key, even when raced."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import httpx
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import CartCheckedOut, CheckoutStarted, topic_for
from contracts.codec import decode
from services.cart.tables import carts, idempotency_keys, outbox
from tests.api import Shopper, field_errors, offer, sent, types


async def _started_by(engine: AsyncEngine, buyer_id: str) -> list[CheckoutStarted]:
    """Every CheckoutStarted the cart wrote for this buyer."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(outbox.c.payload).where(outbox.c.topic == topic_for(CheckoutStarted))
        )
        found = [decode(row.payload).message for row in rows]
    return [m for m in found if isinstance(m, CheckoutStarted) and m.buyer_id == buyer_id]


async def _two_lines(shopper: Shopper, engine: AsyncEngine) -> tuple[str, str, dict[str, object]]:
    a, b = await offer(engine, price="10.00"), await offer(engine, price="2.50")
    await shopper.add(a, 2)
    cart = (await shopper.add(b, 3)).json()
    return a, b, cart


async def test_checkout_writes_one_checkout_started_with_the_snapshots(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    a, b, cart = await _two_lines(shopper, engine)

    response = await shopper.checkout(body={"buyer_email": "shopper@example.com"})

    assert response.status_code == 202, response.text
    accepted = response.json()
    order_id = uuid.UUID(accepted["order_id"])
    assert (accepted["cart_id"], accepted["state"]) == (cart["cart_id"], "Submitted")
    assert response.headers["Location"] == accepted["order_url"] == f"/api/v1/orders/{order_id}"
    [message] = await sent(engine, order_id)
    started = message.message
    assert isinstance(started, CheckoutStarted)
    assert message.envelope.correlation_id == order_id
    assert (started.buyer_id, started.buyer_email, started.currency) == (
        shopper.buyer_id,
        "shopper@example.com",
        "EUR",
    )
    assert started.cart_id == uuid.UUID(str(cart["cart_id"]))
    lines = {(i.sku, i.quantity, i.unit_price) for i in started.items}
    assert lines == {(a, 2, Decimal("10.00")), (b, 3, Decimal("2.50"))}
    assert started.total == Decimal("27.50")


async def test_checkout_closes_the_cart_and_announces_it(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    _, _, cart = await _two_lines(shopper, engine)

    order_id = (await shopper.checkout()).json()["order_id"]

    assert (await shopper.cart()).status_code == 404
    async with engine.connect() as conn:
        row = (await conn.execute(select(carts).where(carts.c.cart_id == cart["cart_id"]))).one()
    assert (row.status, str(row.order_id)) == ("checked_out", order_id)
    events = await sent(engine, str(cart["cart_id"]))
    assert types(events)[-1] == "cart.checked_out"
    checked_out = events[-1].message
    assert isinstance(checked_out, CartCheckedOut)
    assert (str(checked_out.placed_order_id), checked_out.total, checked_out.item_count) == (
        order_id,
        Decimal("27.50"),
        2,
    )
    # A new cart starts afresh.
    assert (await shopper.add(await offer(engine))).json()["cart_id"] != cart["cart_id"]


async def test_a_changed_price_refuses_checkout_with_the_differences(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    a, b, cart = await _two_lines(shopper, engine)
    await offer(engine, a, price="11.00")
    await offer(engine, b, price="2.50", active=False)

    response = await shopper.checkout()

    assert response.status_code == 409
    field_errors(response)
    differences = {d["sku"]: d for d in response.json()["differences"]}
    assert differences[a]["change"] == "price_changed"
    assert (differences[a]["snapshot_unit_price"], differences[a]["current_unit_price"]) == (
        "10.00",
        "11.00",
    )
    assert (differences[b]["change"], differences[b]["current_unit_price"]) == ("unavailable", None)
    still = await shopper.cart()
    assert (still.status_code, still.json()["status"]) == (200, "active")
    assert still.json()["version"] == cart["version"]
    assert await _started_by(engine, shopper.buyer_id) == []


async def test_a_changed_currency_refuses_checkout(shopper: Shopper, engine: AsyncEngine) -> None:
    sku = await offer(engine, price="10.00")
    await shopper.add(sku)
    await offer(engine, sku, price="10.00", currency="USD")

    response = await shopper.checkout()

    assert response.status_code == 409
    [difference] = response.json()["differences"]
    assert (difference["change"], difference["current_currency"]) == ("currency_changed", "USD")


async def test_the_refused_key_may_be_retried_after_review(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    sku = await offer(engine, price="10.00")
    await shopper.add(sku)
    await offer(engine, sku, price="12.00")
    assert (await shopper.checkout("review")).status_code == 409

    await shopper.add(sku, 1)  # re-adding takes the new price
    response = await shopper.checkout("review")

    assert response.status_code == 202
    [started] = await _started_by(engine, shopper.buyer_id)
    assert started.items[0].unit_price == Decimal("12.00")


async def test_the_same_key_and_body_replays_the_first_response(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    await _two_lines(shopper, engine)

    first = await shopper.checkout("same", {"buyer_email": "a@example.com"})
    second = await shopper.checkout("same", {"buyer_email": "a@example.com"})

    assert (second.status_code, second.content) == (202, first.content)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Location"] == first.headers["Location"]
    assert len(await _started_by(engine, shopper.buyer_id)) == 1


async def test_the_same_key_with_another_body_is_409(shopper: Shopper, engine: AsyncEngine) -> None:
    await _two_lines(shopper, engine)
    assert (await shopper.checkout("k", {"buyer_email": "a@example.com"})).status_code == 202

    response = await shopper.checkout("k", {"buyer_email": "b@example.com"})

    assert response.status_code == 409
    assert "Idempotency-Key" in field_errors(response)
    assert len(await _started_by(engine, shopper.buyer_id)) == 1


async def test_racing_checkouts_with_one_key_make_exactly_one_order(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    await _two_lines(shopper, engine)

    responses = await asyncio.gather(*(shopper.checkout("raced") for _ in range(3)))

    assert [r.status_code for r in responses] == [202] * 3
    assert len({r.json()["order_id"] for r in responses}) == 1
    [started] = await _started_by(engine, shopper.buyer_id)
    assert str(started.order_id) == responses[0].json()["order_id"]


async def test_racing_checkouts_with_different_keys_make_one_order(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    await _two_lines(shopper, engine)

    responses = await asyncio.gather(shopper.checkout("one"), shopper.checkout("two"))

    assert sorted(r.status_code for r in responses) == [202, 404]
    assert len(await _started_by(engine, shopper.buyer_id)) == 1


async def test_an_expired_key_no_longer_replays(shopper: Shopper, engine: AsyncEngine) -> None:
    await _two_lines(shopper, engine)
    assert (await shopper.checkout("week")).status_code == 202
    async with engine.begin() as conn:
        await conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.buyer_id == shopper.buyer_id)
            .values(created_at=text("now() - interval '7 days 1 minute'"))
        )

    response = await shopper.checkout("week")

    # Not a replay: the request runs again, and the cart is already checked out.
    assert response.status_code == 404
    assert "Idempotent-Replayed" not in response.headers
    assert len(await _started_by(engine, shopper.buyer_id)) == 1


async def test_checkout_needs_an_idempotency_key(shopper: Shopper, engine: AsyncEngine) -> None:
    await _two_lines(shopper, engine)

    response = await shopper.request("POST", "/checkout")

    assert response.status_code == 400
    assert "Idempotency-Key" in field_errors(response)
    assert (await shopper.cart()).json()["status"] == "active"


async def test_checkout_without_a_cart_or_of_an_empty_one_is_refused(
    shopper: Shopper, engine: AsyncEngine
) -> None:
    assert (await shopper.checkout()).status_code == 404
    emptied = await shopper.request("PUT", "/cart", {"items": []}, Idempotency_Key="e")
    assert emptied.status_code == 200

    response = await shopper.checkout()

    assert response.status_code == 422
    assert "empty" in field_errors(response)["items"]


async def test_checkout_honours_if_match(shopper: Shopper, engine: AsyncEngine) -> None:
    _, _, cart = await _two_lines(shopper, engine)
    stale = f'"{int(str(cart["version"])) - 1}"'

    assert (await shopper.checkout(If_Match=stale)).status_code == 409
    assert (await shopper.checkout(If_Match=f'"{cart["version"]}"')).status_code == 202


async def test_another_buyers_checkout_does_not_touch_this_cart(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    owner, stranger = Shopper(client), Shopper(client)
    await _two_lines(owner, engine)

    assert (await stranger.checkout()).status_code == 404
    assert (await owner.cart()).json()["status"] == "active"
