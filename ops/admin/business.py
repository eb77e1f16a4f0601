"""`GET /admin/v1/business`: the cart's business figures over a window, as the gauges show them.

The figures are defined in services/cart/business.py and read by services/cart/business_queries.py;
this module only shapes them as JSON (money as decimal strings, ratios as numbers or null).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from ops.admin.context import AdminContext
from services.cart.business import MAX_WINDOW, MIN_WINDOW, WINDOW, BusinessFigures, BuyerKind
from services.cart.business_queries import read_figures

router = APIRouter(tags=["admin"])

_HOUR = timedelta(hours=1)


class ActiveCarts(BaseModel):
    """Carts active now (no window): signed-in buyers' and guests'."""

    buyer: int
    guest: int


class EndedCarts(BaseModel):
    """Carts that left `active` in the window, by their last write."""

    checked_out: int
    """Checked out (cleared ones included: clearing follows a confirmed order)."""
    abandoned: int
    merged: int
    """Guest carts merged into a buyer's cart: no ending, in neither rate."""


class OrderValueView(BaseModel):
    """Checkouts of one currency created in the window that completed or partially completed."""

    currency: str
    orders: int
    sales: Decimal
    """The sum of their balances due (what the confirmed vendor orders cost)."""
    average_order_value: Decimal
    """sales / orders, rounded half up to the cent."""


class PromotionUsageView(BaseModel):
    """A promotion's uses redeemed in the window: standing, and given back (the order failed)."""

    promotion_id: str
    uses: int
    returned: int


class DiscountView(BaseModel):
    """What the standing uses of the window took off in one currency."""

    currency: str
    amount: Decimal
    uses: int


class BusinessView(BaseModel):
    """The cart's business figures over the last `window_hours` (services/cart/business.py)."""

    window_hours: int
    active_carts: ActiveCarts
    ended_carts: EndedCarts
    conversion_rate: float | None
    """Checked out / (checked out + abandoned); null when no cart ended in the window."""
    abandonment_rate: float | None
    """Abandoned / (checked out + abandoned); null when no cart ended in the window."""
    orders: list[OrderValueView]
    promotions: list[PromotionUsageView]
    discounts: list[DiscountView]

    @classmethod
    def of(cls, figures: BusinessFigures) -> BusinessView:
        """The view of a window's figures."""
        carts = figures.carts
        return cls(
            window_hours=int(figures.window / _HOUR),
            active_carts=ActiveCarts(
                buyer=carts.active[BuyerKind.BUYER], guest=carts.active[BuyerKind.GUEST]
            ),
            ended_carts=EndedCarts(
                checked_out=carts.converted, abandoned=carts.abandoned, merged=carts.merged
            ),
            conversion_rate=carts.conversion_rate,
            abandonment_rate=carts.abandonment_rate,
            orders=[
                OrderValueView(
                    currency=o.currency,
                    orders=o.orders,
                    sales=o.sales,
                    average_order_value=o.average,
                )
                for o in figures.orders
            ],
            promotions=[
                PromotionUsageView(promotion_id=p.promotion_id, uses=p.uses, returned=p.returned)
                for p in figures.promotions
            ],
            discounts=[
                DiscountView(currency=d.currency, amount=d.amount, uses=d.uses)
                for d in figures.discounts
            ],
        )


_LEAST, _MOST = MIN_WINDOW // _HOUR, MAX_WINDOW // _HOUR
WindowHours = Annotated[
    int,
    Query(ge=_LEAST, le=_MOST, description=f"The last this many hours ({_LEAST} to {_MOST})."),
]


@router.get("/business", response_model=BusinessView)
async def business(request: Request, window_hours: WindowHours = WINDOW // _HOUR) -> BusinessView:
    """Active carts now; over the window: carts ended (conversion and abandonment rates),
    average order value per currency, promotion uses (standing, given back) and discounts."""
    context: AdminContext = request.app.state.admin
    async with context.engine.connect() as conn:
        figures = await read_figures(conn, timedelta(hours=window_hours))
    return BusinessView.of(figures)
