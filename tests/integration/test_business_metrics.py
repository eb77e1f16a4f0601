"""The cart's business figures from PostgreSQL: `GET /admin/v1/business` and the gauges agree.

Carts are counted globally (active carts, ended carts), so each test gets a database of its own
and asserts exact figures: rows of other tests would otherwise move them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import delete, func
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ops.admin.app import create_admin_app
from services.cart import order_view
from services.cart.business_queries import read_figures
from services.cart.checkout_rules import GroupStatus, balance_due, group_status
from services.cart.tables import carts, checkout_groups, order_status, redemptions
from services.platform import migrate
from services.platform.db import create_engine
from services.platform.settings import KafkaSettings, Settings
from tests.support import infra

pytestmark = pytest.mark.integration

DAY = "1d"
"""The gauges' window label (24 h)."""
OLD = timedelta(days=3)
"""How long ago the rows outside the 24 h window (and inside 30 days) were written."""
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def business_database(pg_server_url: str) -> Iterator[str]:
    """A migrated database of this test alone."""
    with infra.fresh_database(pg_server_url) as url:
        migrate.upgrade(url)
        yield url


@dataclass
class Admin:
    """An admin app (no runtime) on the test's database, and an engine to write rows with."""

    client: httpx.AsyncClient
    engine: AsyncEngine

    async def business(self, **params: Any) -> httpx.Response:
        """GET /admin/v1/business."""
        return await self.client.get("/admin/v1/business", params=params)

    async def scrape(self) -> Samples:
        """Every sample of /metrics by (name, labels)."""
        response = await self.client.get("/metrics")
        assert response.status_code == 200
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }


@pytest.fixture
async def admin(business_database: str, kafka_bootstrap: str) -> AsyncIterator[Admin]:
    """The admin API over the test's database (the session's broker for its lag gauges)."""
    settings = Settings(
        database_url=SecretStr(business_database),
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_partitions=4),
    )
    engine = create_engine(settings, pool_size=2)
    app = create_admin_app(settings, engine)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            yield Admin(client, engine)
    finally:
        await app.state.admin.telemetry.close()
        await engine.dispose()


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """The samples of one metric by their labels."""
    return {labels: value for (n, labels), value in samples.items() if n == name}


def labels(**values: str) -> frozenset[tuple[str, str]]:
    """A sample's labels."""
    return frozenset(values.items())


# --- rows -------------------------------------------------------------------------------------


