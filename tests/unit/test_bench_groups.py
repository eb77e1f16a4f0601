"""`bench --vendors N`: the driven checkout groups, their final events, the per-outcome tally."""

from __future__ import annotations

import json
import time
from collections import Counter
from decimal import Decimal
from typing import Literal

import pytest

from contracts import CheckoutStarted
from contracts.codec import encode
from contracts.messages import (
    CheckoutGroupCompleted,
    GroupOutcome,
    RejectedLine,
    VendorOrderResult,
)
from contracts.types import CheckoutPolicy, RejectionReason
from contracts.vendor_orders import split
from ops.bench.counters import bench_skus
from ops.bench.group_report import GroupTally, surprises, tally_groups
from ops.bench.groups import (
    SHORT_QUANTITY,
    SHORT_SKU_PREFIX,
    SHORT_STOCK,
    GroupOptions,
    GroupPolicy,
    bench_checkouts,
    catalog_by_vendor,
    make_group_checkouts,
    short_vendor,
    vendor_id,
)
from ops.bench.report import Measured, build_report, tally
from ops.bench.run import BenchOptions
from ops.bench.stats import Outcomes
from ops.bench.wire import GROUP_TOPICS, Finish, Watcher
from ops.loadgen import make_checkouts
from services.platform.settings import KafkaSettings

SKUS = bench_skus(20)
Status = Literal["confirmed", "failed"]


def _groups(
    count: int = 200,
    *,
    vendors: int,
    policy: GroupPolicy = GroupPolicy.ALL_OR_NOTHING,
    short_vendor_share: float = 0.0,
) -> list[CheckoutStarted]:
    options = GroupOptions(vendors, policy, short_vendor_share)
    return make_group_checkouts(SKUS, count, seed=5, options=options)


# --- the driven groups ---------------------------------------------------------------------------


def test_one_vendor_drives_exactly_the_plain_benchs_checkouts() -> None:
    plain = bench_checkouts(SKUS, 50, 3, GroupOptions())
    assert plain == make_checkouts(SKUS, 50, 3)
    assert all(item.vendor_id is None for c in plain for item in c.items)
    assert "groups" not in BenchOptions().described()


def test_groups_span_every_vendor_with_one_or_two_of_its_own_products() -> None:
    catalog = catalog_by_vendor(SKUS, 3)
    owner = {sku: vendor_id(v) for v, products in enumerate(catalog) for sku in products}
    for checkout in _groups(vendors=3):
        per_vendor = Counter(item.vendor_id for item in checkout.items)
        assert set(per_vendor) == {vendor_id(v) for v in range(3)}
        assert all(1 <= n <= 2 for n in per_vendor.values())
        assert all(owner[item.sku] == item.vendor_id for item in checkout.items)
        assert len(split(checkout)) == 3


def test_groups_are_reproducible_from_the_seed() -> None:
    assert _groups(vendors=3) == _groups(vendors=3)
    other = make_group_checkouts(SKUS, 200, seed=6, options=GroupOptions(vendors=3))
    assert other != _groups(vendors=3)


def test_a_short_group_asks_one_vendors_short_product_for_more_than_it_holds() -> None:
    groups = _groups(1000, vendors=3, short_vendor_share=0.3)
    short = [c for c in groups if short_vendor(c) is not None]
    assert 230 < len(short) < 370  # 300 expected; about four standard deviations either side
    for checkout in short:
        lines = [i for i in checkout.items if i.sku.startswith(SHORT_SKU_PREFIX)]
        assert len(lines) == 1
        assert lines[0].quantity == SHORT_QUANTITY > SHORT_STOCK
        # The short vendor sells nothing else in this group, so its whole order is rejected.
        assert [i.vendor_id for i in checkout.items].count(lines[0].vendor_id) == 1
    assert not any(short_vendor(c) for c in _groups(vendors=3))


def test_the_policy_is_one_for_all_or_alternates() -> None:
    assert {c.policy for c in _groups(vendors=2)} == {CheckoutPolicy.ALL_OR_NOTHING}
    assert {c.policy for c in _groups(vendors=2, policy=GroupPolicy.PARTIAL)} == {
        CheckoutPolicy.PARTIAL
    }
    mixed = [c.policy for c in _groups(4, vendors=2, policy=GroupPolicy.MIXED)]
    assert mixed == [CheckoutPolicy.ALL_OR_NOTHING, CheckoutPolicy.PARTIAL] * 2


def test_a_group_travels_with_its_vendors_and_only_a_partial_policy() -> None:
    aon, partial = _groups(2, vendors=2, policy=GroupPolicy.MIXED)
    assert "policy" not in json.loads(encode(aon.to_envelope()))["payload"]
    payload = json.loads(encode(partial.to_envelope()))["payload"]
    assert payload["policy"] == "partial"
    assert all(item["vendor_id"].startswith("bench-vendor-") for item in payload["items"])


