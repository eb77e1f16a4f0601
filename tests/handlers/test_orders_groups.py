"""Orders of a marketplace checkout group through the real consumer: one order per vendor.

The saga commands the group (the CheckoutStarted's order_id); each vendor order is announced
under its own id, and the group's end once under the group id.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import (
    CheckoutGroupCompleted,
    CheckoutPolicy,
    CheckoutStarted,
    ConfirmOrder,
    GroupOutcome,
    LineItem,
    MessageHeaders,
    OrderConfirmed,
    OrderCreated,
    OrderFailed,
    OrderMarkedFailed,
    RejectedLine,
    RejectionReason,
)
from contracts.vendor_orders import vendor_order_id
from services.orders import repository as repo
from services.platform.consumer import Outcome
from tests.handlers import ServiceDriver
from tests.support.builders import delivery, envelope, new_id

SHORT = RejectionReason.INSUFFICIENT_STOCK
GONE = RejectionReason.UNAVAILABLE
MARKETPLACE_KEYS = {"checkout_group_id", "vendor_id", "currency", "total", "items", "rejected"}


def _line(sku: str, quantity: int, price: str, vendor: str | None) -> LineItem:
    return LineItem(sku=sku, quantity=quantity, unit_price=Decimal(price), vendor_id=vendor)


def _three_vendors(group_id: uuid.UUID) -> CheckoutStarted:
    """v1 sells A and B (13.50), v2 sells C (20.00), v3 sells D (5.00)."""
    return CheckoutStarted(
        order_id=group_id,
        buyer_id="buyer-1",
        currency="EUR",
        policy=CheckoutPolicy.PARTIAL,
        items=[
            _line("A", 2, "5.00", "v1"),
            _line("B", 1, "3.50", "v1"),
            _line("C", 1, "20.00", "v2"),
            _line("D", 4, "1.25", "v3"),
        ],
    )


def _ids(group_id: uuid.UUID) -> list[uuid.UUID]:
    return [vendor_order_id(group_id, v, alone=False) for v in ("v1", "v2", "v3")]


def _rejected(sku: str, quantity: int, reason: RejectionReason = SHORT) -> RejectedLine:
    return RejectedLine(sku=sku, quantity=quantity, reason=reason)


def _partial_confirm(group_id: uuid.UUID, payment_id: uuid.UUID) -> ConfirmOrder:
    """B of v1 and v2's only line C were not reserved."""
    rejected = [_rejected("B", 1), _rejected("C", 1, GONE)]
    return ConfirmOrder(order_id=group_id, payment_id=payment_id, rejected=rejected)


async def _rows(engine: AsyncEngine, group_id: uuid.UUID) -> dict[uuid.UUID, dict[str, Any]]:
    async with engine.connect() as conn:
        return {row["order_id"]: row for row in await repo.group_orders(conn, group_id)}


async def _group(orders: ServiceDriver) -> uuid.UUID:
    group_id = new_id()
    assert await orders.send(_three_vendors(group_id)) is Outcome.APPLIED
    return group_id


async def _completions(orders: ServiceDriver, group_id: uuid.UUID) -> list[CheckoutGroupCompleted]:
    found = []
    for sent in await orders.sent(group_id):
        if isinstance(sent.message, CheckoutGroupCompleted):
            found.append(sent.message)
    return found


async def _payloads(orders: ServiceDriver, key: uuid.UUID) -> list[dict[str, Any]]:
    """The JSON payloads under a key, as a consumer of the wire reads them."""
    return [json.loads(row.payload)["payload"] for row in await orders.outbox(key)]


async def test_a_three_vendor_checkout_makes_three_orders_and_announces_each(
    orders: ServiceDriver,
) -> None:
    group_id = new_id()
    event = _three_vendors(group_id)
    message_id = uuid.uuid4()

    assert await orders.send(event, message_id) is Outcome.APPLIED

    rows = await _rows(orders.engine, group_id)
    v1, v2, v3 = _ids(group_id)
    assert set(rows) == {v1, v2, v3}
    expected = {
        v1: ("v1", "13.50", ["A", "B"]),
        v2: ("v2", "20.00", ["C"]),
        v3: ("v3", "5.00", ["D"]),
    }
    for order_id, (vendor, total, skus) in expected.items():
        row = rows[order_id]
        assert (row["checkout_group_id"], row["vendor_id"], row["status"]) == (
            group_id,
            vendor,
            "created",
        )
        assert (row["marketplace"], row["total"], row["adjusted_total"]) == (
            True,
            Decimal(total),
            None,
        )
        assert [item["sku"] for item in row["items"]] == skus
        [created] = await orders.sent(order_id)
        assert isinstance(created.message, OrderCreated)
        assert created.envelope.causation_id == message_id
        assert (created.message.checkout_group_id, created.message.vendor_id) == (group_id, vendor)
        assert created.message.total == Decimal(total)
        assert created.message.items == [i for i in event.items if i.vendor_id == vendor]
    # Nothing is announced under the group id until the group is final.
    assert await orders.outbox(group_id) == []


