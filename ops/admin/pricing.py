"""The shop's pricing rules over the admin API: promotions, shipping methods and tax rates.

Every change runs in one transaction through services/cart/rules_admin.py and, once committed,
makes every cached cart's totals stale (the cart cache's rules generation), so the next GET /cart
prices with the new rules. A rule the pricing engine refuses is answered 422 with its reason; a
code another promotion has, 409.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Path, Request, Response
from sqlalchemy.ext.asyncio import AsyncConnection

from ops.admin.context import AdminContext
from ops.admin.pricing_rules import (
    PromotionBody,
    PromotionView,
    ShippingMethodBody,
    ShippingMethodRule,
    TaxRateBody,
    TaxRateRule,
)
from ops.admin.routes import NOT_FOUND, UNREADABLE, Refusal
from services.cart import rules_admin
from services.cart.rules_checks import AREA, ID, CodeTakenError, RuleRefusedError

T = TypeVar("T")

router = APIRouter(tags=["pricing rules"])

# The ids' shapes, so that a text PostgreSQL cannot hold (a NUL) never reaches a query.
RuleId = Annotated[str, Path(pattern=f"^{ID.pattern}$", examples=["summer-sale"])]
Area = Annotated[str, Path(pattern=f"^{AREA.pattern}$", examples=["DE", "US-CA"])]
REFUSED_RULE: dict[int | str, dict[str, Any]] = {
    **UNREADABLE,
    422: {
        "description": "Invalid input: FastAPI's field errors, or the rule's refusal in one sentence",
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/Refusal"},
                        {"$ref": "#/components/schemas/HTTPValidationError"},
                    ]
                }
            }
        },
    },
}
CODE_TAKEN: dict[int | str, dict[str, Any]] = {
    409: {"model": Refusal, "description": "Its code is another promotion's (active or not)"}
}


def _context(request: Request) -> AdminContext:
    context: AdminContext = request.app.state.admin
    return context


async def _read(request: Request, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    async with _context(request).engine.connect() as conn:
        return await work(conn)


async def _change(
    request: Request, work: Callable[[AsyncConnection], Awaitable[T | None]], missing: str = ""
) -> T:
    """Run a change in one transaction, then forget every cached cart's totals.

    422 (or 409 for a taken code) when refused; 404 `no <missing>` when `work` found nothing
    to change (returned None).
    """
    context = _context(request)
    try:
        async with context.engine.begin() as conn:
            result = await work(conn)
    except CodeTakenError as exc:
        raise HTTPException(409, str(exc)) from None
    except RuleRefusedError as exc:
        raise HTTPException(422, str(exc)) from None
    if result is None:
        raise HTTPException(404, f"no {missing}")
    # After the commit: a cart priced before it must not be served from the cache any more.
    await context.cart_cache.invalidate_rules()
    return result


def _found(found: T | None, what: str) -> T:
    if found is None:
        raise HTTPException(404, f"no {what}")
    return found


@router.get("/promotions", response_model=list[PromotionView])
async def list_promotions(request: Request, active: bool | None = None) -> list[PromotionView]:
    """Every promotion by id (or only the active or inactive ones), codes in full, with uses."""
    found = await _read(request, lambda conn: rules_admin.list_promotions(conn, active))
    return [PromotionView.of(stored) for stored in found]


@router.get("/promotions/{promotion_id}", response_model=PromotionView, responses=NOT_FOUND)
async def get_promotion(request: Request, promotion_id: RuleId) -> PromotionView:
    """One promotion, its code in full, with its uses."""
    found = await _read(request, lambda conn: rules_admin.get_promotion(conn, promotion_id))
    return PromotionView.of(_found(found, f"promotion {promotion_id}"))


@router.put(
    "/promotions/{promotion_id}",
    response_model=PromotionView,
    responses={**REFUSED_RULE, **CODE_TAKEN},
)
async def put_promotion(
    request: Request, promotion_id: RuleId, body: PromotionBody
) -> PromotionView:
    """Create or replace a promotion (its uses stay); `active: false` stores it switched off."""

    async def work(conn: AsyncConnection) -> rules_admin.StoredPromotion:
        promotion = body.pure(promotion_id)
        return await rules_admin.put_promotion(conn, promotion, active=body.active)

    return PromotionView.of(await _change(request, work))


@router.post(
    "/promotions/{promotion_id}/deactivate", response_model=PromotionView, responses=NOT_FOUND
)
async def deactivate_promotion(request: Request, promotion_id: RuleId) -> PromotionView:
    """Stop a promotion applying; its code stays reserved (PUT it again to reactivate it)."""
    stored = await _change(
        request,
        lambda conn: rules_admin.deactivate_promotion(conn, promotion_id),
        f"promotion {promotion_id}",
    )
    return PromotionView.of(stored)


@router.get("/shipping-methods", response_model=list[ShippingMethodRule])
async def list_shipping_methods(
    request: Request, active: bool | None = None
) -> list[ShippingMethodRule]:
    """Every shipping method by id (or only the active or inactive ones)."""
    found = await _read(request, lambda conn: rules_admin.list_shipping_methods(conn, active))
    return [ShippingMethodRule.of(stored) for stored in found]


@router.get("/shipping-methods/{method_id}", response_model=ShippingMethodRule, responses=NOT_FOUND)
async def get_shipping_method(request: Request, method_id: RuleId) -> ShippingMethodRule:
    """One shipping method."""
    found = await _read(request, lambda conn: rules_admin.get_shipping_method(conn, method_id))
    return ShippingMethodRule.of(_found(found, f"shipping method {method_id}"))


@router.put(
    "/shipping-methods/{method_id}", response_model=ShippingMethodRule, responses=REFUSED_RULE
)
async def put_shipping_method(
    request: Request, method_id: RuleId, body: ShippingMethodBody
) -> ShippingMethodRule:
    """Create or replace a shipping method; `active: false` stores it switched off."""

    async def work(conn: AsyncConnection) -> rules_admin.StoredMethod:
        method = body.pure(method_id)
        return await rules_admin.put_shipping_method(
            conn, method, body.currency, active=body.active
        )

    return ShippingMethodRule.of(await _change(request, work))


@router.post(
    "/shipping-methods/{method_id}/deactivate",
    response_model=ShippingMethodRule,
    responses=NOT_FOUND,
)
async def deactivate_shipping_method(request: Request, method_id: RuleId) -> ShippingMethodRule:
    """Stop offering a shipping method (PUT it again to offer it again)."""
    stored = await _change(
        request,
        lambda conn: rules_admin.deactivate_shipping_method(conn, method_id),
        f"shipping method {method_id}",
    )
    return ShippingMethodRule.of(stored)


@router.get("/tax-rates", response_model=list[TaxRateRule])
async def list_tax_rates(request: Request) -> list[TaxRateRule]:
    """Every area's tax rates, by area: countries ("DE") and regions replacing theirs ("US-CA")."""
    found = await _read(request, rules_admin.list_tax_rates)
    return [TaxRateRule.of(stored) for stored in found]


