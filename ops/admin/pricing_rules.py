"""The pricing rules as the admin API and rules files spell them: bodies, views and the rules document.

Each body builds its pure rule through rules_checks.built, so a rule the engine would refuse is
refused with the engine's reason (RuleRefusedError). In answers, money is a decimal string in
whole cents ("4.90") and percentages and tax rates are plain decimal strings ("12.5", "0.19");
JSON numbers are taken as input too. Codes are shown in full: the admin manages them (logs mask
them). A view is a valid rule too: what `checkout-saga pricing export` prints loads back as is.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from services.cart.pricing_lines import CENT
from services.cart.promotion_types import DiscountKind, Promotion, Selection, Stacking
from services.cart.rules_admin import StoredMethod, StoredPromotion, StoredRate
from services.cart.rules_checks import built
from services.cart.shipping import ShippingMethod, WeightBand
from services.cart.tax import RateTable

MAX_ENTRIES = 1000
"""Bounds every list of a body: a rule naming more is a mistake, not a rule."""
Name = Annotated[str, Field(max_length=200)]
Names = Annotated[list[Name], Field(max_length=MAX_ENTRIES)]
RuleId = Annotated[str, Field(max_length=64, examples=["summer-sale"])]


def cents(amount: Decimal) -> Decimal:
    """An amount as answers show it: two decimals ("5.00")."""
    return amount.quantize(CENT)


def plain(number: Decimal) -> Decimal:
    """A percentage or rate as answers show it: no exponent, no trailing zeros ("100", "0.19")."""
    return Decimal(f"{number.normalize():f}")


def _optional_cents(amount: Decimal | None) -> Decimal | None:
    return None if amount is None else cents(amount)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SelectionBody(_Body):
    """Lines named by sku, category or brand: a line matches when any of them names it."""

    skus: Names = Field(default_factory=list)
    categories: Names = Field(default_factory=list)
    brands: Names = Field(default_factory=list)

    def pure(self) -> Selection:
        """The engine's selection."""
        return Selection(frozenset(self.skus), frozenset(self.categories), frozenset(self.brands))

    @classmethod
    def of(cls, selection: Selection) -> Self:
        """The body of a selection, each list sorted."""
        return cls(
            skus=sorted(selection.skus),
            categories=sorted(selection.categories),
            brands=sorted(selection.brands),
        )


class PromotionBody(_Body):
    """A promotion (stacking rules: docs/pricing-rules.md); its id is in the path or beside it."""

    code: Name | None = Field(
        default=None,
        description="What shoppers enter (stored trimmed, upper-cased); none: automatic",
    )
    kind: DiscountKind
    value: Decimal = Field(description="A percentage (12.5) or, for `fixed`, an amount (5.00)")
    stacking: Stacking
    target: SelectionBody | None = Field(default=None, description="None: the whole cart")
    exclusions: SelectionBody = Field(default_factory=SelectionBody)
    min_spend: Decimal = Field(default=Decimal("0.00"), description="On the eligible lines")
    currency: str | None = Field(default=None, description="Needed by fixed values, min spends")
    valid_from: datetime | None = Field(default=None, description="Inclusive, with a timezone")
    valid_until: datetime | None = Field(default=None, description="Exclusive, with a timezone")
    limit_total: StrictInt | None = None
    limit_per_buyer: StrictInt | None = None
    priority: StrictInt = Field(default=0, description="Higher applies first when stacking")
    active: StrictBool = True

    def pure(self, promotion_id: str) -> Promotion:
        """The engine's promotion; RuleRefusedError with the engine's reason if it has one."""
        return built(
            lambda: Promotion(
                promotion_id=promotion_id,
                code=self.code,
                kind=self.kind,
                value=self.value,
                stacking=self.stacking,
                target=None if self.target is None else self.target.pure(),
                exclusions=self.exclusions.pure(),
                min_spend=self.min_spend,
                currency=self.currency,
                valid_from=self.valid_from,
                valid_until=self.valid_until,
                limit_total=self.limit_total,
                limit_per_buyer=self.limit_per_buyer,
                priority=self.priority,
            )
        )

    @staticmethod
    def fields_of(promotion: Promotion) -> dict[str, Any]:
        """The body's fields of a promotion, amounts and percentages as answers show them."""
        fixed = promotion.kind is DiscountKind.FIXED
        target = promotion.target
        return {
            "code": promotion.code,
            "kind": promotion.kind,
            "value": cents(promotion.value) if fixed else plain(promotion.value),
            "stacking": promotion.stacking,
            "target": None if target is None else SelectionBody.of(target),
            "exclusions": SelectionBody.of(promotion.exclusions),
            "min_spend": cents(promotion.min_spend),
            "currency": promotion.currency,
            "valid_from": promotion.valid_from,
            "valid_until": promotion.valid_until,
            "limit_total": promotion.limit_total,
            "limit_per_buyer": promotion.limit_per_buyer,
            "priority": promotion.priority,
        }


class _PromotionId(_Body):
    promotion_id: RuleId


class PromotionRule(PromotionBody, _PromotionId):
    """A promotion with its id, as a rules file holds it."""

    def rule(self) -> Promotion:
        """The engine's promotion."""
        return self.pure(self.promotion_id)


