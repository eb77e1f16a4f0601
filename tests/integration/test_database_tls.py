"""PostgreSQL TLS: services, migrations and the relay's LISTEN connection all speak it when set."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.platform import migrate
from services.platform.db import connect_args, create_engine
from services.platform.embedded import EmbeddedPostgres
from services.platform.relay import Relay
from services.platform.settings import DatabaseTlsSettings, RelaySettings, Settings
from tests.support.payer import eventually
from tests.support.pg_tls_proxy import PgTlsProxy
from tests.support.relays import running

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class TlsServer:
    """A PostgreSQL reachable over TLS only, the CA that signed its certificate, and a spare CA."""

    url: str
    ca_file: str
    other_ca_file: str
    proxy: PgTlsProxy


@pytest.fixture(scope="module")
async def tls_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TlsServer]:
    """An embedded PostgreSQL of its own behind a TLS-only front with a certificate for localhost."""
    root = tmp_path_factory.mktemp("tls")
    ca, other = trustme.CA(), trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    ca.cert_pem.write_to_path(str(root / "ca.pem"))
    other.cert_pem.write_to_path(str(root / "other-ca.pem"))
    with EmbeddedPostgres() as postgres:
        socket_dir = make_url(postgres.url).query["host"]
        proxy = PgTlsProxy(server_context, str(Path(str(socket_dir)) / ".s.PGSQL.5432"))
        port = await proxy.start()
        try:
            url = f"postgresql+asyncpg://postgres@localhost:{port}/postgres"
            yield TlsServer(url, str(root / "ca.pem"), str(root / "other-ca.pem"), proxy)
        finally:
            await proxy.stop()


def _settings(server: TlsServer, **tls: str) -> Settings:
    return Settings(database_url=server.url, database_tls=DatabaseTlsSettings(**tls))


async def _through_tls(settings: Settings) -> bool:
    """Connect with these settings and run a query: only a TLS session can get an answer."""
    engine = create_engine(settings, pool_size=1)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()


async def test_verify_full_with_the_servers_ca_connects_through_tls(tls_server: TlsServer) -> None:
    settings = _settings(tls_server, mode="verify-full", ca_file=tls_server.ca_file)
    assert await _through_tls(settings)


async def test_without_tls_the_server_refuses_the_connection(tls_server: TlsServer) -> None:
    refused = tls_server.proxy.refused
    with pytest.raises(DBAPIError, match="connection was closed"):
        await _through_tls(_settings(tls_server, mode="disable"))
    assert tls_server.proxy.refused == refused + 1


async def test_a_certificate_from_another_ca_is_refused(tls_server: TlsServer) -> None:
    other_ca = _settings(tls_server, mode="verify-ca", ca_file=tls_server.other_ca_file)
    with pytest.raises(ssl.SSLCertVerificationError):
        await _through_tls(other_ca)
    assert await _through_tls(_settings(tls_server, mode="require"))  # encrypts, checks nothing


async def test_verify_full_checks_the_host_name_and_verify_ca_does_not(
    tls_server: TlsServer,
) -> None:
    by_address = SecretStr(tls_server.url.replace("localhost", "127.0.0.1"))  # not in the cert
    ca = tls_server.ca_file
    verify_ca = _settings(tls_server, mode="verify-ca", ca_file=ca)
    verify_full = _settings(tls_server, mode="verify-full", ca_file=ca)
    assert await _through_tls(verify_ca.model_copy(update={"database_url": by_address}))
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        await _through_tls(verify_full.model_copy(update={"database_url": by_address}))


async def test_migrations_run_over_tls_with_the_settings_checks(tls_server: TlsServer) -> None:
    url = tls_server.url
    wrong = _settings(tls_server, mode="verify-ca", ca_file=tls_server.other_ca_file)
    # Unset, asyncpg would try TLS without checking anything and succeed: a refusal shows
    # the settings reached the migration's connection.
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.to_thread(migrate.upgrade, url, connect_args=connect_args(wrong.database_tls))
    right = _settings(tls_server, mode="verify-full", ca_file=tls_server.ca_file)
    await asyncio.to_thread(migrate.upgrade, url, connect_args=connect_args(right.database_tls))
    engine = create_engine(right, pool_size=1)
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT to_regclass('saga.outbox') IS NOT NULL"))
    finally:
        await engine.dispose()


async def test_the_relays_listen_connection_uses_the_tls_settings(
    tls_server: TlsServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tls_server, mode="verify-full", ca_file=tls_server.ca_file)
    tls = connect_args(settings.database_tls)
    await asyncio.to_thread(migrate.upgrade, tls_server.url, connect_args=tls)
    engine = create_engine(settings, pool_size=1)
    wrong = connect_args(DatabaseTlsSettings(mode="verify-ca", ca_file=tls_server.other_ca_file))
    try:
        with caplog.at_level(logging.WARNING, logger="checkout_saga.relay"):
            async with _relay(engine, wrong):
                await eventually(lambda: "LISTEN unavailable" in caplog.text, timeout=30)
                assert await _listeners(engine) == 0
        async with _relay(engine, tls):
            await eventually(lambda: _listeners(engine), timeout=30)
    finally:
        await engine.dispose()


@asynccontextmanager
async def _relay(engine: AsyncEngine, options: dict[str, Any]) -> AsyncIterator[Relay]:
    """A relay of the saga's outbox whose LISTEN connection gets these options, while inside."""
    relay = Relay(engine, _NoProducer(), ["saga"], RelaySettings(), connect_args=options)
    async with running(relay):
        yield relay


class _NoProducer:
    """The outbox is empty: nothing is ever sent."""

    async def send(
        self, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        raise AssertionError("nothing to publish")


async def _listeners(engine: AsyncEngine) -> int:
    # A fresh connection per look: statistics views hold still within one transaction.
    async with engine.connect() as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"
        return int(await conn.scalar(text(query)) or 0)
