"""Demo catalog of `checkout-saga dev`, an example checkout, and the demo's marketplace carts.

The demo products are spread over three vendors. `drive_marketplace` fills multi-vendor carts
through the cart service's own use cases (what POST /cart/items and POST /checkout run), checks
them out under both policies with one vendor short of stock, and reads each group's outcome
from the cart's group view (what GET /checkout-groups/{id} answers): nothing is assumed.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import CheckoutPolicy, CheckoutStarted
from services.cart import catalog, groups, shopping
from services.cart.checkout_rules import GroupStatus, PriceChangedError
from services.cart.domain import CartRuleError, Offer
from services.cart.pricing import Pricer
from services.inventory import repository as inventory_repo
from services.platform.db import create_engine
from services.platform.settings import Settings

DEMO_CATALOG = ("DEMO-KEYBOARD", "DEMO-MOUSE", "DEMO-MONITOR", "DEMO-HEADSET", "DEMO-WEBCAM")
DEMO_STOCK = 100
DEMO_PRICES = ("49.90", "19.90", "189.00", "59.00", "39.90")
"""Cart offers of the demo products, in DEMO_CATALOG order (EUR)."""
DEMO_VENDORS = ("acme", "acme", "globex", "globex", "initech")
"""The vendor of each demo product, in DEMO_CATALOG order."""

SHORT_SKU, SHORT_VENDOR, SHORT_PRICE, SHORT_MOQ = "DEMO-CABLE", "initech", "9.90", 2
"""The product the demo's marketplace carts run short of (sold in twos)."""


async def seed_catalog(settings: Settings) -> list[str]:
    """Create the demo products (stock and cart offer) that do not exist yet; never overwrite."""
    products = (*DEMO_CATALOG, SHORT_SKU)
    terms = [(p, v, 1) for p, v in zip(DEMO_PRICES, DEMO_VENDORS, strict=True)]
    terms.append((SHORT_PRICE, SHORT_VENDOR, SHORT_MOQ))
    engine = create_engine(settings, pool_size=1)
    try:
        async with engine.begin() as conn:
            existing = {row["sku"] for row in await inventory_repo.stock(conn, products)}
            created = [sku for sku in products if sku not in existing]
            for sku in created:
                await inventory_repo.set_stock(conn, sku, DEMO_STOCK)
            # The cart API sells at offers: the demo products get one unless they have one.
            offered = await catalog.get_offers(conn, products)
            for sku, (price, vendor, moq) in zip(products, terms, strict=True):
                if sku not in offered:
                    await catalog.set_offer(
                        conn, sku, Decimal(price), "EUR", vendor_id=vendor, moq=moq
                    )
    finally:
        await engine.dispose()
    return created


def demo_products() -> str:
    """The demo products and their vendors, for the dev stack's banner."""
    vendors = (*DEMO_VENDORS, SHORT_VENDOR)
    return ", ".join(
        f"{sku} ({vendor})" for sku, vendor in zip((*DEMO_CATALOG, SHORT_SKU), vendors, strict=True)
    )


def example_checkout(sku: str) -> tuple[str, str]:
    """(order id, one-line wire JSON) of a CheckoutStarted for one unit of sku."""
    order_id = str(uuid.uuid4())
    envelope = {
        "message_id": str(uuid.uuid4()),
        "message_type": CheckoutStarted.message_type,
        "correlation_id": order_id,
        "causation_id": None,
        "occurred_at": datetime.now(UTC).isoformat(),
        "schema_version": 1,
        "payload": {
            "order_id": order_id,
            "buyer_id": "buyer-1",
            "currency": "EUR",
            "items": [{"sku": sku, "quantity": 1, "unit_price": "49.90"}],
        },
    }
    return order_id, json.dumps(envelope, separators=(",", ":"))


@dataclass
class GroupTally:
    """What became of the demo's marketplace checkouts, as the cart's group view shows them."""

    carts: int
    vendors: tuple[str, ...]
    by_status: Counter[GroupStatus] = field(default_factory=Counter)
    by_policy: Counter[tuple[GroupStatus, CheckoutPolicy]] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)

    @property
    def unfinished(self) -> int:
        """Groups still processing when the demo stopped waiting."""
        return self.by_status[GroupStatus.PROCESSING]


@dataclass(frozen=True)
class _Placed:
    group_id: uuid.UUID
    buyer_id: str
    policy: CheckoutPolicy


