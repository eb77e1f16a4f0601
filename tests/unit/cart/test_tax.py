"""Tax rules, pure: rates by destination and category, net vs gross, shipping, per-line rounding."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.cart.pricing_lines import to_cents
from services.cart.shipping import Destination
from services.cart.tax import (
    SHIPPING_LINE,
    LineTax,
    RateTable,
    TaxableLine,
    TaxRates,
    UnknownTaxDestinationError,
    line_tax,
    tax_for,
)

D = Decimal
DE = Destination("DE")
RATES = TaxRates(
    countries={
        "DE": RateTable(D("0.19"), {"food": D("0.07")}),
        "AT": RateTable(D("0.20"), {"food": D("0.10")}),
        "US": RateTable(D("0")),
    },
    # California's table replaces the US one whole: its own standard rate, groceries untaxed.
    regions={"US-CA": RateTable(D("0.0725"), {"food": D("0")})},
)
NO_SHIPPING = D("0.00")


def _lines(*amounts: tuple[str, str | None]) -> list[TaxableLine]:
    return [
        TaxableLine(f"l{i}", category, D(amount)) for i, (amount, category) in enumerate(amounts)
    ]


@pytest.mark.parametrize(
    ("lines", "shipping", "destination", "gross", "line_taxes", "shipping_tax"),
    [
        pytest.param(
            _lines(("100.00", None)), "0.00", DE, False, ["19.00"], "0.00", id="net-standard-added"
        ),
        pytest.param(
            _lines(("119.00", None)),
            "0.00",
            DE,
            True,
            ["19.00"],
            "0.00",
            id="gross-standard-extracted",
        ),
        pytest.param(
            _lines(("100.00", "food")),
            "0.00",
            DE,
            False,
            ["7.00"],
            "0.00",
            id="net-reduced-category",
        ),
        pytest.param(
            _lines(("107.00", "food")),
            "0.00",
            DE,
            True,
            ["7.00"],
            "0.00",
            id="gross-reduced-category",
        ),
        pytest.param(
            _lines(("100.00", "toys")),
            "0.00",
            DE,
            False,
            ["19.00"],
            "0.00",
            id="category-without-rate-is-standard",
        ),
        pytest.param(
            _lines(("100.00", None)),
            "0.00",
            Destination("AT"),
            False,
            ["20.00"],
            "0.00",
            id="rate-by-country",
        ),
        pytest.param(
            _lines(("100.00", None)),
            "0.00",
            Destination("US", "US-CA"),
            False,
            ["7.25"],
            "0.00",
            id="region-override",
        ),
        pytest.param(
            _lines(("100.00", "food")),
            "0.00",
            Destination("US", "US-CA"),
            False,
            ["0.00"],
            "0.00",
            id="region-own-category-rate",
        ),
        pytest.param(
            _lines(("100.00", None)),
            "0.00",
            Destination("US", "US-NY"),
            False,
            ["0.00"],
            "0.00",
            id="region-without-table-uses-country",
        ),
        pytest.param(
            _lines(("100.00", None)),
            "0.00",
            Destination("DE", "DE-BY"),
            False,
            ["19.00"],
            "0.00",
            id="country-rate-for-its-regions",
        ),
        pytest.param(
            _lines(("10.00", "food")),
            "4.90",
            DE,
            False,
            ["0.70"],
            "0.93",
            id="net-shipping-at-standard-rate",
        ),
        pytest.param(
            _lines(("10.70", "food")),
            "5.83",
            DE,
            True,
            ["0.70"],
            "0.93",
            id="gross-shipping-at-standard-rate",
        ),
        pytest.param(
            _lines(("10.00", None)),
            "4.90",
            Destination("US", "US-CA"),
            False,
            ["0.73"],
            "0.36",
            id="shipping-at-region-rate",
        ),
        # 1.50 x 7 % = 0.105 each: half up per line is 0.11 three times (0.33), where rounding the
        # total (0.315) would give 0.32 and half even per line 0.10 each.
        pytest.param(
            _lines(("1.50", "food"), ("1.50", "food"), ("1.50", "food")),
            "0.00",
            DE,
            False,
            ["0.11", "0.11", "0.11"],
            "0.00",
            id="net-each-line-rounds-half-up",
        ),
        pytest.param(
            _lines(("0.02", None)),
            "0.00",
            DE,
            False,
            ["0.00"],
            "0.00",
            id="net-below-half-cent-rounds-down",
        ),
        pytest.param(
            _lines(("10.00", None)),
            "0.00",
            DE,
            True,
            ["1.60"],
            "0.00",
            id="gross-extraction-rounds-up",
        ),
        pytest.param(
            _lines(("0.01", None)),
            "0.00",
            DE,
            True,
            ["0.00"],
            "0.00",
            id="gross-one-cent-carries-no-tax",
        ),
        pytest.param(
            _lines(("0.00", None)), "0.00", DE, False, ["0.00"], "0.00", id="fully-discounted-line"
        ),
        pytest.param([], "0.00", DE, False, [], "0.00", id="empty-cart"),
    ],
)
def test_tax_for(
    lines: list[TaxableLine],
    shipping: str,
    destination: Destination,
    gross: bool,
    line_taxes: list[str],
    shipping_tax: str,
) -> None:
    breakdown = tax_for(lines, D(shipping), destination, RATES, gross)
    assert [line.tax for line in breakdown.lines] == [D(tax) for tax in line_taxes]
    assert breakdown.shipping.tax == D(shipping_tax)
    assert breakdown.shipping.line_id == SHIPPING_LINE
    assert breakdown.total == sum((D(t) for t in [*line_taxes, shipping_tax]), D(0))


def test_net_and_gross_storage_of_the_same_cart_carry_the_same_tax() -> None:
    net = tax_for(_lines(("100.00", None), ("10.00", "food")), D("4.90"), DE, RATES, False)
    gross = tax_for(_lines(("119.00", None), ("10.70", "food")), D("5.83"), DE, RATES, True)
    assert net.total == gross.total == D("20.63")


def test_tax_summed_per_rate_for_the_invoice() -> None:
    breakdown = tax_for(
        _lines(("100.00", None), ("10.00", "food"), ("20.00", "food")), D("4.90"), DE, RATES, False
    )
    assert breakdown.by_rate() == ((D("0.07"), D("2.10")), (D("0.19"), D("19.93")))


def test_a_line_keeps_its_rate_and_amount() -> None:
    assert line_tax("l1", D("107.00"), D("0.07"), True) == LineTax(
        "l1", D("0.07"), D("107.00"), D("7.00")
    )


@pytest.mark.parametrize(
    ("destination", "match"),
    [
        pytest.param(Destination("FR"), "no tax rates for FR", id="unknown-country"),
        pytest.param(
            Destination("FR", "FR-75"), "no tax rates for FR-75", id="unknown-country-with-region"
        ),
    ],
)
def test_refuses_a_destination_without_rates(destination: Destination, match: str) -> None:
    with pytest.raises(UnknownTaxDestinationError, match=match):
        tax_for(_lines(("1.00", None)), NO_SHIPPING, destination, RATES, False)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        pytest.param(lambda: RateTable(D("-0.01")), "between 0 and 1", id="negative-rate"),
        pytest.param(
            lambda: RateTable(D("19")), "between 0 and 1", id="percent-instead-of-fraction"
        ),
        pytest.param(lambda: RateTable(D("NaN")), "between 0 and 1", id="nan-rate"),
        pytest.param(
            lambda: RateTable(D("0.0812345")), "more than 6 decimals", id="seven-decimals"
        ),
        pytest.param(
            lambda: RateTable(D("0.19"), {"food": D("1.07")}),
            "between 0 and 1",
            id="bad-category-rate",
        ),
        pytest.param(
            lambda: line_tax("l1", D("-0.01"), D("0.19"), False),
            "non-negative cent",
            id="negative-amount",
        ),
        pytest.param(
            lambda: line_tax("l1", D("0.015"), D("0.19"), False),
            "non-negative cent",
            id="sub-cent-amount",
        ),
    ],
)
def test_refuses_malformed_rates_and_amounts(make: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


def test_six_decimal_rate_is_accepted() -> None:
    assert RateTable(D("0.08875")).standard == D("0.08875")


_amounts = st.integers(0, 10**9).map(lambda c: D(c).scaleb(-2))
_rates = st.integers(0, 10**6).map(lambda r: D(r).scaleb(-6))


def _half_up_cents(exact: Fraction) -> Fraction:
    # Independent of Decimal: round an exact rational to the cent, half away from zero.
    cents = exact * 100
    whole = cents.numerator // cents.denominator
    return Fraction(whole + (1 if cents - whole >= Fraction(1, 2) else 0), 100)


@settings(max_examples=300, deadline=None)
@given(amount=_amounts, rate=_rates, gross=st.booleans())
def test_each_line_tax_is_the_exact_tax_rounded_half_up(
    amount: Decimal, rate: Decimal, gross: bool
) -> None:
    exact_rate = Fraction(rate)
    exact = Fraction(amount) * (exact_rate / (1 + exact_rate) if gross else exact_rate)
    assert Fraction(line_tax("l", amount, rate, gross).tax) == _half_up_cents(exact)


@settings(max_examples=200, deadline=None)
@given(
    nets=st.lists(
        st.tuples(
            st.integers(0, 10**7).map(lambda c: D(c).scaleb(-2)), st.sampled_from([None, "food"])
        ),
        max_size=8,
    ),
    shipping=st.integers(0, 5000).map(lambda c: D(c).scaleb(-2)),
    country=st.sampled_from(["DE", "AT"]),
)
def test_net_and_gross_agree_within_a_cent_per_line(
    nets: list[tuple[Decimal, str | None]], shipping: Decimal, country: str
) -> None:
    # The same goods stored gross: each net amount with its tax added, rounded to the cent.
    destination = Destination(country)
    table = RATES.table_for(destination)
    net_lines = [
        TaxableLine(f"l{i}", category, amount) for i, (amount, category) in enumerate(nets)
    ]
    gross_lines = [
        TaxableLine(
            line.line_id, line.category, to_cents(line.amount * (1 + table.rate_for(line.category)))
        )
        for line in net_lines
    ]
    gross_shipping = to_cents(shipping * (1 + table.standard))
    net = tax_for(net_lines, shipping, destination, RATES, False)
    gross = tax_for(gross_lines, gross_shipping, destination, RATES, True)
    for added, extracted in zip(
        (*net.lines, net.shipping), (*gross.lines, gross.shipping), strict=True
    ):
        assert abs(added.tax - extracted.tax) <= D("0.01")
    assert abs(net.total - gross.total) <= D("0.01") * (len(nets) + 1)
