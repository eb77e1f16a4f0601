"""Fuzz-tier fixtures: a database and a broker of this tier only, its settings, size and seed.

The tier compares snapshots of every service table before and after, so nothing else may write
to its database, and its consumer groups must not share partitions with another tier's
(the groups are named by service): both are its own.
"""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from services.platform.db import create_engine
from services.platform.settings import (
    ConsumerSettings,
    KafkaSettings,
    PaymentSimulatorSettings,
    SagaSettings,
    Settings,
)
from tests.support import infra

EXAMPLES_ENV = "CHECKOUT_FUZZ_EXAMPLES"
SEED_ENV = "CHECKOUT_FUZZ_SEED"
DEFAULT_EXAMPLES = 10_000
"""Records fuzzed through the direct path in CI; the broker path adds a tenth of that."""
PARTITIONS = 4


def examples() -> int:
    """How many hostile records the direct path sends (CHECKOUT_FUZZ_EXAMPLES)."""
    return int(os.environ.get(EXAMPLES_ENV, DEFAULT_EXAMPLES))


def time_limit() -> pytest.MarkDecorator:
    """pytest-timeout's limit for one fuzz test: the suite's 300 s, and more for longer runs."""
    return pytest.mark.timeout(300 + examples() // 40)


@pytest.fixture(scope="module")
def fuzz_examples() -> int:
    """How many hostile records the direct path sends (CHECKOUT_FUZZ_EXAMPLES)."""
    return examples()


@pytest.fixture(scope="session")
def fuzz_seed() -> int:
    """The run's seed (CHECKOUT_FUZZ_SEED replays one); printed by every test that uses it."""
    return int(os.environ.get(SEED_ENV) or random.randrange(1 << 31))


@pytest.fixture(scope="module")
def fuzz_database_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, migrated database of this tier."""
    with infra.tier_database(pg_server_url) as url:
        yield url


@pytest.fixture(scope="module")
def fuzz_bootstrap() -> Iterator[str]:
    """A Tansu broker of this tier only, every topic created up front."""
    with infra.tier_broker(PARTITIONS) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="module")
def fuzz_settings(fuzz_database_url: str, fuzz_seed: int) -> Settings:
    """Quick retries, a short orphan grace, a simulator that declines and duplicates some."""
    return Settings(
        database_url=SecretStr(fuzz_database_url),
        database_pool_size=12,
        kafka=KafkaSettings(
            bootstrap_servers="127.0.0.1:1",  # the broker path sets its own
            topic_partitions=PARTITIONS,
            session_timeout_ms=2000,
        ),
        consumer=ConsumerSettings(
            retry_attempts=3, retry_base_delay_s=0.005, retry_max_delay_s=0.05
        ),
        # Payments always answer; a long deadline keeps a backlog of hostile records from
        # failing valid checkouts by timeout (the deadline has tests of its own).
        saga=SagaSettings(orphan_grace_s=1.0, payment_timeout_s=300, timeout_poll_interval_s=0.3),
        payments=PaymentSimulatorSettings(decline_rate=0.2, duplicate_rate=0.1, seed=fuzz_seed),
    )


@pytest.fixture(scope="module")
async def fuzz_engine(fuzz_settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine on the tier's database, for the direct path, seeding and snapshots."""
    engine = create_engine(fuzz_settings)
    try:
        yield engine
    finally:
        await engine.dispose()
