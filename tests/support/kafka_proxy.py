"""A TCP proxy in front of a Kafka broker that its clients cannot go around.

A Kafka client only bootstraps from the address it is given: every later connection goes to
the host:port the broker advertises in its Metadata and FindCoordinator answers. A plain proxy
on the bootstrap address would therefore carry one request and then be bypassed. This proxy
rewrites the broker's advertised address in every answer to its own (the way Kafka proxies do),
so a client started with it as bootstrap talks to the broker only through it, while every other
client keeps talking to the broker directly; cutting it cuts one process off the broker.

The rewrite keeps every length: the advertised host stays the same string (the proxy listens
on the broker's host) and only the 4-byte port that follows the host in a broker entry
changes, which holds for every version of both answers (compact or classic strings alike).
"""

from __future__ import annotations

import asyncio
import contextlib

from tests.support.tcp_proxy import Link, TcpProxy


class KafkaProxy(TcpProxy):
    """TcpProxy whose clients learn its own address as the broker's; counts its rewrites."""

    def __init__(self, port: int, broker: tuple[str, int]) -> None:
        host, broker_port = broker
        super().__init__(port, broker, host=host)
        self.rewrites = 0
        self._broker_entry = _entry(host, broker_port)
        self._own_entry = _entry(host, port)

    async def _upstream_to_client(
        self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Forward each answer whole (a size-prefixed frame), with the broker's address as ours."""
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                size = await reader.readexactly(4)
                body = await reader.readexactly(int.from_bytes(size, "big"))
                found = body.count(self._broker_entry)
                if found:
                    self.rewrites += found
                    body = body.replace(self._broker_entry, self._own_entry)
                self.bytes_down += len(size) + len(body)
                writer.write(size + body)
                await writer.drain()


def _entry(host: str, port: int) -> bytes:
    """A broker entry's host bytes and the big-endian int32 port right after them."""
    return host.encode() + port.to_bytes(4, "big", signed=True)
