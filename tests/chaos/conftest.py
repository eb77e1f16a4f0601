"""Chaos fixtures: two processes of every service and two relays, on a broker and database of their own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Generator, Iterator, Mapping

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.platform.settings import PaymentSimulatorSettings
from tests.support import infra
from tests.support.processes import Fleet, clean_environ

PARTITIONS = 4
PAYMENT_TIMEOUT_S = 10
"""Long enough to ride out the rebalances of a kill, so most checkouts can finish (and confirm);
silent payers still time out, so the compensations of a missing payment run in every seed."""
PAYMENTS_SEED = 7
"""The simulators' seed, the same in both instances: a decision depends on it and the order id,
and each chaos seed draws its own order ids, so a seed replays its payment decisions too."""
CHAOS_PROCESSES: dict[str, tuple[str, ...]] = {
    **{
        f"{service}-{n}": (service, "--no-relay")
        for service in ("saga", "inventory", "orders", "cart", "payments")
        for n in (1, 2)
    },
    "relay-1": ("relay",),
    "relay-2": ("relay",),
}
"""Scale-out: two instances of every service, each pair in one consumer group, and two relays."""


def chaos_env(bootstrap: str, database_url: str) -> dict[str, str]:
    """The environment of every product process of this tier."""
    return {
        **clean_environ(),
        "PYTHONUNBUFFERED": "1",
        "CHECKOUT_DATABASE_URL": database_url,
        "CHECKOUT_DATABASE_POOL_SIZE": "4",
        "CHECKOUT_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "CHECKOUT_KAFKA__TOPIC_PARTITIONS": str(PARTITIONS),
        "CHECKOUT_KAFKA__SESSION_TIMEOUT_MS": "2000",
        "CHECKOUT_SAGA__PAYMENT_TIMEOUT_S": str(PAYMENT_TIMEOUT_S),
        "CHECKOUT_SAGA__TIMEOUT_POLL_INTERVAL_S": "0.3",
        "CHECKOUT_RELAY__POLL_INTERVAL_S": "0.5",
        "CHECKOUT_PAYMENTS__SEED": str(PAYMENTS_SEED),
        "CHECKOUT_PAYMENTS__DECLINE_RATE": "0.2",
        "CHECKOUT_PAYMENTS__SILENT_RATE": "0.1",
        "CHECKOUT_PAYMENTS__DUPLICATE_RATE": "0.2",
    }


def simulator_rules(env: Mapping[str, str]) -> PaymentSimulatorSettings:
    """The rules a payment simulator started with this environment answers by."""
    prefix = "CHECKOUT_PAYMENTS__"
    given = {k.removeprefix(prefix).lower(): v for k, v in env.items() if k.startswith(prefix)}
    return PaymentSimulatorSettings.model_validate(given)


@pytest.fixture(scope="module")
def chaos_bootstrap() -> Iterator[str]:
    """A Tansu broker of this tier only, every topic created up front with 4 partitions."""
    with infra.tier_broker(PARTITIONS) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="module")
def chaos_database_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, migrated database of this tier."""
    with infra.tier_database(pg_server_url) as url:
        yield url


@pytest.fixture(scope="module")
def chaos_env_extra() -> dict[str, str]:
    """Settings a test module adds to chaos_env for its fleet (override it in the module)."""
    return {}


@pytest.fixture(scope="module")
def chaos_fleet(
    chaos_bootstrap: str,
    chaos_database_url: str,
    chaos_env_extra: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fleet]:
    """Every process of CHAOS_PROCESSES, running; all gone afterwards."""
    env = {**chaos_env(chaos_bootstrap, chaos_database_url), **chaos_env_extra}
    logs = tmp_path_factory.mktemp("chaos-logs")
    # Forked from a server that imported the product once: a restart costs a tenth of the CPU.
    with Fleet(env, logs, CHAOS_PROCESSES, forked=True) as fleet:
        yield fleet
    left = fleet.leftovers()
    assert not left, f"processes left behind: {left}"


@pytest.fixture(scope="module")
async def chaos_db(chaos_database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the tier's database: test setup and the invariant checks."""
    engine = create_async_engine(chaos_database_url, pool_size=3)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
async def chaos_producer(chaos_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """A plain producer: the upstream, and the test's own early, late and duplicate messages."""
    async with infra.plain_producer(chaos_bootstrap) as producer:
        yield producer


@pytest.fixture(scope="module")
def chaos_published() -> set[uuid.UUID]:
    """Ids of every message the tests published themselves (all seeds share the topics)."""
    return set()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, object, None]:
    """On a failure, attach the tails of the processes' logs to the report."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    running = getattr(item, "funcargs", {}).get("chaos_fleet")
    if report.failed and isinstance(running, Fleet):
        report.sections.append(("process logs", running.tails()))
