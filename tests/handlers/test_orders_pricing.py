"""A priced checkout's vendor orders through the real orders consumer and its tables.

Rows keep each vendor order's line charges and shipping share, so a command read back later
settles the same totals; a vendor order taking over an emptied one's shipping may end above its
own total, which the table allows for priced orders only.
"""

from __future__ import annotations

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
    RejectedLine,
    RejectionReason,
)
from contracts.vendor_orders import vendor_order_id
from services.orders import repository as repo
from services.platform.consumer import Outcome
from tests.handlers import ServiceDriver
from tests.support.builders import new_id
from tests.support.pricing import priced, three_vendor_items, with_pricing

D = Decimal


def _checkout(group_id: uuid.UUID) -> CheckoutStarted:
    """v1: A 22.00; v2: B 5.50 and C 11.00 (5.00 off); v3: D 1.10; shipping 6.60 (net, 10 %)."""
    items = three_vendor_items()
    plain = CheckoutStarted(
        order_id=group_id,
        buyer_id="buyer-1",
        currency="EUR",
        items=items,
        policy=CheckoutPolicy.PARTIAL,
    )
    pricing = priced(items, discounts={"C": "5.00"}, tax_rate="10", shipping=("6.00", "0.60"))
    return with_pricing(plain, pricing)


async def _rows(engine: AsyncEngine, group_id: uuid.UUID) -> dict[str | None, dict[str, Any]]:
    async with engine.connect() as conn:
        return {row["vendor_id"]: row for row in await repo.group_orders(conn, group_id)}


async def test_priced_vendor_orders_are_stored_and_announced_with_their_share(
    orders: ServiceDriver,
) -> None:
    group_id = new_id()

    assert await orders.send(_checkout(group_id)) is Outcome.APPLIED

    rows = await _rows(orders.engine, group_id)
    assert {v: (r["total"], r["shipping_share"]) for v, r in rows.items()} == {
        "v1": (D("25.67"), D("3.67")),
        "v2": (D("19.25"), D("2.75")),
        "v3": (D("1.28"), D("0.18")),
    }
    assert [c["sku"] for c in rows["v2"]["charges"]] == ["B", "C"]
    [created] = await orders.outbox(vendor_order_id(group_id, "v2", alone=False))
    payload = json.loads(created.payload)["payload"]
    assert (payload["total"], payload["shipping"]) == ("19.25", "2.75")
    assert payload["discounts"] == [{"promotion_id": "PROMO-1", "code": None, "amount": "5.00"}]


async def test_an_emptied_vendor_orders_shipping_is_settled_on_the_others(
    orders: ServiceDriver,
) -> None:
    group_id = new_id()
    await orders.send(_checkout(group_id))
    short = RejectionReason.INSUFFICIENT_STOCK
    rejected = [RejectedLine(sku=s, quantity=1, reason=short) for s in ("B", "C")]

    confirm = ConfirmOrder(order_id=group_id, payment_id=new_id(), rejected=rejected)
    assert await orders.send(confirm) is Outcome.APPLIED

    rows = await _rows(orders.engine, group_id)
    assert {v: (r["status"], r["adjusted_total"]) for v, r in rows.items()} == {
        "v1": ("confirmed", D("28.29")),  # above its 25.67: it ships, so it carries the shipping
        "v2": ("failed", D("0.00")),
        "v3": ("confirmed", D("1.41")),
    }
    [completed] = [
        s.message
        for s in await orders.sent(group_id)
        if isinstance(s.message, CheckoutGroupCompleted)
    ]
    assert completed.balance_due == D("29.70")  # 46.20 less B's 5.50 and C's 11.00


async def test_an_unpriced_checkouts_orders_have_no_charges(orders: ServiceDriver) -> None:
    group_id = new_id()

    assert await orders.send(with_pricing(_checkout(group_id), None)) is Outcome.APPLIED

    rows = await _rows(orders.engine, group_id)
    assert {v: (r["charges"], r["shipping_share"]) for v, r in rows.items()} == dict.fromkeys(
        ("v1", "v2", "v3"), (None, None)
    )
