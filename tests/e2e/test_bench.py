"""`checkout-saga bench` end to end: embedded servers, services as processes, a complete report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import clean_environ

pytestmark = pytest.mark.e2e

ORDERS = 30
SPAWNED = ("saga-1", "inventory-1", "orders-1", "cart-1", "payments-1", "relay-1")


HISTORY = 500


def _bench(tmp_path: Path, *extra: str) -> dict[str, object]:
    out = tmp_path / "report.json"
    # No CHECKOUT_* variables and a working directory without a dev stack's state file: the
    # bench starts its own embedded PostgreSQL and Tansu and spawns the services.
    done = subprocess.run(
        [
            *(sys.executable, "-m", "ops.cli", "bench", "--orders", str(ORDERS)),
            *("--concurrency", "10", "--json-out", str(out), *extra),
        ],
        cwd=tmp_path,
        env=clean_environ(),
        capture_output=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-6000:]
    report: dict[str, object] = json.loads(out.read_text())
    assert json.loads(done.stdout) == report, "stdout carries the same JSON report, nothing else"
    return report


def test_bench_reports_every_figure_of_a_clean_run(tmp_path: Path) -> None:
    report = _bench(tmp_path)
    _assert_outcomes(report)
    _assert_costs(report)
    assert report["history"] is None


def test_bench_with_history_seeds_it_and_still_passes_its_checks(tmp_path: Path) -> None:
    report = _bench(tmp_path, "--history", str(HISTORY))
    _assert_outcomes(report)
    history = report["history"]
    assert isinstance(history, dict)
    assert history["checkouts"] == HISTORY
    rows = history["rows"]
    # Every tenth seeded checkout is declined: 450 confirmed, 50 failed.
    assert rows["saga.sagas"] == rows["orders.orders"] == rows["payments.payments"] == HISTORY
    assert rows["saga.outbox"] == 450 * 5 + 50 * 4
    assert rows["cart.clearances"] == 450
    assert {f"{s}.inbox" for s in ("saga", "inventory", "orders", "cart", "payments")} <= set(rows)
    # Read back after the run: the seeded sagas are there, next to the driven ones.
    assert history["final_sagas_after_run"] == HISTORY + ORDERS
    rss = report["rss_mb"]
    assert isinstance(rss, dict)
    assert all(rss[name]["drift_pct"] is not None for name in (*SPAWNED, "postgres", "broker"))
    assert isinstance(report["rss_flat"], bool)


def test_bench_drives_checkout_groups_with_both_policies(tmp_path: Path) -> None:
    options = ("--vendors", "3", "--policy", "mixed", "--short-vendor-share", "0.5")
    report = _bench(tmp_path, *options)
    _assert_outcomes(report)
    assert report["options"]["groups"] == {  # type: ignore[index]
        "vendors": 3,
        "policy": "mixed",
        "short_vendor_share": 0.5,
    }
    groups = report["outcomes"]["groups"]  # type: ignore[index]
    assert sum(groups["by_outcome"].values()) == ORDERS
    assert groups["unexpected"] == 0, groups["unexpected_examples"]
    # Every other group is partial; about half of those lack one vendor's stock and go on
    # without it. An all_or_nothing group never ends in part.
    assert groups["by_policy"]["partial"].get("partially_completed", 0) > 0
    assert "partially_completed" not in groups["by_policy"]["all_or_nothing"]
    assert groups["by_policy"]["all_or_nothing"].get("failed", 0) > 0
    assert groups["rejected_lines"] > 0
    assert groups["short_stock_held"]["before"] == groups["short_stock_held"]["after"]
    # Three vendor orders per group, each with its own final event.
    assert sum(groups["vendor_orders"].values()) == 3 * ORDERS


def _assert_outcomes(report: dict[str, object]) -> None:
    outcomes = report["outcomes"]
    assert isinstance(outcomes, dict)
    assert report["ok"] is True
    assert outcomes["driven"] == outcomes["finished"] == ORDERS
    assert outcomes["every_saga_final"] is True
    assert outcomes["stock_conserved"] is True
    assert outcomes["confirmed"] + sum(outcomes["failed_by_reason"].values()) == ORDERS
    assert report["stack"] == "owned"
    assert report["mode"] == "closed"


def _assert_costs(report: dict[str, object]) -> None:
    assert isinstance(report["sagas_per_s"], float)
    assert report["sagas_per_s"] > 0
    latency = report["latency_ms"]
    assert isinstance(latency, dict)
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    # Every saga is at least: checkout, order created, reserve, reserved, payment requested,
    # answer, confirm or fail, final order event; each a message claimed in an inbox. Batches
    # share transactions between sagas, so commits per saga only have to be counted at all.
    assert report["kafka_records_per_saga"] >= 8  # type: ignore[operator]
    assert report["db_commits_per_saga"] > 0  # type: ignore[operator]
    assert report["db_row_writes_per_saga"] >= 8  # type: ignore[operator]
    cpu = report["cpu_s_per_saga"]
    assert isinstance(cpu, dict)
    assert all(cpu[name] > 0 for name in ("services", "postgres", "broker", "bench"))
    rss = report["peak_rss_mb"]
    assert isinstance(rss, dict)
    assert all(rss[name] > 0 for name in (*SPAWNED, "postgres", "broker", "bench"))
    assert report["raw_commits_per_s"] > 0  # type: ignore[operator]
    ratios = report["ratios_to_raw_commits"]
    assert isinstance(ratios, dict)
    assert ratios["raw_commits_per_saga"] > 0