async def test_a_second_checkout_of_a_group_creates_nothing(orders: ServiceDriver) -> None:
    group_id = await _group(orders)
    other = CheckoutStarted(
        order_id=group_id,
        buyer_id="buyer-1",
        currency="EUR",
        items=[_line("Z", 1, "1.00", "v9")],
    )

    assert await orders.send(other) is Outcome.APPLIED

    assert set(await _rows(orders.engine, group_id)) == set(_ids(group_id))
    assert await orders.outbox(vendor_order_id(group_id, "v9", alone=False)) == []


async def test_a_plain_checkout_keeps_its_id_and_the_version_1_wire(
    orders: ServiceDriver,
) -> None:
    order_id = new_id()
    plain = CheckoutStarted(
        order_id=order_id, buyer_id="buyer-1", currency="EUR", items=[_line("A", 2, "9.99", None)]
    )

    assert await orders.send(plain) is Outcome.APPLIED
    assert await orders.send(ConfirmOrder(order_id=order_id, payment_id=new_id())) is (
        Outcome.APPLIED
    )

    [row] = (await _rows(orders.engine, order_id)).values()
    assert (row["order_id"], row["checkout_group_id"], row["vendor_id"]) == (
        order_id,
        order_id,
        None,
    )
    assert (row["marketplace"], row["adjusted_total"], row["rejected"]) == (
        False,
        Decimal("19.98"),
        [],
    )
    created, confirmed, completed = await _payloads(orders, order_id)
    assert set(created) == {"order_id", "buyer_id", "currency", "total", "items"}
    assert created["items"] == [{"sku": "A", "quantity": 2, "unit_price": "9.99"}]
    assert set(confirmed) == {"order_id", "payment_id"}
    # The group event is a new topic: plain checkouts get it too, under their order id.
    assert (completed["outcome"], completed["balance_due"]) == ("completed", "19.98")


async def test_a_single_vendor_checkout_is_one_order_under_the_group_id(
    orders: ServiceDriver,
) -> None:
    group_id = new_id()
    event = CheckoutStarted(
        order_id=group_id, buyer_id="buyer-1", currency="EUR", items=[_line("A", 1, "4.00", "v1")]
    )

    assert await orders.send(event) is Outcome.APPLIED

    [row] = (await _rows(orders.engine, group_id)).values()
    assert (row["order_id"], row["vendor_id"], row["marketplace"]) == (group_id, "v1", True)
    [created] = await orders.sent(group_id)
    assert isinstance(created.message, OrderCreated)
    assert (created.message.checkout_group_id, created.message.vendor_id) == (group_id, "v1")


async def test_a_partial_confirmation_confirms_two_vendor_orders_and_fails_the_emptied_one(
    orders: ServiceDriver,
) -> None:
    group_id = await _group(orders)
    payment_id, confirm_id = new_id(), uuid.uuid4()

    assert await orders.send(_partial_confirm(group_id, payment_id), confirm_id) is (
        Outcome.APPLIED
    )

    v1, v2, v3 = _ids(group_id)
    rows = await _rows(orders.engine, group_id)
    assert (rows[v1]["status"], rows[v1]["payment_id"], rows[v1]["adjusted_total"]) == (
        "confirmed",
        payment_id,
        Decimal("10.00"),
    )
    assert rows[v1]["rejected"] == [{"sku": "B", "quantity": 1, "reason": "insufficient_stock"}]
    assert (rows[v2]["status"], rows[v2]["adjusted_total"]) == ("failed", Decimal("0.00"))
    assert rows[v2]["failure_reason"] == "every line was rejected: C (unavailable)"
    assert (rows[v3]["status"], rows[v3]["adjusted_total"]) == ("confirmed", Decimal("5.00"))

    _, confirmed = await orders.sent(v1)
    assert confirmed.envelope.causation_id == confirm_id
    assert confirmed.message == OrderConfirmed(
        order_id=v1,
        payment_id=payment_id,
        checkout_group_id=group_id,
        vendor_id="v1",
        currency="EUR",
        total=Decimal("10.00"),
        items=[_line("A", 2, "5.00", "v1")],
        rejected=[_rejected("B", 1)],
    )
    _, failed = await orders.sent(v2)
    assert isinstance(failed.message, OrderMarkedFailed)
    assert (failed.message.total, failed.message.rejected) == (
        Decimal("0.00"),
        [_rejected("C", 1, GONE)],
    )

    [completed] = await _completions(orders, group_id)
    assert completed.outcome is GroupOutcome.PARTIALLY_COMPLETED
    assert completed.balance_due == Decimal("15.00")
    assert {o.order_id: (o.status, o.total) for o in completed.orders} == {
        v1: ("confirmed", Decimal("10.00")),
        v2: ("failed", Decimal("0.00")),
        v3: ("confirmed", Decimal("5.00")),
    }


