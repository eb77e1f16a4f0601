"""The idle report: CPU over a window in percent of one core, the bench's own left out."""

from __future__ import annotations

from ops.bench.idle import idle_report


def test_idle_cpu_is_percent_of_a_core_per_group_without_the_bench() -> None:
    before = {"services": 10.0, "postgres": 5.0, "broker": 20.0, "bench": 1.0}
    after = {"services": 10.6, "postgres": 5.03, "broker": 21.2, "bench": 9.0}

    report = idle_report(before, after, seconds=30.0)

    assert report["cpu_percent_of_a_core"] == {"services": 2.0, "postgres": 0.1, "broker": 4.0}
    assert report["total_percent_of_a_core"] == 6.1
    assert report["window_s"] == 30.0
