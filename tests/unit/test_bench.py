"""The bench's pure parts: percentiles, the Poisson schedule, outcome checks, report, matching."""

from __future__ import annotations

import itertools
import os
import statistics
import time
import uuid
from pathlib import Path

import pytest

import services
from contracts import OrderConfirmed, OrderMarkedFailed
from contracts.codec import encode
from ops.bench.fleet import child_environ, fleet_commands
from ops.bench.report import Measured, build_report, tally
from ops.bench.stack import Payer
from ops.bench.stats import (
    Outcomes,
    latency_summary_ms,
    per_saga,
    percentile,
    poisson_schedule,
    ratios,
)
from ops.bench.wire import Finish, Watcher
from services.platform.settings import KafkaSettings

# --- percentiles ---------------------------------------------------------------------------------


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 100) == 100.0
    assert percentile(values, 0) == 1.0


def test_percentile_ignores_input_order_and_handles_tiny_inputs() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) == 0.0


def test_latency_summary_is_in_milliseconds() -> None:
    summary = latency_summary_ms([0.010, 0.020, 0.030, 1.0])
    assert summary["max"] == 1000.0
    assert summary["p50"] == 25.0
    assert summary["mean"] == pytest.approx(265.0)
    assert set(summary) == {"p50", "p95", "p99", "max", "mean"}


# --- open-loop schedule --------------------------------------------------------------------------


def test_poisson_schedule_is_seeded_and_inside_the_duration() -> None:
    first = poisson_schedule(50, 20, seed=3)
    assert first == poisson_schedule(50, 20, seed=3)
    assert first != poisson_schedule(50, 20, seed=4)
    assert all(0 <= t < 20 for t in first)
    assert first == sorted(first)


def test_poisson_schedule_has_the_rate_and_exponential_gaps() -> None:
    offsets = poisson_schedule(100, 200, seed=1)
    # 20,000 expected; four standard deviations (sqrt(20,000) ~ 141) either side.
    assert 20_000 - 570 < len(offsets) < 20_000 + 570
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    assert statistics.mean(gaps) == pytest.approx(0.01, rel=0.05)
    # Exponential gaps have a coefficient of variation of 1; evenly spaced sends would have 0.
    assert statistics.stdev(gaps) / statistics.mean(gaps) == pytest.approx(1.0, abs=0.05)


def test_poisson_schedule_of_nothing_is_empty() -> None:
    assert poisson_schedule(0, 10, seed=1) == []
    assert poisson_schedule(10, 0, seed=1) == []


# --- outcome checks ------------------------------------------------------------------------------


def _outcomes(**changes: object) -> Outcomes:
    outcomes = Outcomes(driven=3, stock_before=300, stock_after=300)
    for name, value in changes.items():
        setattr(outcomes, name, value)
    return outcomes


def test_a_clean_run_has_no_problems() -> None:
    outcomes = _outcomes()
    tally(outcomes, [Finish(True, None, 0.1), Finish(True, None, 0.2), Finish(False, "x", 0.3)])
    assert outcomes.problems() == []
    assert outcomes.as_dict()["every_saga_final"] is True


def test_a_saga_without_a_final_event_fails_the_run() -> None:
    outcomes = _outcomes()
    tally(outcomes, [Finish(True, None, 0.1), Finish(True, None, 0.2)])
    assert outcomes.unfinished_on_wire == 1
    assert outcomes.problems() == ["1 saga(s) without a final event on the wire"]


def test_a_saga_not_final_in_the_database_fails_the_run() -> None:
    outcomes = _outcomes(not_final_in_db=["a-lost-order"])
    assert outcomes.problems() == ["1 saga(s) not final in saga.sagas"]
    assert outcomes.as_dict()["every_saga_final"] is False


def test_stock_created_destroyed_or_left_reserved_fails_the_run() -> None:
    assert _outcomes(stock_after=299).problems() == ["stock total changed: 300 -> 299"]
    left = _outcomes(reserved_after=2).problems()
    assert left == ["reserved stock not released: 0 -> 2"]
    assert _outcomes(reserved_after=2).as_dict()["stock_conserved"] is False


def test_failures_are_counted_by_kind_of_reason() -> None:
    outcomes = _outcomes(driven=4)
    finishes = [
        Finish(False, "payment declined by provider", 0.1),
        Finish(False, "Payment declined: card", 0.1),
        Finish(False, "payment timeout after 3.0s", 0.1),
        Finish(True, None, 0.1),
    ]
    tally(outcomes, finishes)
    assert outcomes.confirmed == 1
    assert outcomes.failed_by_reason == {"declined": 2, "payment timeout": 1}


# --- report --------------------------------------------------------------------------------------


