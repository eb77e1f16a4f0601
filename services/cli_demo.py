"""Demo catalog of `checkout-saga dev` and an example checkout in the documented wire format."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from contracts import CheckoutStarted
from services.cart import catalog
from services.inventory import repository as inventory_repo
from services.platform.db import create_engine
from services.platform.settings import Settings

DEMO_CATALOG = ("DEMO-KEYBOARD", "DEMO-MOUSE", "DEMO-MONITOR", "DEMO-HEADSET", "DEMO-WEBCAM")
DEMO_STOCK = 100
DEMO_PRICES = ("49.90", "19.90", "189.00", "59.00", "39.90")
"""Cart offers of the demo products, in DEMO_CATALOG order (EUR)."""


async def seed_catalog(settings: Settings) -> list[str]:
    """Create the demo products (stock and cart offer) that do not exist yet; never overwrite."""
    engine = create_engine(settings, pool_size=1)
    try:
        async with engine.begin() as conn:
            existing = {row["sku"] for row in await inventory_repo.stock(conn, DEMO_CATALOG)}
            created = [sku for sku in DEMO_CATALOG if sku not in existing]
            for sku in created:
                await inventory_repo.set_stock(conn, sku, DEMO_STOCK)
            # The cart API sells at offers: the demo products get one unless they have one.
            offered = await catalog.get_offers(conn, DEMO_CATALOG)
            for sku, price in zip(DEMO_CATALOG, DEMO_PRICES, strict=True):
                if sku not in offered:
                    await catalog.set_offer(conn, sku, Decimal(price), "EUR")
    finally:
        await engine.dispose()
    return created


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
