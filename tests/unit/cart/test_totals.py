"""Cart totals, pure: the parts and their exact sum, net vs gross, refusals, and what changed."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.cart.pricing_lines import CENT, PricedLine, to_cents
from services.cart.promotions import (
    AppliedPromotion,
    DiscountKind,
    Discounts,
    Promotion,
    Stacking,
    Usage,
    apply,
)
from services.cart.shipping import (
    Destination,
    ShippingMethod,
    ShippingQuote,
    WeightBand,
    choose,
    quote,
)
from services.cart.tax import RateTable, TaxRates, UnknownTaxDestinationError
from services.cart.totals import (
    Difference,
    DiscountLine,
    InconsistentDiscountsError,
    Totals,
    differences,
    goods_value,
    price,
)

D = Decimal
DE = Destination("DE")
RATES = TaxRates({"DE": RateTable(D("0.19"), {"food": D("0.07")})})


def _line(line_id: str, quantity: int, unit_price: str, category: str | None = None) -> PricedLine:
    return PricedLine(line_id, line_id.upper(), quantity, D(unit_price), category, None, 100)


# The same goods stored net and stored gross (3.50 + 7 % = 3.745, stored as 3.75).
NET = [_line("mug", 2, "10.00"), _line("tea", 3, "3.50", "food")]
GROSS = [_line("mug", 2, "11.90"), _line("tea", 3, "3.75", "food")]


def _off(
    promotion_id: str, per_line: Mapping[str, str], code: str | None = None
) -> AppliedPromotion:
    shares = {line_id: D(share) for line_id, share in per_line.items()}
    return AppliedPromotion(promotion_id, code, sum(shares.values(), D("0.00")), shares)


def _discounts(*applied: AppliedPromotion) -> Discounts:
    return Discounts(applied, ())


def _shipping(amount: str) -> ShippingQuote:
    return ShippingQuote("parcel", "Parcel post", D(amount), 500, D(amount) == 0)


NONE = _discounts()
TENTH = _discounts(_off("P-10", {"mug": "2.00", "tea": "1.05"}, "TENOFF"))
TWO = _discounts(_off("P-MUG", {"mug": "5.00"}, "MUG5"), _off("P-AUTO", {"tea": "1.00"}))


@pytest.mark.parametrize(
    ("lines", "discounts", "shipping", "gross", "expected"),
    [
        # Net: tax 20.00 x 19 % = 3.80 and 10.50 x 7 % = 0.735 -> 0.74, added.
        pytest.param(
            NET, NONE, None, False, ("30.50", "0.00", "0.00", "4.54", "35.04"), id="net-plain"
        ),
        # Gross: the same tax extracted (23.80 -> 3.80, 11.25 -> 0.736 -> 0.74), not added.
        pytest.param(
            GROSS, NONE, None, True, ("35.05", "0.00", "0.00", "4.54", "35.05"), id="gross-plain"
        ),
        # Net, 10 % off split 2.00 / 1.05, parcel 4.90: 18.00 -> 3.42, 9.45 -> 0.66, 4.90 -> 0.93.
        pytest.param(
            NET,
            TENTH,
            _shipping("4.90"),
            False,
            ("30.50", "3.05", "4.90", "5.01", "37.36"),
            id="net-discount-and-shipping",
        ),
        # Gross, 5.00 off the mug, 1.00 off the tea, parcel 5.83: 18.80 -> 3.00, 10.25 -> 0.67, 5.83 -> 0.93.
        pytest.param(
            GROSS,
            TWO,
            _shipping("5.83"),
            True,
            ("35.05", "6.00", "5.83", "4.60", "34.88"),
            id="gross-two-promotions-and-shipping",
        ),
        pytest.param(
            NET,
            NONE,
            _shipping("0.00"),
            False,
            ("30.50", "0.00", "0.00", "4.54", "35.04"),
            id="net-free-shipping",
        ),
        # The tea fully discounted carries no tax; the mug keeps its 3.80.
        pytest.param(
            NET,
            _discounts(_off("P-TEA", {"tea": "10.50"})),
            None,
            False,
            ("30.50", "10.50", "0.00", "3.80", "23.80"),
            id="net-line-fully-discounted",
        ),
        # 2 x 0.125 = 0.25 exactly; 3 x 0.335 = 1.005 -> 1.01 (the line, not the unit, is rounded).
        pytest.param(
            [_line("a", 2, "0.125"), _line("b", 3, "0.335")],
            NONE,
            None,
            True,
            ("1.26", "0.00", "0.00", "0.20", "1.26"),
            id="sub-cent-unit-prices-rounded-per-line",
        ),
        pytest.param(
            [], NONE, None, False, ("0.00", "0.00", "0.00", "0.00", "0.00"), id="empty-cart"
        ),
    ],
)
def test_price(
    lines: list[PricedLine],
    discounts: Discounts,
    shipping: ShippingQuote | None,
    gross: bool,
    expected: tuple[str, str, str, str, str],
) -> None:
    totals = price(lines, discounts, shipping, DE, RATES, gross, "EUR")
    parts = (
        totals.subtotal,
        totals.discount_total,
        totals.shipping,
        totals.tax,
        totals.grand_total,
    )
    assert parts == tuple(D(value) for value in expected)
    assert (totals.currency, totals.prices_include_tax) == ("EUR", gross)


def test_discounts_are_shown_per_promotion_in_the_engines_order() -> None:
    totals = price(NET, TWO, None, DE, RATES, False, "EUR")
    assert totals.discounts == (
        DiscountLine("P-MUG", "MUG5", D("5.00")),
        DiscountLine("P-AUTO", None, D("1.00")),
    )


def test_goods_value_is_what_shipping_rules_read() -> None:
    assert goods_value(NET, TWO) == D("24.50")


@pytest.mark.parametrize(
    ("lines", "discounts", "match"),
    [
        pytest.param(
            NET,
            _discounts(AppliedPromotion("P", None, D("1.00"), {"mug": D("0.50")})),
            "does not sum",
            id="allocation-short",
        ),
        pytest.param(
            NET,
            _discounts(_off("P", {"ghost": "1.00"})),
            "unknown lines",
            id="allocated-to-unknown-line",
        ),
        pytest.param(
            NET,
            _discounts(_off("P", {"tea": "10.51"})),
            "exceed its amount 10.50",
            id="one-cent-above-line",
        ),
        pytest.param(
            NET,
            _discounts(_off("P", {"tea": "6.00"}), _off("Q", {"tea": "5.00"})),
            "discounts of 11.00 exceed",
            id="two-promotions-above-line",
        ),
        pytest.param(
            NET, _discounts(_off("P", {"mug": "0.005"})), "whole cents", id="sub-cent-share"
        ),
        pytest.param(
            NET, _discounts(_off("P", {"mug": "-1.00"})), "whole cents", id="negative-share"
        ),
        pytest.param(
            [*NET, _line("mug", 1, "1.00")], NONE, "appears twice", id="duplicate-line-id"
        ),
    ],
)
def test_refuses_discounts_that_do_not_fit_the_cart(
    lines: list[PricedLine], discounts: Discounts, match: str
) -> None:
    with pytest.raises(InconsistentDiscountsError, match=match):
        price(lines, discounts, None, DE, RATES, False, "EUR")


def test_refuses_a_destination_without_tax_rates() -> None:
    with pytest.raises(UnknownTaxDestinationError):
        price(NET, NONE, None, Destination("FR"), RATES, False, "EUR")


# Seen: 30.50 - 6.00 + 4.90 + tax (15.00 -> 2.85, 9.50 -> 0.665 -> 0.67, 4.90 -> 0.93) = 33.85.
SEEN = price(NET, TWO, _shipping("4.90"), DE, RATES, False, "EUR")


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        pytest.param(SEEN, [], id="nothing-changed"),
        pytest.param(
            price(
                [_line("mug", 2, "11.00"), NET[1]], TWO, _shipping("4.90"), DE, RATES, False, "EUR"
            ),
            [
                Difference("subtotal", D("30.50"), D("32.50")),
                Difference("tax", D("4.45"), D("4.83")),
                Difference("grand_total", D("33.85"), D("36.23")),
            ],
            id="unit-price-changed",
        ),
        pytest.param(
            price(NET, TWO, _shipping("6.90"), DE, RATES, False, "EUR"),
            [
                Difference("shipping", D("4.90"), D("6.90")),
                Difference("tax", D("4.45"), D("4.83")),
                Difference("grand_total", D("33.85"), D("36.23")),
            ],
            id="shipping-changed",
        ),
        pytest.param(
            price(
                NET,
                _discounts(TWO.applied[1], _off("P-NEW", {"mug": "1.00"})),
                _shipping("4.90"),
                DE,
                RATES,
                False,
                "EUR",
            ),
            [
                Difference("discount:P-MUG", D("5.00"), None),
                Difference("discount:P-NEW", None, D("1.00")),
                Difference("discount_total", D("6.00"), D("2.00")),
                Difference("tax", D("4.45"), D("5.21")),
                Difference("grand_total", D("33.85"), D("38.61")),
            ],
            id="promotion-gone-another-applied",
        ),
        pytest.param(
            dataclasses.replace(SEEN, currency="USD", prices_include_tax=True),
            [
                Difference("currency", "EUR", "USD"),
                Difference("prices_include_tax", False, True),
            ],
            id="currency-and-tax-setting",
        ),
    ],
)
def test_differences(now: Totals, expected: list[Difference]) -> None:
    assert differences(SEEN, now) == expected


# Any cart: unit prices with up to three decimals, discounts allocated within each line.
_unit_prices = st.integers(0, 100_000).map(lambda m: D(m).scaleb(-3))


@st.composite
def _carts(draw: st.DrawFn) -> tuple[list[PricedLine], Discounts]:
    count = draw(st.integers(0, 6))
    lines = [
        PricedLine(
            f"l{i}",
            f"SKU-{i}",
            draw(st.integers(1, 5)),
            draw(_unit_prices),
            draw(st.sampled_from([None, "food"])),
            None,
            100,
        )
        for i in range(count)
    ]
    first: dict[str, Decimal] = {}
    second: dict[str, Decimal] = {}
    for line in lines:
        cents = int(to_cents(line.amount) / CENT)
        taken = draw(st.integers(0, cents))
        split = draw(st.integers(0, taken))
        first[line.line_id], second[line.line_id] = D(split) * CENT, D(taken - split) * CENT
    applied = (
        AppliedPromotion("P1", "CODE", sum(first.values(), D("0.00")), first),
        AppliedPromotion("P2", None, sum(second.values(), D("0.00")), second),
    )
    return lines, Discounts(applied[: draw(st.integers(0, 2))], ())


def _exact_tax(
    lines: list[PricedLine], discounts: Discounts, shipping: Decimal, gross: bool
) -> Fraction:
    table = RATES.countries["DE"]
    amounts = [
        (to_cents(line.amount) - discounts.for_line(line.line_id), table.rate_for(line.category))
        for line in lines
    ]
    total = Fraction(0)
    for amount, rate in [*amounts, (shipping, table.standard)]:
        r = Fraction(rate)
        total += Fraction(amount) * (r / (1 + r) if gross else r)
    return total


@settings(max_examples=300, deadline=None)
@given(
    cart=_carts(),
    shipping=st.none() | st.integers(0, 3000).map(lambda c: _shipping(str(D(c) * CENT))),
    gross=st.booleans(),
)
def test_the_grand_total_is_the_sum_of_its_parts(
    cart: tuple[list[PricedLine], Discounts], shipping: ShippingQuote | None, gross: bool
) -> None:
    lines, discounts = cart
    totals = price(lines, discounts, shipping, DE, RATES, gross, "EUR")
    parts = (
        totals.subtotal,
        totals.discount_total,
        totals.shipping,
        totals.tax,
        totals.grand_total,
    )
    assert all(part % CENT == 0 for part in parts)
    added = D(0) if gross else totals.tax
    assert totals.grand_total == totals.subtotal - totals.discount_total + totals.shipping + added
    assert totals.subtotal == sum(
        (to_cents(line.quantity * line.unit_price) for line in lines), D(0)
    )
    assert (
        totals.discount_total == sum((d.amount for d in totals.discounts), D(0)) == discounts.total
    )
    assert totals.discount_total <= totals.subtotal
    # Per-line rounding: at most half a cent per taxed line (and the shipping) from the exact tax.
    shipping_amount = D(0) if shipping is None else shipping.price
    drift = abs(Fraction(totals.tax) - _exact_tax(lines, discounts, shipping_amount, gross))
    assert drift <= Fraction(1, 200) * (len(lines) + 1)


def test_promotions_shipping_and_tax_price_a_cart_together() -> None:
    # The pure modules in the order checkout will call them: discounts, goods value, quote, totals.
    tenth = Promotion("P-10", "TENOFF", DiscountKind.PERCENTAGE, D("10"), Stacking.STACKABLE)
    discounts = apply(
        NET,
        [tenth],
        ["tenoff"],
        buyer_id="b1",
        now=datetime(2025, 1, 1, tzinfo=UTC),
        usage=Usage(),
        currency="EUR",
    )
    parcel = ShippingMethod(
        "parcel",
        "Parcel post",
        frozenset({"DE"}),
        (WeightBand(1000, D("4.90")),),
        free_from=D("50.00"),
    )
    quotes = quote([parcel], NET, DE, goods_value(NET, discounts))
    totals = price(NET, discounts, choose(quotes, "parcel"), DE, RATES, False, "EUR")
    assert totals.discounts == (DiscountLine("P-10", "TENOFF", D("3.05")),)
    # As in the net-discount-and-shipping row: 30.50 - 3.05 + 4.90 + 5.01.
    assert totals.grand_total == D("37.36")