def _measured(finishes: list[Finish], driven: int, offered: float | None = None) -> Measured:
    outcomes = Outcomes(driven=driven, stock_before=10, stock_after=10)
    tally(outcomes, finishes)
    return Measured(
        mode="closed" if offered is None else "open",
        options={},
        stack="owned",
        finishes=finishes,
        elapsed_s=2.0,
        offered_per_s=offered,
        raw_commits_per_s=1000.0,
        commits=80,
        row_writes=200,
        records_by_topic={"checkout.a": 30, "checkout.b": 10, "checkout.c": 0},
        cpu_s={"services": 2.0, "postgres": 1.0},
        peak_rss_mb={"saga-1": 80.0},
        outcomes=outcomes,
    )


def test_report_divides_costs_by_finished_sagas() -> None:
    report = build_report(_measured([Finish(True, None, 0.1 * i) for i in range(1, 5)], 4))
    assert report["ok"] is True
    assert report["sagas_per_s"] == 2.0
    assert report["db_commits_per_saga"] == 20.0
    assert report["db_row_writes_per_saga"] == 50.0
    assert report["kafka_records_per_saga"] == 10.0
    assert report["kafka_records_by_topic"] == {"checkout.a": 30, "checkout.b": 10}
    assert report["cpu_s_per_saga"] == {"services": 0.5, "postgres": 0.25}
    assert report["latency_ms"]["max"] == 400.0  # type: ignore[index]
    assert report["ratios_to_raw_commits"]["sagas_per_raw_commit"] == 0.002  # type: ignore[index]


def test_report_of_a_run_with_a_lost_saga_is_not_ok() -> None:
    report = build_report(_measured([Finish(True, None, 0.1)], driven=2))
    assert report["ok"] is False
    assert report["outcomes"]["unfinished_on_wire"] == 1  # type: ignore[index]


def test_open_loop_report_states_offered_and_achieved_rates() -> None:
    report = build_report(_measured([Finish(True, None, 0.1)] * 3, 3, offered=5.0))
    assert report["offered_sagas_per_s"] == 5.0
    assert report["achieved_sagas_per_s"] == 1.5
    assert "sagas_per_s" not in report


def test_ratios_state_latency_in_raw_commit_times() -> None:
    figures = ratios(50.0, {"p50": 40.0, "p99": 80.0}, raw_commits_per_s=1000.0, connections=4)
    assert figures["raw_commit_ms"] == 4.0
    assert figures["raw_commits_per_saga"] == 20.0
    assert figures["latency_p50_in_raw_commits"] == 10.0
    assert figures["latency_p99_in_raw_commits"] == 20.0
    assert ratios(50.0, {}, raw_commits_per_s=0.0, connections=4)["raw_commits_per_saga"] is None
    assert per_saga(10, 0) is None


# --- processes and payer -------------------------------------------------------------------------


def test_fleet_runs_every_service_and_a_relay_k_times() -> None:
    commands = fleet_commands(2)
    assert len(commands) == 12
    assert commands["saga-2"] == ("saga", "--no-relay")
    assert commands["relay-1"] == ("relay",)


def test_children_run_this_code_with_the_overrides() -> None:
    root = str(Path(services.__file__).resolve().parents[1])
    env = child_environ({"CHECKOUT_X": "1"}, base={"PYTHONPATH": f"/elsewhere{os.pathsep}{root}"})
    assert env["PYTHONPATH"] == f"{root}{os.pathsep}/elsewhere"
    assert env["CHECKOUT_X"] == "1"


def test_payment_deadline_is_short_only_with_silent_payers() -> None:
    assert Payer(silent_rate=0.02).timeout_s() == 3.0
    assert Payer().timeout_s() == 60.0
    assert Payer(payment_timeout_s=7.0).timeout_s() == 7.0
    assert Payer(silent_rate=0.5).environ()["CHECKOUT_SAGA__PAYMENT_TIMEOUT_S"] == "3.0"


# --- matching final events to checkouts ----------------------------------------------------------


def _wire(message: OrderConfirmed | OrderMarkedFailed) -> tuple[bytes, bytes]:
    return str(message.order_id).encode(), encode(message.to_envelope())


async def test_watcher_matches_final_events_by_key_once() -> None:
    watcher = Watcher(KafkaSettings())
    confirmed_id, failed_id, stranger = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    started = time.monotonic()
    waiter = watcher.expect(confirmed_id, started)
    watcher.expect(failed_id, started)
    watcher._seen(
        *_wire(OrderConfirmed(order_id=confirmed_id, payment_id=uuid.uuid4())), started + 2
    )
    watcher._seen(*_wire(OrderMarkedFailed(order_id=failed_id, reason="nope")), started + 1)
    watcher._seen(*_wire(OrderMarkedFailed(order_id=confirmed_id, reason="late")), started + 9)
    watcher._seen(*_wire(OrderConfirmed(order_id=stranger, payment_id=uuid.uuid4())), started)
    watcher._seen(b"not-a-uuid", b"{}", started)
    assert waiter.done()
    assert watcher.finished == {
        confirmed_id: Finish(True, None, pytest.approx(2.0)),
        failed_id: Finish(False, "nope", pytest.approx(1.0)),
    }
