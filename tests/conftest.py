"""Session fixtures for PostgreSQL and Kafka (lazy, so unit tests start nothing); time per tier."""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from tests.support import infra
from tests.support.tier_times import TierTimes


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """asyncpg URL of a PostgreSQL server: from the env, a container, or embedded."""
    with infra.postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def database_url(pg_server_url: str) -> Iterator[str]:
    """A fresh database of this pytest session (checkout_test_<hex>), dropped at the end."""
    with infra.fresh_database(pg_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Kafka bootstrap servers: from the env, a container, or an embedded Tansu."""
    with infra.kafka_broker() as bootstrap:
        yield bootstrap


_TIER_TIMES = pytest.StashKey[TierTimes]()


def pytest_configure(config: pytest.Config) -> None:
    """Start counting wall time per tier."""
    config.stash[_TIER_TIMES] = TierTimes()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Add each phase of each test to its tier's time."""
    report = yield
    item.config.stash[_TIER_TIMES].add(report.nodeid, report.when, report.duration)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the wall time per tier (CI's log then says where its time went)."""
    times = terminalreporter.config.stash[_TIER_TIMES]
    if times.seconds:
        terminalreporter.write_sep("-", "wall time per tier")
        for line in times.lines():
            terminalreporter.write_line(line)
