"""What a pricing rule must pass to be stored, beyond its own type's checks; the refusal errors.

The pure types (promotion_types, shipping, tax) refuse rules that make no sense. These checks
refuse what the shop's tables and its other surfaces could not hold or would misread: ids that
are not URL-safe, blank codes, areas that are not ISO 3166 codes, amounts their columns would
round or overflow. A refusal never quotes a promotion code (codes are logged only masked).
Imports no I/O library.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import TypeVar

from services.cart.pricing_lines import CENT
from services.cart.promotion_types import DiscountKind, Promotion, Selection, normalize_code
from services.cart.shipping import Destination, ShippingMethod
from services.cart.tax import RateTable

T = TypeVar("T")

ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""Promotion and shipping method ids: they name resources in URLs and appear in logs."""
SKU = ID
"""Product codes, as contracts.types.Sku (the same shape as ids)."""
CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]{0,63}")
"""A normalized code: what the cart API lets a shopper enter (services/cart/http), upper-cased."""
CURRENCY = re.compile(r"[A-Z]{3}")
REGION = re.compile(r"[A-Z]{2}-[A-Z0-9]{1,3}")
"""ISO 3166-2: the country, a hyphen, and up to three letters or digits ("US-CA", "FR-75C")."""
AREA = re.compile(r"[A-Z]{2}(?:-[A-Z0-9]{1,3})?")
"""What area_destination takes: a country ("DE") or a region ("US-CA")."""
LABEL = re.compile(r"[^\x00-\x1f\x7f]{1,128}")
"""Categories, brands and method names: printable text, 1 to 128 characters."""

MAX_LIMIT = 2**31 - 1
"""Usage limits and priorities are PostgreSQL integers."""
MAX_PERCENTAGE_PLACES = 4
"""promotions.value is numeric(14, 4): a percentage with more decimals would come back rounded."""
MAX_VALUE = Decimal(10) ** 10
"""promotions.value holds amounts below this."""
MAX_AMOUNT = Decimal(10) ** 12
"""numeric(14, 2) columns (minimum spend, order values, free-from) hold amounts below this."""
FIRST_YEAR, LAST_YEAR = 1970, 9998
"""Validity bounds: any year a promotion could mean, none at the edge of what dates can hold."""


class RuleRefusedError(ValueError):
    """A pricing rule the shop does not store, with the reason (the admin API answers 422)."""


class CodeTakenError(RuleRefusedError):
    """A promotion's code is already another promotion's, active or not (the API answers 409)."""


def built(make: Callable[[], T], context: str = "") -> T:
    """The rule `make` builds; its type's refusal (a ValueError) as a RuleRefusedError."""
    try:
        return make()
    except RuleRefusedError:
        raise
    except ValueError as exc:
        raise RuleRefusedError(f"{context}{exc}") from None
    except ArithmeticError:
        # decimal's InvalidOperation: an amount so large that rounding it to the cent overflows.
        raise RuleRefusedError(f"{context}a number is out of range") from None


def refuse_any(problems: Iterable[str]) -> None:
    """Raise the first problem as a RuleRefusedError; nothing when there is none."""
    for problem in problems:
        raise RuleRefusedError(problem)


def label_problem(kind: str, value: str) -> str | None:
    """Why a category, brand or name cannot be stored; None when it can."""
    if not LABEL.fullmatch(value) or not value.strip():
        return f"{kind} {value!r} must be 1 to 128 printable characters, not only blanks"
    return None


def area_destination(area: str) -> Destination:
    """The destination a tax area or a served area names: a country ("DE") or a region ("US-CA")."""
    if "-" in area:
        if not REGION.fullmatch(area):
            raise RuleRefusedError(f"area {area!r} is not an ISO 3166-2 region code like US-CA")
        return built(lambda: Destination(area[:2], area))
    return built(lambda: Destination(area))


def _id_problems(kind: str, value: str) -> Iterator[str]:
    if not ID.fullmatch(value):
        yield f"{kind} id {value!r} must be 1 to 64 letters, digits, '.', '_' or '-'"


def _amount_problems(
    what: str, value: Decimal | None, limit: Decimal = MAX_AMOUNT
) -> Iterator[str]:
    if value is None:
        return
    # The limit first: the remainder of an amount beyond 28 digits is an error, not a number.
    if value.is_finite() and value >= limit:
        yield f"{what} must be below {limit:f}"
    elif not value.is_finite() or value < 0 or value % CENT != 0:
        yield f"{what} must be a non-negative amount in whole cents"


