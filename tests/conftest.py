"""Session fixtures for PostgreSQL and Kafka; lazy, so unit tests start nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import infra


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
