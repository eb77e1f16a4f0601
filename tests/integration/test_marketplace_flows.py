"""Marketplace checkout groups through the real services, PostgreSQL and broker.

A group is one saga and one payment; the orders service splits it into vendor orders. These
tests publish `CheckoutStarted` as a plain Kafka upstream would and read the outcome from the
services' tables and outboxes (the events downstream consumers would see).
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from contracts import (
    CheckoutGroupCompleted,
    CheckoutPolicy,
    CheckoutStarted,
    LineItem,
    OrderConfirmed,
    OrderCreated,
    OrderMarkedFailed,
)
from contracts.vendor_orders import split
from tests.support.payer import Answer, ScriptedPayer, eventually, publish
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

TIMEOUT = 60.0
PARTIAL, ALL_OR_NOTHING = CheckoutPolicy.PARTIAL, CheckoutPolicy.ALL_OR_NOTHING


def _sku(vendor: str) -> str:
    return f"{vendor.upper()}-{uuid.uuid4().hex[:10]}"


def _line(sku: str, quantity: int, price: str, vendor: str) -> LineItem:
    return LineItem(sku=sku, quantity=quantity, unit_price=Decimal(price), vendor_id=vendor)


def _group(lines: list[LineItem], policy: CheckoutPolicy) -> CheckoutStarted:
    return CheckoutStarted(
        order_id=uuid.uuid4(),
        buyer_id=f"buyer-{uuid.uuid4().hex[:8]}",
        currency="EUR",
        items=lines,
        policy=policy,
    )


def _three_vendors(skus: dict[str, str], policy: CheckoutPolicy) -> CheckoutStarted:
    """acme 2 x 10.00, globex 1 x 7.50, initech 1 x 99.00: 27.50 without initech."""
    return _group(
        [
            _line(skus["acme"], 2, "10.00", "acme"),
            _line(skus["globex"], 1, "7.50", "globex"),
            _line(skus["initech"], 1, "99.00", "initech"),
        ],
        policy,
    )


async def _stocked(stack: Stack, **levels: int) -> dict[str, str]:
    """A fresh product per vendor name, with that many units available."""
    skus = {vendor: _sku(vendor) for vendor in levels}
    for vendor, available in levels.items():
        await stack.set_stock(skus[vendor], available)
    return skus


async def _completed(stack: Stack, group_id: uuid.UUID) -> CheckoutGroupCompleted:
    """The group's checkout_group_completed, once the orders service wrote it."""

    async def probe() -> list[dict[str, Any]] | None:
        rows = await stack.sent("orders", "checkout_group_completed", group_id)
        return rows or None

    rows = await eventually(probe, timeout=TIMEOUT)
    assert isinstance(rows, list)
    assert len(rows) == 1, "checkout_group_completed must be emitted once per group"
    return CheckoutGroupCompleted.model_validate(_payload(rows[0]))


def _payload(row: dict[str, Any]) -> dict[str, Any]:
    envelope: dict[str, Any] = json.loads(bytes(row["payload"]))
    payload: dict[str, Any] = envelope["payload"]
    return payload


async def _events(stack: Stack, message_type: str, order_id: uuid.UUID) -> list[dict[str, Any]]:
    return [_payload(r) for r in await stack.sent("orders", message_type, order_id)]


async def _settled(stack: Stack, sku: str, **expected: int) -> None:
    async def probe() -> bool:
        current = await stack.stock(sku)
        return all(current[k] == v for k, v in expected.items())

    await eventually(probe, timeout=TIMEOUT)


async def test_partial_group_with_one_vendor_out_of_stock_completes_the_others(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer
) -> None:
    skus = await _stocked(stack, acme=5, globex=5, initech=0)
    start = _three_vendors(skus, PARTIAL)
    await publish(producer, start)

    done = await _completed(stack, start.order_id)
    assert done.outcome == "partially_completed"
    assert done.balance_due == Decimal("27.50")
    by_vendor = {o.vendor_id: o for o in done.orders}
    assert {v: o.status for v, o in by_vendor.items()} == {
        "acme": "confirmed",
        "globex": "confirmed",
        "initech": "failed",
    }
    assert [(r.sku, r.reason) for r in by_vendor["initech"].rejected] == [
        (skus["initech"], "insufficient_stock")
    ]
    # One charge for the group, of the lines it could reserve.
    assert [r.amount for r in payer.requests[start.order_id]] == [Decimal("27.50")]
    assert await stack.saga_state(start.order_id) == "Confirmed"
    await _settled(stack, skus["acme"], available=3, reserved=0, deducted=2)
    await _settled(stack, skus["globex"], available=4, reserved=0, deducted=1)
    short = await stack.stock(skus["initech"])
    assert (short["available"], short["reserved"], short["deducted"]) == (0, 0, 0)
    # Each vendor order was announced and finished under its own id, with its group and vendor.
    for vendor_order in split(start):
        [created] = await _events(stack, "order_created", vendor_order.order_id)
        assert OrderCreated.model_validate(created).checkout_group_id == start.order_id
        final = "order_marked_failed" if vendor_order.vendor_id == "initech" else "order_confirmed"
        [event] = await _events(stack, final, vendor_order.order_id)
        cls = OrderMarkedFailed if final == "order_marked_failed" else OrderConfirmed
        assert cls.model_validate(event).vendor_id == vendor_order.vendor_id


