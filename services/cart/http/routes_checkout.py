"""/api/v1/checkout, /orders/{id} and /checkout-groups/{id}: check the cart out, then follow it."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts import CheckoutPolicy
from services.cart import groups, order_view, shopping
from services.cart.domain import CartNotFoundError
from services.cart.http.deps import (
    Buyer,
    CallerDep,
    Ctx,
    IfMatch,
    RequiredKey,
    respond,
    run_once,
)
from services.cart.http.order_schemas import (
    CheckoutAccepted,
    CheckoutGroupOut,
    CheckoutRequest,
    Links,
    OrderOut,
)
from services.cart.http.problems import ProblemError, documented
from services.cart.http.schemas import FieldError, dump
from services.cart.idempotency import StoredResponse, fingerprint

router = APIRouter(tags=["checkout"])


def _links(request: Request) -> Links:
    """Paths of orders and groups as this request reached the API (behind any root path)."""
    root: str = request.scope.get("root_path", "")

    def path(name: str, **params: str) -> str:
        return root + str(request.app.url_path_for(name, **params))

    return Links(
        order=lambda order_id: path("get_order", order_id=str(order_id)),
        group=lambda group_id: path("get_checkout_group", group_id=str(group_id)),
    )


def _identity(details: CheckoutRequest) -> Any:
    """What makes two checkout bodies the same request (the key's fingerprint).

    The default policy and absent expected totals are left out, so that `{}` and a body naming
    the defaults are one request, and keys stored before those fields existed still match.
    """
    body = dump(details)
    if details.policy is CheckoutPolicy.ALL_OR_NOTHING:
        del body["policy"]
    if details.expected_totals is None:
        del body["expected_totals"]
    return body


@router.post(
    "/checkout",
    status_code=202,
    response_model=CheckoutAccepted,
    responses=documented(400, 401, 404, 409, 422),
)
async def checkout(
    request: Request,
    ctx: Ctx,
    caller: CallerDep,
    if_match: IfMatch,
    key: RequiredKey,
    body: Annotated[CheckoutRequest | None, Body()] = None,
) -> JSONResponse:
    """Check the active cart out: it becomes a checkout group, one order per vendor (202, once).

    When an offer changed (price, currency, vendor) since its line was added the answer is 409
    with the differences, and lines below the minimum order quantity, above the cap or sold by
    the buyer's own vendor store are 422 with one reason per line; the cart stays active. The
    cart is re-priced with the current promotions, shipping and tax: a missing delivery choice
    is 422 (`checkout_blockers` of GET /cart), totals other than `expected_totals` are 409 with
    `total_differences`, and so is a promotion whose last use another checkout just took. The
    same Idempotency-Key with the same body replays the first answer; with another body it is
    refused (409). Keys are remembered for 7 days. A guest must give `buyer_email` (422).
    """
    details = body or CheckoutRequest()
    _check_guest(caller, details)
    buyer = caller.buyer_id
    links = _links(request)

    async def work(conn: AsyncConnection) -> StoredResponse:
        expected = details.expected_totals.as_totals() if details.expected_totals else None
        wanted = shopping.CheckoutDetails(details.buyer_email, details.policy, expected)
        done = await shopping.check_out(conn, buyer, if_match, wanted, ctx.lanes, ctx.pricer)
        return StoredResponse(202, dump(CheckoutAccepted.of(done, links)))

    request_hash = fingerprint("POST", request.url.path, _identity(details))
    response, replayed = await run_once(ctx, buyer, key, request_hash, work)
    return respond(response, replayed, Location=str(response.body["order_url"]))


def _check_guest(caller: CallerDep, details: CheckoutRequest) -> None:
    """A guest has no account to reach: the receipt needs an e-mail address."""
    if caller.guest and not details.buyer_email:
        reason = "a guest checks out with buyer_email (the receipt goes there)"
        raise ProblemError(
            422, "Email required", reason, FieldError(field="buyer_email", reason=reason)
        )


@router.get("/orders/{order_id}", response_model=OrderOut, responses=documented(401, 404))
async def get_order(order_id: uuid.UUID, request: Request, ctx: Ctx, buyer: Buyer) -> JSONResponse:
    """The buyer's (vendor) order as the saga moves it: Submitted, then Confirmed or Failed."""
    async with ctx.engine.connect() as conn:
        order = await order_view.find(conn, order_id, buyer)
    if order is None:
        raise CartNotFoundError(f"no order {order_id}")
    return respond(StoredResponse(200, dump(OrderOut.of(order, _links(request)))))


@router.get(
    "/checkout-groups/{group_id}", response_model=CheckoutGroupOut, responses=documented(401, 404)
)
async def get_checkout_group(
    group_id: uuid.UUID, request: Request, ctx: Ctx, buyer: Buyer
) -> JSONResponse:
    """The buyer's checkout group: each vendor order's outcome, the status and balance due."""
    async with ctx.engine.connect() as conn:
        group = await groups.find(conn, group_id, buyer)
    if group is None:
        raise CartNotFoundError(f"no checkout group {group_id}")
    return respond(StoredResponse(200, dump(CheckoutGroupOut.of(group, _links(request)))))
