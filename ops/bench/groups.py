"""`bench --vendors N`: marketplace checkouts, each a group of N vendor orders (pure: no I/O).

Every bench product belongs to one vendor (round robin over the SKUs); a group takes one or two
lines from each of N vendors. In a share of the groups (`--short-vendor-share`) one vendor's
lines are replaced by that vendor's *short* product, which holds fewer units than the line
asks: a `partial` group then goes on without that vendor order, an `all_or_nothing` one fails.
The short products never hold or sell anything, which the run checks.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from contracts import CheckoutStarted, LineItem
from contracts.types import CheckoutPolicy
from ops.bench.counters import BENCH_SKU_PREFIX
from ops.loadgen import make_checkouts

SHORT_SKU_PREFIX = f"{BENCH_SKU_PREFIX}SHORT-"
SHORT_STOCK = 1
"""Units of each short product: fewer than the SHORT_QUANTITY a short line asks for."""
SHORT_QUANTITY = 2


class GroupPolicy(StrEnum):
    """The policy of the driven groups: one for all, or alternating (`mixed`)."""

    ALL_OR_NOTHING = "all_or_nothing"
    PARTIAL = "partial"
    MIXED = "mixed"

    def for_group(self, index: int) -> CheckoutPolicy:
        """The policy of the index-th group (mixed: even all_or_nothing, odd partial)."""
        if self is GroupPolicy.MIXED:
            return CheckoutPolicy.PARTIAL if index % 2 else CheckoutPolicy.ALL_OR_NOTHING
        return CheckoutPolicy(self.value)


@dataclass(frozen=True)
class GroupOptions:
    """How many vendors a checkout spans, their policy, and how often one vendor is short."""

    vendors: int = 1
    policy: GroupPolicy = GroupPolicy.ALL_OR_NOTHING
    short_vendor_share: float = 0.0

    @property
    def enabled(self) -> bool:
        """True when checkouts are groups (several vendors); else the plain bench, unchanged."""
        return self.vendors > 1

    def misuse(self, skus: int) -> str | None:
        """Why these options cannot run with `skus` products, or None."""
        if not self.enabled and (
            self.policy is not GroupPolicy.ALL_OR_NOTHING or self.short_vendor_share
        ):
            return (
                "--policy and --short-vendor-share drive checkout groups: add --vendors 2 or more"
            )
        if self.vendors > skus:
            return f"--vendors {self.vendors}: at most one vendor per bench product ({skus})"
        if not 0 <= self.short_vendor_share <= 1:
            return "--short-vendor-share is a fraction between 0 and 1"
        return None

    def summary(self) -> str:
        """One line for the progress log."""
        return (
            f"checkout groups of {self.vendors} vendors, policy {self.policy.value}, "
            f"a short vendor in {self.short_vendor_share:.0%} of them"
        )

    def described(self) -> dict[str, object]:
        """The options as the report states them."""
        return {
            "vendors": self.vendors,
            "policy": self.policy.value,
            "short_vendor_share": self.short_vendor_share,
        }


def vendor_id(index: int) -> str:
    """The index-th bench vendor (0-based): bench-vendor-01, bench-vendor-02, ..."""
    return f"bench-vendor-{index + 1:02d}"


def short_sku(vendor: int) -> str:
    """The short product of a vendor (0-based index)."""
    return f"{SHORT_SKU_PREFIX}{vendor + 1:02d}"


def short_skus(vendors: int) -> list[str]:
    """Every vendor's short product."""
    return [short_sku(v) for v in range(vendors)]


def catalog_by_vendor(skus: Sequence[str], vendors: int) -> list[list[str]]:
    """The bench products of each vendor, dealt round robin."""
    return [list(skus[v::vendors]) for v in range(vendors)]


def short_vendor(checkout: CheckoutStarted) -> str | None:
    """The vendor whose product this group is short of, or None."""
    for item in checkout.items:
        if item.sku.startswith(SHORT_SKU_PREFIX):
            return item.vendor_id
    return None


def bench_checkouts(
    skus: Sequence[str], count: int, seed: int, options: GroupOptions
) -> list[CheckoutStarted]:
    """The checkouts to drive: the plain bench's with one vendor, else checkout groups."""
    if options.enabled:
        return make_group_checkouts(skus, count, seed, options)
    return make_checkouts(skus, count, seed)


def make_group_checkouts(
    skus: Sequence[str], count: int, seed: int, options: GroupOptions
) -> list[CheckoutStarted]:
    """Reproducible checkout groups of 1-2 lines per vendor, over `options.vendors` vendors."""
    rng = random.Random(seed)
    catalog = catalog_by_vendor(skus, options.vendors)
    return [_group(rng, index, catalog, options) for index in range(count)]


def _group(
    rng: random.Random, index: int, catalog: list[list[str]], options: GroupOptions
) -> CheckoutStarted:
    short = rng.randrange(len(catalog)) if rng.random() < options.short_vendor_share else None
    items = [
        line
        for vendor, products in enumerate(catalog)
        for line in _vendor_lines(rng, vendor, products, short=vendor == short)
    ]
    return CheckoutStarted(
        order_id=uuid.UUID(int=rng.getrandbits(128), version=4),
        buyer_id=f"load-buyer-{index % 97}",
        currency="EUR",
        items=items,
        policy=options.policy.for_group(index),
    )


def _vendor_lines(
    rng: random.Random, vendor: int, products: list[str], *, short: bool
) -> list[LineItem]:
    # A short vendor sells only its short product here, so its whole vendor order is rejected.
    if short:
        return [_line(rng, short_sku(vendor), vendor, SHORT_QUANTITY)]
    chosen = rng.sample(products, k=min(len(products), rng.randint(1, 2)))
    return [_line(rng, sku, vendor, rng.randint(1, 2)) for sku in chosen]


def _line(rng: random.Random, sku: str, vendor: int, quantity: int) -> LineItem:
    price = Decimal(rng.randint(100, 20000)) / 100
    return LineItem(sku=sku, quantity=quantity, unit_price=price, vendor_id=vendor_id(vendor))