async def test_a_failed_group_fails_every_vendor_order_with_its_own_rejections(
    orders: ServiceDriver,
) -> None:
    group_id = await _group(orders)
    command = OrderFailed(
        order_id=group_id, reason="payment declined", rejected=[_rejected("D", 4)]
    )

    assert await orders.send(command) is Outcome.APPLIED

    v1, v2, v3 = _ids(group_id)
    rows = await _rows(orders.engine, group_id)
    assert {r["status"] for r in rows.values()} == {"failed"}
    assert {r["failure_reason"] for r in rows.values()} == {"payment declined"}
    assert (rows[v1]["rejected"], rows[v2]["rejected"]) == ([], [])
    assert rows[v3]["rejected"] == [{"sku": "D", "quantity": 4, "reason": "insufficient_stock"}]
    for order_id in (v1, v2, v3):
        assert [d.envelope.message_type for d in await orders.sent(order_id)] == [
            "order_created",
            "order_marked_failed",
        ]
    [completed] = await _completions(orders, group_id)
    assert (completed.outcome, completed.balance_due) == (GroupOutcome.FAILED, Decimal("0.00"))


async def test_the_group_is_announced_exactly_once(orders: ServiceDriver) -> None:
    group_id = await _group(orders)
    payment_id = new_id()
    first = envelope(_partial_confirm(group_id, payment_id))

    assert await orders.deliver(delivery(first), "ConfirmOrder") is Outcome.APPLIED
    # The same envelope again (a redelivery), then the same command under a new id.
    assert await orders.deliver(delivery(first), "ConfirmOrder") is Outcome.DUPLICATE
    assert await orders.send(_partial_confirm(group_id, payment_id)) is Outcome.APPLIED
    # A confirmation that contradicts how the group ended is refused and announces nothing.
    assert await orders.send(ConfirmOrder(order_id=group_id, payment_id=payment_id)) is (
        Outcome.DEAD_LETTERED
    )

    [completed] = await _completions(orders, group_id)
    assert completed.balance_due == Decimal("15.00")
    for order_id in _ids(group_id):
        assert len(await orders.sent(order_id)) == 2


async def test_commands_parked_before_the_checkout_apply_to_every_vendor_order(
    orders: ServiceDriver,
) -> None:
    group_id, payment_id, confirm_id = new_id(), new_id(), uuid.uuid4()
    command = _partial_confirm(group_id, payment_id)

    assert await orders.send(command, confirm_id) is Outcome.APPLIED
    assert await _rows(orders.engine, group_id) == {}
    async with orders.engine.connect() as conn:
        assert [p.message_id for p in await repo.parked_commands(conn, group_id)] == [confirm_id]

    assert await orders.send(_three_vendors(group_id)) is Outcome.APPLIED

    v1, v2, v3 = _ids(group_id)
    rows = await _rows(orders.engine, group_id)
    assert [rows[o]["status"] for o in (v1, v2, v3)] == ["confirmed", "failed", "confirmed"]
    for order_id, second in ((v1, "order_confirmed"), (v2, "order_marked_failed")):
        created, outcome = await orders.sent(order_id)
        assert (created.envelope.message_type, outcome.envelope.message_type) == (
            "order_created",
            second,
        )
        assert outcome.envelope.causation_id == confirm_id
    [completed] = await _completions(orders, group_id)
    assert completed.outcome is GroupOutcome.PARTIALLY_COMPLETED
    async with orders.engine.connect() as conn:
        assert await repo.parked_commands(conn, group_id) == []


async def test_a_contradiction_is_dead_lettered_and_writes_nothing(
    orders: ServiceDriver,
) -> None:
    group_id = await _group(orders)
    await orders.send(_partial_confirm(group_id, new_id()))
    before = await _rows(orders.engine, group_id)
    sent = {o: await orders.outbox(o) for o in [group_id, *_ids(group_id)]}

    command = OrderFailed(order_id=group_id, reason="payment timeout")
    assert await orders.send(command) is Outcome.DEAD_LETTERED

    assert await _rows(orders.engine, group_id) == before
    [letter] = await orders.dead_letters(group_id)
    assert "cannot be marked failed" in letter.headers[MessageHeaders.ERROR]
    after = {o: await orders.outbox(o) for o in [group_id, *_ids(group_id)]}
    assert after[group_id] == [*sent[group_id], letter]
    assert {o: after[o] for o in _ids(group_id)} == {o: sent[o] for o in _ids(group_id)}


async def test_groups_racing_their_commands_end_once_each(orders: ServiceDriver) -> None:
    groups = {new_id(): new_id() for _ in range(10)}

    await asyncio.gather(
        *(orders.send(_three_vendors(g)) for g in groups),
        *(orders.send(_partial_confirm(g, p)) for g, p in groups.items()),
    )

    for group_id, payment_id in groups.items():
        rows = await _rows(orders.engine, group_id)
        assert [r["status"] for r in rows.values()].count("confirmed") == 2
        assert {r["payment_id"] for r in rows.values()} == {payment_id, None}
        [completed] = await _completions(orders, group_id)
        assert completed.balance_due == Decimal("15.00")
