"""A seeded chaos load: products, carts, plain checkouts and marketplace groups, plus faults."""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import CheckoutPolicy, CheckoutStarted, LineItem, PaymentCompleted
from contracts.pricing import CheckoutPricing
from services.cart.pricing_lines import to_cents
from services.platform.settings import PaymentSimulatorSettings
from tests.support.payer import publish
from tests.support.pricing import priced

SKUS_PER_RUN = 8
STOCK_PER_CHECKOUT = 1.0
"""Units of each product per planned checkout: most lines find stock, the scarce product not."""
SCARCE_STOCK = 2
"""The run's last product is nearly sold out from the start, so partial groups reject lines."""
VENDORS = ("acme", "globex", "initech")
"""Product i of a run is sold by VENDORS[i % 3] when it is part of a marketplace group."""
GROUP_SHARE = 0.35
"""Share of checkouts that are marketplace groups (vendors on their lines, either policy).

The others stay plain (no vendor, the default policy), so both wire shapes run under faults.
Demand is above the stock on purpose: partial groups then reject lines and fail vendor orders.
"""
STALE_PAYMENT_SHARE = 0.03
PRICED_SHARE = 0.25
"""Checkouts carrying `pricing` (a discount, 19 % tax, shipping), as the cart API sends them."""
"""Checkouts whose payment arrives first and stale (see Checkout.stale_payment)."""
STALE_PAYMENT_AGE = timedelta(hours=1)


def seeded_uuid(rng: random.Random) -> uuid.UUID:
    """A version-4 UUID drawn from the run's generator, so a seed replays the same ids."""
    return uuid.UUID(int=rng.getrandbits(128), version=4)


@dataclass(frozen=True)
class Checkout:
    """One planned checkout and the faults the test adds to it."""

    start: CheckoutStarted
    message_id: uuid.UUID
    redelivered: bool  # the same CheckoutStarted (same message id) sent again later
    restarted: bool  # the same checkout again under a new message id
    early_payment: uuid.UUID | None  # a payment published right after the checkout
    stale_payment: uuid.UUID | None = None
    """A payment published just before the checkout and dated STALE_PAYMENT_AGE back: an orphan
    past any grace, so the saga refunds it, and the checkout must then be paid again."""


@dataclass
class ChaosLoad:
    """Everything one seed publishes, and what the invariants need to know about it."""

    seed: int
    stock: dict[str, int]
    checkouts: list[Checkout]
    published: set[uuid.UUID] = field(default_factory=set)
    payments: dict[uuid.UUID, set[uuid.UUID]] = field(default_factory=dict)
    late_payments: int = 0
    simulator: PaymentSimulatorSettings | None = None
    """The rules every payment simulator answers by, when the run checks their decisions."""

    @property
    def order_ids(self) -> list[uuid.UUID]:
        """Every planned order."""
        return [c.start.order_id for c in self.checkouts]


def plan(seed: int, checkouts: int) -> ChaosLoad:
    """The run of a seed: SKUs disjoint from other seeds', 1-3 lines of 1-3 units per checkout."""
    rng = random.Random(seed)
    skus = [f"CHAOS-{seed}-{i}-{rng.getrandbits(24):06x}" for i in range(SKUS_PER_RUN)]
    planned = [_checkout(rng, skus, n) for n in range(checkouts)]
    stock = dict.fromkeys(skus, max(60, round(checkouts * STOCK_PER_CHECKOUT)))
    stock[skus[-1]] = SCARCE_STOCK
    return ChaosLoad(seed, stock, planned)


def _checkout(rng: random.Random, skus: list[str], n: int) -> Checkout:
    group = rng.random() < GROUP_SHARE
    lines = rng.sample(skus, rng.randint(2, 4) if group else rng.randint(1, 3))
    policy = rng.choice(list(CheckoutPolicy)) if group else CheckoutPolicy.ALL_OR_NOTHING
    items = [
        LineItem(
            sku=s,
            quantity=rng.randint(1, 3),
            unit_price=Decimal(rng.randint(100, 5000)) / 100,
            vendor_id=VENDORS[skus.index(s) % len(VENDORS)] if group else None,
        )
        for s in lines
    ]
    start = CheckoutStarted(
        order_id=seeded_uuid(rng),
        buyer_id=f"chaos-buyer-{n}",
        buyer_email=f"buyer{n}@example.com",
        cart_id=seeded_uuid(rng),
        currency="EUR",
        policy=policy,
        items=items,
        pricing=_pricing(items) if rng.random() < PRICED_SHARE else None,
    )
    roll = rng.random()
    return Checkout(
        start=start,
        message_id=seeded_uuid(rng),
        redelivered=roll < 0.1,
        restarted=0.1 <= roll < 0.15,
        early_payment=seeded_uuid(rng) if rng.random() < 0.1 else None,
        stale_payment=seeded_uuid(rng) if rng.random() < STALE_PAYMENT_SHARE else None,
    )


