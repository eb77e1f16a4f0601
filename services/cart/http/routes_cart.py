"""/api/v1/cart: the buyer's active cart, its lines and their price snapshots.

Every route acts on the calling buyer's own active cart only: another buyer's cart or line
is simply not found (404), never forbidden.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from services.cart import guests, shopping
from services.cart.cache import CachedCart
from services.cart.domain import ShoppingCart
from services.cart.http.deps import (
    ApiContext,
    Buyer,
    Ctx,
    IfMatch,
    OptionalKey,
    RequiredKey,
    changing,
    respond,
    run_once,
)
from services.cart.http.problems import documented
from services.cart.http.schemas import AddItem, CartOut, ReplaceCart, SetQuantity, dump
from services.cart.idempotency import StoredResponse, fingerprint
from services.cart.quote import CartQuote

router = APIRouter(prefix="/cart", tags=["cart"])

Change = Callable[[AsyncConnection], Awaitable[ShoppingCart]]


async def priced(conn: AsyncConnection, ctx: ApiContext, cart: ShoppingCart) -> StoredResponse:
    """The cart as the API answers it: its lines and its quote with the current rules."""
    return _answer(cart, await ctx.pricer.quote(conn, cart))


def _answer(cart: ShoppingCart, quote: CartQuote) -> StoredResponse:
    return StoredResponse(200, dump(CartOut.of(cart, quote)))


async def _apply(ctx: Ctx, buyer: Buyer, change: Change) -> JSONResponse:
    async def work(conn: AsyncConnection) -> StoredResponse:
        return await priced(conn, ctx, await change(conn))

    response, _ = await run_once(ctx, buyer, None, "", work)
    return respond(response)


async def load_cart(ctx: ApiContext, buyer: str) -> CachedCart:
    """The buyer's active cart from PostgreSQL, rendered as GET answers it (CartNotFoundError).

    Its entry lives no longer than its quote holds: until the next promotion starts or ends.
    """
    async with ctx.engine.connect() as conn:
        cart = await shopping.view(conn, buyer)
        quote = await ctx.pricer.quote(conn, cart)
    body = bytes(respond(_answer(cart, quote)).body)
    return CachedCart(cart.version, body, quote.fresh_for_s)


@router.get("", response_model=CartOut, responses=documented(401, 404))
async def get_cart(ctx: Ctx, buyer: Buyer) -> Response:
    """The active cart with its lines, snapshots and totals (404 when there is none)."""
    cart = await ctx.cache.read(buyer, lambda: load_cart(ctx, buyer))
    # The very bytes and ETag of an uncached answer (respond renders both the same way).
    return Response(cart.body, media_type="application/json", headers={"ETag": f'"{cart.version}"'})


@router.post("/items", response_model=CartOut, responses=documented(400, 401, 409, 422))
async def add_item(
    body: AddItem,
    request: Request,
    ctx: Ctx,
    buyer: Buyer,
    if_match: IfMatch,
    key: OptionalKey = None,
) -> JSONResponse:
    """Add units of a product (or more of one already in the cart) at its current offer."""

    async def work(conn: AsyncConnection) -> StoredResponse:
        cart = await shopping.add_item(conn, buyer, body.sku, body.qty, if_match, ctx.lanes)
        return await priced(conn, ctx, cart)

    request_hash = fingerprint("POST", request.url.path, dump(body))
    response, replayed = await run_once(ctx, buyer, key, request_hash, work)
    return respond(response, replayed)


@router.patch(
    "/items/{item_id}", response_model=CartOut, responses=documented(400, 401, 404, 409, 422)
)
async def set_quantity(
    item_id: uuid.UUID, body: SetQuantity, ctx: Ctx, buyer: Buyer, if_match: IfMatch
) -> JSONResponse:
    """Change one line's quantity (its price snapshot stays)."""
    return await _apply(
        ctx,
        buyer,
        lambda conn: shopping.set_quantity(conn, buyer, item_id, body.qty, if_match, ctx.lanes),
    )


@router.delete("/items/{item_id}", response_model=CartOut, responses=documented(400, 401, 404, 409))
async def remove_item(
    item_id: uuid.UUID, ctx: Ctx, buyer: Buyer, if_match: IfMatch
) -> JSONResponse:
    """Remove one line."""
    return await _apply(
        ctx, buyer, lambda conn: shopping.remove_item(conn, buyer, item_id, if_match, ctx.lanes)
    )


@router.delete("", status_code=204, responses=documented(400, 401, 404, 409))
async def delete_cart(ctx: Ctx, buyer: Buyer, if_match: IfMatch) -> Response:
    """Throw the active cart away."""
    async with changing(ctx, buyer), ctx.engine.begin() as conn:
        await guests.hold(conn, buyer)
        await shopping.discard(conn, buyer, if_match, ctx.lanes)
    return Response(status_code=204)


@router.put("", response_model=CartOut, responses=documented(400, 401, 409, 422))
async def replace_cart(
    body: ReplaceCart, request: Request, ctx: Ctx, buyer: Buyer, if_match: IfMatch, key: RequiredKey
) -> JSONResponse:
    """Replace the whole cart atomically (every line re-priced at its current offer)."""
    items = [(item.sku, item.qty) for item in body.items]

    async def work(conn: AsyncConnection) -> StoredResponse:
        return await priced(
            conn, ctx, await shopping.replace(conn, buyer, items, if_match, ctx.lanes)
        )

    request_hash = fingerprint("PUT", request.url.path, dump(body))
    response, replayed = await run_once(ctx, buyer, key, request_hash, work)
    return respond(response, replayed)