def _currency_problems(currency: str | None) -> Iterator[str]:
    if currency is not None and not CURRENCY.fullmatch(currency):
        yield f"currency {currency!r} is not an ISO 4217 code like EUR"


def _selection_problems(where: str, selection: Selection) -> Iterator[str]:
    for sku in sorted(selection.skus):
        if not SKU.fullmatch(sku):
            yield f"{where}: sku {sku!r} is not a product code"
    for kind, labels in (("category", selection.categories), ("brand", selection.brands)):
        for label in sorted(labels):
            problem = label_problem(kind, label)
            if problem is not None:
                yield f"{where}: {problem}"


def promotion_problems(promotion: Promotion) -> Iterator[str]:
    """What keeps a valid promotion out of the table, each as a sentence naming the promotion."""
    pid = promotion.promotion_id
    yield from _id_problems("promotion", pid)
    yield from (f"promotion {pid}: {p}" for p in _promotion_detail_problems(promotion))


def _promotion_detail_problems(promotion: Promotion) -> Iterator[str]:
    if promotion.code is not None:
        code = normalize_code(promotion.code)
        if not CODE.fullmatch(code):
            yield "a code must be 1 to 64 letters, digits, '-' or '_', the first a letter or digit"
        # Ids are logged and shown; a code is a secret that logs only show masked.
        elif code == normalize_code(promotion.promotion_id):
            yield "the id must not be the code (ids are logged, codes only masked)"
    if promotion.kind is DiscountKind.PERCENTAGE:
        if promotion.value % Decimal(1).scaleb(-MAX_PERCENTAGE_PLACES) != 0:
            yield f"a percentage has at most {MAX_PERCENTAGE_PLACES} decimals"
    else:
        yield from _amount_problems("a fixed value", promotion.value, MAX_VALUE)
    yield from _amount_problems("the minimum spend", promotion.min_spend)
    yield from _currency_problems(promotion.currency)
    start, end = promotion.valid_from, promotion.valid_until
    for moment in (start, end):
        # Far from both ends of the calendar, so that no timezone offset pushes it past one.
        if moment is not None and not FIRST_YEAR <= moment.year <= LAST_YEAR:
            yield f"validity bounds must be between the years {FIRST_YEAR} and {LAST_YEAR}"
    if start is not None and end is not None and end <= start:
        yield "valid_until must be after valid_from"
    for limit in (promotion.limit_total, promotion.limit_per_buyer, promotion.priority):
        if limit is not None and not -MAX_LIMIT - 1 <= limit <= MAX_LIMIT:
            yield f"{limit} is beyond the range of limits and priorities"
    if promotion.target is not None and promotion.target == Selection():
        yield "a target must name a sku, category or brand (no target: the whole cart)"
    if promotion.target is not None:
        yield from _selection_problems("target", promotion.target)
    yield from _selection_problems("exclusions", promotion.exclusions)


def method_problems(method: ShippingMethod, currency: str) -> Iterator[str]:
    """What keeps a valid shipping method out of the table, each naming the method."""
    mid = method.method_id
    yield from _id_problems("method", mid)
    yield from (f"method {mid}: {p}" for p in _method_detail_problems(method, currency))


def _method_detail_problems(method: ShippingMethod, currency: str) -> Iterator[str]:
    name_problem = label_problem("name", method.name)
    if name_problem is not None:
        yield name_problem
    yield from _currency_problems(currency)
    for area in sorted(method.serves):
        try:
            area_destination(area)
        except RuleRefusedError as exc:
            yield f"serves {exc}"
    for band in method.bands:
        if band.up_to_grams > MAX_LIMIT:
            yield f"a band limit of {band.up_to_grams} g is beyond {MAX_LIMIT} g"
        yield from _amount_problems(f"the price of the {band.up_to_grams} g band", band.price)
    yield from _amount_problems("the minimum order value", method.min_order_value)
    yield from _amount_problems("the maximum order value", method.max_order_value)
    yield from _amount_problems("the free-from value", method.free_from)
    low, high = method.min_order_value, method.max_order_value
    if low is not None and high is not None and low > high:
        yield "the minimum order value is above the maximum"
    yield from _selection_problems(
        "excluded", Selection(skus=method.excluded_skus, categories=method.excluded_categories)
    )


def rate_problems(area: str, table: RateTable) -> Iterator[str]:
    """What keeps an area's valid rate table out of the table, each naming the area."""
    try:
        area_destination(area)
    except RuleRefusedError as exc:
        yield str(exc)
        return
    for category in sorted(table.by_category):
        problem = label_problem("category", category)
        if problem is not None:
            yield f"tax rates of {area}: {problem}"
