"""API-tier tests: the cart's HTTP API through an HTTP client, on the real migrated database.

`Shopper` is one buyer talking to the app through httpx's ASGI transport; offers are set
through the catalog, and what the cart wrote is read back from its tables and outbox.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.codec import Decoded, decode
from services.cart import catalog
from services.cart.domain import HOUSE_VENDOR
from services.cart.tables import outbox


def new_buyer() -> str:
    """A buyer no other test uses."""
    return f"buyer-{uuid.uuid4().hex[:12]}"


def new_sku(prefix: str = "API") -> str:
    """A product code no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def offer(
    engine: AsyncEngine,
    sku: str | None = None,
    price: str = "9.99",
    currency: str = "EUR",
    *,
    active: bool = True,
    max_qty: int = 20,
    vendor: str = HOUSE_VENDOR,
    moq: int = 1,
    category: str | None = None,
    brand: str | None = None,
    weight_grams: int = 0,
) -> str:
    """Create or change a product's offer; returns its SKU."""
    sku = sku or new_sku()
    async with engine.begin() as conn:
        await catalog.set_offer(
            conn,
            sku,
            Decimal(price),
            currency,
            active=active,
            max_qty=max_qty,
            vendor_id=vendor,
            moq=moq,
            category=category,
            brand=brand,
            weight_grams=weight_grams,
        )
    return sku


async def sent(engine: AsyncEngine, key: uuid.UUID | str) -> list[Decoded]:
    """The cart's outbox messages under a key (order id or cart id), decoded, in order."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(outbox.c.payload).where(outbox.c.message_key == str(key)).order_by(outbox.c.id)
        )
        return [decode(row.payload) for row in rows]


def types(messages: list[Decoded]) -> list[str]:
    """The message types of decoded messages, in order."""
    return [m.envelope.message_type for m in messages]


class Shopper:
    """One buyer using the cart API (identified by X-Buyer-Id unless told otherwise)."""

    def __init__(self, client: httpx.AsyncClient, buyer_id: str | None = None) -> None:
        self.client = client
        self.buyer_id = buyer_id or new_buyer()

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """This buyer's identity plus extra headers."""
        return {"X-Buyer-Id": self.buyer_id, **(extra or {})}

    async def request(
        self, method: str, path: str, json: Any = None, **headers: str
    ) -> httpx.Response:
        """Any request as this buyer; headers use underscores for dashes (If_Match=...)."""
        named = {k.replace("_", "-"): v for k, v in headers.items()}
        return await self.client.request(method, path, json=json, headers=self.headers(named))

    async def cart(self) -> httpx.Response:
        """GET /cart."""
        return await self.request("GET", "/cart")

    async def add(self, sku: str, qty: int = 1, **headers: str) -> httpx.Response:
        """POST /cart/items."""
        return await self.request("POST", "/cart/items", {"sku": sku, "qty": qty}, **headers)

    async def checkout(
        self, key: str | None = None, body: Any = None, **headers: str
    ) -> httpx.Response:
        """POST /checkout with an Idempotency-Key (a fresh one unless given)."""
        key = key or uuid.uuid4().hex
        return await self.request("POST", "/checkout", body, Idempotency_Key=key, **headers)

    async def items(self) -> dict[str, int]:
        """The active cart's quantities by SKU (empty when there is no cart)."""
        response = await self.cart()
        if response.status_code == 404:
            return {}
        assert response.status_code == 200, response.text
        return {item["sku"]: item["qty"] for item in response.json()["items"]}


def field_errors(response: httpx.Response) -> dict[str, str]:
    """A problem detail's field-level reasons by field (asserting it is one)."""
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = response.json()
    assert body["status"] == response.status_code
    return {e["field"]: e["reason"] for e in body.get("errors", [])}
