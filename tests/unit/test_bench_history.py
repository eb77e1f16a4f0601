"""The bench's history templates and RSS drift figures (pure parts of issue 9, deliverable 4)."""

from __future__ import annotations

import os
import uuid

import pytest

from contracts.codec import decode
from ops.bench.drift import drift, not_flat, rss_drift, window
from ops.bench.history import SCHEMAS, statements
from ops.bench.history_template import (
    BUYER_PLACEHOLDER,
    ID_PREFIX,
    SKU_PLACEHOLDER,
    Template,
    build,
    templates,
)
from ops.bench.report import Measured, build_report
from ops.bench.resources import RssSampler, tree_memory_bytes
from ops.bench.stats import Outcomes
from saga.instance import SagaData

# --- drift ---------------------------------------------------------------------------------------


def _ramp(
    seconds: float, start: float, end: float, every: float = 0.5
) -> list[tuple[float, float]]:
    n = int(seconds / every) + 1
    return [(i * every, start + (end - start) * i / (n - 1)) for i in range(n)]


def test_a_long_run_compares_its_first_and_last_minute() -> None:
    flat_then_up = [(t, 100.0 if t < 240 else 110.0) for t, _ in _ramp(300, 0, 0)]
    figures = drift(flat_then_up, run_span_s=300)
    assert figures == {"first_minute_median": 100.0, "last_minute_median": 110.0, "drift_pct": 10.0}
    assert window(300) == "first and last 60 s of the readings"


def test_a_short_run_compares_the_first_and_last_fifth_of_its_readings() -> None:
    # 11 readings 0..100: the first 20 % are 0, 10 (median 5), the last 20 % 90, 100 (median 95).
    points = [(float(i), 100.0 + 10.0 * i) for i in range(11)]
    figures = drift(points, run_span_s=10)
    assert figures["first_minute_median"] == 105.0
    assert figures["last_minute_median"] == 195.0
    assert figures["drift_pct"] == pytest.approx(85.7)
    assert "20%" in window(10)
    assert "shorter than 180 s" in window(10)


def test_a_burst_does_not_decide_the_drift() -> None:
    points = [(t, 500.0 if 10 <= t < 12 else 100.0) for t, _ in _ramp(600, 0, 0)]
    assert drift(points, run_span_s=600)["drift_pct"] == 0.0


def test_no_readings_means_no_figure() -> None:
    assert drift([], run_span_s=0) == {
        "first_minute_median": None,
        "last_minute_median": None,
        "drift_pct": None,
    }


def test_flatness_is_judged_at_ten_percent_both_ways_and_not_for_the_bench() -> None:
    series = {
        "saga-1": _ramp(300, 100, 105),
        "orders-1": _ramp(300, 100, 125),
        "postgres": _ramp(300, 200, 160),
        "bench": _ramp(300, 50, 150),
        "relay-1": [],
    }
    drifts = rss_drift(series)
    assert drifts["saga-1"]["drift_pct"] is not None
    assert abs(drifts["saga-1"]["drift_pct"]) < 10
    assert not_flat(drifts) == ["orders-1", "postgres", "relay-1"]


def _measured(series: dict[str, list[tuple[float, float]]]) -> Measured:
    return Measured(
        mode="open",
        options={},
        stack="owned",
        finishes=[],
        elapsed_s=1.0,
        offered_per_s=1.0,
        raw_commits_per_s=1.0,
        commits=0,
        row_writes=0,
        records_by_topic={},
        cpu_s={},
        peak_rss_mb={"saga-1": 120.0},
        outcomes=Outcomes(driven=0),
        rss_series_mb=series,
    )


def test_the_report_says_whether_every_process_stayed_flat() -> None:
    flat = build_report(_measured({"saga-1": _ramp(900, 100, 104), "bench": _ramp(900, 50, 90)}))
    assert flat["rss_flat"] is True
    assert flat["rss_not_flat"] == []
    assert flat["peak_rss_mb"] == {"saga-1": 120.0}
    # A ramp of 100 -> 104 over 900 s: the medians sit 30 s into the first and last minute.
    saga = flat["rss_mb"]["saga-1"]  # type: ignore[index]
    assert (saga["first_minute_median"], saga["last_minute_median"]) == (100.1, 103.9)
    grown = build_report(_measured({"saga-1": _ramp(900, 100, 130)}))
    assert grown["rss_flat"] is False
    assert grown["rss_not_flat"] == ["saga-1"]
    assert build_report(_measured({}))["rss_flat"] is False


