"""Request bodies about pricing: a coupon code, a delivery choice, the totals a buyer saw."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field

from services.cart.http.schemas import RequestBody
from services.cart.totals import DiscountLine, Totals

Money = Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2)]

Code = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^\s*[A-Za-z0-9][A-Za-z0-9_-]*\s*$",
        description="A coupon code (letters, digits, - and _; compared case-insensitively).",
    ),
]


class CouponIn(RequestBody):
    """A code to enter on the cart."""

    code: Code


class DeliveryIn(RequestBody):
    """Where the cart ships and how; null parts are not chosen (yet)."""

    country: str | None = Field(
        default=None, description='ISO 3166-1 alpha-2, e.g. "DE".', min_length=2, max_length=2
    )
    region: str | None = Field(
        default=None, description='ISO 3166-2 subdivision, e.g. "US-CA".', max_length=16
    )
    shipping_method: str | None = Field(default=None, min_length=1, max_length=64)


class DiscountIn(RequestBody):
    """One promotion's discount as the cart showed it."""

    promotion_id: str = Field(min_length=1, max_length=64)
    code: str | None = Field(default=None, max_length=64)
    amount: Money


class TotalsIn(RequestBody):
    """The totals the buyer was shown (GET /cart's `totals`, sent back as they were)."""

    currency: str = Field(min_length=3, max_length=3)
    prices_include_tax: bool
    subtotal: Money
    discounts: list[DiscountIn] = Field(max_length=50)
    discount_total: Money
    shipping: Money
    tax: Money
    grand_total: Money

    def as_totals(self) -> Totals:
        """The pricing domain's totals."""
        return Totals(
            subtotal=self.subtotal,
            discounts=tuple(DiscountLine(d.promotion_id, d.code, d.amount) for d in self.discounts),
            discount_total=self.discount_total,
            shipping=self.shipping,
            tax=self.tax,
            grand_total=self.grand_total,
            currency=self.currency,
            prices_include_tax=self.prices_include_tax,
        )