def _pricing(items: list[LineItem]) -> CheckoutPricing:
    """10 % off the first line, 19 % tax on every discounted line, 4.90 shipping (net)."""
    first = items[0]
    off = to_cents(first.unit_price * first.quantity / 10)
    return priced(
        items,
        discounts={first.sku: str(off)},
        tax_rate="19",
        shipping=("4.90", "0.93"),
        code="CHAOS10",
    )


async def prepare(db: AsyncEngine, load: ChaosLoad) -> None:
    """Stock the run's products and create each checkout's checked-out cart with its lines."""
    async with db.begin() as conn:
        await conn.execute(
            text("INSERT INTO inventory.products (sku, available) VALUES (:s, :a)"),
            [{"s": sku, "a": available} for sku, available in load.stock.items()],
        )
        # One statement per table (executemany), not per cart: 10,000 carts stay quick.
        await conn.execute(
            text(
                "INSERT INTO cart.carts (cart_id, buyer_id, status, currency) "
                "VALUES (:c, :b, 'checked_out', 'EUR')"
            ),
            [{"c": c.start.cart_id, "b": c.start.buyer_id} for c in load.checkouts],
        )
        await conn.execute(
            text(
                "INSERT INTO cart.cart_items (cart_id, sku, quantity, unit_price) "
                "VALUES (:c, :s, :q, :p)"
            ),
            [
                {"c": c.start.cart_id, "s": i.sku, "q": i.quantity, "p": i.unit_price}
                for c in load.checkouts
                for i in c.start.items
            ],
        )


async def drive(producer: AIOKafkaProducer, load: ChaosLoad, pace_s: float) -> None:
    """Publish every checkout (and its early payment) at a steady pace, then the duplicates."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    for n, c in enumerate(load.checkouts, start=1):
        if c.stale_payment is not None:
            dated = datetime.now(UTC) - STALE_PAYMENT_AGE
            await _send_payment(producer, load, c.start, c.stale_payment, dated)
        await _send_checkout(producer, load, c, c.message_id)
        if c.early_payment is not None:
            await _send_payment(producer, load, c.start, c.early_payment)
        # On a schedule, not a sleep per checkout: slow sends must not stretch the run.
        await asyncio.sleep(max(0.0, began + n * pace_s - loop.time()))
    for c in load.checkouts:
        if c.redelivered:
            await _send_checkout(producer, load, c, c.message_id)
        if c.restarted:
            await _send_checkout(producer, load, c, uuid.uuid4())


async def pay_late(
    producer: AIOKafkaProducer, load: ChaosLoad, failed: list[uuid.UUID], limit: int
) -> None:
    """A payment for some orders that already failed: each must be refunded exactly once."""
    by_id = {c.start.order_id: c.start for c in load.checkouts}
    rng = random.Random(f"{load.seed}:late")
    for order_id in rng.sample(sorted(failed), min(limit, len(failed))):
        await _send_payment(producer, load, by_id[order_id], seeded_uuid(rng))
        load.late_payments += 1


async def _send_checkout(
    producer: AIOKafkaProducer, load: ChaosLoad, c: Checkout, message_id: uuid.UUID
) -> None:
    load.published.add(await publish(producer, c.start, message_id))


async def _send_payment(
    producer: AIOKafkaProducer,
    load: ChaosLoad,
    start: CheckoutStarted,
    payment_id: uuid.UUID,
    occurred_at: datetime | None = None,
) -> None:
    paid = PaymentCompleted(
        order_id=start.order_id, payment_id=payment_id, amount=start.total, currency="EUR"
    )
    load.published.add(await publish(producer, paid, occurred_at=occurred_at))
    load.payments.setdefault(start.order_id, set()).add(payment_id)
