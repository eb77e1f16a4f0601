"""Database engine creation, and the driver options (TLS) every connection to PostgreSQL uses."""

from __future__ import annotations

import ssl
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.platform.settings import DatabaseTlsSettings, Settings


def create_engine(settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    """An asyncpg engine; created in an app's lifespan and disposed there."""
    return create_async_engine(
        settings.database_url.get_secret_value(),
        pool_size=pool_size or settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        # No pre-ping: it costs a round trip per transaction. A connection lost meanwhile fails
        # its transaction with a transient error, which the consumer retries on a fresh one.
        pool_pre_ping=False,
        # Everything here is short transactions; READ COMMITTED plus row locks and
        # optimistic versions is the isolation the design relies on.
        isolation_level="READ COMMITTED",
        connect_args=connect_args(settings.database_tls),
    )


def connect_args(tls: DatabaseTlsSettings) -> dict[str, Any]:
    """asyncpg.connect() keyword arguments for these TLS settings (none when unset)."""
    option = ssl_option(tls)
    return {} if option is None else {"ssl": option}


def ssl_option(tls: DatabaseTlsSettings) -> ssl.SSLContext | str | None:
    """asyncpg's `ssl` argument: a mode name, or a context when certificates are checked.

    Like libpq: `require` encrypts without checking the server (unless a CA file is given),
    `verify-ca` checks its certificate, `verify-full` its certificate and host name.
    """
    if tls.mode is None or tls.mode in ("disable", "allow", "prefer"):
        return tls.mode
    if tls.mode == "require" and tls.ca_file is None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=tls.ca_file)
        context.check_hostname = tls.mode == "verify-full"
    if tls.cert_file is not None:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    return context
