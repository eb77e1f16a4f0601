"""A TCP proxy in front of PostgreSQL that knows which of its sessions are in a transaction.

It reads the server's side of the protocol: BackendKeyData names each session's server process
(so pg_stat_activity can be asked about a client's sessions, whatever socket the proxy reaches
the server by), and ReadyForQuery's status byte says whether a session is idle ('I'), inside a
transaction block ('T') or in a failed one ('E'). That lets the fault tier cut a service's
connections while a transaction is open and prove it did: a cut counted in `cut_in_transaction`
reset a session between its BEGIN and the answer to its COMMIT, so the server rolled it back or
committed it without the client learning which.

The embedded PostgreSQL listens on a Unix socket only: the proxy listens on TCP and reaches
the server on the socket the database URL names (or on its host:port).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.support.tcp_proxy import CHUNK, Link, TcpProxy

_SINGLE_BYTE_ANSWERS = b"NSG"
"""The server answers SSLRequest / GSSENCRequest with one byte ('S'/'G': encryption follows)."""
_ENCRYPTED = b"SG"
_BACKEND_KEY, _READY = ord("K"), ord("Z")
IN_TRANSACTION = frozenset(b"TE")
"""ReadyForQuery statuses of a session inside a transaction block (open, or failed)."""


def server_of(database_url: str) -> tuple[str, int] | Path:
    """Where a database URL reaches its server: host and port, or the Unix socket's path."""
    url = make_url(database_url)
    directory = url.query.get("host")
    if isinstance(directory, str) and directory.startswith("/"):
        return Path(directory) / f".s.PGSQL.{url.port or 5432}"
    return (url.host or "127.0.0.1", url.port or 5432)


def through(database_url: str, proxy: TcpProxy) -> str:
    """The same database URL, reaching the server through the proxy (over TCP)."""
    url = make_url(database_url)
    url = url.set(host=proxy.host, port=proxy.port, query={})
    return url.render_as_string(hide_password=False)


class PgProxy(TcpProxy):
    """TcpProxy that tracks each session's transaction status and can cut inside one."""

    def __init__(self, port: int, server: tuple[str, int] | Path) -> None:
        super().__init__(port, server if isinstance(server, tuple) else ("", 0))
        self.socket_path = server if isinstance(server, Path) else None
        self.cut_in_transaction = 0
        self.transactions_seen = 0
        self._status: dict[Link, int] = {}
        self._backend: dict[Link, int] = {}
        self._opened: asyncio.Event | None = None

    def open_transactions(self) -> int:
        """Sessions inside a transaction block right now."""
        return sum(1 for status in list(self._status.values()) if status in IN_TRANSACTION)

    def backend_pids(self) -> list[int]:
        """The server processes of the live sessions (pg_stat_activity.pid)."""
        return list(self._backend.values())

    def cut_inside_transaction(self, timeout_s: float) -> int:
        """Once a session is inside a transaction, cut every connection (and stop listening).

        Returns how many sessions were inside a transaction at the cut, 0 when none opened one
        within the timeout (nothing is cut then). restore() listens again.
        """
        return self._call(self._cut_when_open(timeout_s))

    async def _cut_when_open(self, timeout_s: float) -> int:
        self._opened = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            if not self.open_transactions():
                await asyncio.wait_for(self._opened.wait(), timeout_s)
        inside = self.open_transactions()
        if inside:
            # In this loop's thread nothing is forwarded between the count and the cut.
            self.cut_in_transaction += inside
            await self._cut()
        return inside

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.socket_path is not None:
            return await asyncio.open_unix_connection(self.socket_path)
        return await super()._open_upstream()

    async def _upstream_to_client(
        self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Forward the server's bytes as they come, noting sessions and statuses on the way."""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            kind = await reader.readexactly(1)
            while kind in _SINGLE_BYTE_ANSWERS:
                await self._send(writer, kind)
                if kind in _ENCRYPTED:
                    await super()._upstream_to_client(link, reader, writer)
                    return
                kind = await reader.readexactly(1)
            messages = MessageWalk()
            data = kind
            while data:
                for message, start in messages.feed(data):
                    self._read(link, message, start)
                await self._send(writer, data)
                data = await reader.read(CHUNK)

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        self.bytes_down += len(data)
        writer.write(data)
        await writer.drain()

    def _read(self, link: Link, kind: int, body: bytes) -> None:
        """Note a session's server process (BackendKeyData) and status (ReadyForQuery)."""
        if kind == _BACKEND_KEY:
            self._backend[link] = int.from_bytes(body[:4], "big")
        elif kind == _READY:
            status = body[0]
            if status in IN_TRANSACTION and self._status.get(link) not in IN_TRANSACTION:
                self.transactions_seen += 1
                if self._opened is not None:
                    self._opened.set()
            self._status[link] = status

    def _closed(self, link: Link) -> None:
        self._status.pop(link, None)
        self._backend.pop(link, None)


class MessageWalk:
    """Finds the messages in the server's byte stream, however it is chunked, without copying.

    Each message is a type byte, a 4-byte length (counting itself) and a body; the proxy needs
    only the first bytes of two kinds' bodies, so the rest of every body is skipped over.
    """

    WANTED = {_BACKEND_KEY: 4, _READY: 1}
    """How many leading body bytes of each wanted message kind to keep."""

    def __init__(self) -> None:
        self._header = bytearray()
        self._kind = 0
        self._kept = bytearray()
        self._want = 0
        self._left = 0  # body bytes of the current message not passed yet

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The wanted messages completed in this chunk: (type, their leading body bytes)."""
        done: list[tuple[int, bytes]] = []
        at = 0
        while at < len(data):
            if len(self._header) < 5:
                take = data[at : at + 5 - len(self._header)]
                self._header += take
                at += len(take)
                if len(self._header) == 5:
                    self._begin()
            else:
                keep = min(self._want - len(self._kept), len(data) - at)
                self._kept += data[at : at + keep]
                step = min(self._left, len(data) - at)
                at, self._left = at + step, self._left - step
            if len(self._header) == 5 and self._left == 0:
                if self._kind in self.WANTED:
                    done.append((self._kind, bytes(self._kept)))
                self._header.clear()
        return done

    def _begin(self) -> None:
        self._kind = self._header[0]
        self._left = int.from_bytes(self._header[1:5], "big") - 4
        self._want = min(self.WANTED.get(self._kind, 0), self._left)
        self._kept.clear()
