"""CheckoutStarted.pricing: every rule refused with its reason, a consistent one accepted.

Items: A 2 x 10.00 and B 1 x 5.00 (25.00); 2.00 off A, 10 % tax on net prices, shipping 4.00 +
0.40 tax: A charges 19.80, B 5.50, grand total 29.70.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from contracts import CheckoutStarted, LineItem
from contracts.codec import decode, encode
from tests.support.pricing import priced, with_pricing

ORDER = "00000000-0000-4000-8000-0000000000a1"
ITEMS = [
    {"sku": "A", "quantity": 2, "unit_price": "10.00"},
    {"sku": "B", "quantity": 1, "unit_price": "5.00"},
]
SHIPPING = {
    "method_id": "standard",
    "country": "US",
    "region": "US-CA",
    "price": "4.00",
    "tax": "0.40",
}
LINE_A = {"sku": "A", "discount": "2.00", "tax": "1.80", "charge": "19.80"}
LINE_B = {"sku": "B", "discount": "0.00", "tax": "0.50", "charge": "5.50"}


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def _pricing(lines: list[dict[str, str]], **overrides: Any) -> dict[str, Any]:
    """A pricing consistent in itself (its sums derived from the lines), whatever the items."""
    d = [Decimal(line["discount"]) for line in lines]
    t = [Decimal(line["tax"]) for line in lines]
    c = [Decimal(line["charge"]) for line in lines]
    discount, line_tax = sum(d, Decimal(0)), sum(t, Decimal(0))
    ship_price, ship_tax = Decimal(SHIPPING["price"]), Decimal(SHIPPING["tax"])
    fields = {
        "prices_include_tax": False,
        "subtotal": _money(sum(c, Decimal(0)) + discount - line_tax),
        "discounts": [{"promotion_id": "P1", "code": "SAVE2", "amount": _money(discount)}],
        "discount_total": _money(discount),
        "shipping": SHIPPING,
        "tax": _money(line_tax + ship_tax),
        "grand_total": _money(sum(c, Decimal(0)) + ship_price + ship_tax),
        "lines": lines,
    }
    return {**fields, **overrides}


def _checkout(pricing: dict[str, Any] | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"order_id": ORDER, "buyer_id": "buyer-1", "currency": "EUR"}
    payload["items"] = ITEMS
    if pricing is not None:
        payload["pricing"] = pricing
    return payload


CONSISTENT = _pricing([LINE_A, LINE_B])


def test_the_consistent_pricing_is_accepted_and_charged_its_grand_total() -> None:
    started = CheckoutStarted.model_validate(_checkout(CONSISTENT))

    assert started.pricing is not None
    assert (started.pricing.subtotal, started.pricing.grand_total) == (
        Decimal("25.00"),
        Decimal("29.70"),
    )
    assert started.total == Decimal("29.70")
    assert started.pricing.shipping_charge == Decimal("4.40")


@pytest.mark.parametrize(
    ("pricing", "reason"),
    [
        pytest.param(
            {
                **CONSISTENT,
                "discounts": [
                    {"promotion_id": "P1", "amount": "1.00"},
                    {"promotion_id": "P1", "amount": "1.00"},
                ],
            },
            "each promotion may appear only once in discounts",
            id="promotion twice",
        ),
        pytest.param(
            _pricing([LINE_A, LINE_A, LINE_B]),
            "each sku may appear only once in lines",
            id="line twice",
        ),
        pytest.param(
            {**CONSISTENT, "discounts": [{"promotion_id": "P1", "amount": "1.50"}]},
            "discount_total 2.00 is not the sum of the discounts (1.50)",
            id="discounts sum",
        ),
        pytest.param(
            {**CONSISTENT, "lines": [{**LINE_A, "discount": "1.50"}, LINE_B]},
            "discount_total 2.00 is not the lines' discounts (1.50)",
            id="lines' discounts",
        ),
        pytest.param(
            {**CONSISTENT, "tax": "2.60"},
            "tax 2.60 is not the lines' tax plus the shipping's (2.70)",
            id="tax",
        ),
        pytest.param(
            {**CONSISTENT, "grand_total": "29.71"},
            "grand_total 29.71 is not subtotal - discount_total + shipping price + tax (29.70)",
            id="grand total parts",
        ),
        pytest.param(
            {**CONSISTENT, "lines": [{**LINE_A, "charge": "19.81"}, LINE_B]},
            "grand_total 29.70 is not the lines' charges plus shipping (29.71)",
            id="grand total charges",
        ),
        pytest.param(
            _pricing([LINE_A]),
            "pricing.lines must price each item once: missing B",
            id="item unpriced",
        ),
        pytest.param(
            _pricing([LINE_A, LINE_B, {**LINE_B, "sku": "C"}]),
            "pricing.lines must price each item once: not an item C",
            id="line of no item",
        ),
        pytest.param(
            _pricing([LINE_A, {**LINE_B, "charge": "6.50"}]),
            "pricing.subtotal 26.00 is not the items' amounts (25.00)",
            id="subtotal",
        ),
        pytest.param(
            _pricing([LINE_A, {"sku": "B", "discount": "6.00", "tax": "1.50", "charge": "0.50"}]),
            "pricing line B: discount 6.00 exceeds its amount 5.00",
            id="discount above the line",
        ),
        pytest.param(
            _pricing([{**LINE_A, "charge": "19.00"}, {**LINE_B, "charge": "6.30"}]),
            "pricing line A: charge 19.00 is not quantity x unit_price - discount + tax (19.80)",
            id="line charge",
        ),
        pytest.param(
            {**CONSISTENT, "shipping": {**SHIPPING, "region": "MX-CMX"}},
            "region MX-CMX is not a subdivision of US",
            id="region of another country",
        ),
    ],
)
def test_a_pricing_that_does_not_add_up_is_refused_saying_why(
    pricing: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        CheckoutStarted.model_validate(_checkout(pricing))

    [error] = refused.value.errors()
    assert error["msg"] == f"Value error, {reason}"


@pytest.mark.parametrize(
    ("pricing", "field"),
    [
        ({**CONSISTENT, "prices_include_tax": "false"}, "prices_include_tax"),
        ({**CONSISTENT, "prices_include_tax": 0}, "prices_include_tax"),
        ({**CONSISTENT, "grand_total": "-1.00"}, "grand_total"),
        ({**CONSISTENT, "tax": "2.701"}, "tax"),
        ({**CONSISTENT, "discounts": [{"promotion_id": "", "amount": "2.00"}]}, "promotion_id"),
        ({**CONSISTENT, "discounts": [{"promotion_id": "P1", "amount": "0"}]}, "amount"),
        (
            {**CONSISTENT, "discounts": [{"promotion_id": "P1", "code": "X" * 65, "amount": "2"}]},
            "code",
        ),
        (
            {
                **CONSISTENT,
                "discounts": [{"promotion_id": f"P{i}", "amount": "0.10"} for i in range(21)],
            },
            "discounts",
        ),
        ({**CONSISTENT, "shipping": {**SHIPPING, "country": "us"}}, "country"),
        ({**CONSISTENT, "shipping": {**SHIPPING, "region": "CA"}}, "region"),
        ({**CONSISTENT, "lines": []}, "lines"),
        ({**CONSISTENT, "surprise": 1}, "surprise"),
    ],
)
def test_a_malformed_pricing_field_is_refused(pricing: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        CheckoutStarted.model_validate(_checkout(pricing))

    assert any(field in map(str, e["loc"]) for e in refused.value.errors()), refused.value


def test_an_unpriced_checkout_is_byte_for_byte_what_version_1_sent() -> None:
    started = CheckoutStarted.model_validate(_checkout(None))

    assert started.pricing is None
    assert started.total == Decimal("25.00")
    assert started.model_dump_json() == (
        '{"order_id":"' + ORDER + '","buyer_id":"buyer-1","buyer_email":null,"cart_id":null,'
        '"currency":"EUR","items":[{"sku":"A","quantity":2,"unit_price":"10.00"},'
        '{"sku":"B","quantity":1,"unit_price":"5.00"}]}'
    )


def test_a_priced_checkout_round_trips_through_the_wire() -> None:
    started = CheckoutStarted.model_validate(_checkout(CONSISTENT))

    body = encode(started.to_envelope())
    decoded = decode(body, "CheckoutStarted")

    assert decoded.message == started
    assert json.loads(body)["payload"]["pricing"]["grand_total"] == "29.70"


def test_gross_prices_keep_the_tax_inside_the_charges() -> None:
    items = [LineItem(sku="A", quantity=2, unit_price=Decimal("11.90"))]
    pricing = priced(
        items,
        discounts={"A": "1.90"},
        tax_rate="19",
        shipping=("5.95", "0.95"),
        prices_include_tax=True,
    )
    plain = CheckoutStarted(order_id=uuid.UUID(ORDER), buyer_id="b", currency="EUR", items=items)

    started = with_pricing(plain, pricing)

    [line] = pricing.lines
    assert (line.charge, line.tax) == (Decimal("21.90"), Decimal("3.50"))
    # Tax is shown, not added: 23.80 - 1.90 + 5.95.
    assert started.total == pricing.grand_total == Decimal("27.85")
    assert pricing.tax == Decimal("4.45")


def test_the_priced_checkout_docs_wire_md_shows_is_valid_and_charged_as_it_says() -> None:
    text = (Path(__file__).parents[2] / "docs" / "wire.md").read_text()
    block = text.split("**A priced checkout**", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    shown = json.loads("{" + block + "}")

    started = CheckoutStarted.model_validate(
        {"order_id": ORDER, "buyer_id": "buyer-42", "currency": "EUR", **shown}
    )

    assert started.total == Decimal("29.70")