@router.get("/tax-rates/{area}", response_model=TaxRateRule, responses=NOT_FOUND)
async def get_tax_rate(request: Request, area: Area) -> TaxRateRule:
    """One area's tax rates."""
    found = await _read(request, lambda conn: rules_admin.get_tax_rate(conn, area))
    return TaxRateRule.of(_found(found, f"tax rates for {area}"))


@router.put("/tax-rates/{area}", response_model=TaxRateRule, responses=REFUSED_RULE)
async def put_tax_rate(request: Request, area: Area, body: TaxRateBody) -> TaxRateRule:
    """Create or replace an area's tax rates (a region's replace its country's whole)."""

    async def work(conn: AsyncConnection) -> rules_admin.StoredRate:
        return await rules_admin.put_tax_rate(conn, area, body.pure(area))

    return TaxRateRule.of(await _change(request, work))


@router.delete("/tax-rates/{area}", status_code=204, responses=NOT_FOUND)
async def delete_tax_rate(request: Request, area: Area) -> Response:
    """Remove an area's tax rates: carts shipping there are refused until it has some again."""

    async def work(conn: AsyncConnection) -> bool | None:
        return await rules_admin.delete_tax_rate(conn, area) or None

    await _change(request, work, f"tax rates for {area}")
    return Response(status_code=204)
