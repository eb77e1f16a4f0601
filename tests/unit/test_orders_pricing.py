"""Priced vendor orders without I/O: their totals, what order_created says, how rejections settle.

The checkout: v1 sells A (2 x 10.00), v2 sells B (5.00) and C (15.00, 5.00 off), v3 sells D
(1.00); 10 % tax on net prices; shipping 6.00 + 0.60 tax. Line charges A 22.00, B 5.50,
C 11.00, D 1.10; shipping shares v1 3.67, v2 2.75, v3 0.18; grand total 46.20.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from contracts import (
    CheckoutPolicy,
    CheckoutStarted,
    ConfirmOrder,
    OrderConfirmed,
    Reservation,
    StockReservationCompleted,
    StockShortage,
)
from saga.machine import SagaPolicy, start
from saga.machine import step as saga_step
from services.orders.domain import (
    Fail,
    Order,
    Step,
    command_of,
    created_event,
    new_orders,
    outcome_event,
    step,
)
from tests.support.pricing import priced, three_vendor_items, with_pricing

D = Decimal
GROUP = uuid.UUID("00000000-0000-4000-8000-0000000000aa")
PAID = uuid.UUID("00000000-0000-4000-8000-0000000000bb")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _checkout() -> CheckoutStarted:
    items = three_vendor_items()
    plain = CheckoutStarted(
        order_id=GROUP, buyer_id="b-1", currency="EUR", items=items, policy=CheckoutPolicy.PARTIAL
    )
    pricing = priced(
        items, discounts={"C": "5.00"}, tax_rate="10", shipping=("6.00", "0.60"), code="SAVE5"
    )
    return with_pricing(plain, pricing)


def _confirmed(group: tuple[Order, ...], *skus: str) -> Step:
    """The group after the saga's ConfirmOrder naming these skus rejected."""
    message = ConfirmOrder.model_validate(
        {
            "order_id": str(GROUP),
            "payment_id": str(PAID),
            "rejected": [{"sku": s, "quantity": 1, "reason": "insufficient_stock"} for s in skus],
        }
    )
    done = step(group, command_of(message))
    assert isinstance(done, Step)
    return done


def test_priced_vendor_orders_total_their_charges_and_shipping_share() -> None:
    v1, v2, v3 = new_orders(_checkout())

    assert [o.total for o in (v1, v2, v3)] == [D("25.67"), D("19.25"), D("1.28")]
    assert [o.adjusted_total for o in (v1, v2, v3)] == [o.total for o in (v1, v2, v3)]


def test_order_created_explains_a_priced_total() -> None:
    started = _checkout()
    assert started.pricing is not None
    _, v2, _ = new_orders(started)

    created = created_event(v2, started.pricing.discounts)

    assert created.total == D("19.25")
    assert [(c.sku, c.charge) for c in created.charges] == [("B", D("5.50")), ("C", D("11.00"))]
    assert created.shipping == D("2.75")
    [promotion] = created.discounts
    assert (promotion.promotion_id, promotion.code, promotion.amount) == ("PROMO-1", "SAVE5", 5)
    wire = created.model_dump(mode="json")
    assert {"charges", "shipping", "discounts"} <= set(wire)


def test_an_unpriced_order_created_says_nothing_of_pricing() -> None:
    v1, _, _ = new_orders(with_pricing(_checkout(), None))

    wire = created_event(v1).model_dump(mode="json")

    assert not {"charges", "shipping", "discounts"} & set(wire)


def test_a_rejected_line_takes_its_charge_off_its_vendor_order() -> None:
    done = _confirmed(new_orders(_checkout()), "B")

    v1, v2, v3 = done.changed
    assert [o.adjusted_total for o in (v1, v2, v3)] == [D("25.67"), D("13.75"), D("1.28")]
    assert done.completed is not None
    assert done.completed.balance_due == D("40.70")  # 46.20 - B's 5.50


def test_an_emptied_vendor_orders_shipping_moves_to_the_confirmed_ones() -> None:
    done = _confirmed(new_orders(_checkout()), "B", "C")

    v1, v2, v3 = done.changed
    assert [o.status.value for o in (v1, v2, v3)] == ["confirmed", "failed", "confirmed"]
    # v2's 2.75 of shipping goes to v1 (2.62) and v3 (0.13), by their charges 22.00 and 1.10.
    assert [o.adjusted_total for o in (v1, v2, v3)] == [D("28.29"), D("0.00"), D("1.41")]
    assert done.completed is not None
    assert done.completed.balance_due == D("29.70")
    event = outcome_event(v1)
    assert isinstance(event, OrderConfirmed)
    assert event.total == D("28.29")


def test_the_confirmed_orders_add_up_to_what_the_saga_charged() -> None:
    started = _checkout()
    saga = start(started, NOW, SagaPolicy())
    held = [Reservation(reservation_id=uuid.uuid4(), sku=s, quantity=q) for s, q in (("A", 2),)]
    short = [StockShortage(sku=s, requested=1, available=0) for s in ("B", "C", "D")]
    outcome = StockReservationCompleted(order_id=GROUP, reservations=held, rejected=short)
    reserved = saga_step(saga.state, saga.data, outcome, NOW, SagaPolicy())

    done = _confirmed(new_orders(started), "B", "C", "D")

    # Only A is left: it carries the whole shipping, as the saga charges it.
    assert reserved.data.amount == D("28.60") == D("22.00") + D("6.60")
    assert done.completed is not None
    assert done.completed.balance_due == reserved.data.amount


def test_a_failed_priced_group_keeps_its_totals() -> None:
    done = step(new_orders(_checkout()), Fail("payment declined"))

    assert isinstance(done, Step)
    assert [o.adjusted_total for o in done.changed] == [D("25.67"), D("19.25"), D("1.28")]
    assert done.completed is not None
    assert done.completed.balance_due == 0