def test_the_sampler_keeps_readings_of_live_processes_only() -> None:
    rss, private = tree_memory_bytes(os.getpid(), descendants=False)
    assert rss >= private > 0
    sampler = RssSampler({"me": os.getpid(), "gone": 2**22 + 12345})
    sampler.sample()
    sampler.sample()
    series = sampler.series_mb()
    assert series["me"][0][0] == 0.0
    assert len(series["me"]) == 2
    assert all(mb > 1 for _, mb in series["me"])
    assert series["gone"] == []
    sampler.stop()  # never started: stopping is harmless
    own = RssSampler({"me": os.getpid()}, private=("me",))
    own.sample()
    assert 0 < own.series_mb()["me"][0][1] < series["me"][0][1]


# --- history templates ---------------------------------------------------------------------------


PREFIX = str(uuid.uuid4())[:32]


def _filled(template_text: str) -> str:
    for n in (1, 2, 3):
        template_text = template_text.replace(f"{SKU_PLACEHOLDER}{n}", f"BENCH-0{n}")
    return template_text.replace(ID_PREFIX, PREFIX).replace(BUYER_PLACEHOLDER, "hist-buyer-7")


@pytest.fixture(scope="module")
def built() -> list[Template]:
    return templates()


def test_templates_cover_one_to_three_lines_confirmed_and_declined(built: list[Template]) -> None:
    assert [(len(t.lines), t.confirmed) for t in built] == [
        (n, c) for n in (1, 2, 3) for c in (True, False)
    ]
    for t in built:
        assert t.saga_state == ("Confirmed" if t.confirmed else "Failed")
        assert len(t.outbox) == (11 if t.confirmed else 10)
        assert len(t.inbox) == (11 if t.confirmed else 10)
        final = "order_confirmed" if t.confirmed else "order_marked_failed"
        announced = [m.message_type for m in t.outbox if m.schema == "orders"]
        assert announced == ["order_created", final, "checkout_group_completed"]
        assert {m.schema for m in t.inbox} == set(SCHEMAS)


def test_template_rows_are_what_the_real_code_reads_once_filled(built: list[Template]) -> None:
    for t in built:
        data = SagaData.model_validate_json(_filled(t.saga_data))
        assert [r.sku for r in data.reservations] == [
            f"BENCH-0{n}" for n in range(1, len(t.lines) + 1)
        ]
        assert (data.payment_id is not None) == t.confirmed
        for mail in t.outbox:
            decoded = decode(_filled(mail.payload).encode(), mail.message_type)
            assert decoded.message.order_id == data.order_id
            assert str(data.order_id).startswith(PREFIX)
            assert 300 <= len(mail.payload) <= 800


def test_every_received_message_was_sent_by_an_outbox_of_the_checkout(
    built: list[Template],
) -> None:
    for t in built:
        sent = {(m.message_id, m.message_type) for m in t.outbox}
        assert {(m.message_id, m.message_type) for m in t.inbox} <= sent
        assert all(m.message_id.startswith(ID_PREFIX) for m in [*t.inbox, *t.outbox])
        assert t.span_ms == max(m.at_ms for m in [*t.inbox, *t.outbox]) > 0


def test_a_declined_checkout_releases_and_records_the_reason() -> None:
    t = build(2, confirmed=False)
    types = [m.message_type for m in t.outbox]
    assert "ReleaseStockReservations" in types
    assert "DeductStock" not in types
    assert "declined" in (t.failure_reason or "")


def test_seeding_writes_every_mailbox_and_the_domain_tables() -> None:
    tables = statements()
    assert {f"{s}.inbox" for s in SCHEMAS} | {f"{s}.outbox" for s in SCHEMAS} <= tables.keys()
    for table in ("saga.sagas", "orders.orders", "inventory.reservations", "payments.payments"):
        assert tables[table].startswith(f"INSERT INTO {table} ")