class PromotionView(PromotionRule):
    """A stored promotion: the rule, whether it applies, and the uses consumed so far."""

    uses: int = Field(default=0, description="Checkouts that used it and were not given back")

    @classmethod
    def of(cls, stored: StoredPromotion) -> Self:
        """The view of a stored promotion."""
        promotion = stored.promotion
        fields = PromotionBody.fields_of(promotion)
        return cls(
            promotion_id=promotion.promotion_id, active=stored.active, uses=stored.uses, **fields
        )


class BandBody(_Body):
    """Parcels up to this weight (inclusive) cost this price."""

    up_to_grams: StrictInt
    price: Decimal


class ShippingMethodBody(_Body):
    """A shipping method: where it goes, its weight bands, when a cart may use it."""

    name: Name
    currency: str = Field(description="Of every amount of the method (ISO 4217)")
    serves: Names = Field(description='Countries ("DE") and regions ("US-CA")')
    bands: Annotated[list[BandBody], Field(max_length=MAX_ENTRIES)]
    min_order_value: Decimal | None = None
    max_order_value: Decimal | None = None
    excluded_skus: Names = Field(default_factory=list)
    excluded_categories: Names = Field(default_factory=list)
    free_from: Decimal | None = Field(default=None, description="Free at or above this value")
    active: StrictBool = True

    def pure(self, method_id: str) -> ShippingMethod:
        """The shipping rules' method; RuleRefusedError with their reason if they have one."""
        return built(
            lambda: ShippingMethod(
                method_id=method_id,
                name=self.name,
                serves=frozenset(self.serves),
                bands=tuple(WeightBand(b.up_to_grams, b.price) for b in self.bands),
                min_order_value=self.min_order_value,
                max_order_value=self.max_order_value,
                excluded_skus=frozenset(self.excluded_skus),
                excluded_categories=frozenset(self.excluded_categories),
                free_from=self.free_from,
            )
        )


class _MethodId(_Body):
    method_id: RuleId


class ShippingMethodRule(ShippingMethodBody, _MethodId):
    """A shipping method with its id, as a rules file holds it and the admin API shows it."""

    def rule(self) -> ShippingMethod:
        """The shipping rules' method."""
        return self.pure(self.method_id)

    @classmethod
    def of(cls, stored: StoredMethod) -> Self:
        """The view of a stored method."""
        method = stored.method
        return cls(
            method_id=method.method_id,
            name=method.name,
            currency=stored.currency,
            serves=sorted(method.serves),
            bands=[BandBody(up_to_grams=b.up_to_grams, price=cents(b.price)) for b in method.bands],
            min_order_value=_optional_cents(method.min_order_value),
            max_order_value=_optional_cents(method.max_order_value),
            excluded_skus=sorted(method.excluded_skus),
            excluded_categories=sorted(method.excluded_categories),
            free_from=_optional_cents(method.free_from),
            active=stored.active,
        )


class TaxRateBody(_Body):
    """An area's tax rates as fractions: the standard rate, and reduced rates by category."""

    standard: Decimal = Field(examples=["0.19"])
    by_category: Annotated[dict[Name, Decimal], Field(max_length=MAX_ENTRIES)] = Field(
        default_factory=dict, examples=[{"food": "0.07"}]
    )

    def pure(self, area: str) -> RateTable:
        """The tax rules' table; RuleRefusedError with their reason if they have one."""
        return built(
            lambda: RateTable(self.standard, dict(self.by_category)), f"tax rates of {area}: "
        )


class _Area(_Body):
    area: str = Field(max_length=16, description='A country ("DE") or a region ("US-CA")')


class TaxRateRule(TaxRateBody, _Area):
    """An area's tax rates with the area, as a rules file holds them and the admin API shows them."""

    def rule(self) -> RateTable:
        """The tax rules' table."""
        return self.pure(self.area)

    @classmethod
    def of(cls, stored: StoredRate) -> Self:
        """The view of a stored rate table."""
        table = stored.table
        by_category = {name: plain(rate) for name, rate in sorted(table.by_category.items())}
        return cls(area=stored.area, standard=plain(table.standard), by_category=by_category)


def _twice(kind: str, ids: Iterable[str]) -> list[str]:
    return [f"{kind} {rule_id} appears twice" for rule_id, n in Counter(ids).items() if n > 1]


class RulesDocument(_Body):
    """A rules file: the promotions, shipping methods and tax rates to store, each by its id."""

    promotions: list[PromotionRule] = Field(default_factory=list)
    shipping_methods: list[ShippingMethodRule] = Field(default_factory=list)
    tax_rates: list[TaxRateRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _each_id_once(self) -> Self:
        """Each rule once: a second one by the same id would silently replace the first."""
        repeated = [
            *_twice("promotion", (p.promotion_id for p in self.promotions)),
            *_twice("shipping method", (m.method_id for m in self.shipping_methods)),
            *_twice("tax area", (r.area for r in self.tax_rates)),
        ]
        if repeated:
            raise ValueError("; ".join(repeated))
        return self