@pytest.mark.parametrize(
    ("options", "wrong"),
    [
        (GroupOptions(policy=GroupPolicy.PARTIAL), "add --vendors 2 or more"),
        (GroupOptions(short_vendor_share=0.2), "add --vendors 2 or more"),
        (GroupOptions(vendors=21), "at most one vendor per bench product (20)"),
        (GroupOptions(vendors=2, short_vendor_share=1.5), "between 0 and 1"),
    ],
)
def test_options_that_cannot_run_are_refused(options: GroupOptions, wrong: str) -> None:
    assert wrong in (options.misuse(20) or "")
    with pytest.raises(ValueError, match=r"vendor|fraction"):
        BenchOptions(groups=options)


def test_the_report_states_the_group_options_when_given() -> None:
    groups = GroupOptions(3, GroupPolicy.MIXED, 0.25)
    assert GroupOptions().misuse(20) is None
    assert groups.misuse(20) is None
    assert BenchOptions(groups=groups).described()["groups"] == {
        "vendors": 3,
        "policy": "mixed",
        "short_vendor_share": 0.25,
    }


# --- final events on the wire --------------------------------------------------------------------


def _completed(
    checkout: CheckoutStarted,
    statuses: dict[str, Status],
    *,
    outcome: GroupOutcome | None = None,
    balance_due: Decimal | None = None,
    rejected_vendor: str | None = None,
) -> CheckoutGroupCompleted:
    """The group event of a checkout whose vendor orders ended as `statuses` (vendor -> status)."""
    orders = [
        VendorOrderResult(
            order_id=order.order_id,
            vendor_id=order.vendor_id,
            status=statuses[str(order.vendor_id)],
            total=order.total if statuses[str(order.vendor_id)] == "confirmed" else Decimal(0),
            items=list(order.items),
            rejected=[
                RejectedLine(sku=i.sku, quantity=i.quantity, reason=RejectionReason.UNAVAILABLE)
                for i in order.items
                if order.vendor_id == rejected_vendor
            ],
            failure_reason=None
            if statuses[str(order.vendor_id)] == "confirmed"
            else "insufficient stock",
        )
        for order in split(checkout)
    ]
    confirmed = [o for o in orders if o.status == "confirmed"]
    agreed = (
        GroupOutcome.COMPLETED
        if len(confirmed) == len(orders)
        else GroupOutcome.PARTIALLY_COMPLETED
        if confirmed
        else GroupOutcome.FAILED
    )
    return CheckoutGroupCompleted(
        order_id=checkout.order_id,
        buyer_id=checkout.buyer_id,
        currency=checkout.currency,
        outcome=outcome or agreed,
        balance_due=sum((o.total for o in confirmed), Decimal("0.00"))
        if balance_due is None
        else balance_due,
        orders=orders,
    )


def _vendors(checkout: CheckoutStarted, status: Status) -> dict[str, Status]:
    return {str(item.vendor_id): status for item in checkout.items}


def _short_group(policy: GroupPolicy = GroupPolicy.PARTIAL) -> CheckoutStarted:
    # The second: the first of seed 5 is also the first plain group, under the same id.
    return _groups(2, vendors=3, policy=policy, short_vendor_share=1.0)[1]


async def test_the_group_watcher_reads_group_events_by_group_id_once() -> None:
    watcher = Watcher(KafkaSettings(), groups=True)
    assert watcher.topics == GROUP_TOPICS == ("checkout.checkout_group_completed",)
    done, failed, stranger = _groups(3, vendors=2)
    started = time.monotonic()
    waiter = watcher.expect(done.order_id, started)
    watcher.expect(failed.order_id, started)
    endings: list[tuple[CheckoutStarted, Status, float]] = [
        (done, "confirmed", 2.0),
        (failed, "failed", 1.0),
    ]
    for checkout, status, at in endings:
        event = _completed(checkout, _vendors(checkout, status))
        watcher._seen(str(checkout.order_id).encode(), encode(event.to_envelope()), started + at)
    late = _completed(done, _vendors(done, "failed"))
    watcher._seen(str(done.order_id).encode(), encode(late.to_envelope()), started + 9)
    watcher._seen(str(stranger.order_id).encode(), b"{}", started)
    assert waiter.done()
    assert set(watcher.finished) == {done.order_id, failed.order_id}
    first = watcher.finished[done.order_id]
    assert (first.confirmed, first.reason, first.latency_s) == (True, None, pytest.approx(2.0))
    assert first.group is not None
    assert first.group.outcome is GroupOutcome.COMPLETED
    assert watcher.finished[failed.order_id].reason == "insufficient stock"


async def test_an_order_event_on_a_group_watcher_is_a_finish_that_breaks_the_rules() -> None:
    watcher = Watcher(KafkaSettings(), groups=True)
    (checkout,) = _groups(1, vendors=2)
    watcher.expect(checkout.order_id, time.monotonic())
    wrong = encode(checkout.to_envelope())
    watcher._seen(str(checkout.order_id).encode(), wrong, time.monotonic())
    finish = watcher.finished[checkout.order_id]
    assert finish.group is None
    assert not finish.confirmed
    tally_ = tally_groups({checkout.order_id: checkout}, watcher.finished)
    assert tally_.problems() == ["1 group(s) ended against the rules"]


