"""What a pricing rule must pass to be stored: ids, codes, areas, labels, amounts their columns hold."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.cart.promotion_types import DiscountKind, Promotion, Selection, Stacking
from services.cart.rules_checks import (
    RuleRefusedError,
    area_destination,
    built,
    label_problem,
    method_problems,
    promotion_problems,
    rate_problems,
)
from services.cart.shipping import Destination, ShippingMethod, WeightBand
from services.cart.tax import RateTable

D = Decimal
NOW = datetime(2026, 12, 1, tzinfo=UTC)
GOOD = Promotion(
    "summer-sale",
    "SUMMER10",
    DiscountKind.PERCENTAGE,
    D("12.5"),
    Stacking.BEST_OF,
    target=Selection(skus=frozenset({"SKU-1"}), categories=frozenset({"books"})),
    exclusions=Selection(brands=frozenset({"Acme"})),
    min_spend=D("20.00"),
    currency="EUR",
    valid_from=NOW,
    valid_until=NOW + timedelta(days=30),
    limit_total=100,
    limit_per_buyer=1,
    priority=-5,
)
PARCEL = ShippingMethod(
    "parcel",
    "Parcel post",
    frozenset({"DE", "US-CA"}),
    (WeightBand(1000, D("4.90")), WeightBand(5000, D("6.90"))),
    min_order_value=D("0.00"),
    max_order_value=D("1000.00"),
    excluded_skus=frozenset({"SOFA-1"}),
    excluded_categories=frozenset({"oversized"}),
    free_from=D("50.00"),
)


def test_a_good_promotion_method_and_rate_table_pass() -> None:
    assert list(promotion_problems(GOOD)) == []
    assert list(promotion_problems(replace(GOOD, code=" winter_2026-x "))) == []
    assert list(method_problems(PARCEL, "EUR")) == []
    assert list(rate_problems("DE", RateTable(D("0.19"), {"food": D("0.07")}))) == []


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"promotion_id": "summer sale"}, "promotion id 'summer sale' must be"),
        ({"promotion_id": ""}, "promotion id '' must be"),
        ({"code": "   "}, "a code must be 1 to 64 letters, digits"),
        ({"code": "TWO WORDS"}, "a code must be 1 to 64 letters, digits"),
        ({"code": "X" * 65}, "a code must be 1 to 64 letters, digits"),
        ({"code": "-SUMMER"}, "a code must be 1 to 64 letters, digits"),
        ({"code": "SUMMER!"}, "a code must be 1 to 64 letters, digits"),
        ({"code": "ÉTÉ10"}, "a code must be 1 to 64 letters, digits"),
        ({"code": " summer-SALE "}, "the id must not be the code"),
        ({"value": D("12.34567")}, "a percentage has at most 4 decimals"),
        ({"kind": DiscountKind.FIXED, "value": D("1E+10")}, "a fixed value must be below"),
        ({"min_spend": D("1E+12")}, "the minimum spend must be below"),
        ({"currency": "eur"}, "currency 'eur' is not an ISO 4217 code"),
        ({"valid_until": NOW}, "valid_until must be after valid_from"),
        ({"valid_from": datetime(1, 1, 1, tzinfo=UTC)}, "between the years 1970 and 9998"),
        ({"valid_until": datetime(9999, 12, 31, tzinfo=UTC)}, "between the years 1970 and 9998"),
        ({"limit_total": 2**31}, "beyond the range"),
        ({"priority": -(2**31) - 1}, "beyond the range"),
        ({"target": Selection()}, "a target must name a sku, category or brand"),
        ({"target": Selection(skus=frozenset({"no sku"}))}, "target: sku 'no sku'"),
        ({"exclusions": Selection(brands=frozenset({" "}))}, "exclusions: brand ' '"),
        ({"exclusions": Selection(categories=frozenset({"a\x00b"}))}, "exclusions: category"),
    ],
)
def test_a_promotion_its_columns_cannot_hold_is_refused(
    change: dict[str, object], complaint: str
) -> None:
    problems = list(promotion_problems(replace(GOOD, **change)))
    assert len(problems) == 1, problems
    assert complaint in problems[0]


def test_a_refusal_never_quotes_the_code() -> None:
    [problem] = promotion_problems(replace(GOOD, promotion_id="autumn", code="HIDDEN WORD"))
    assert problem.startswith("promotion autumn: ")
    assert "HIDDEN" not in problem.upper()


@pytest.mark.parametrize(
    ("change", "currency", "complaint"),
    [
        ({"method_id": "par cel"}, "EUR", "method id 'par cel' must be"),
        ({"name": "\t"}, "EUR", "name '\\t' must be 1 to 128 printable characters"),
        ({}, "Euro", "currency 'Euro' is not an ISO 4217 code"),
        ({"serves": frozenset({"de"})}, "EUR", "serves country 'de' is not an ISO 3166-1"),
        ({"serves": frozenset({"US-CALI"})}, "EUR", "serves area 'US-CALI' is not an ISO 3166-2"),
        ({"bands": (WeightBand(2**31, D("1.00")),)}, "EUR", "band limit of 2147483648 g"),
        ({"bands": (WeightBand(1, D("1E+12")),)}, "EUR", "the price of the 1 g band must be"),
        ({"free_from": D("1E+40")}, "EUR", "the free-from value must be below"),
        ({"min_order_value": D("-1.00")}, "EUR", "the minimum order value must be a non-neg"),
        ({"max_order_value": D("9.999")}, "EUR", "the maximum order value must be a non-neg"),
        ({"free_from": D("NaN")}, "EUR", "the free-from value must be a non-negative"),
        ({"min_order_value": D("2000.00")}, "EUR", "minimum order value is above the maximum"),
        ({"excluded_skus": frozenset({"a b"})}, "EUR", "excluded: sku 'a b'"),
        ({"excluded_categories": frozenset({""})}, "EUR", "excluded: category ''"),
    ],
)
def test_a_method_its_columns_cannot_hold_is_refused(
    change: dict[str, object], currency: str, complaint: str
) -> None:
    problems = list(method_problems(replace(PARCEL, **change), currency))
    assert len(problems) == 1, problems
    assert complaint in problems[0]


@pytest.mark.parametrize(
    ("area", "destination"),
    [
        ("DE", Destination("DE")),
        ("US-CA", Destination("US", "US-CA")),
        ("FR-75C", Destination("FR", "FR-75C")),
        ("GB-1", Destination("GB", "GB-1")),
    ],
)
def test_areas_are_iso_3166_countries_or_regions(area: str, destination: Destination) -> None:
    assert area_destination(area) == destination


@pytest.mark.parametrize("area", ["de", "DEU", "D", "", "US-", "US-CALI", "us-CA", "US_CA", "U1-A"])
def test_other_areas_are_refused(area: str) -> None:
    with pytest.raises(RuleRefusedError):
        area_destination(area)
    assert list(rate_problems(area, RateTable(D("0.1"))))


def test_a_rate_table_with_an_unprintable_category_is_refused() -> None:
    [problem] = rate_problems("US-CA", RateTable(D("0.0725"), {"food\n": D("0")}))
    assert problem.startswith("tax rates of US-CA: category")


def test_built_turns_a_types_refusal_into_a_rule_refusal() -> None:
    with pytest.raises(RuleRefusedError, match=r"^tax rates of DE: tax rate 2 is not a fraction"):
        built(lambda: RateTable(D("2")), "tax rates of DE: ")
    assert built(lambda: RateTable(D("0.2"))) == RateTable(D("0.2"))
    with pytest.raises(RuleRefusedError, match="percentage must be above 0"):
        built(lambda: replace(GOOD, value=D(0)))
    # Rounding an amount of more than 28 digits to the cent is decimal's InvalidOperation.
    with pytest.raises(RuleRefusedError, match=r"^promotion: a number is out of range$"):
        built(lambda: replace(GOOD, kind=DiscountKind.FIXED, value=D("1E+40")), "promotion: ")
    with pytest.raises(RuleRefusedError, match="a number is out of range"):
        built(lambda: replace(PARCEL, bands=(WeightBand(1, D("1E+40")),)))


def test_labels_are_printable_and_not_blank() -> None:
    assert label_problem("brand", "Acme & Co. Café") is None
    assert label_problem("brand", "x" * 128) is None
    for bad in ("", "  ", "x" * 129, "a\x7fb"):
        assert label_problem("brand", bad) is not None
