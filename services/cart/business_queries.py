"""The cart's business figures read from PostgreSQL in one statement, and the probe that exports them.

PostgreSQL is the source of truth: several cart processes run at once, so counters kept in one
process would not add up. One UNION ALL statement (one round trip, one snapshot) counts the rows
that services/cart/business.py turns into figures; what each figure means is stated there. Its
parts and the indexes they use:

- active carts: `status = 'active'`, the partial index `ix_carts_idle` (its predicate);
- carts ended in the window: by `updated_at`, the partial index `ix_carts_ended`;
- checkout groups created in the window, `ix_checkout_groups_created_at`, each joined to its
  vendor orders through `ix_order_status_group`;
- redemptions in the window: `ix_redemptions_redeemed_at`.

Each row is (part, name, currency, f1, f2, f3, n, amount); the parts fill them as their
`_from_*` readers below say. Times are the database's (`now()`), as everywhere in the cart.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.cart.business import (
    WINDOW,
    BusinessFigures,
    BuyerKind,
    CartCount,
    GroupTally,
    OrderMix,
    RedemptionTally,
    business_figures,
    window_label,
)
from services.cart.checkout_rules import OrderProgress
from services.cart.domain import CartStatus
from services.cart.guest_rules import GUEST_PREFIX
from services.platform import sql
from services.platform.telemetry import Metrics

_ACTIVE = CartStatus.ACTIVE.value
_OPEN = ", ".join(f"'{p.value}'" for p in (OrderProgress.PENDING, OrderProgress.CREATED))
_CONFIRMED = OrderProgress.CONFIRMED.value
_FAILED = OrderProgress.FAILED.value

# $1: the window (interval), $2: the guest prefix. The window's start is written out in each
# part, not in a CTE: the planner then estimates each range from the statistics (a CTE's value
# is unknown to it; with one it hash-joined whole tables, 2x slower on a million carts). A
# group's balance restates checkout_rules.balance_due: its confirmed orders' adjusted totals
# (the checked-out total until a final event adjusts it, as order_view.OrderView does); the
# integration test checks that both agree.
_FIGURES = f"""
SELECT 'cart' AS part, status AS name, NULL::text AS currency,
       starts_with(buyer_id, $2::text) AS f1, NULL::boolean AS f2, NULL::boolean AS f3,
       count(*) AS n, NULL::numeric AS amount
  FROM cart.carts WHERE status = '{_ACTIVE}'
 GROUP BY status, starts_with(buyer_id, $2::text)
UNION ALL
SELECT 'cart', status, NULL, starts_with(buyer_id, $2::text), NULL, NULL, count(*), NULL
  FROM cart.carts WHERE status <> '{_ACTIVE}' AND updated_at >= now() - $1::interval
 GROUP BY status, starts_with(buyer_id, $2::text)
UNION ALL
SELECT 'group', NULL, currency, open, confirmed, failed, count(*), sum(balance)
  FROM (SELECT g.currency,
               bool_or(o.status IN ({_OPEN})) AS open,
               bool_or(o.status = '{_CONFIRMED}') AS confirmed,
               bool_or(o.status = '{_FAILED}') AS failed,
               coalesce(sum(coalesce(o.adjusted_total, o.total))
                        FILTER (WHERE o.status = '{_CONFIRMED}'), 0) AS balance
          FROM cart.checkout_groups g
          JOIN cart.order_status o ON o.checkout_group_id = g.group_id
         WHERE g.created_at >= now() - $1::interval
         GROUP BY g.group_id, g.currency) AS per_group
 GROUP BY currency, open, confirmed, failed
UNION ALL
SELECT 'redemption', promotion_id, currency, returned_at IS NOT NULL, NULL, NULL,
       count(*), sum(amount)
  FROM cart.redemptions WHERE redeemed_at >= now() - $1::interval
 GROUP BY promotion_id, currency, returned_at IS NOT NULL
