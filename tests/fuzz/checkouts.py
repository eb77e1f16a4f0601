"""The valid checkouts interleaved with the fuzz, and what must hold once they are all final.

Checkouts draw one to three lines from a few products of their own (so some run out of stock),
a quarter of them marketplace checkouts with vendors, half of those partial, half of all priced
(discount, tax, shipping: the saga charges the grand total); the payment simulator declines
some. At the end every saga is final and agrees with its orders, every unit
of stock is accounted for, confirmed checkouts are paid and their carts cleared.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import CheckoutPolicy, CheckoutStarted, LineItem
from services.inventory import repository as inventory_repo
from tests.fuzz.pricing import shop_pricing

FINAL = ("Confirmed", "Failed")


@dataclass
class Shop:
    """Products of one fuzz run and the checkouts made against them."""

    stock: dict[str, int]
    rng: random.Random
    units: int
    """Units each product starts with."""
    checkouts: dict[uuid.UUID, CheckoutStarted] = field(default_factory=dict)
    frozen: set[uuid.UUID] = field(default_factory=set)
    """Checkouts left unfinished on purpose (their saga waits in Submitted)."""

    @classmethod
    def open(cls, rng: random.Random, products: int, units: int) -> Shop:
        """A shop of products named for this run, each with `units` in stock."""
        run = uuid.UUID(int=rng.getrandbits(128)).hex[:8]
        return cls({f"FZ-{run}-{i}": units for i in range(products)}, rng, units)

    async def stock_up(self, engine: AsyncEngine) -> None:
        """Create the products in inventory."""
        async with engine.begin() as conn:
            for sku, units in self.stock.items():
                await inventory_repo.set_stock(conn, sku, units)

    def checkout(self) -> CheckoutStarted:
        """A new valid checkout against this shop's products."""
        rng = self.rng
        order_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        skus = rng.sample(sorted(self.stock), rng.randint(1, 3))
        marketplace = rng.random() < 0.25
        items = [
            LineItem(
                sku=sku,
                quantity=rng.randint(1, 3),
                unit_price=Decimal(rng.randint(100, 9_999)) / 100,
                vendor_id=f"vendor-{rng.randint(1, 2)}" if marketplace else None,
            )
            for sku in skus
        ]
        policy = CheckoutPolicy.PARTIAL if marketplace and rng.random() < 0.5 else None
        started = CheckoutStarted(
            order_id=order_id,
            buyer_id=f"fuzz-buyer-{rng.randint(1, 50)}",
            currency="EUR",
            items=items,
            **({"policy": policy} if policy else {}),
        )
        started = shop_pricing(rng, started)
        self.checkouts[order_id] = started
        return started


async def _rows(engine: AsyncEngine, sql: str, **params: object) -> list[dict[str, object]]:
    async with engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(text(sql), params)]


async def sagas_final(engine: AsyncEngine, order_ids: list[uuid.UUID]) -> int:
    """How many of these sagas are final."""
    rows = await _rows(
        engine,
        "SELECT count(*) AS n FROM saga.sagas WHERE id = ANY(:ids) AND state = ANY(:final)",
        ids=order_ids,
        final=list(FINAL),
    )
    return int(str(rows[0]["n"]))


async def states(engine: AsyncEngine, order_ids: list[uuid.UUID]) -> dict[str, int]:
    """How many of these sagas are in each state."""
    rows = await _rows(
        engine,
        "SELECT state, count(*) AS n FROM saga.sagas WHERE id = ANY(:ids) GROUP BY state",
        ids=order_ids,
    )
    return {str(r["state"]): int(str(r["n"])) for r in rows}


async def problems(engine: AsyncEngine, shop: Shop) -> list[str]:
    """Everything that does not hold for the shop's checkouts, once all should be final."""
    ids = [i for i in shop.checkouts if i not in shop.frozen]
    sagas = {
        r["id"]: r
        for r in await _rows(
            engine, "SELECT id, state, data FROM saga.sagas WHERE id = ANY(:ids)", ids=ids
        )
    }
    found = [
        f"saga {i}: {sagas[i]['state'] if i in sagas else 'missing'}"
        for i in ids
        if i not in sagas or sagas[i]["state"] not in FINAL
    ]
    found += await _orders_agree(engine, sagas)
    found += await _stock_balanced(engine, shop)
    found += await _confirmed_paid_and_cleared(engine, sagas)
    return found


async def _orders_agree(engine: AsyncEngine, sagas: dict[object, dict[str, object]]) -> list[str]:
    rows = await _rows(
        engine,
        "SELECT checkout_group_id AS g, status FROM orders.orders WHERE checkout_group_id = ANY(:ids)",
        ids=list(sagas),
    )
    statuses: dict[object, Counter[str]] = {}
    for row in rows:
        statuses.setdefault(row["g"], Counter())[str(row["status"])] += 1
    found = []
    for saga_id, saga in sagas.items():
        got = statuses.get(saga_id, Counter())
        confirmed = saga["state"] == "Confirmed"
        if not got or got["created"] or (confirmed != bool(got["confirmed"])):
            found.append(f"orders of {saga_id} are {dict(got)} for a {saga['state']} saga")
    return found


async def _stock_balanced(engine: AsyncEngine, shop: Shop) -> list[str]:
    products = await _rows(
        engine,
        "SELECT sku, available, reserved, deducted FROM inventory.products WHERE sku = ANY(:s)",
        s=list(shop.stock),
    )
    held = await _rows(
        engine,
        "SELECT sku, sum(quantity) AS q FROM inventory.reservations "
        "WHERE order_id = ANY(:ids) AND status = 'deducted' GROUP BY sku",
        ids=list(shop.checkouts),
    )
    sold = {str(r["sku"]): int(str(r["q"])) for r in held}
    found = []
    for row in products:
        sku, available, reserved, deducted = (
            row[k] for k in ("sku", "available", "reserved", "deducted")
        )
        total = int(str(available)) + int(str(reserved)) + int(str(deducted))
        if total != shop.stock[str(sku)] or reserved != 0 or deducted != sold.get(str(sku), 0):
            found.append(
                f"stock of {sku}: {row}, sold {sold.get(str(sku), 0)} of {shop.stock[str(sku)]}"
            )
    return found


async def _confirmed_paid_and_cleared(
    engine: AsyncEngine, sagas: dict[object, dict[str, object]]
) -> list[str]:
    confirmed = [i for i, s in sagas.items() if s["state"] == "Confirmed"]
    paid = await _rows(
        engine,
        "SELECT order_id FROM payments.payments WHERE order_id = ANY(:ids) AND decision = 'completed'",
        ids=confirmed,
    )
    cleared = await _rows(
        engine, "SELECT order_id FROM cart.clearances WHERE order_id = ANY(:ids)", ids=confirmed
    )
    unpaid = set(confirmed) - {r["order_id"] for r in paid}
    uncleared = set(confirmed) - {r["order_id"] for r in cleared}
    return [f"confirmed {i} has no completed payment" for i in unpaid] + [
        f"confirmed {i} has no cart clearance" for i in uncleared
    ]
