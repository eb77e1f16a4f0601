"""/api/v1/guest-sessions and /cart/merge: shop as a guest, then bring the cart on sign-in.

A guest shops with `Authorization: Guest <token>` on the cart, checkout and order routes; what
a guest may not do (merge, check out without an e-mail) is refused here and in checkout.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from services.cart import guests, merging
from services.cart.http.deps import CallerDep, Ctx, changing, respond
from services.cart.http.guest_schemas import GuestSessionOut, MergeOut, MergeRequest
from services.cart.http.problems import ProblemError, documented
from services.cart.http.schemas import FieldError, dump
from services.cart.idempotency import StoredResponse

router = APIRouter(tags=["guests"])

IDENTITY = "x-identity"
"""Operation extension naming who may call it (CartApi.openapi turns it into `security`)."""


@router.post(
    "/guest-sessions",
    status_code=201,
    response_model=GuestSessionOut,
    openapi_extra={IDENTITY: "anyone"},
)
async def start_guest_session(ctx: Ctx) -> JSONResponse:
    """A new guest token (no identity needed); only its hash is kept."""
    async with ctx.engine.begin() as conn:
        issued = await guests.issue(conn, ctx.guest_ttl)
    body = GuestSessionOut(token=issued.token, expires_at=issued.expires_at)
    # A credential: no cache may keep it.
    return JSONResponse(dump(body), status_code=201, headers={"Cache-Control": "no-store"})


def _renderer(ctx: Ctx) -> merging.Render:
    async def render(conn: AsyncConnection, merge: merging.Merge) -> Any:
        quote = None
        if merge.cart is not None:
            quote = await ctx.pricer.quote(conn, merge.cart)
        return dump(MergeOut.of(merge, quote))

    return render


@router.post(
    "/cart/merge",
    response_model=MergeOut,
    responses=documented(400, 401, 403, 409, 422),
    openapi_extra={IDENTITY: "buyer"},
)
async def merge_guest_cart(body: MergeRequest, ctx: Ctx, caller: CallerDep) -> JSONResponse:
    """Take a guest cart into the signed-in buyer's cart, once (a retry answers the same)."""
    if caller.guest:
        reason = "a guest cannot merge carts; sign in first"
        raise ProblemError(
            403, "Forbidden", reason, FieldError(field="Authorization", reason=reason)
        )
    # The buyer's cart changes: its cached copy goes. The guest's cannot be read any more (its
    # session ends with the merge, so its token is refused before any cache is read).
    async with changing(ctx, caller.buyer_id), ctx.engine.begin() as conn:
        answer, replayed = await merging.merge_guest(
            conn, caller.buyer_id, body.guest_token, ctx.lanes, _renderer(ctx)
        )
    return respond(StoredResponse(200, answer), replayed)