async def test_all_or_nothing_group_with_one_vendor_short_fails_everything(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer
) -> None:
    skus = await _stocked(stack, acme=5, globex=5, initech=0)
    start = _three_vendors(skus, ALL_OR_NOTHING)
    await publish(producer, start)

    done = await _completed(stack, start.order_id)
    assert (done.outcome, done.balance_due) == ("failed", Decimal("0"))
    assert {o.status for o in done.orders} == {"failed"}
    assert len(done.orders) == 3
    assert start.order_id not in payer.requests  # nothing to pay for
    for sku in skus.values():
        current = await stack.stock(sku)
        assert (current["reserved"], current["deducted"]) == (0, 0)


async def test_a_vendor_order_goes_on_without_its_short_line(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer
) -> None:
    plenty, scarce = _sku("acme"), _sku("acme")
    await stack.set_stock(plenty, 10)
    await stack.set_stock(scarce, 1)
    other = (await _stocked(stack, globex=3))["globex"]
    start = _group(
        [
            _line(plenty, 2, "4.00", "acme"),
            _line(scarce, 3, "5.00", "acme"),
            _line(other, 1, "1.00", "globex"),
        ],
        PARTIAL,
    )
    await publish(producer, start)

    done = await _completed(stack, start.order_id)
    assert (done.outcome, done.balance_due) == ("completed", Decimal("9.00"))
    acme = next(o for o in done.orders if o.vendor_id == "acme")
    assert (acme.status, acme.total) == ("confirmed", Decimal("8.00"))
    assert [i.sku for i in acme.items] == [plenty]
    assert [(r.sku, r.quantity, r.reason) for r in acme.rejected] == [
        (scarce, 3, "insufficient_stock")
    ]
    assert [r.amount for r in payer.requests[start.order_id]] == [Decimal("9.00")]
    await _settled(stack, scarce, available=1, reserved=0, deducted=0)
    await _settled(stack, plenty, available=8, reserved=0, deducted=2)


async def test_a_declined_payment_releases_exactly_what_it_would_have_paid_for(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer
) -> None:
    skus = await _stocked(stack, acme=5, globex=5, initech=0)
    start = _three_vendors(skus, PARTIAL)
    payer.script[start.order_id] = Answer.DECLINE
    await publish(producer, start)

    done = await _completed(stack, start.order_id)
    assert (done.outcome, done.balance_due) == ("failed", Decimal("0"))
    assert {o.status for o in done.orders} == {"failed"}
    await _settled(stack, skus["acme"], available=5, reserved=0, deducted=0)
    await _settled(stack, skus["globex"], available=5, reserved=0, deducted=0)
    released = await stack.rows(
        "SELECT sku, status FROM inventory.reservations WHERE order_id = :o ORDER BY sku",
        o=start.order_id,
    )
    # The short vendor never held anything; the two that did gave back exactly their lines.
    assert {r["sku"]: r["status"] for r in released} == {
        skus["acme"]: "released",
        skus["globex"]: "released",
    }


async def test_a_repeated_checkout_of_a_group_reserves_and_announces_once(
    stack: Stack, payer: ScriptedPayer, producer: AIOKafkaProducer
) -> None:
    skus = await _stocked(stack, acme=5, globex=5)
    start = _group(
        [_line(skus["acme"], 1, "3.00", "acme"), _line(skus["globex"], 1, "4.00", "globex")],
        PARTIAL,
    )
    first = await publish(producer, start)
    await publish(producer, start, message_id=first)  # a redelivery
    await publish(producer, start)  # the upstream sent it again, under a new message id

    done = await _completed(stack, start.order_id)
    assert done.outcome == "completed"
    for vendor_order in split(start):
        assert len(await _events(stack, "order_created", vendor_order.order_id)) == 1
    await _settled(stack, skus["acme"], available=4, reserved=0, deducted=1)
    assert len(payer.requests[start.order_id]) == 1
