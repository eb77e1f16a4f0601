"""/api/v1/checkout and /api/v1/orders/{id}: turn the cart into an order, then follow it."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from services.cart import order_view, shopping
from services.cart.domain import CartNotFoundError
from services.cart.http.deps import Buyer, Ctx, IfMatch, RequiredKey, respond, run_once
from services.cart.http.problems import documented
from services.cart.http.schemas import CheckoutAccepted, CheckoutRequest, OrderOut, dump
from services.cart.idempotency import StoredResponse, fingerprint

router = APIRouter(tags=["checkout"])


@router.post(
    "/checkout",
    status_code=202,
    response_model=CheckoutAccepted,
    responses=documented(400, 401, 404, 409, 422),
)
async def checkout(
    request: Request,
    ctx: Ctx,
    buyer: Buyer,
    if_match: IfMatch,
    key: RequiredKey,
    body: Annotated[CheckoutRequest | None, Body()] = None,
) -> JSONResponse:
    """Check the active cart out: re-priced unchanged, it becomes an order (202, once per key).

    When any price changed since its line was added the answer is 409 with the differences
    and the cart stays active. The same Idempotency-Key with the same body replays the first
    answer; with another body it is refused (409). Keys are remembered for 7 days.
    """
    details = body or CheckoutRequest()
    orders_path = request.url.path.removesuffix("/checkout") + "/orders"

    async def work(conn: AsyncConnection) -> StoredResponse:
        done = await shopping.check_out(conn, buyer, if_match, details.buyer_email, ctx.lanes)
        accepted = CheckoutAccepted(
            order_id=done.order_id,
            cart_id=done.cart_id,
            order_url=f"{orders_path}/{done.order_id}",
        )
        return StoredResponse(202, dump(accepted))

    request_hash = fingerprint("POST", request.url.path, dump(details))
    response, replayed = await run_once(ctx, buyer, key, request_hash, work)
    return respond(response, replayed, Location=str(response.body["order_url"]))


@router.get("/orders/{order_id}", response_model=OrderOut, responses=documented(401, 404))
async def get_order(order_id: uuid.UUID, ctx: Ctx, buyer: Buyer) -> JSONResponse:
    """The buyer's order as the saga moves it: Submitted, then Confirmed or Failed."""
    async with ctx.engine.connect() as conn:
        order = await order_view.find(conn, order_id, buyer)
    if order is None:
        raise CartNotFoundError(f"no order {order_id}")
    return respond(StoredResponse(200, dump(OrderOut.of(order))))
