"""A TCP proxy in a thread of its own that can go down and come back on the same port.

The chaos tier uses it to restart "the broker" as its clients see it. The embedded Tansu keeps
everything in memory, so restarting its process would lose every topic, record and committed
offset, which no production Kafka restart does (its log is durable). Cutting the network in
front of the broker is what its clients actually go through: every open connection dies at
once, new ones are refused while it is down, and then the same address answers again with the
same log and the same committed offsets.

The fault tier (tests/chaos/test_faults.py) extends it: subclasses read what flows through a
link (PostgreSQL's transaction status, Kafka's broker addresses) by overriding one direction's
pipe, and the counters prove that a client's traffic really went through the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

T = TypeVar("T")

CONTROL_TIMEOUT_S = 10.0
CHUNK = 64 * 1024
_RESET = struct.pack("ii", 1, 0)
"""SO_LINGER on with a zero timeout: closing sends RST, as a host that lost its process does."""


@dataclass(eq=False)
class Link:
    """One proxied connection: its client end and, once connected, its upstream end."""

    writers: list[asyncio.StreamWriter] = field(default_factory=list)


class TcpProxy:
    """Forwards host:port to an upstream address; cut() drops everything, restore() listens again.

    The event loop runs in a daemon thread so the proxy keeps forwarding while the test's own
    code blocks (fixtures, subprocess waits); the control methods are called from any thread.
    """

    def __init__(self, port: int, upstream: tuple[str, int], *, host: str = "127.0.0.1") -> None:
        self.port = port
        self.upstream = upstream
        self.host = host
        self.cut_connections = 0
        self.accepted = 0
        self.bytes_up = 0  # client -> upstream
        self.bytes_down = 0  # upstream -> client
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        # Each live connection: the task serving it and its two ends (client, upstream).
        self._links: dict[asyncio.Task[None], Link] = {}

    @property
    def address(self) -> str:
        """host:port, e.g. for bootstrap_servers."""
        return f"{self.host}:{self.port}"

    def start(self) -> Self:
        """Start the loop's thread and listen; returns once the port accepts connections."""
        self._thread.start()
        self.restore()
        return self

    def restore(self) -> None:
        """Listen again on the same port (a no-op while listening)."""
        self._call(self._listen())

    def cut(self) -> None:
        """Stop listening (new connections are refused) and reset every open connection."""
        self._call(self._cut())

    def stop(self) -> None:
        """Cut everything, then end the loop and its thread."""
        if self._thread.is_alive():
            self.cut()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(CONTROL_TIMEOUT_S)
        self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CONTROL_TIMEOUT_S)

    async def _listen(self) -> None:
        if self._server is None:
            # SO_REUSEADDR (asyncio's default here) lets the port be bound again at once.
            self._server = await asyncio.start_server(self._accept, self.host, self.port)

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        links = list(self._links.items())
        self.cut_connections += len(links)
        # Aborting both ends ends both pipes, so every link's task returns on its own (asyncio
        # streams complain about a cancelled connection callback, hence no task.cancel()).
        for _, link in links:
            for writer in link.writers:
                _reset(writer)
        await asyncio.gather(*(task for task, _ in links), return_exceptions=True)
        if server is not None:
            # After the links: from Python 3.12 on this also waits for every connection.
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.accepted += 1
        self._links[task] = Link([writer])
        try:
            await self._forward(reader, writer, self._links[task])
        finally:
            del self._links[task]
            writer.close()

    async def _forward(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: Link,
    ) -> None:
        """Pipe both ways until either side closes (then close the other) or the link is cut."""
        try:
            up_reader, up_writer = await self._open_upstream()
        except OSError:
            return
        link.writers.append(up_writer)
        pipes = [
            asyncio.create_task(self._client_to_upstream(link, reader, up_writer)),
            asyncio.create_task(self._upstream_to_client(link, up_reader, writer)),
        ]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pipe in pipes:
                pipe.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            up_writer.close()
            self._closed(link)

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to the upstream (a subclass may reach it another way, e.g. a Unix socket)."""
        return await asyncio.open_connection(*self.upstream)

    async def _client_to_upstream(
        self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """What the client sends, as it comes (a subclass may read or rewrite it)."""
        with contextlib.suppress(OSError):
            while data := await reader.read(CHUNK):
                self.bytes_up += len(data)
                writer.write(data)
                await writer.drain()

    async def _upstream_to_client(
        self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """What the upstream answers, as it comes (a subclass may read or rewrite it)."""
        with contextlib.suppress(OSError):
            while data := await reader.read(CHUNK):
                self.bytes_down += len(data)
                writer.write(data)
                await writer.drain()

    def _closed(self, link: Link) -> None:
        """A link ended (closed by either side, or cut): a subclass forgets what it kept."""


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close abruptly: RST instead of an orderly FIN, and nothing buffered is flushed."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    writer.transport.abort()
