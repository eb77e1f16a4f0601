"""Faults beyond kill -9 for the chaos tier: per-process routes, pauses, and what a process holds.

- RoutedFleet gives named processes extra environment: their own proxy to PostgreSQL or to the
  broker, or a fake clock, while the others keep the direct addresses.
- paused() stops a process with SIGSTOP and always continues it (SIGCONT), as a long GC pause,
  a frozen VM or a debugger would: its sockets stay open but nothing answers;
  stop_inside_transaction() picks a moment when it holds an open transaction.
- logged() and held() read what a process logged: a sign awaited, its latest partitions.
- remote_ports() shows whom a process talks to (it must not go around its proxy), and
  blocked_by() how many sessions wait for the locks of a process's sessions.
- expire_silent_members() makes Tansu expire a member whose session ran out (see its docstring).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped, unused-ignore]
from aiokafka.conn import create_conn
from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata
from aiokafka.errors import MemberIdRequired
from aiokafka.protocol.group import JoinGroupRequest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.support.pg_proxy import PgProxy
from tests.support.processes import PROCESSES, Fleet

ASSIGNED = "Setting newly assigned partitions"
"""What aiokafka logs (INFO) when its consumer is given partitions."""
_PARTITION = re.compile(r"TopicPartition\(topic='([^']+)', partition=(\d+)\)")


def assignments(log: str) -> list[frozenset[tuple[str, int]]]:
    """Every set of partitions a process's consumer was given, in order, from its log."""
    return [
        frozenset((topic, int(number)) for topic, number in _PARTITION.findall(line))
        for line in log.splitlines()
        if ASSIGNED in line
    ]


class RoutedFleet(Fleet):
    """A Fleet whose named processes start with extra environment (routes) over the shared one."""

    def __init__(
        self,
        env: dict[str, str],
        log_dir: Path,
        commands: Mapping[str, tuple[str, ...]] = PROCESSES,
        routes: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        super().__init__(env, log_dir, commands)
        self.routes = {name: dict(extra) for name, extra in (routes or {}).items()}

    def start(self, name: str) -> None:
        """Start one process with the shared environment plus its own route."""
        shared = self.env
        self.env = {**shared, **self.routes.get(name, {})}
        try:
            super().start(name)
        finally:
            self.env = shared

    def pid(self, name: str) -> int:
        """The pid of a running process."""
        return self.procs[name].pid

    def log_since(self, name: str, offset: int) -> str:
        """What a process logged after a byte offset of its log."""
        with self.log(name).open("rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", "replace")

    def log_size(self, name: str) -> int:
        """The current size of a process's log (an offset for log_since)."""
        return self.log(name).stat().st_size


async def logged(
    fleet: RoutedFleet,
    name: str,
    since: int,
    sign: Callable[[str], bool],
    what: str,
    timeout_s: float,
) -> str:
    """Wait until what a process logged after an offset shows the sign; its log since then."""
    deadline = time.monotonic() + timeout_s
    while not sign(text := fleet.log_since(name, since)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}: {what} not seen in {timeout_s}s\n{text[-3000:]}")
        await asyncio.sleep(0.1)
    return text


def held(fleet: RoutedFleet, name: str) -> frozenset[tuple[str, int]]:
    """The partitions a process's consumer was given last."""
    given = assignments(fleet.log_since(name, 0))
    return given[-1] if given else frozenset()


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """SIGSTOP the process; SIGCONT when the block ends, however it ends."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


async def stop_inside_transaction(
    pid: int, proxy: PgProxy, rng: random.Random, tries: int = 400
) -> tuple[int, int]:
    """SIGSTOP a process at a moment one of its transactions is open: (tries, open ones).

    It is stopped first and looked at after: the server still answers what was sent before the
    stop, so a session inside a transaction a moment later stays so until the process goes on.
    """
    for attempt in range(1, tries + 1):
        os.kill(pid, signal.SIGSTOP)
        await asyncio.sleep(0.05)
        if inside := proxy.open_transactions():
            return attempt, inside
        os.kill(pid, signal.SIGCONT)
        await asyncio.sleep(rng.uniform(0.0, 0.05))
    raise AssertionError(f"pid {pid} never stopped inside a transaction in {tries} tries")


def remote_ports(pid: int) -> set[int]:
    """The remote ports of a process's TCP connections (whom it talks to)."""
    return {c.raddr.port for c in psutil.Process(pid).net_connections(kind="tcp") if c.raddr}


async def blocked_by(db: AsyncEngine, backends: list[int]) -> int:
    """How many sessions wait for a lock that one of these server processes holds."""
    query = text("SELECT count(*) FROM pg_stat_activity WHERE pg_blocking_pids(pid) && :pids")
    async with db.connect() as conn:
        return int(await conn.scalar(query, {"pids": backends}) or 0)


async def expire_silent_members(broker: tuple[str, int], group: str, session_ms: int) -> None:
    """Join the group as a member with no topics that then goes silent.

    Kafka's coordinator expires a member whose session ran out on a timer and rebalances its
    group; Tansu (0.6.0) expires one only when someone joins the group, so without a join a
    frozen or cut-off member keeps its partitions forever. This join stands in for the timer.
    The joiner subscribes to nothing (it is assigned nothing) and is expired in turn at the
    next join; it does not leave, because Tansu would keep a departed member as the leader.
    """
    conn = await create_conn(*broker)
    metadata = ConsumerProtocolMemberMetadata(0, [], b"").encode()

    async def join(member_id: str) -> Any:
        request = JoinGroupRequest(
            group, session_ms, session_ms, member_id, None, "consumer", [("roundrobin", metadata)]
        )
        return await conn.send(request)

    try:
        joined = await join("")
        if joined.error_code == MemberIdRequired.errno:  # join again under the id it was given
            joined = await join(joined.member_id)
        assert joined.error_code == 0, f"joining {group}: error {joined.error_code}"
    finally:
        conn.close()
