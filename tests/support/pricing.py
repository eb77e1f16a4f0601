"""Consistent pricings for tests: discounts, tax and shipping that add up as the contract checks.

The cart computes real pricings (services/cart/totals.py); tests only need one that is right by
construction, built from the items with a discount per line, one tax rate and a shipping charge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from contracts import (
    AppliedDiscount,
    CheckoutPricing,
    CheckoutStarted,
    LineCharge,
    LineItem,
    ShippingCharge,
)
from services.cart.pricing_lines import to_cents

ZERO = Decimal("0.00")


def priced(
    items: Sequence[LineItem],
    *,
    discounts: Mapping[str, str] | None = None,
    tax_rate: str = "0",
    shipping: tuple[str, str] | None = None,
    prices_include_tax: bool = False,
    code: str | None = None,
) -> CheckoutPricing:
    """A consistent pricing of these items.

    `discounts` by sku (one promotion, PROMO-1, takes them all), tax at `tax_rate` percent of
    each discounted line, `shipping` as (price, tax).
    """
    off = {sku: Decimal(amount) for sku, amount in (discounts or {}).items()}
    rate = Decimal(tax_rate) / 100
    lines = [_line(item, off.get(item.sku, ZERO), rate, prices_include_tax) for item in items]
    discount_total = sum((line.discount for line in lines), ZERO)
    ship = None
    if shipping is not None:
        ship = ShippingCharge(
            method_id="standard", country="DE", price=Decimal(shipping[0]), tax=Decimal(shipping[1])
        )
    tax = sum((line.tax for line in lines), ZERO) + (ship.tax if ship else ZERO)
    subtotal = sum((i.unit_price * i.quantity for i in items), ZERO)
    added = ZERO if prices_include_tax else tax
    promotions = (
        [AppliedDiscount(promotion_id="PROMO-1", code=code, amount=discount_total)]
        if discount_total
        else []
    )
    return CheckoutPricing(
        prices_include_tax=prices_include_tax,
        subtotal=subtotal,
        discounts=promotions,
        discount_total=discount_total,
        shipping=ship,
        tax=tax,
        grand_total=subtotal - discount_total + (ship.price if ship else ZERO) + added,
        lines=lines,
    )


def _line(item: LineItem, discount: Decimal, rate: Decimal, included: bool) -> LineCharge:
    base = item.unit_price * item.quantity - discount
    # Inside a gross price the tax is base x rate / (1 + rate); on a net one, base x rate.
    tax = to_cents(base * rate / (1 + rate) if included else base * rate)
    return LineCharge(
        sku=item.sku,
        discount=discount,
        tax=tax,
        charge=base if included else base + tax,
    )


def with_pricing(started: CheckoutStarted, pricing: CheckoutPricing | None) -> CheckoutStarted:
    """The checkout with this pricing (None: unpriced), validated as the wire would."""
    fields = started.model_dump(mode="json")
    fields["pricing"] = None if pricing is None else pricing.model_dump(mode="json")
    return CheckoutStarted.model_validate(fields)


def three_vendor_items() -> list[LineItem]:
    """v1 sells A (2 x 10.00), v2 sells B (1 x 5.00) and C (1 x 15.00), v3 sells D (1 x 1.00)."""
    ten, five, fifteen, one = (Decimal(v) for v in ("10.00", "5.00", "15.00", "1.00"))
    return [
        LineItem(sku="A", quantity=2, unit_price=ten, vendor_id="v1"),
        LineItem(sku="B", quantity=1, unit_price=five, vendor_id="v2"),
        LineItem(sku="C", quantity=1, unit_price=fifteen, vendor_id="v2"),
        LineItem(sku="D", quantity=1, unit_price=one, vendor_id="v3"),
    ]
