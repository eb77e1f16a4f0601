"""A priced checkout through the pure saga: it charges the grand total, a rejection its line's charge.

The checkout of tests.unit.saga (SKU-A 2 x 5.00, SKU-B 1 x 15.00) priced with 3.00 off SKU-B,
10 % tax on net prices and shipping 4.00 + 0.40: SKU-A charges 11.00, SKU-B 13.20, and the
grand total is 28.60. Without SKU-B the buyer pays 15.40: SKU-A and the whole shipping.
"""

from __future__ import annotations

from decimal import Decimal

from contracts import CheckoutPolicy, CheckoutStarted, PaymentRequested
from saga.actions import checkout_differences
from saga.instance import SagaData, SagaState
from saga.machine import Outcome, StepResult, start, step
from tests.support.pricing import priced, with_pricing
from tests.unit.saga import (
    ADJUSTED,
    NOW,
    PARTIAL,
    POLICY,
    checkout_started,
    reserved_in_part,
    sent,
    stock_reserved,
)

GRAND_TOTAL = Decimal("28.60")
WITHOUT_B = Decimal("15.40")


def _priced(
    policy: CheckoutPolicy = CheckoutPolicy.ALL_OR_NOTHING,
    *,
    shipping: tuple[str, str] = ("4.00", "0.40"),
    off_b: str = "3.00",
) -> CheckoutStarted:
    plain = checkout_started(policy=policy)
    pricing = priced(plain.items, discounts={"SKU-B": off_b}, tax_rate="10", shipping=shipping)
    return with_pricing(plain, pricing)


def _requested(result: StepResult) -> Decimal:
    [request] = [m for m in sent(result) if isinstance(m, PaymentRequested)]
    return request.amount


def test_an_all_or_nothing_priced_checkout_is_charged_its_grand_total() -> None:
    started = start(_priced(), NOW, POLICY)

    reserved = step(started.state, started.data, stock_reserved(), NOW, POLICY)

    assert started.data.amount == GRAND_TOTAL
    assert (started.data.line_charges, started.data.shipping_charge) == ({}, None)
    assert _requested(reserved) == GRAND_TOTAL


def test_a_rejected_line_of_a_priced_partial_checkout_comes_off_at_its_charge() -> None:
    started = start(_priced(PARTIAL), NOW, POLICY)

    reserved = step(started.state, started.data, reserved_in_part(), NOW, POLICY)

    assert started.data.line_charges == {"SKU-A": Decimal("11.00"), "SKU-B": Decimal("13.20")}
    assert started.data.shipping_charge == Decimal("4.40")
    # Not 28.60 - 15.00 (its unit price): its discounted, taxed charge; shipping stays.
    assert (reserved.state, reserved.data.amount) == (SagaState.STOCK_RESERVED, WITHOUT_B)
    assert _requested(reserved) == WITHOUT_B


def test_a_saga_stored_before_line_charges_loads_and_prices_rejections_as_before() -> None:
    stored = start(checkout_started(policy=PARTIAL), NOW, POLICY).data.model_dump(mode="json")
    del stored["line_charges"], stored["shipping_charge"]

    data = SagaData.model_validate(stored)
    reserved = step(SagaState.SUBMITTED, data, reserved_in_part(), NOW, POLICY)

    assert (data.line_charges, data.shipping_charge) == ({}, None)
    assert reserved.data.amount == ADJUSTED


def test_the_saga_data_round_trips_its_charges_through_json() -> None:
    data = start(_priced(PARTIAL), NOW, POLICY).data

    assert SagaData.model_validate_json(data.model_dump_json()) == data


def test_a_repeat_with_the_same_pricing_is_no_conflict_even_after_a_rejection() -> None:
    started = start(_priced(PARTIAL), NOW, POLICY)
    reserved = step(started.state, started.data, reserved_in_part(), NOW, POLICY)

    assert checkout_differences(started.data, _priced(PARTIAL)) == []
    assert checkout_differences(reserved.data, _priced(PARTIAL)) == []


def test_a_repeat_with_other_line_charges_or_shipping_conflicts() -> None:
    data = start(_priced(PARTIAL), NOW, POLICY).data

    other_discount = checkout_differences(data, _priced(PARTIAL, off_b="4.00"))
    other_shipping = checkout_differences(data, _priced(PARTIAL, shipping=("5.00", "0.50")))
    unpriced = checkout_differences(data, checkout_started(policy=PARTIAL))

    assert other_discount == ["line charges of SKU-B"]
    assert other_shipping == ["shipping charge 5.50 (the saga has 4.40)"]
    assert unpriced == ["line charges of SKU-A, SKU-B", "shipping charge None (the saga has 4.40)"]


def test_an_all_or_nothing_repeat_with_another_grand_total_conflicts() -> None:
    started = start(_priced(), NOW, POLICY)

    repeat = step(started.state, started.data, _priced(shipping=("5.00", "0.50")), NOW, POLICY)

    assert repeat.outcome is Outcome.REJECTED
    assert "amount 29.70 (the saga has 28.60)" in str(repeat.reason)
    assert checkout_differences(started.data, checkout_started()) == [
        "amount 25.00 (the saga has 28.60)"
    ]
