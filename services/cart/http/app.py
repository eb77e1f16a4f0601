"""The cart API application: `create_http_app(settings, engine)`, and `serve_http` to run it."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from services.cart.cache import CartCache, NoCache, cart_cache
from services.cart.http import (
    problems,
    routes_cart,
    routes_checkout,
    routes_guest,
    routes_pricing,
)
from services.cart.http.deps import ApiContext
from services.platform.db import create_engine
from services.platform.http_server import Listen, serve_asgi
from services.platform.settings import Settings
from services.platform.telemetry.metrics import Metrics

API_PREFIX = "/api/v1"

_DESCRIPTION = """\
Shoppers build a cart whose lines keep a price snapshot of the offer they were added at,
check it out once (even when their network retries) and follow the order to its outcome.

**Buyer identity**: `Authorization: Bearer <buyer id>` or the `X-Buyer-Id` header (the name
is `CHECKOUT_CART__BUYER_HEADER`). Neither is verified here: deploy behind an authenticating
proxy that sets one. A buyer only ever sees their own cart and orders; anything else is 404.

**Guests**: `POST /guest-sessions` issues a token; send `Authorization: Guest <token>` until it
expires (401 after). A guest checks out only with `buyer_email` and cannot merge; on sign-in
the buyer merges the guest cart with `POST /cart/merge` (once; a retry answers the same).

**Concurrency**: every cart response carries `ETag: "<version>"`; send it back as `If-Match`
to refuse a change to a cart that changed meanwhile (409). Without it, concurrent changes of
one cart are applied one after the other; none is lost.

**Idempotency**: `Idempotency-Key` (required on `PUT /cart` and `POST /checkout`, optional on
`POST /cart/items`) replays the first successful answer for 7 days; the same key with another
request is refused (409). Refused requests are not remembered, so they may be retried.

**Errors** are RFC 9457 problem details (`application/problem+json`) with field-level reasons.
"""


class CartApi(FastAPI):
    """The FastAPI app of the cart API: its OpenAPI document says how errors and buyers look."""

    def openapi(self) -> dict[str, Any]:
        """The document, with problem-detail errors and both ways to name the buyer."""
        if self.openapi_schema is not None:
            return self.openapi_schema
        document = super().openapi()
        problems.as_problems(document)
        header = self.state.cart_api.settings.cart.buyer_header
        schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["BuyerHeader"] = {"type": "apiKey", "in": "header", "name": header}
        schemes["GuestToken"] = {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Guest <token>`, the token of POST /api/v1/guest-sessions.",
        }
        buyer: list[dict[str, list[str]]] = [{"HTTPBearer": []}, {"BuyerHeader": []}]
        security = {"anyone": [], "buyer": buyer}
        for operations in document["paths"].values():
            for operation in operations.values():
                who = operation.pop(routes_guest.IDENTITY, None)
                operation["security"] = security.get(who, [*buyer, {"GuestToken": []}])
        return document


def create_http_app(
    settings: Settings, engine: AsyncEngine, cache: CartCache | None = None
) -> CartApi:
    """The cart API over this engine and cache (the caller creates and closes both).

    No cache (the default) reads every cart from PostgreSQL.
    """
    app = CartApi(
        title="checkout-saga cart API",
        version="1.0.0",
        description=_DESCRIPTION,
        openapi_url="/openapi.json",
    )
    app.state.cart_api = ApiContext(engine=engine, settings=settings, cache=cache or NoCache())
    problems.install(app)
    app.include_router(routes_cart.router, prefix=API_PREFIX)
    app.include_router(routes_checkout.router, prefix=API_PREFIX)
    app.include_router(routes_guest.router, prefix=API_PREFIX)
    app.include_router(routes_pricing.router, prefix=API_PREFIX)
    return app


async def serve_http(
    settings: Settings, stop: asyncio.Event | None = None, metrics: Metrics | None = None
) -> bool:
    """Serve the cart API on settings.cart.http_host:http_port until stopped (or Ctrl-C).

    Creates and disposes its own engine and cart cache (CHECKOUT_CART__CACHE_URL), whose counts
    go to metrics when given. Run it with `asyncio.run(serve_http(settings))`, or as a task next
    to a runtime, setting `stop` to shut it down; False if it could not listen.
    """
    engine = create_engine(settings)
    cache = cart_cache(settings.cart)
    if metrics is not None:
        metrics.cart_cache.add(cache.counts)
    cart = settings.cart
    listen = Listen("cart API", cart.http_host, cart.http_port, access_log=True)
    try:
        return await serve_asgi(create_http_app(settings, engine, cache), listen, stop)
    finally:
        await cache.close()
        await engine.dispose()
