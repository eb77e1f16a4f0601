"""Closed and open loops: when each checkout is sent, and from when its latency counts.

Closed loop: `concurrency` workers each send a checkout and wait for its final event before the
next, so exactly that many are unfinished at once; latency counts from the send.
Open loop: sends at Poisson arrival times (seeded) regardless of how many are unfinished; latency
counts from the scheduled time, so a sender or a system that falls behind shows as queueing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from contracts import CheckoutStarted
from ops.bench.stats import poisson_schedule
from ops.bench.wire import Watcher, publish


@dataclass(frozen=True)
class Drive:
    """What happened in time: when the first send went out, and the sends that were made."""

    began_at: float
    sent: int
    deliveries: Sequence[asyncio.Future[Any]]


async def closed_loop(
    producer: AIOKafkaProducer,
    watcher: Watcher,
    checkouts: Sequence[CheckoutStarted],
    concurrency: int,
    timeout_s: float,
    progress: Callable[[int], None],
) -> Drive:
    """Keep `concurrency` checkouts unfinished until all are sent; wait at most timeout_s."""
    queue: Iterator[CheckoutStarted] = iter(checkouts)
    deliveries: list[asyncio.Future[Any]] = []

    async def worker() -> None:
        for checkout in queue:
            finished = watcher.expect(checkout.order_id, time.monotonic())
            deliveries.append(await publish(producer, checkout))
            await finished
            progress(len(watcher.finished))

    began_at = time.monotonic()
    workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(checkouts)))]
    _done, late = await asyncio.wait(workers, timeout=timeout_s)
    for task in late:
        task.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    return Drive(began_at, len(watcher.started_at), deliveries)


async def open_loop(
    producer: AIOKafkaProducer,
    watcher: Watcher,
    checkouts: Sequence[CheckoutStarted],
    offsets: Sequence[float],
    timeout_s: float,
    progress: Callable[[int], None],
) -> Drive:
    """Send checkout i at began_at + offsets[i]; then wait at most timeout_s for the last ones."""
    deliveries: list[asyncio.Future[Any]] = []
    began_at = time.monotonic()
    for checkout, offset in zip(checkouts, offsets, strict=False):
        scheduled = began_at + offset
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        watcher.expect(checkout.order_id, scheduled)
        deliveries.append(await publish(producer, checkout))
        progress(len(watcher.finished))
    await watcher.wait_all(timeout_s)
    progress(len(watcher.finished))
    return Drive(began_at, len(watcher.started_at), deliveries)


def open_loop_offsets(rate: float, duration_s: float, seed: int) -> list[float]:
    """The open loop's send times (Poisson, seeded separately from the checkouts' contents)."""
    return poisson_schedule(rate, duration_s, seed + 7919)


async def delivery_failures(deliveries: Sequence[asyncio.Future[Any]]) -> int:
    """How many sends the broker did not acknowledge."""
    results = await asyncio.gather(*deliveries, return_exceptions=True)
    return sum(isinstance(result, BaseException) for result in results)