async def drive_marketplace(
    settings: Settings, engine: AsyncEngine, carts: int, seed: int, timeout_s: float
) -> GroupTally:
    """Check out `carts` multi-vendor carts (every other one partial) and wait for each group."""
    async with engine.begin() as conn:
        # Each cart asks for SHORT_MOQ units: about half of them find the product in stock.
        await inventory_repo.set_stock(conn, SHORT_SKU, carts)
        offers = await catalog.get_offers(conn, (*DEMO_CATALOG, SHORT_SKU))
    shelves = _shelves(offers.values())
    tally = GroupTally(carts=carts, vendors=tuple(sorted(shelves)))
    rng, gate = random.Random(seed), asyncio.Semaphore(8)
    plans = [(_cart_lines(rng, shelves), _policy(i)) for i in range(carts)]

    async def place(lines: list[tuple[str, int]], policy: CheckoutPolicy) -> _Placed | None:
        async with gate:
            return await _check_out(settings, engine, lines, policy, tally)

    placed = await asyncio.gather(*(place(lines, policy) for lines, policy in plans))
    await _await_outcomes(engine, [p for p in placed if p], tally, timeout_s)
    return tally


def _policy(index: int) -> CheckoutPolicy:
    return CheckoutPolicy.PARTIAL if index % 2 == 0 else CheckoutPolicy.ALL_OR_NOTHING


def _shelves(offers: Iterable[Offer]) -> dict[str, list[Offer]]:
    """The active demo offers by vendor; the short vendor sells only its short product here."""
    shelves: dict[str, list[Offer]] = {}
    for offer in offers:
        short_vendor = offer.vendor_id == SHORT_VENDOR and offer.sku != SHORT_SKU
        if offer.active and not short_vendor:
            shelves.setdefault(offer.vendor_id, []).append(offer)
    return shelves


def _cart_lines(rng: random.Random, shelves: dict[str, list[Offer]]) -> list[tuple[str, int]]:
    """One product of every vendor, at least its MOQ of it."""
    lines = []
    for vendor in sorted(shelves):
        offer = rng.choice(sorted(shelves[vendor], key=lambda o: o.sku))
        lines.append((offer.sku, max(offer.moq, rng.randint(1, 2))))
    return lines


async def _check_out(
    settings: Settings,
    engine: AsyncEngine,
    lines: list[tuple[str, int]],
    policy: CheckoutPolicy,
    tally: GroupTally,
) -> _Placed | None:
    buyer, lanes = f"demo-shopper-{uuid.uuid4().hex[:12]}", settings.relay.lanes
    try:
        async with engine.begin() as conn:
            for sku, qty in lines:
                await shopping.add_item(conn, buyer, sku, qty, None, lanes)
            details = shopping.CheckoutDetails(policy=policy)
            pricer = Pricer(settings.cart.prices_include_tax)
            done = await shopping.check_out(conn, buyer, None, details, lanes, pricer)
    except (CartRuleError, PriceChangedError) as refused:
        tally.refused[str(refused)[:60]] += 1
        return None
    return _Placed(done.group_id, buyer, policy)


async def _await_outcomes(
    engine: AsyncEngine, placed: list[_Placed], tally: GroupTally, timeout_s: float
) -> None:
    deadline, pending = time.monotonic() + timeout_s, list(placed)
    while pending and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        pending = [p for p in pending if not await _settled(engine, p, tally, final_only=True)]
    for still in pending:
        await _settled(engine, still, tally, final_only=False)


async def _settled(
    engine: AsyncEngine, placed: _Placed, tally: GroupTally, final_only: bool
) -> bool:
    """Count the group once it is final (or now, when not final_only); True when counted."""
    async with engine.connect() as conn:
        group = await groups.find(conn, placed.group_id, placed.buyer_id)
    assert group is not None, f"checkout group {placed.group_id} was not recorded"
    if final_only and group.status is GroupStatus.PROCESSING:
        return False
    tally.by_status[group.status] += 1
    tally.by_policy[group.status, placed.policy] += 1
    return True


def tally_rows(tally: GroupTally) -> list[tuple[str, str]]:
    """The demo summary's rows about the marketplace groups."""

    def of(status: GroupStatus) -> str:
        split = ", ".join(
            f"{policy.value} {tally.by_policy[status, policy]}" for policy in CheckoutPolicy
        )
        return f"{tally.by_status[status]} ({split})"

    return [
        ("marketplace carts", f"{tally.carts} (vendors {', '.join(tally.vendors)})"),
        *((f"refused: {reason}", str(n)) for reason, n in tally.refused.most_common()),
        ("groups completed", of(GroupStatus.COMPLETED)),
        ("groups partially completed", of(GroupStatus.PARTIALLY_COMPLETED)),
        ("groups failed", of(GroupStatus.FAILED)),
        ("groups unfinished", str(tally.unfinished)),
    ]