# --- the tally and its rules ---------------------------------------------------------------------


def test_groups_are_counted_by_outcome_policy_and_vendor_order() -> None:
    plain, short = _groups(2, vendors=2, policy=GroupPolicy.MIXED)[0], _short_group()
    short_vendor_id = str(short_vendor(short))
    partial: dict[str, Status] = {**_vendors(short, "confirmed"), short_vendor_id: "failed"}
    events = {
        plain.order_id: _completed(plain, _vendors(plain, "confirmed")),
        short.order_id: _completed(short, partial, rejected_vendor=short_vendor_id),
    }
    finished = {
        k: Finish(e.outcome is not GroupOutcome.FAILED, None, 0.5, e) for k, e in events.items()
    }
    tally_ = tally_groups({plain.order_id: plain, short.order_id: short}, finished)
    figures = tally_.as_dict()
    assert figures["by_outcome"] == {"completed": 1, "partially_completed": 1, "failed": 0}
    assert figures["by_policy"] == {
        "all_or_nothing": {"completed": 1},
        "partial": {"partially_completed": 1},
    }
    assert figures["vendor_orders"] == {"confirmed": 4, "failed": 1}
    assert figures["short_groups"] == 1
    assert figures["rejected_lines"] == 1
    paid = sum((e.balance_due for e in events.values()), Decimal("0.00"))
    assert figures["balance_due_total"] == str(paid)
    assert figures["unexpected"] == 0
    latencies = figures["latency_ms_by_outcome"]
    assert isinstance(latencies, dict)
    assert set(latencies) == {"completed", "partially_completed"}
    assert tally_.problems() == []


def test_a_group_that_contradicts_itself_is_unexpected() -> None:
    (checkout,) = _groups(1, vendors=2)
    lying = _completed(checkout, _vendors(checkout, "confirmed"), outcome=GroupOutcome.FAILED)
    assert surprises(checkout, lying) == ["outcome failed, its orders say completed"]
    short_paid = _completed(checkout, _vendors(checkout, "confirmed"), balance_due=Decimal("1.00"))
    assert "balance_due 1.00 != " in surprises(checkout, short_paid)[0]


def test_all_or_nothing_never_ends_partially_and_a_short_vendor_never_confirms() -> None:
    short = _short_group(GroupPolicy.ALL_OR_NOTHING)
    vendor = str(short_vendor(short))
    half_confirmed: dict[str, Status] = {**_vendors(short, "failed"), vendor: "confirmed"}
    half = _completed(short, half_confirmed)
    assert surprises(short, half) == [
        "partially_completed under all_or_nothing",
        f"the order of {vendor}, which was short, was confirmed",
    ]
    whole = _completed(short, _vendors(short, "confirmed"))
    assert f"completed although {vendor} was short" in surprises(short, whole)
    assert surprises(short, _completed(short, _vendors(short, "failed"))) == []


def test_lines_rejected_in_a_group_that_was_not_short_are_unexpected() -> None:
    (checkout,) = _groups(1, vendors=2, policy=GroupPolicy.PARTIAL)
    vendor = str(checkout.items[0].vendor_id)
    event = _completed(checkout, _vendors(checkout, "confirmed"), rejected_vendor=vendor)
    assert surprises(checkout, event) == ["lines rejected although every product was in stock"]


def test_short_products_holding_stock_fail_the_run() -> None:
    tally_ = GroupTally(short_held_before=0, short_held_after=2)
    assert tally_.problems() == ["short products held or sold stock: 0 -> 2"]


def test_the_report_carries_the_groups_only_in_group_mode() -> None:
    (checkout,) = _groups(1, vendors=2)
    event = _completed(checkout, _vendors(checkout, "confirmed"))
    finishes = [Finish(True, None, 0.2, event)]
    outcomes = Outcomes(driven=1, stock_before=5, stock_after=5)
    tally(outcomes, finishes)
    assert "groups" not in outcomes.as_dict()
    outcomes.groups = tally_groups({checkout.order_id: checkout}, {checkout.order_id: finishes[0]})
    report = build_report(
        Measured(
            mode="closed",
            options={},
            stack="owned",
            finishes=finishes,
            elapsed_s=1.0,
            offered_per_s=None,
            raw_commits_per_s=100.0,
            commits=10,
            row_writes=10,
            records_by_topic={},
            cpu_s={},
            peak_rss_mb={},
            outcomes=outcomes,
        )
    )
    assert report["ok"] is True
    groups = report["outcomes"]["groups"]  # type: ignore[index]
    assert groups["by_outcome"]["completed"] == 1
    assert report["outcomes"]["confirmed"] == 1  # type: ignore[index]
