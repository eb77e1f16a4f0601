"""Response bodies of a cart's pricing: totals, entered codes, delivery and what blocks checkout."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field

from services.cart.quote import CartQuote, CouponState, DeliveryQuote
from services.cart.totals import Totals


class DiscountOut(BaseModel):
    """What one promotion takes off the cart."""

    promotion_id: str
    code: str | None = Field(description="The code entered; None for an automatic promotion.")
    amount: Decimal


class TotalsOut(BaseModel):
    """What the cart costs: grand_total = subtotal - discount_total + shipping (+ tax when net)."""

    currency: str
    prices_include_tax: bool = Field(description="Prices are gross: the tax is inside them.")
    subtotal: Decimal
    discounts: list[DiscountOut]
    discount_total: Decimal
    shipping: Decimal
    tax: Decimal
    grand_total: Decimal

    @classmethod
    def of(cls, totals: Totals) -> TotalsOut:
        """The API shape of the totals."""
        return cls(
            currency=totals.currency,
            prices_include_tax=totals.prices_include_tax,
            subtotal=totals.subtotal,
            discounts=[
                DiscountOut(promotion_id=d.promotion_id, code=d.code, amount=d.amount)
                for d in totals.discounts
            ],
            discount_total=totals.discount_total,
            shipping=totals.shipping,
            tax=totals.tax,
            grand_total=totals.grand_total,
        )


class CouponOut(BaseModel):
    """A code entered on the cart: applied now, or why not (it applies once the cart qualifies)."""

    code: str
    applied: bool
    promotion_id: str | None
    amount: Decimal | None
    reason: str | None

    @classmethod
    def of(cls, state: CouponState) -> CouponOut:
        """The API shape of a code's state."""
        return cls(
            code=state.code,
            applied=state.applied,
            promotion_id=state.promotion_id,
            amount=state.amount,
            reason=state.reason,
        )


class ShippingOptionOut(BaseModel):
    """A shipping method that can carry the cart to the destination, at its price."""

    method_id: str
    name: str
    price: Decimal
    free: bool
    weight_grams: int


class UnavailableOut(BaseModel):
    """A shipping method that cannot carry this cart there, and why."""

    method_id: str
    reason: str


class DeliveryOut(BaseModel):
    """Where the cart ships and how; the options are listed once a country is chosen."""

    country: str | None
    region: str | None
    shipping_method: str | None
    options: list[ShippingOptionOut]
    unavailable: list[UnavailableOut]

    @classmethod
    def of(cls, delivery: DeliveryQuote, method_id: str | None) -> DeliveryOut:
        """The API shape of the delivery quote."""
        destination = delivery.destination
        return cls(
            country=destination.country if destination else None,
            region=destination.region if destination else None,
            shipping_method=method_id,
            options=[
                ShippingOptionOut(
                    method_id=q.method_id,
                    name=q.name,
                    price=q.price,
                    free=q.free,
                    weight_grams=q.weight_grams,
                )
                for q in delivery.options
            ],
            unavailable=[
                UnavailableOut(method_id=u.method_id, reason=u.reason) for u in delivery.unavailable
            ],
        )


class BlockerOut(BaseModel):
    """Something to settle before the cart can check out."""

    field: str
    reason: str


def blockers_of(quote: CartQuote) -> list[BlockerOut]:
    """What still stands between the cart and its checkout."""
    return [BlockerOut(field=v.field, reason=v.reason) for v in quote.blockers]