"""


async def read_figures(conn: AsyncConnection, window: timedelta) -> BusinessFigures:
    """Every business figure over the last `window`, in one round trip."""
    rows = await sql.fetch(conn, _FIGURES, window, GUEST_PREFIX)
    return business_figures(
        window,
        [_from_cart(row) for row in rows if row["part"] == "cart"],
        [_from_group(row) for row in rows if row["part"] == "group"],
        [_from_redemption(row) for row in rows if row["part"] == "redemption"],
    )


def _from_cart(row: Mapping[str, Any]) -> CartCount:
    """name: the status; f1: guests' carts."""
    return CartCount(CartStatus(row["name"]), BuyerKind.of(row["f1"]), row["n"])


def _from_group(row: Mapping[str, Any]) -> GroupTally:
    """f1..f3: any vendor order not final, any confirmed, any failed; amount: balances due."""
    mix = OrderMix(open=row["f1"], confirmed=row["f2"], failed=row["f3"])
    return GroupTally(row["currency"], mix, row["n"], row["amount"])


def _from_redemption(row: Mapping[str, Any]) -> RedemptionTally:
    """name: the promotion; f1: the uses were given back; amount: what they took off."""
    return RedemptionTally(row["name"], row["currency"], row["f1"], row["n"], row["amount"])


Number = int | float | Decimal
Series = dict[tuple[str, ...], Number]
"""A labelled gauge's values by their label values."""


def export(metrics: Metrics, figures: BusinessFigures) -> None:
    """Set the cart business gauges; series no longer found (or undefined) are dropped."""
    carts, window = figures.carts, window_label(figures.window)
    for kind in BuyerKind:
        metrics.cart_active.labels(kind.value).set(carts.active[kind])
    ended = {"checked_out": carts.converted, "abandoned": carts.abandoned}
    _show(metrics.cart_ended, _per(window, ended))
    _show(metrics.cart_conversion, _defined(window, carts.conversion_rate))
    _show(metrics.cart_abandonment, _defined(window, carts.abandonment_rate))
    orders, used = figures.orders, figures.promotions
    _show(metrics.cart_completed_checkouts, _per(window, {o.currency: o.orders for o in orders}))
    _show(metrics.cart_average_order_value, _per(window, {o.currency: o.average for o in orders}))
    _show(metrics.cart_promotion_uses, _per(window, {u.promotion_id: u.uses for u in used}))
    returned = _per(window, {u.promotion_id: u.returned for u in used})
    _show(metrics.cart_promotion_uses_returned, returned)
    granted = _per(window, {d.currency: d.amount for d in figures.discounts})
    _show(metrics.cart_discount_amount, granted)


def _per(window: str, values: Mapping[str, Number]) -> Series:
    return {(window, key): value for key, value in values.items()}


def _defined(window: str, ratio: float | None) -> Series:
    """An undefined ratio has no series at all (never a NaN sample)."""
    return {} if ratio is None else {(window,): ratio}


def _show(gauge: Gauge, series: Series) -> None:
    """Set these series of a labelled gauge and remove every other it has."""
    for labels, value in series.items():
        gauge.labels(*labels).set(float(value))
    # Samples list their labels in the gauge's label order (prometheus_client zips them).
    shown = {tuple(s.labels.values()) for family in gauge.collect() for s in family.samples}
    for labels in shown - series.keys():
        gauge.remove(*labels)


class BusinessProbe:
    """Refreshes the cart business gauges over a window (the gauges': 24 h) at scrape time."""

    def __init__(self, engine: AsyncEngine, window: timedelta = WINDOW) -> None:
        self.engine = engine
        self.window = window

    async def __call__(self, metrics: Metrics) -> None:
        """One statement on one connection, then the gauges."""
        async with self.engine.connect() as conn:
            figures = await read_figures(conn, self.window)
        export(metrics, figures)

    async def close(self) -> None:
        """Nothing to release: the engine belongs to the caller."""
