"""What became of the driven checkout groups, and whether each ended as its policy allows (pure).

A group's final event must agree with itself (its outcome with its vendor orders' states, its
balance due with the confirmed orders' totals) and with what was driven: one result per vendor,
no rejected line unless a vendor was short, never `partially_completed` under all_or_nothing,
never `completed` when a vendor was short, and the short vendor's order failed.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from contracts import CheckoutStarted
from contracts.messages import CheckoutGroupCompleted, GroupOutcome
from contracts.types import CheckoutPolicy
from ops.bench.groups import short_vendor
from ops.bench.stats import latency_summary_ms
from ops.bench.wire import Finish

EXAMPLES = 10


@dataclass
class GroupTally:
    """Groups by outcome and by policy, their vendor orders, and the groups that broke a rule."""

    by_outcome: Counter[str] = field(default_factory=Counter)
    by_policy: dict[str, Counter[str]] = field(default_factory=dict)
    latencies_s: dict[str, list[float]] = field(default_factory=dict)
    short_groups: int = 0
    vendor_orders: Counter[str] = field(default_factory=Counter)
    rejected_lines: int = 0
    balance_due: Decimal = Decimal("0.00")
    unexpected: list[str] = field(default_factory=list)
    short_held_before: int = 0
    short_held_after: int = 0

    def add(self, checkout: CheckoutStarted, finish: Finish) -> None:
        """Count one finished group and check it against the rules."""
        group = finish.group
        if group is None:
            self.unexpected.append(f"{checkout.order_id}: {finish.reason}")
            return
        outcome = group.outcome.value
        self.by_outcome[outcome] += 1
        self.by_policy.setdefault(checkout.policy.value, Counter())[outcome] += 1
        self.latencies_s.setdefault(outcome, []).append(finish.latency_s)
        self.short_groups += short_vendor(checkout) is not None
        self.vendor_orders.update(order.status for order in group.orders)
        self.rejected_lines += sum(len(order.rejected) for order in group.orders)
        self.balance_due += group.balance_due
        self.unexpected.extend(f"{checkout.order_id}: {why}" for why in surprises(checkout, group))

    def problems(self) -> list[str]:
        """Groups that broke a rule, and stock the short products should never hold."""
        found = []
        if self.unexpected:
            found.append(f"{len(self.unexpected)} group(s) ended against the rules")
        if self.short_held_after != self.short_held_before:
            found.append(
                "short products held or sold stock: "
                f"{self.short_held_before} -> {self.short_held_after}"
            )
        return found

    def as_dict(self) -> dict[str, object]:
        """The groups part of the JSON report."""
        return {
            "by_outcome": {o.value: self.by_outcome[o.value] for o in GroupOutcome},
            "by_policy": {p: dict(sorted(c.items())) for p, c in sorted(self.by_policy.items())},
            "latency_ms_by_outcome": {
                o: latency_summary_ms(s) for o, s in sorted(self.latencies_s.items())
            },
            "short_groups": self.short_groups,
            "vendor_orders": dict(sorted(self.vendor_orders.items())),
            "rejected_lines": self.rejected_lines,
            "balance_due_total": str(self.balance_due),
            "unexpected": len(self.unexpected),
            "unexpected_examples": self.unexpected[:EXAMPLES],
            "short_stock_held": {"before": self.short_held_before, "after": self.short_held_after},
        }


def tally_groups(
    checkouts: Mapping[uuid.UUID, CheckoutStarted], finished: Mapping[uuid.UUID, Finish]
) -> GroupTally:
    """The tally of every finished group (unfinished ones are counted by Outcomes)."""
    tally = GroupTally()
    for group_id, finish in finished.items():
        tally.add(checkouts[group_id], finish)
    return tally


def surprises(checkout: CheckoutStarted, group: CheckoutGroupCompleted) -> list[str]:
    """Every rule this group's final event breaks (empty when it ended as it may)."""
    return [*_inconsistencies(group), *_against_the_drive(checkout, group)]


def _inconsistencies(group: CheckoutGroupCompleted) -> list[str]:
    confirmed = [o for o in group.orders if o.status == "confirmed"]
    if not confirmed:
        agreed = GroupOutcome.FAILED
    elif len(confirmed) == len(group.orders):
        agreed = GroupOutcome.COMPLETED
    else:
        agreed = GroupOutcome.PARTIALLY_COMPLETED
    found = []
    if group.outcome is not agreed:
        found.append(f"outcome {group.outcome.value}, its orders say {agreed.value}")
    paid = sum((o.total for o in confirmed), Decimal("0.00"))
    if group.balance_due != paid:
        found.append(f"balance_due {group.balance_due} != {paid} of the confirmed orders")
    return found


def _against_the_drive(checkout: CheckoutStarted, group: CheckoutGroupCompleted) -> list[str]:
    found = []
    vendors = {item.vendor_id for item in checkout.items}
    if {order.vendor_id for order in group.orders} != vendors or len(group.orders) != len(vendors):
        found.append("not one vendor order per vendor")
    short = short_vendor(checkout)
    all_or_nothing = checkout.policy is CheckoutPolicy.ALL_OR_NOTHING
    if all_or_nothing and group.outcome is GroupOutcome.PARTIALLY_COMPLETED:
        found.append("partially_completed under all_or_nothing")
    if short is None and any(order.rejected for order in group.orders):
        found.append("lines rejected although every product was in stock")
    if short is not None:
        found.extend(_short_vendor_failed(group, short))
    return found


def _short_vendor_failed(group: CheckoutGroupCompleted, short: str) -> list[str]:
    found = []
    if group.outcome is GroupOutcome.COMPLETED:
        found.append(f"completed although {short} was short")
    if any(o.status == "confirmed" for o in group.orders if o.vendor_id == short):
        found.append(f"the order of {short}, which was short, was confirmed")
    return found
