"""A priced checkout's vendor orders: each its lines' charges plus a share of the shipping.

The shipping charge is split by largest remainder in proportion to the vendor orders' line
charges: the shares sum to it exactly, each is within a cent of its exact proportion, ties go
to the earlier vendor order, and the vendor orders' totals sum to the grand total.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import CheckoutPolicy, CheckoutStarted, LineItem
from contracts.vendor_orders import allocate, shipping_after_rejections, split
from tests.support.pricing import priced, three_vendor_items, with_pricing

D = Decimal
CENTS = st.integers(min_value=0, max_value=10**9).map(lambda c: Decimal(c).scaleb(-2))


@given(amount=CENTS, weights=st.lists(CENTS, min_size=1, max_size=12))
def test_shares_sum_exactly_and_stay_within_a_cent_of_their_proportion(
    amount: Decimal, weights: list[Decimal]
) -> None:
    shares = allocate(amount, weights)

    assert sum(shares, D(0)) == amount
    assert all(s >= 0 and s == s.quantize(D("0.01")) for s in shares)
    whole = sum(weights, D(0))
    if whole:
        for share, weight in zip(shares, weights, strict=True):
            assert abs(share - amount * weight / whole) < D("0.01")
    assert allocate(amount, weights) == shares  # deterministic


def test_ties_go_to_the_earlier_position() -> None:
    assert allocate(D("1.00"), [D("1"), D("1"), D("1")]) == (D("0.34"), D("0.33"), D("0.33"))
    assert allocate(D("0.02"), [D("5"), D("5"), D("5")]) == (D("0.01"), D("0.01"), D("0.00"))


def test_the_largest_remainder_gets_the_cent_left_over() -> None:
    # Exact shares 0.333.. and 0.666..: the cent left goes to the second, the larger remainder.
    assert allocate(D("1.00"), [D("1"), D("2")]) == (D("0.33"), D("0.67"))
    # 0.375 and 0.625: equal remainders, so the earlier position takes it.
    assert allocate(D("1.00"), [D("3"), D("5")]) == (D("0.38"), D("0.62"))


def test_a_single_position_gets_everything_and_zero_weights_weigh_alike() -> None:
    assert allocate(D("4.99"), [D("12.34")]) == (D("4.99"),)
    assert allocate(D("4.99"), [D("0")]) == (D("4.99"),)
    assert allocate(D("1.01"), [D("0"), D("0")]) == (D("0.51"), D("0.50"))


def test_amounts_that_are_not_whole_cents_are_refused() -> None:
    with pytest.raises(ValueError, match="whole number of cents"):
        allocate(D("1.005"), [D("1")])
    with pytest.raises(ValueError, match="nowhere"):
        allocate(D("1.00"), [])


def _marketplace(group: uuid.UUID) -> CheckoutStarted:
    """v1 sells A (2 x 10.00), v2 sells B (1 x 5.00) and C (1 x 15.00), v3 sells D (1 x 1.00)."""
    items = three_vendor_items()
    plain = CheckoutStarted(
        order_id=group, buyer_id="b", currency="EUR", items=items, policy=CheckoutPolicy.PARTIAL
    )
    pricing = priced(items, discounts={"C": "5.00"}, tax_rate="10", shipping=("6.00", "0.60"))
    return with_pricing(plain, pricing)


def test_vendor_orders_of_a_priced_checkout_sum_to_its_grand_total() -> None:
    started = _marketplace(uuid.uuid4())

    v1, v2, v3 = split(started)

    # Charges 22.00, 5.50 + 11.00 and 1.10 (of 39.60) share the 6.60 shipping charge.
    assert [o.vendor_id for o in (v1, v2, v3)] == ["v1", "v2", "v3"]
    assert [o.shipping_share for o in (v1, v2, v3)] == [D("3.67"), D("2.75"), D("0.18")]
    assert [o.total for o in (v1, v2, v3)] == [D("25.67"), D("19.25"), D("1.28")]
    assert v1.total + v2.total + v3.total == started.total == D("46.20")
    assert [c.sku for c in v2.charges] == ["B", "C"]


def test_one_vendor_order_takes_the_whole_grand_total() -> None:
    items = [LineItem(sku="A", quantity=3, unit_price=D("3.33"))]
    plain = CheckoutStarted(order_id=uuid.uuid4(), buyer_id="b", currency="EUR", items=items)
    started = with_pricing(plain, priced(items, tax_rate="7", shipping=("4.90", "0.34")))

    [order] = split(started)

    assert started.pricing is not None
    assert order.order_id == started.order_id
    assert order.total == started.total == started.pricing.grand_total == D("15.93")
    assert order.shipping_share == D("5.24")


def test_an_unpriced_checkout_splits_as_before() -> None:
    started = _marketplace(uuid.uuid4())
    plain = with_pricing(started, None)

    totals = [o.total for o in split(plain)]

    assert totals == [D("20.00"), D("20.00"), D("1.00")]
    assert all(not o.charges and o.shipping_share == 0 for o in split(plain))


def test_an_emptied_vendor_orders_shipping_moves_to_the_others() -> None:
    shares = [D("3.67"), D("2.75"), D("0.18")]

    # v2 kept no line: its 2.75 goes to v1 and v3 in proportion to their accepted charges.
    moved = shipping_after_rejections(shares, [D("22.00"), None, D("1.10")])

    assert moved == (D("3.67") + D("2.62"), D("0.00"), D("0.18") + D("0.13"))
    assert sum(moved, D(0)) == sum(shares, D(0))


def test_shares_stay_where_every_order_kept_a_line_and_vanish_when_none_did() -> None:
    shares = [D("1.00"), D("2.00")]

    assert shipping_after_rejections(shares, [D("1.00"), D("0.00")]) == tuple(shares)
    assert shipping_after_rejections(shares, [None, None]) == (D("0.00"), D("0.00"))
