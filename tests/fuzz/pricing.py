"""Consistent pricings for fuzzed checkouts: Hypothesis draws for the cases, seeded ones for the shop.

A pricing drawn from its fields' shapes alone almost never adds up, so every valid
CheckoutStarted the fuzz sends would be unpriced. These build one that adds up from the items
(discount and tax per line, promotions summing to the discounts, a shipping charge), so priced
checkouts reach the consumers too; a half of the drawn payloads stay unpriced.
"""

from __future__ import annotations

import itertools
import random
from decimal import Decimal, InvalidOperation
from typing import Any

from hypothesis import strategies as st

from contracts import CheckoutStarted
from tests.fuzz.documents import Obj
from tests.support.pricing import priced, with_pricing

MAX_PROMOTIONS = 20


def _money(cents: int) -> str:
    return str(Decimal(cents).scaleb(-2))


def _amounts(payload: Obj) -> dict[str, int] | None:
    """Each item's quantity x unit price in cents, by sku (None: items a pricing cannot fit)."""
    items = payload.get("items")
    found: dict[str, int] = {}
    try:
        for item in items:
            amount = Decimal(item.get("unit_price")) * int(item.get("quantity")) * 100
            found[str(item.get("sku"))] = int(amount)
    except (TypeError, ValueError, AttributeError, InvalidOperation):
        return None
    return found


@st.composite
def with_drawn_pricing(draw: st.DrawFn, payload: Obj) -> Obj:
    """The payload unpriced, or priced consistently with its items (include or add tax)."""
    amounts = _amounts(payload)
    if amounts is None or not draw(st.booleans()):
        return payload.without("pricing")
    included = draw(st.booleans())
    lines = [_line(draw, sku, amount, included) for sku, amount in amounts.items()]
    discount = sum(line["d"] for line in lines)
    shipping = draw(st.none() | _shipping())
    line_tax = sum(line["t"] for line in lines)
    tax = line_tax + (shipping["t"] if shipping else 0)
    ship_price = shipping["p"] if shipping else 0
    pricing = {
        "prices_include_tax": included,
        "subtotal": _money(sum(amounts.values())),
        "discounts": _promotions(draw, discount),
        "discount_total": _money(discount),
        "shipping": None if shipping is None else shipping["wire"],
        "tax": _money(tax),
        "grand_total": _money(
            sum(amounts.values()) - discount + ship_price + (0 if included else tax)
        ),
        "lines": [line["wire"] for line in lines],
    }
    return payload.replaced("pricing", pricing)


def _line(draw: st.DrawFn, sku: str, amount: int, included: bool) -> dict[str, Any]:
    discount = draw(st.integers(min_value=0, max_value=amount))
    tax = draw(st.integers(min_value=0, max_value=max(amount - discount, 0)))
    charge = amount - discount + (0 if included else tax)
    wire = {"sku": sku, "discount": _money(discount), "tax": _money(tax), "charge": _money(charge)}
    return {"d": discount, "t": tax, "wire": wire}


def _promotions(draw: st.DrawFn, discount: int) -> list[dict[str, Any]]:
    """Promotions whose amounts (each at least a cent) sum to the discount."""
    if discount == 0:
        return []
    count = draw(st.integers(min_value=1, max_value=min(MAX_PROMOTIONS, discount)))
    cuts = draw(
        st.lists(
            st.integers(min_value=1, max_value=discount - 1),
            unique=True,
            min_size=count - 1,
            max_size=count - 1,
        )
        if count > 1
        else st.just([])
    )
    bounds = [0, *sorted(cuts), discount]
    codes = st.none() | st.text(min_size=1, max_size=64).filter(lambda c: "\x00" not in c)
    return [
        {"promotion_id": f"P-{i}", "code": draw(codes), "amount": _money(high - low)}
        for i, (low, high) in enumerate(itertools.pairwise(bounds))
    ]


@st.composite
def _shipping(draw: st.DrawFn) -> dict[str, Any]:
    price = draw(st.integers(min_value=0, max_value=10**6))
    tax = draw(st.integers(min_value=0, max_value=10**5))
    country = draw(st.sampled_from(["DE", "US", "FR"]))
    region = draw(st.none() | st.just(f"{country}-1"))
    wire = {
        "method_id": draw(st.sampled_from(["standard", "express"])),
        "country": country,
        "region": region,
        "price": _money(price),
        "tax": _money(tax),
    }
    return {"p": price, "t": tax, "wire": wire}


def shop_pricing(rng: random.Random, started: CheckoutStarted) -> CheckoutStarted:
    """A shop checkout priced one time in two: some off a line, a tax rate, maybe shipping.

    At most half of a line is discounted, so the grand total stays above zero (the saga
    cannot charge nothing, and a shop checkout must complete).
    """
    if rng.random() < 0.5:
        return started
    line = rng.choice(started.items)
    half = int(line.unit_price * line.quantity * 50)
    off = {line.sku: _money(rng.randint(0, half))}
    shipping = (
        (_money(rng.randint(0, 999)), _money(rng.randint(0, 99))) if rng.random() < 0.7 else None
    )
    pricing = priced(
        started.items,
        discounts=off,
        tax_rate=rng.choice(["0", "7", "19"]),
        shipping=shipping,
        prices_include_tax=rng.random() < 0.5,
    )
    return with_pricing(started, pricing)
