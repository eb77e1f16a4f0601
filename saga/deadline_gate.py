"""When a payment deadline may fire: only once every answer sent before it has been applied.

The saga consumer group commits an offset only after the transaction that applied the record
committed. So if at time T the payment-answer partitions ended at offsets E, and the group's
committed offsets later reach E, every answer on the broker before T has been applied, and a
deadline at or before T measures the payer, not our backlog. This module is the pure part of
that rule: snapshots of end offsets, the newest snapshot each partition has reached (its release
time), and which partition a saga's answers travel on (Kafka's default partitioner).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

Partition = tuple[str, int]
"""(topic, partition number)."""

_MASK32 = 0xFFFFFFFF
_M = 0x5BD1E995
_SEED = 0x9747B28C


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's Utils.murmur2, as aiokafka computes it), unsigned."""
    length = len(data)
    h = (_SEED ^ length) & _MASK32
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK32
        k ^= k >> 24
        k = (k * _M) & _MASK32
        h = ((h * _M) & _MASK32) ^ k
    tail = data[length - length % 4 :]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h = ((h ^ tail[0]) * _M) & _MASK32
    h ^= h >> 13
    h = (h * _M) & _MASK32
    return h ^ (h >> 15)


def key_hash(key: str) -> int:
    """The non-negative hash the default partitioner takes modulo the partition count."""
    return murmur2(key.encode()) & 0x7FFFFFFF


def partition_of(key: str, partitions: int) -> int:
    """The partition a record with this key lands on (aiokafka's DefaultPartitioner)."""
    return key_hash(key) % partitions


@dataclass(frozen=True, slots=True)
class Snapshot:
    """End offsets of the answer partitions, read after `taken_at` (so they cover it).

    `monotonic` is the poller's monotonic clock at `taken_at`: the two tell a step of the wall
    clock between snapshots (None: unknown, no step is looked for).
    """

    taken_at: datetime
    ends: Mapping[Partition, int]
    monotonic: float | None = None

    def reached_by(self, partition: Partition, committed: int) -> bool:
        """Whether a committed offset covers every record this snapshot saw on the partition."""
        end = self.ends.get(partition)
        return end is not None and committed >= end


class ReleaseBoard:
    """Pending snapshots and, per answer partition, the time up to which deadlines may fire."""

    def __init__(self, partitions: Mapping[str, int], max_snapshots: int) -> None:
        """partitions: answer topic -> its partition count (as the broker reports it)."""
        self.partitions = dict(partitions)
        self.max_snapshots = max(2, max_snapshots)
        self.snapshots: list[Snapshot] = []

    def add(self, snapshot: Snapshot) -> None:
        """Keep a new snapshot; over the limit, drop the one closest in time to its predecessor.

        The newest and the oldest always stay, so a lagging partition keeps a target near its
        position and a caught-up one a target near now; thinning only delays a release.
        """
        self._follow_the_clock_back(snapshot)
        self.snapshots.append(snapshot)
        while len(self.snapshots) > self.max_snapshots:
            inner = range(1, len(self.snapshots) - 1)
            drop = min(inner, key=lambda i: self._gap(i))
            del self.snapshots[drop]

    def _follow_the_clock_back(self, snapshot: Snapshot) -> None:
        """If the wall clock stepped back since the last snapshot, move the kept ones back too.

        A release time is compared with deadlines and `now` on the poller's current clock; a
        snapshot stamped before a step back would read as later than it was and release
        deadlines whose answers are still unapplied. A step forward leaves them early, which
        only holds deadlines a little longer.
        """
        last = self.snapshots[-1] if self.snapshots else None
        if last is None or last.monotonic is None or snapshot.monotonic is None:
            return
        elapsed = timedelta(seconds=snapshot.monotonic - last.monotonic)
        step = (snapshot.taken_at - last.taken_at) - elapsed
        if step < timedelta(0):
            self.snapshots = [replace(s, taken_at=s.taken_at + step) for s in self.snapshots]

    def _gap(self, i: int) -> float:
        return (self.snapshots[i].taken_at - self.snapshots[i - 1].taken_at).total_seconds()

    def release_times(
        self, committed: Mapping[Partition, int | None]
    ) -> dict[str, list[datetime | None]]:
        """Per answer topic, per partition: deadlines up to this time may fire (None: none may).

        A committed offset that is missing, None or negative (the group never committed) counts
        as 0, which reaches an empty partition's end of 0. Snapshots every partition has gone
        past are forgotten.
        """
        reached: dict[Partition, int] = {}
        for topic, count in self.partitions.items():
            for number in range(count):
                tp = (topic, number)
                reached[tp] = self._newest_reached(tp, _as_offset(committed.get(tp)))
        times = {
            topic: [self._time(reached[(topic, n)]) for n in range(count)]
            for topic, count in self.partitions.items()
        }
        del self.snapshots[: max(0, min(reached.values(), default=-1))]
        return times

    def _newest_reached(self, tp: Partition, committed: int) -> int:
        """Index of the newest snapshot the offset reached, -1 for none (ends only grow)."""
        for i in range(len(self.snapshots) - 1, -1, -1):
            if self.snapshots[i].reached_by(tp, committed):
                return i
        return -1

    def _time(self, index: int) -> datetime | None:
        return self.snapshots[index].taken_at if index >= 0 else None


def _as_offset(committed: int | None) -> int:
    return 0 if committed is None or committed < 0 else committed
