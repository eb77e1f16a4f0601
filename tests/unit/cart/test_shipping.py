"""Shipping rules, pure: weight bands, destinations, order-value limits, free shipping, exclusions."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.cart.pricing_lines import PricedLine
from services.cart.shipping import (
    Destination,
    ShippingMethod,
    ShippingQuote,
    ShippingUnavailableError,
    Unavailable,
    WeightBand,
    assess,
    band_price,
    choose,
    quote,
    survey,
)

D = Decimal
DE = Destination("DE")

# Parcel post: three bands up to 31.5 kg, to Germany, Austria and California only, free from 50.
PARCEL = ShippingMethod(
    "parcel",
    "Parcel post",
    frozenset({"DE", "AT", "US-CA"}),
    (WeightBand(1000, D("4.90")), WeightBand(5000, D("6.90")), WeightBand(31500, D("12.90"))),
    free_from=D("50.00"),
)
# Express: Germany only, one band, orders from 20 to 1000, no oversized goods and no sofa.
EXPRESS = ShippingMethod(
    "express",
    "Express",
    frozenset({"DE"}),
    (WeightBand(2000, D("9.90")),),
    min_order_value=D("20.00"),
    max_order_value=D("1000.00"),
    excluded_skus=frozenset({"SOFA-1"}),
    excluded_categories=frozenset({"oversized"}),
)


def _line(
    grams: int = 0, quantity: int = 1, sku: str = "MUG-1", category: str | None = None
) -> PricedLine:
    return PricedLine(f"l-{sku}", sku, quantity, D("10.00"), category, None, grams)


def _quoted(
    price: str, grams: int, free: bool = False, method: ShippingMethod = PARCEL
) -> ShippingQuote:
    return ShippingQuote(method.method_id, method.name, D(price), grams, free)


@pytest.mark.parametrize(
    ("method", "lines", "destination", "order_value", "expected"),
    [
        pytest.param(
            PARCEL, [_line(0)], DE, "10.00", _quoted("4.90", 0), id="weightless-first-band"
        ),
        pytest.param(
            PARCEL, [_line(1000)], DE, "10.00", _quoted("4.90", 1000), id="exactly-at-first-limit"
        ),
        pytest.param(
            PARCEL,
            [_line(1001)],
            DE,
            "10.00",
            _quoted("6.90", 1001),
            id="one-gram-over-first-limit",
        ),
        pytest.param(
            PARCEL, [_line(31500)], DE, "10.00", _quoted("12.90", 31500), id="exactly-at-last-limit"
        ),
        pytest.param(
            PARCEL,
            [_line(31501)],
            DE,
            "10.00",
            Unavailable("parcel", "parcel of 31501 g is above the 31500 g limit"),
            id="one-gram-above-last-band",
        ),
        pytest.param(
            PARCEL,
            [_line(500, quantity=2)],
            DE,
            "10.00",
            _quoted("4.90", 1000),
            id="weight-times-quantity-at-limit",
        ),
        pytest.param(
            PARCEL,
            [_line(334, quantity=3), _line(0, sku="CARD-1")],
            DE,
            "10.00",
            _quoted("6.90", 1002),
            id="weights-summed-over-lines",
        ),
        pytest.param(
            PARCEL,
            [_line(10)],
            Destination("AT"),
            "10.00",
            _quoted("4.90", 10),
            id="served-country",
        ),
        pytest.param(
            PARCEL,
            [_line(10)],
            Destination("FR"),
            "10.00",
            Unavailable("parcel", "does not ship to FR"),
            id="country-not-served",
        ),
        pytest.param(
            PARCEL,
            [_line(10)],
            Destination("DE", "DE-BY"),
            "10.00",
            _quoted("4.90", 10),
            id="country-serves-its-regions",
        ),
        pytest.param(
            PARCEL,
            [_line(10)],
            Destination("US", "US-CA"),
            "10.00",
            _quoted("4.90", 10),
            id="served-region",
        ),
        pytest.param(
            PARCEL,
            [_line(10)],
            Destination("US", "US-NY"),
            "10.00",
            Unavailable("parcel", "does not ship to US-NY"),
            id="other-region-of-country-not-served",
        ),
        pytest.param(
            PARCEL,
            [_line(10)],
            Destination("US"),
            "10.00",
            Unavailable("parcel", "does not ship to US"),
            id="country-without-region",
        ),
        pytest.param(
            PARCEL,
            [_line(10)],
            DE,
            "49.99",
            _quoted("4.90", 10),
            id="one-cent-below-free-threshold",
        ),
        pytest.param(
            PARCEL,
            [_line(10)],
            DE,
            "50.00",
            _quoted("0.00", 10, free=True),
            id="exactly-at-free-threshold",
        ),
        pytest.param(
            PARCEL,
            [_line(31501)],
            DE,
            "80.00",
            Unavailable("parcel", "parcel of 31501 g is above the 31500 g limit"),
            id="free-shipping-does-not-lift-weight-limit",
        ),
        pytest.param(
            EXPRESS,
            [_line(10)],
            DE,
            "19.99",
            Unavailable("express", "needs an order value of at least 20.00"),
            id="one-cent-below-minimum",
        ),
        pytest.param(
            EXPRESS,
            [_line(10)],
            DE,
            "20.00",
            _quoted("9.90", 10, method=EXPRESS),
            id="exactly-at-minimum",
        ),
        pytest.param(
            EXPRESS,
            [_line(10)],
            DE,
            "1000.00",
            _quoted("9.90", 10, method=EXPRESS),
            id="exactly-at-maximum",
        ),
        pytest.param(
            EXPRESS,
            [_line(10)],
            DE,
            "1000.01",
            Unavailable("express", "takes orders up to 1000.00 only"),
            id="one-cent-above-maximum",
        ),
        pytest.param(
            EXPRESS,
            [_line(10), _line(10, sku="SOFA-1")],
            DE,
            "500.00",
            Unavailable("express", "cannot carry SOFA-1"),
            id="excluded-sku",
        ),
        pytest.param(
            EXPRESS,
            [_line(10, sku="TV-9", category="oversized"), _line(10, sku="SOFA-1")],
            DE,
            "500.00",
            Unavailable("express", "cannot carry SOFA-1, TV-9"),
            id="excluded-category-and-sku-all-named",
        ),
    ],
)
def test_assess(
    method: ShippingMethod,
    lines: list[PricedLine],
    destination: Destination,
    order_value: str,
    expected: ShippingQuote | Unavailable,
) -> None:
    assert assess(method, lines, destination, D(order_value)) == expected


def test_quote_lists_available_methods_cheapest_first_ties_by_id() -> None:
    twin = ShippingMethod(
        "another", "Another parcel", frozenset({"DE"}), (WeightBand(5000, D("4.90")),)
    )
    quotes = quote([EXPRESS, PARCEL, twin], [_line(100)], DE, D("30.00"))
    assert [(q.method_id, q.price) for q in quotes] == [
        ("another", D("4.90")),
        ("parcel", D("4.90")),
        ("express", D("9.90")),
    ]


def test_quote_leaves_out_unavailable_methods() -> None:
    assert [
        q.method_id for q in quote([EXPRESS, PARCEL], [_line(100)], Destination("AT"), D("30.00"))
    ] == ["parcel"]


def test_choose_returns_the_chosen_quote() -> None:
    quotes = quote([EXPRESS, PARCEL], [_line(100)], DE, D("30.00"))
    assert choose(quotes, "express") == _quoted("9.90", 100, method=EXPRESS)


def test_choose_refuses_an_unavailable_method_with_its_reason() -> None:
    quotes, unavailable = survey([EXPRESS, PARCEL], [_line(100)], DE, D("10.00"))
    with pytest.raises(ShippingUnavailableError, match=r"at least 20\.00") as refused:
        choose(quotes, "express", unavailable)
    assert refused.value.method_id == "express"


def test_choose_refuses_an_unknown_method_naming_what_is_offered() -> None:
    quotes = quote([EXPRESS, PARCEL], [_line(100)], DE, D("10.00"))
    with pytest.raises(ShippingUnavailableError, match=r"not offered .*available: parcel\)"):
        choose(quotes, "teleport")


def _method(*bands: tuple[int, str], serves: frozenset[str] = frozenset({"DE"})) -> ShippingMethod:
    return ShippingMethod("m", "M", serves, tuple(WeightBand(g, D(p)) for g, p in bands))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        pytest.param(
            lambda: _method((10, "1.00"), serves=frozenset()),
            "serves no destination",
            id="serves-nowhere",
        ),
        pytest.param(lambda: _method(), "at least one weight band", id="no-band"),
        pytest.param(
            lambda: _method((10, "1.00"), (10, "2.00")),
            "strictly increase",
            id="band-limits-repeat",
        ),
        pytest.param(
            lambda: _method((20, "1.00"), (10, "2.00")),
            "strictly increase",
            id="band-limits-decrease",
        ),
        pytest.param(lambda: _method((-1, "1.00")), "strictly increase", id="negative-band-limit"),
        pytest.param(lambda: _method((10, "1.005")), "whole number of cents", id="sub-cent-price"),
        pytest.param(lambda: _method((10, "-1.00")), "whole number of cents", id="negative-price"),
        pytest.param(lambda: _method((10, "NaN")), "whole number of cents", id="nan-price"),
        pytest.param(lambda: Destination("de"), "alpha-2", id="lowercase-country"),
        pytest.param(lambda: Destination("DEU"), "alpha-2", id="alpha-3-country"),
        pytest.param(
            lambda: Destination("DE", "FR-75"), "not a subdivision", id="region-of-another-country"
        ),
        pytest.param(
            lambda: Destination("US", "CA"), "not a subdivision", id="region-without-country-prefix"
        ),
    ],
)
def test_refuses_malformed_configuration(make: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


_limits = st.lists(st.integers(0, 50_000), min_size=1, max_size=6, unique=True).map(sorted)
_cents = st.integers(0, 10_000).map(lambda c: D(c).scaleb(-2))


@settings(max_examples=200, deadline=None)
@given(
    limits=_limits, prices=st.lists(_cents, min_size=6, max_size=6), grams=st.integers(0, 60_000)
)
def test_a_parcel_pays_the_first_band_that_holds_it(
    limits: list[int], prices: list[Decimal], grams: int
) -> None:
    method = ShippingMethod(
        "m",
        "M",
        frozenset({"DE"}),
        tuple(WeightBand(limit, price) for limit, price in zip(limits, prices, strict=False)),
    )
    holding = [band for band in method.bands if grams <= band.up_to_grams]
    price = band_price(method, grams)
    if not holding:
        assert price is None
        assert grams > limits[-1]
    else:
        assert price == holding[0].price
        smaller = [
            band.up_to_grams for band in method.bands if band.up_to_grams < holding[0].up_to_grams
        ]
        assert all(limit < grams for limit in smaller)


@settings(max_examples=200, deadline=None)
@given(value=st.integers(0, 20_000).map(lambda c: D(c).scaleb(-2)), grams=st.integers(0, 31_500))
def test_shipping_is_free_exactly_from_the_threshold(value: Decimal, grams: int) -> None:
    outcome = assess(PARCEL, [_line(grams)], DE, value)
    assert isinstance(outcome, ShippingQuote)
    assert outcome.free == (value >= D("50.00"))
    assert (outcome.price == 0) == outcome.free
