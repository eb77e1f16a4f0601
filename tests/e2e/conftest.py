"""E2E fixtures: the product as separate OS processes, on a broker and database of this tier only.

Its own broker, because the in-process integration stack consumes the same topics with the same
consumer groups on the session broker and would take these tests' messages.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Iterator

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.platform.embedded import free_port
from tests.support import infra
from tests.support.processes import PROCESSES, Fleet, clean_environ

PARTITIONS = 4


@pytest.fixture(scope="session")
def e2e_bootstrap() -> Iterator[str]:
    """A Tansu broker of this tier only, with every topic created up front."""
    with infra.tier_broker(PARTITIONS) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def e2e_database_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, migrated database of this tier on the session's PostgreSQL server."""
    with infra.tier_database(pg_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def saga_admin_port() -> int:
    """Where the saga process serves its admin API (health and its own /metrics)."""
    return free_port("127.0.0.1")


@pytest.fixture(scope="session")
def relay_admin_port() -> int:
    """Where the relay-only process serves its admin API (health and the relay's counters)."""
    return free_port("127.0.0.1")


@pytest.fixture(scope="module")
def fleet(
    e2e_bootstrap: str,
    e2e_database_url: str,
    saga_admin_port: int,
    relay_admin_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fleet]:
    """Every service in its own process plus a relay process; all gone afterwards."""
    env = {
        **clean_environ(),
        "PYTHONUNBUFFERED": "1",
        "CHECKOUT_DATABASE_URL": e2e_database_url,
        "CHECKOUT_KAFKA__BOOTSTRAP_SERVERS": e2e_bootstrap,
        "CHECKOUT_KAFKA__TOPIC_PARTITIONS": str(PARTITIONS),
        # Tansu holds each group join for about half the session timeout (see DESIGN §7).
        "CHECKOUT_KAFKA__SESSION_TIMEOUT_MS": "2000",
        "CHECKOUT_PAYMENTS__DECLINE_ABOVE": "500",
        "CHECKOUT_SAGA__PAYMENT_TIMEOUT_S": "20",
    }
    commands = {
        **PROCESSES,
        "saga": (*PROCESSES["saga"], f"--admin-port={saga_admin_port}"),
        "relay": (*PROCESSES["relay"], f"--admin-port={relay_admin_port}"),
    }
    with Fleet(env, tmp_path_factory.mktemp("e2e-logs"), commands) as fleet:
        yield fleet
    left = fleet.leftovers()
    assert not left, f"processes left behind: {left}"


@pytest.fixture(scope="session")
async def e2e_db(e2e_database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the tier's database, to look at what the processes did."""
    engine = create_async_engine(e2e_database_url, pool_size=2)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
async def e2e_producer(e2e_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """A plain Kafka producer, as an upstream service in any language would have."""
    async with infra.plain_producer(e2e_bootstrap) as producer:
        yield producer


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, object, None]:
    """On a failure, attach the tails of the processes' logs to the report."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    running = getattr(item, "funcargs", {}).get("fleet")
    if report.failed and isinstance(running, Fleet):
        report.sections.append(("process logs", running.tails()))
