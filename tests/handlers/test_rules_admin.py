"""Managing the pricing rules: what rules_admin writes, rules_store reads back equal; refusals store nothing."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.cart import rules_admin, rules_store
from services.cart.promotion_types import DiscountKind, Promotion, Selection, Stacking, mask
from services.cart.rules_checks import CodeTakenError, RuleRefusedError
from services.cart.shipping import ShippingMethod, WeightBand
from services.cart.tables import promotion_uses, promotions, shipping_methods, tax_rates
from services.cart.tax import RateTable

D = Decimal
BERLIN = timezone(timedelta(hours=1))


def _suffix() -> str:
    return uuid.uuid4().hex[:10].upper()


def a_promotion(**changes: object) -> Promotion:
    """A promotion using every field, under a fresh id and code."""
    suffix = _suffix()
    promotion = Promotion(
        f"promo-{suffix}",
        f"CODE-{suffix}",
        DiscountKind.PERCENTAGE,
        D("12.5"),
        Stacking.STACKABLE,
        target=Selection(frozenset({"SKU-1", "SKU-0"}), frozenset({"books"}), frozenset({"Acme"})),
        exclusions=Selection(categories=frozenset({"gift-cards", "alcohol"})),
        min_spend=D("20.00"),
        currency="EUR",
        valid_from=datetime(2026, 12, 1, 9, tzinfo=BERLIN),
        valid_until=datetime(2027, 1, 1, tzinfo=UTC),
        limit_total=100,
        limit_per_buyer=2,
        priority=7,
    )
    return replace(promotion, **changes)  # type: ignore[arg-type]


def a_method(**changes: object) -> ShippingMethod:
    """A shipping method using every field, under a fresh id."""
    method = ShippingMethod(
        f"parcel-{_suffix()}",
        "Parcel post",
        frozenset({"DE", "US-CA"}),
        (WeightBand(1000, D("4.9")), WeightBand(31500, D("12.90"))),
        min_order_value=D("5.00"),
        max_order_value=D("5000.00"),
        excluded_skus=frozenset({"SOFA-2", "SOFA-1"}),
        excluded_categories=frozenset({"oversized"}),
        free_from=D("50.00"),
    )
    return replace(method, **changes)  # type: ignore[arg-type]


async def offered(conn: AsyncConnection, currency: str) -> tuple[ShippingMethod, ...]:
    """The active shipping methods in this currency, as pricing reads them."""
    return (await rules_store.methods_by_currency(conn)).get(currency, ())


def a_region() -> str:
    """A tax area no other test uses: a region of a user-assigned country code."""
    return f"ZZ-{uuid.uuid4().hex[:3].upper()}"


@pytest.fixture
async def conn(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction rolled back after the test: the rules it writes are never seen by others."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        try:
            yield connection
        finally:
            await transaction.rollback()


async def test_a_promotion_reads_back_equal_and_is_active(conn: AsyncConnection) -> None:
    promotion = a_promotion()
    stored = await rules_admin.put_promotion(conn, promotion)

    assert stored == rules_admin.StoredPromotion(promotion, active=True, uses=0)
    assert await rules_admin.get_promotion(conn, promotion.promotion_id) == stored
    assert promotion in await rules_store.active_promotions(conn)
    row = (
        await conn.execute(
            select(promotions).where(promotions.c.promotion_id == promotion.promotion_id)
        )
    ).one()
    assert row.target == {"skus": ["SKU-0", "SKU-1"], "categories": ["books"], "brands": ["Acme"]}
    assert row.exclusions == {"skus": [], "categories": ["alcohol", "gift-cards"], "brands": []}


async def test_an_automatic_cart_wide_fixed_promotion_reads_back_equal(
    conn: AsyncConnection,
) -> None:
    promotion = a_promotion(
        code=None,
        kind=DiscountKind.FIXED,
        value=D("5.00"),
        target=None,
        exclusions=Selection(),
        min_spend=D(0),
        valid_from=None,
        valid_until=None,
        limit_total=None,
        limit_per_buyer=None,
        priority=0,
    )
    await rules_admin.put_promotion(conn, promotion)

    [back] = [p for p in await rules_store.active_promotions(conn) if p == promotion]
    assert (back.code, back.target) == (None, None)
    target_is_sql_null = promotions.c.target.is_(None)
    found = await conn.scalar(
        select(promotions.c.promotion_id).where(
            promotions.c.promotion_id == promotion.promotion_id, target_is_sql_null
        )
    )
    assert found == promotion.promotion_id


async def test_codes_are_stored_normalized(conn: AsyncConnection) -> None:
    promotion = a_promotion()
    assert promotion.code is not None
    stored = await rules_admin.put_promotion(
        conn, replace(promotion, code=f"  {promotion.code.lower()} ")
    )
    assert stored.promotion.code == promotion.code
    assert stored.promotion == promotion


async def test_putting_again_replaces_the_promotion_and_may_reactivate_it(
    conn: AsyncConnection,
) -> None:
    first = a_promotion()
    await rules_admin.put_promotion(conn, first, active=False)
    changed = replace(first, value=D("30"), stacking=Stacking.EXCLUSIVE, target=None)

    stored = await rules_admin.put_promotion(conn, changed)

    listed = [
        p
        for p in await rules_admin.list_promotions(conn)
        if p.promotion.promotion_id == first.promotion_id
    ]
    assert listed == [stored]
    assert (stored.promotion, stored.active) == (changed, True)


async def test_a_code_another_promotion_has_is_refused_and_the_transaction_goes_on(
    conn: AsyncConnection,
) -> None:
    holder = a_promotion()
    await rules_admin.put_promotion(conn, holder)
    await rules_admin.deactivate_promotion(conn, holder.promotion_id)
    assert holder.code is not None
    clash = a_promotion(code=holder.code.lower())

    with pytest.raises(CodeTakenError) as refused:
        await rules_admin.put_promotion(conn, clash)

    assert str(refused.value) == (
        f"promotion {clash.promotion_id}: its code is already promotion {holder.promotion_id}'s "
        "(codes are unique, whether their promotion is active or not)"
    )
    assert isinstance(refused.value, RuleRefusedError)
    assert await rules_admin.get_promotion(conn, clash.promotion_id) is None
    # The savepoint kept the transaction usable: the next write of it goes through.
    other = a_promotion()
    assert (await rules_admin.put_promotion(conn, other)).promotion == other


async def test_deactivating_keeps_the_uses_and_stops_the_promotion_applying(
    conn: AsyncConnection,
) -> None:
    promotion = a_promotion()
    await rules_admin.put_promotion(conn, promotion)
    await conn.execute(promotion_uses.insert().values(promotion_id=promotion.promotion_id, uses=3))

    stopped = await rules_admin.deactivate_promotion(conn, promotion.promotion_id)

    assert stopped == rules_admin.StoredPromotion(promotion, active=False, uses=3)
    assert promotion not in await rules_store.active_promotions(conn)
    assert stopped in await rules_admin.list_promotions(conn, active=False)
    assert stopped not in await rules_admin.list_promotions(conn, active=True)
    assert await rules_admin.deactivate_promotion(conn, "no-such-promotion") is None


@pytest.mark.parametrize(
    "change",
    [
        {"promotion_id": "with space"},
        {"value": D("12.34567")},
        {"currency": "euro"},
        {"target": Selection()},
    ],
)
async def test_a_refused_promotion_stores_nothing(
    conn: AsyncConnection, change: dict[str, object]
) -> None:
    promotion = a_promotion(**change)
    with pytest.raises(RuleRefusedError):
        await rules_admin.put_promotion(conn, promotion)
    assert await rules_admin.get_promotion(conn, promotion.promotion_id) is None


async def test_logs_show_codes_only_masked(
    conn: AsyncConnection, caplog: pytest.LogCaptureFixture
) -> None:
    promotion = a_promotion()
    assert promotion.code is not None
    with caplog.at_level(logging.INFO, logger="checkout_saga.cart.rules"):
        await rules_admin.put_promotion(conn, promotion)
        await rules_admin.deactivate_promotion(conn, promotion.promotion_id)

    logged = [r.getMessage() for r in caplog.records if r.name == "checkout_saga.cart.rules"]
    assert len(logged) == 2
    assert all(mask(promotion.code) in message for message in logged)
    assert promotion.code not in caplog.text
    assert promotion.code[2:] not in caplog.text


async def test_a_shipping_method_reads_back_equal_until_deactivated(conn: AsyncConnection) -> None:
    method = a_method()
    stored = await rules_admin.put_shipping_method(conn, method, "CHF")

    assert stored == rules_admin.StoredMethod(method, "CHF", active=True)
    assert await rules_admin.get_shipping_method(conn, method.method_id) == stored
    assert method in await offered(conn, "CHF")
    assert method not in await offered(conn, "EUR")
    bands = await conn.scalar(
        select(shipping_methods.c.bands).where(shipping_methods.c.method_id == method.method_id)
    )
    assert bands == [
        {"up_to_grams": 1000, "price": "4.90"},
        {"up_to_grams": 31500, "price": "12.90"},
    ]

    stopped = await rules_admin.deactivate_shipping_method(conn, method.method_id)

    assert stopped == rules_admin.StoredMethod(method, "CHF", active=False)
    assert method not in await offered(conn, "CHF")
    assert stopped in await rules_admin.list_shipping_methods(conn, active=False)
    assert await rules_admin.deactivate_shipping_method(conn, "no-such-method") is None


async def test_putting_a_method_again_replaces_it(conn: AsyncConnection) -> None:
    method = a_method()
    await rules_admin.put_shipping_method(conn, method, "EUR", active=False)
    cheaper = replace(
        method, bands=(WeightBand(500, D("2.50")),), free_from=None, serves=frozenset({"AT"})
    )

    stored = await rules_admin.put_shipping_method(conn, cheaper, "EUR")

    assert stored == rules_admin.StoredMethod(cheaper, "EUR", active=True)
    assert [m for m in await offered(conn, "EUR") if m.method_id == method.method_id] == [cheaper]


async def test_a_refused_method_stores_nothing(conn: AsyncConnection) -> None:
    method = a_method(serves=frozenset({"Germany"}))
    with pytest.raises(RuleRefusedError, match="serves country 'Germany'"):
        await rules_admin.put_shipping_method(conn, method, "EUR")
    assert await rules_admin.get_shipping_method(conn, method.method_id) is None


async def test_tax_rates_read_back_equal_and_can_be_deleted(conn: AsyncConnection) -> None:
    region, country = a_region(), "XZ"
    await conn.execute(delete(tax_rates).where(tax_rates.c.area == country))
    regional = RateTable(D("0.0825"), {"food": D("0.025"), "books": D("0")})
    national = RateTable(D("0.2"))

    stored = await rules_admin.put_tax_rate(conn, region, regional)
    await rules_admin.put_tax_rate(conn, country, national)

    assert stored == rules_admin.StoredRate(region, regional)
    assert await rules_admin.get_tax_rate(conn, region) == stored
    rates = await rules_store.rates(conn)
    assert (rates.regions[region], rates.countries[country]) == (regional, national)
    raw = await conn.scalar(select(tax_rates.c.by_category).where(tax_rates.c.area == region))
    assert raw == {"books": "0", "food": "0.025"}  # strings: a JSON number is a binary float
    assert rules_admin.StoredRate(country, national) in await rules_admin.list_tax_rates(conn)

    assert await rules_admin.delete_tax_rate(conn, region)
    assert not await rules_admin.delete_tax_rate(conn, region)
    assert region not in (await rules_store.rates(conn)).regions


async def test_putting_a_rate_table_again_replaces_it(conn: AsyncConnection) -> None:
    region = a_region()
    await rules_admin.put_tax_rate(conn, region, RateTable(D("0.1"), {"food": D("0.05")}))
    await rules_admin.put_tax_rate(conn, region, RateTable(D("0.15")))
    assert (await rules_store.rates(conn)).regions[region] == RateTable(D("0.15"))


async def test_a_refused_rate_table_stores_nothing(conn: AsyncConnection) -> None:
    with pytest.raises(RuleRefusedError, match="ISO 3166-2"):
        await rules_admin.put_tax_rate(conn, "ZZ-TOOLONG", RateTable(D("0.1")))
    count = await conn.scalar(text("SELECT count(*) FROM cart.tax_rates WHERE area = 'ZZ-TOOLONG'"))
    assert count == 0