@dataclass
class Seeded:
    """What one test wrote: its buyers, groups and promotions."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    groups: dict[str, uuid.UUID] = field(default_factory=dict)

    def buyer(self, name: str, guest: bool = False) -> str:
        """A buyer id of this test (a guest's is `guest:<session>`)."""
        return f"guest:{uuid.uuid4()}" if guest else f"buyer-{self.tag}-{name}"

    def promotion(self, name: str) -> str:
        """A promotion id of this test."""
        return f"P-{self.tag}-{name}"


def _ago(age: timedelta | None) -> Any:
    return func.now() if age is None else func.now() - age


async def _cart(
    conn: AsyncConnection, buyer_id: str, status: str, age: timedelta | None = None
) -> None:
    when = _ago(age)
    await conn.execute(
        carts.insert().values(
            cart_id=uuid.uuid4(),
            buyer_id=buyer_id,
            status=status,
            currency="XTS",
            created_at=when,
            updated_at=when,
            last_activity_at=when,
        )
    )


Order = tuple[str, str, str | None]
"""A vendor order as seeded: status, total, adjusted total (None: not adjusted)."""


async def _group(
    conn: AsyncConnection,
    seeded: Seeded,
    name: str,
    currency: str,
    orders: list[Order],
    age: timedelta | None = None,
) -> None:
    group_id, buyer_id, cart_id = uuid.uuid4(), seeded.buyer(name), uuid.uuid4()
    seeded.groups[name] = group_id
    await conn.execute(
        checkout_groups.insert().values(
            group_id=group_id,
            buyer_id=buyer_id,
            cart_id=cart_id,
            policy="partial",
            currency=currency,
            total=sum(Decimal(total) for _, total, _ in orders),
            created_at=_ago(age),
        )
    )
    for status, total, adjusted in orders:
        await conn.execute(
            order_status.insert().values(
                order_id=uuid.uuid4(),
                buyer_id=buyer_id,
                cart_id=cart_id,
                status=status,
                currency=currency,
                total=Decimal(total),
                adjusted_total=None if adjusted is None else Decimal(adjusted),
                items=[],
                checkout_group_id=group_id,
                vendor_id=f"vendor-{uuid.uuid4().hex[:6]}",
            )
        )


async def _redemption(
    conn: AsyncConnection,
    seeded: Seeded,
    group: str,
    promotion: str,
    amount: str,
    returned: bool = False,
    age: timedelta | None = None,
) -> None:
    when = _ago(age)
    await conn.execute(
        redemptions.insert().values(
            group_id=seeded.groups[group],
            promotion_id=seeded.promotion(promotion),
            buyer_id=seeded.buyer(group),
            amount=Decimal(amount),
            currency="XTS",
            redeemed_at=when,
            returned_at=when if returned else None,
        )
    )


async def _seed(engine: AsyncEngine) -> Seeded:
    """Carts, checkout groups, vendor orders and redemptions; the expected figures are below."""
    seeded = Seeded()
    async with engine.begin() as conn:
        for name, guest, status in [
            ("active-1", False, "active"),
            ("active-2", False, "active"),
            ("active-guest", True, "active"),
            ("checked-out", False, "checked_out"),
            ("cleared-guest", True, "cleared"),
            ("abandoned", False, "abandoned"),
            ("merged-guest", True, "merged"),
        ]:
            await _cart(conn, seeded.buyer(name, guest), status)
        await _cart(conn, seeded.buyer("abandoned-long-ago"), "abandoned", OLD)
        await _seed_groups(conn, seeded)
        await _redemption(conn, seeded, "completed", "A", "1.00")
        await _redemption(conn, seeded, "partial", "A", "2.50")
        await _redemption(conn, seeded, "failed", "A", "3.00", returned=True)
        await _redemption(conn, seeded, "failed", "B", "0.50", returned=True)
        await _redemption(conn, seeded, "long-ago", "C", "9.00", age=OLD)
    return seeded


async def _seed_groups(conn: AsyncConnection, seeded: Seeded) -> None:
    """In XTS: balances 17.50 + 5.00 + 0.01 paid in the day, 100.00 three days ago; EUR 40.00."""
    await _group(
        conn,
        seeded,
        "completed",
        "XTS",
        [("confirmed", "10.00", None), ("confirmed", "9.00", "7.50")],
    )
    await _group(
        conn, seeded, "partial", "XTS", [("confirmed", "5.00", None), ("failed", "20.00", None)]
    )
    await _group(conn, seeded, "failed", "XTS", [("failed", "8.00", None)])
    await _group(
        conn, seeded, "processing", "XTS", [("confirmed", "3.00", None), ("created", "4.00", None)]
    )
    await _group(conn, seeded, "cent", "XTS", [("confirmed", "0.01", None)])
    await _group(conn, seeded, "long-ago", "XTS", [("confirmed", "100.00", None)], OLD)
    await _group(conn, seeded, "euro", "EUR", [("confirmed", "40.00", None)])


# --- tests ------------------------------------------------------------------------------------


async def test_the_admin_api_shows_the_figures_of_the_window(admin: Admin) -> None:
    seeded = await _seed(admin.engine)
    response = await admin.business()
    assert response.status_code == 200, response.text
    assert response.json() == {
        "window_hours": 24,
        "active_carts": {"buyer": 2, "guest": 1},
        "ended_carts": {"checked_out": 2, "abandoned": 1, "merged": 1},
        "conversion_rate": 2 / 3,
        "abandonment_rate": 1 / 3,
        "orders": [
            {"currency": "EUR", "orders": 1, "sales": "40.00", "average_order_value": "40.00"},
            # 22.51 / 3 = 7.5033...
            {"currency": "XTS", "orders": 3, "sales": "22.51", "average_order_value": "7.50"},
        ],
        "promotions": [
            {"promotion_id": seeded.promotion("A"), "uses": 2, "returned": 1},
            {"promotion_id": seeded.promotion("B"), "uses": 0, "returned": 1},
        ],
        "discounts": [{"currency": "XTS", "amount": "3.50", "uses": 2}],
    }


async def test_a_wider_window_takes_older_rows_in(admin: Admin) -> None:
    seeded = await _seed(admin.engine)
    body = (await admin.business(window_hours=720)).json()
    assert body["window_hours"] == 720
    assert body["ended_carts"] == {"checked_out": 2, "abandoned": 2, "merged": 1}
    assert (body["conversion_rate"], body["abandonment_rate"]) == (0.5, 0.5)
    # (22.51 + 100.00) / 4 = 30.6275: half up to 30.63.
    xts = {"currency": "XTS", "orders": 4, "sales": "122.51", "average_order_value": "30.63"}
    assert xts in body["orders"]
    promotion_c = {"promotion_id": seeded.promotion("C"), "uses": 1, "returned": 0}
    assert promotion_c in body["promotions"]
    assert body["discounts"] == [{"currency": "XTS", "amount": "12.50", "uses": 3}]


@pytest.mark.parametrize("hours", ["0", "721", "-1", "24.5", "day"])
async def test_windows_out_of_bounds_are_refused(admin: Admin, hours: str) -> None:
    response = await admin.business(window_hours=hours)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


async def test_group_balances_agree_with_the_pure_rules(admin: Admin) -> None:
    """The query's sums and mixes say what checkout_rules says of the same vendor orders."""
    seeded = await _seed(admin.engine)
    sales: dict[str, Decimal] = {}
    counts: dict[str, int] = {}
    async with admin.engine.connect() as conn:
        for name, group_id in seeded.groups.items():
            if name == "long-ago":
                continue
            orders = await order_view.of_group(conn, group_id, seeded.buyer(name))
            if group_status(orders) in (GroupStatus.COMPLETED, GroupStatus.PARTIALLY_COMPLETED):
                currency = orders[0].currency
                sales[currency] = sales.get(currency, Decimal(0)) + balance_due(orders)
                counts[currency] = counts.get(currency, 0) + 1
        figures = await read_figures(conn, timedelta(hours=24))
    assert {o.currency: o.sales for o in figures.orders} == sales
    assert {o.currency: o.orders for o in figures.orders} == counts


async def test_the_gauges_show_the_same_figures(admin: Admin) -> None:
    seeded = await _seed(admin.engine)
    samples = await admin.scrape()
    assert series(samples, "checkout_cart_active_carts") == {
        labels(kind="buyer"): 2,
        labels(kind="guest"): 1,
    }
    assert series(samples, "checkout_cart_ended_carts") == {
        labels(window=DAY, outcome="checked_out"): 2,
        labels(window=DAY, outcome="abandoned"): 1,
    }
    conversion = series(samples, "checkout_cart_conversion_ratio")
    assert conversion == {labels(window=DAY): pytest.approx(2 / 3)}
    abandonment = series(samples, "checkout_cart_abandonment_ratio")
    assert abandonment == {labels(window=DAY): pytest.approx(1 / 3)}
    assert series(samples, "checkout_cart_completed_checkouts") == {
        labels(window=DAY, currency="XTS"): 3,
        labels(window=DAY, currency="EUR"): 1,
    }
    assert series(samples, "checkout_cart_average_order_value") == {
        labels(window=DAY, currency="XTS"): 7.5,
        labels(window=DAY, currency="EUR"): 40.0,
    }
    a, b = seeded.promotion("A"), seeded.promotion("B")
    assert series(samples, "checkout_cart_promotion_uses") == {
        labels(window=DAY, promotion_id=a): 2,
        labels(window=DAY, promotion_id=b): 0,
    }
    assert series(samples, "checkout_cart_promotion_uses_returned") == {
        labels(window=DAY, promotion_id=a): 1,
        labels(window=DAY, promotion_id=b): 1,
    }
    discount = series(samples, "checkout_cart_discount_amount")
    assert discount == {labels(window=DAY, currency="XTS"): 3.5}
    failures = series(samples, "checkout_metrics_refresh_failures_total")
    assert failures.get(labels(probe="cart_business"), 0) == 0


async def test_series_leave_when_their_figure_does(admin: Admin) -> None:
    """Nothing ended: no ratio at all (not NaN); a promotion or currency gone: its series too."""
    empty = await admin.scrape()
    assert series(empty, "checkout_cart_conversion_ratio") == {}
    assert series(empty, "checkout_cart_abandonment_ratio") == {}
    assert series(empty, "checkout_cart_active_carts") == {
        labels(kind="buyer"): 0,
        labels(kind="guest"): 0,
    }
    body = (await admin.business()).json()
    assert (body["conversion_rate"], body["abandonment_rate"]) == (None, None)
    assert (body["orders"], body["promotions"], body["discounts"]) == ([], [], [])

    seeded = await _seed(admin.engine)
    assert series(await admin.scrape(), "checkout_cart_conversion_ratio")
    async with admin.engine.begin() as conn:
        await conn.execute(delete(carts).where(carts.c.status != "active"))
        gone = redemptions.c.promotion_id == seeded.promotion("B")
        await conn.execute(delete(redemptions).where(gone))
        await conn.execute(delete(order_status).where(order_status.c.currency == "EUR"))
    after = await admin.scrape()
    assert series(after, "checkout_cart_conversion_ratio") == {}
    assert series(after, "checkout_cart_abandonment_ratio") == {}
    uses = series(after, "checkout_cart_promotion_uses")
    assert set(uses) == {labels(window=DAY, promotion_id=seeded.promotion("A"))}
    orders = series(after, "checkout_cart_completed_checkouts")
    assert set(orders) == {labels(window=DAY, currency="XTS")}


async def test_a_failed_read_is_counted_as_a_probe_failure(
    business_database: str, kafka_bootstrap: str
) -> None:
    settings = Settings(
        database_url=SecretStr(business_database + "_missing"),
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_partitions=4),
    )
    engine = create_engine(settings, pool_size=1)
    app = create_admin_app(settings, engine)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            samples = await Admin(client, engine).scrape()
    finally:
        await app.state.admin.telemetry.close()
        await engine.dispose()
    failures = series(samples, "checkout_metrics_refresh_failures_total")
    assert failures[labels(probe="cart_business")] == 1
