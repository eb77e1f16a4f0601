"""The wall-time-per-tier summary: which tier a test belongs to, and the lines printed."""

from __future__ import annotations

from tests.support.tier_times import TierTimes, tier_of


def test_a_test_belongs_to_the_folder_under_tests() -> None:
    assert tier_of("tests/chaos/test_chaos.py::test_x[1701]") == "chaos"
    assert tier_of("tests/unit/saga/test_machine.py::test_y") == "unit"
    assert tier_of("tests/conftest.py") == "(other)"
    assert tier_of("test_top.py::test_z") == "(other)"


def test_phases_add_up_per_tier_and_only_calls_count_as_tests() -> None:
    times = TierTimes()
    times.add("tests/chaos/test_chaos.py::a", "setup", 20.0)
    times.add("tests/chaos/test_chaos.py::a", "call", 60.0)
    times.add("tests/chaos/test_chaos.py::a", "teardown", 1.5)
    times.add("tests/unit/test_u.py::b", "call", 0.25)

    assert times.lines() == [
        "chaos      81.5 s      1 tests",
        "unit        0.2 s      1 tests",
        "total      81.8 s      2 tests",
    ]
