"""/api/v1/cart/coupons and /cart/delivery: enter codes, choose where and how the cart ships.

Every answer is the cart, priced (`totals`, `coupons`, `delivery`, `checkout_blockers`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from services.cart import coupons, guesses
from services.cart.domain import Delivery
from services.cart.http.deps import ApiContext, Buyer, Ctx, IfMatch, respond, run_once
from services.cart.http.pricing_requests import CouponIn, DeliveryIn
from services.cart.http.problems import documented
from services.cart.http.routes_cart import priced
from services.cart.http.schemas import CartOut
from services.cart.idempotency import StoredResponse

router = APIRouter(prefix="/cart", tags=["cart"])


def _limit(ctx: ApiContext, buyer: str, request: Request) -> guesses.GuessLimit:
    settings = ctx.settings.cart
    address = request.client.host if request.client else "unknown"
    return guesses.GuessLimit(
        {
            f"buyer:{buyer}": settings.coupon_guesses_per_buyer,
            f"client:{address}": settings.coupon_guesses_per_client,
        },
        settings.coupon_guess_window_s,
    )


@router.post("/coupons", response_model=CartOut, responses=documented(400, 401, 404, 409, 422, 429))
async def enter_coupon(
    body: CouponIn, request: Request, ctx: Ctx, buyer: Buyer, if_match: IfMatch
) -> JSONResponse:
    """Enter a code: it must apply to the cart now (422 with the reason otherwise).

    Entering a code already on the cart changes nothing. Every refused code counts against the
    buyer and the client address; past the limit the answer is 429 with Retry-After until the
    window ends (CHECKOUT_CART__COUPON_GUESSES_PER_BUYER / _PER_CLIENT / _GUESS_WINDOW_S).
    """
    limit = _limit(ctx, buyer, request)
    now = datetime.now(UTC)
    await guesses.check(ctx.engine, limit, now)

    async def work(conn: AsyncConnection) -> StoredResponse:
        cart = await coupons.enter_code(conn, buyer, body.code, if_match, ctx.pricer)
        return await priced(conn, ctx, cart)

    try:
        response, _ = await run_once(ctx, buyer, None, "", work)
    except coupons.CouponRefusedError:
        # Any refused code counts, not only unknown ones: an expired or used-up code found by
        # guessing is still a found code.
        await guesses.record_failure(ctx.engine, limit, now)
        raise
    return respond(response)


@router.delete("/coupons/{code}", response_model=CartOut, responses=documented(400, 401, 404, 409))
async def remove_coupon(
    code: Annotated[str, Path(min_length=1, max_length=64)],
    ctx: Ctx,
    buyer: Buyer,
    if_match: IfMatch,
) -> JSONResponse:
    """Take a code off the cart (404 when it is not on it)."""

    async def work(conn: AsyncConnection) -> StoredResponse:
        return await priced(conn, ctx, await coupons.remove_code(conn, buyer, code, if_match))

    response, _ = await run_once(ctx, buyer, None, "", work)
    return respond(response)


@router.put("/delivery", response_model=CartOut, responses=documented(400, 401, 404, 409, 422))
async def choose_delivery(
    body: DeliveryIn, ctx: Ctx, buyer: Buyer, if_match: IfMatch
) -> JSONResponse:
    """Choose where the cart ships (country, region) and how (a shipping method it offers).

    The answer lists the shipping options at the destination; a method that cannot carry the
    cart there is refused with the reason (422). Sending nulls clears the choice.
    """
    delivery = Delivery(body.country, body.region, body.shipping_method)

    async def work(conn: AsyncConnection) -> StoredResponse:
        cart = await coupons.choose_delivery(conn, buyer, delivery, if_match, ctx.pricer)
        return await priced(conn, ctx, cart)

    response, _ = await run_once(ctx, buyer, None, "", work)
    return respond(response)
