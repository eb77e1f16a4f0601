"""A TLS-only front for a plain PostgreSQL: the server half of PostgreSQL's SSLRequest handshake.

The embedded PostgreSQL is built without SSL, so TLS tests put this in front of it: it answers
a client's SSLRequest with 'S', completes the handshake with its certificate and then pipes
bytes to the real server. A client that does not ask for TLS is hung up on, like a server with
only `hostssl` lines in pg_hba.conf. Any query answered through it therefore went over TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from dataclasses import dataclass, field

SSL_REQUEST = struct.pack("!ii", 8, 80877103)
"""What a client sends first to ask for TLS (PostgreSQL protocol, "SSLRequest")."""


@dataclass
class PgTlsProxy:
    """Listens on 127.0.0.1:<port>; forwards TLS sessions to the server's Unix socket."""

    context: ssl.SSLContext
    backend_socket: str
    tls_sessions: int = 0
    refused: int = 0
    _server: asyncio.Server | None = field(default=None, repr=False)
    _sessions: set[asyncio.StreamWriter] = field(default_factory=set, repr=False)

    async def start(self) -> int:
        """Start listening on a free port; returns the port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        """Stop listening and drop every open session."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._sessions):
                writer.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._sessions.add(writer)
        try:
            if await reader.readexactly(len(SSL_REQUEST)) != SSL_REQUEST:
                self.refused += 1
                return
            writer.write(b"S")
            await writer.drain()
            await writer.start_tls(self.context)
            self.tls_sessions += 1
            await self._pipe_to_backend(reader, writer)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
            pass  # a client that gave up (e.g. it refused our certificate)
        finally:
            self._sessions.discard(writer)
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    async def _pipe_to_backend(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        backend_reader, backend_writer = await asyncio.open_unix_connection(self.backend_socket)
        try:
            await asyncio.gather(_copy(reader, backend_writer), _copy(backend_reader, writer))
        finally:
            backend_writer.close()


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(65536):
            sink.write(chunk)
            await sink.drain()
    finally:
        # The other direction ends with this one: a closed session closes both halves.
        with contextlib.suppress(OSError, RuntimeError):
            sink.close()
