"""What a priced checkout charges: its promotions, each line's share, the shipping, the tax.

`CheckoutStarted.pricing` carries one `CheckoutPricing`; the cart computes it (rounding each
amount once, to the cent), and this module only checks that the parts add up, exactly: it never
rounds. The checks that need the checkout's lines (their amounts) live on CheckoutStarted.
Pure: imports only the standard library, pydantic and the other contract modules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from contracts.types import MAX_LINE_ITEMS, NO_NUL, Money, Sku, TotalAmount
from contracts.wire_model import WireModel

MAX_DISCOUNTS = 20
"""Promotions one checkout may apply; the cart's own limits keep far below it."""

ZERO = Decimal("0.00")

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NO_NUL)]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
"""ISO 3166-1 alpha-2, upper case: "DE", "US"."""
Region = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}-[A-Z0-9]{1,3}$")]
"""ISO 3166-2, the full code with its country: "US-CA", never "CA" alone."""


def _total(amounts: Iterable[Decimal]) -> Decimal:
    return sum(amounts, ZERO)


class AppliedDiscount(WireModel):
    """One promotion a priced checkout applied: which, the code entered (if any), how much off."""

    promotion_id: ShortText
    code: ShortText | None = Field(
        default=None, description="The code the buyer entered; null for an automatic promotion."
    )
    amount: Money = Field(description="What it took off the checkout, in whole cents.")


class LineCharge(WireModel):
    """What one line costs the buyer inside the grand total, and the discount and tax in it."""

    sku: Sku
    discount: TotalAmount = Field(description="The promotions' share taken off this line.")
    tax: TotalAmount = Field(
        description="The line's tax: included in its price when prices_include_tax, else added."
    )
    charge: TotalAmount = Field(
        description="quantity x unit_price - discount, plus tax when prices are net."
    )


class ShippingCharge(WireModel):
    """How a priced checkout ships: the method, the destination, its price and the tax on it."""

    method_id: ShortText
    country: Country
    region: Region | None = Field(
        default=None, description="ISO 3166-2 subdivision (US-CA), when the address names one."
    )
    price: TotalAmount = Field(
        description="As the shop stores prices: tax included when prices_include_tax, else net."
    )
    tax: TotalAmount

    @model_validator(mode="after")
    def _region_in_country(self) -> ShippingCharge:
        if self.region is not None and not self.region.startswith(f"{self.country}-"):
            raise ValueError(f"region {self.region} is not a subdivision of {self.country}")
        return self


class CheckoutPricing(WireModel):
    """The totals a priced checkout was placed at; the buyer is charged its grand_total."""

    prices_include_tax: Annotated[bool, Field(strict=True)] = Field(
        description="true: unit prices and the shipping price include their tax (it is only "
        "shown); false: they are net and the tax is added to the grand total."
    )
    subtotal: TotalAmount = Field(description="Sum of quantity x unit_price over the items.")
    discounts: Annotated[list[AppliedDiscount], Field(max_length=MAX_DISCOUNTS)] = Field(
        default=[], description="The promotions applied, each once."
    )
    discount_total: TotalAmount
    shipping: ShippingCharge | None = Field(default=None, description="null: nothing shipped.")
    tax: TotalAmount = Field(description="Every line's tax plus the shipping's.")
    grand_total: TotalAmount = Field(
        description="subtotal - discount_total + shipping price, plus tax when prices are net: "
        "what the buyer is charged."
    )
    lines: Annotated[list[LineCharge], Field(min_length=1, max_length=MAX_LINE_ITEMS)] = Field(
        description="One per item, by sku: what each line costs inside the grand total."
    )

    @property
    def shipping_charge(self) -> Decimal:
        """What shipping adds to the grand total: its price, plus its tax when prices are net."""
        if self.shipping is None:
            return ZERO
        return self.shipping.price + self.added_tax(self.shipping.tax)

    def added_tax(self, tax: Decimal) -> Decimal:
        """The part of a tax amount the grand total adds (none when prices include tax)."""
        return ZERO if self.prices_include_tax else tax

    def charges(self) -> dict[str, Decimal]:
        """Each line's charge, by sku."""
        return {line.sku: line.charge for line in self.lines}

    @model_validator(mode="after")
    def _adds_up(self) -> CheckoutPricing:
        problem = next(iter(_problems(self)), None)
        if problem is not None:
            raise ValueError(problem)
        return self


def _problems(p: CheckoutPricing) -> Iterable[str]:
    """Every rule the pricing breaks on its own, first found first (lazily: one is enough)."""
    ids = [d.promotion_id for d in p.discounts]
    if len(set(ids)) != len(ids):
        yield "each promotion may appear only once in discounts"
    skus = [line.sku for line in p.lines]
    if len(set(skus)) != len(skus):
        yield "each sku may appear only once in lines"
    applied = _total(d.amount for d in p.discounts)
    if p.discount_total != applied:
        yield f"discount_total {p.discount_total} is not the sum of the discounts ({applied})"
    on_lines = _total(line.discount for line in p.lines)
    if p.discount_total != on_lines:
        yield f"discount_total {p.discount_total} is not the lines' discounts ({on_lines})"
    shipping_tax = ZERO if p.shipping is None else p.shipping.tax
    taxes = _total(line.tax for line in p.lines) + shipping_tax
    if p.tax != taxes:
        yield f"tax {p.tax} is not the lines' tax plus the shipping's ({taxes})"
    shipping_price = ZERO if p.shipping is None else p.shipping.price
    parts = p.subtotal - p.discount_total + shipping_price + p.added_tax(p.tax)
    if p.grand_total != parts:
        yield (
            f"grand_total {p.grand_total} is not subtotal - discount_total + shipping price"
            f"{'' if p.prices_include_tax else ' + tax'} ({parts})"
        )
    charged = _total(line.charge for line in p.lines) + p.shipping_charge
    if p.grand_total != charged:
        yield f"grand_total {p.grand_total} is not the lines' charges plus shipping ({charged})"


def disagreements(pricing: CheckoutPricing, amounts: Mapping[str, Decimal]) -> Iterable[str]:
    """Every rule the pricing breaks against its checkout's line amounts (quantity x unit price).

    Lazily, first found first: CheckoutStarted reports the first.
    """
    priced = {line.sku for line in pricing.lines}
    missing, unknown = sorted(amounts.keys() - priced), sorted(priced - amounts.keys())
    if missing or unknown:
        yield (
            "pricing.lines must price each item once: "
            + "; ".join(
                f"{what} {', '.join(skus)}"
                for what, skus in (("missing", missing), ("not an item", unknown))
                if skus
            )
        )
        return
    subtotal = _total(amounts.values())
    if pricing.subtotal != subtotal:
        yield f"pricing.subtotal {pricing.subtotal} is not the items' amounts ({subtotal})"
    for line in pricing.lines:
        amount = amounts[line.sku]
        if line.discount > amount:
            yield f"pricing line {line.sku}: discount {line.discount} exceeds its amount {amount}"
        charge = amount - line.discount + pricing.added_tax(line.tax)
        if line.charge != charge:
            added = "" if pricing.prices_include_tax else " + tax"
            yield (
                f"pricing line {line.sku}: charge {line.charge} is not "
                f"quantity x unit_price - discount{added} ({charge})"
            )
