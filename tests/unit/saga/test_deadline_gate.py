"""The payment-deadline gate's pure rules: key partitions, snapshots, release time per partition."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from aiokafka.partitioner import DefaultPartitioner, murmur2

from saga import deadline_gate
from saga.deadline_gate import ReleaseBoard, Snapshot, key_hash, partition_of

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
A, B = "checkout.payment_completed", "checkout.payment_failed"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def snap(seconds: float, **ends: int) -> Snapshot:
    """A snapshot at T0 + seconds; ends given as a0=5, b1=2 (topic letter, partition)."""
    topics = {"a": A, "b": B}
    return Snapshot(at(seconds), {(topics[k[0]], int(k[1:])): v for k, v in ends.items()})


def test_murmur2_is_aiokafkas_for_every_tail_length() -> None:
    keys = [b"", b"a", b"ab", b"abc", b"abcd", b"\xff\xfe\xfd\xfc\xfb"]
    keys += [str(uuid.uuid4()).encode() for _ in range(200)]
    for key in keys:
        assert deadline_gate.murmur2(key) == murmur2(key), key


def test_partition_of_a_key_is_the_default_partitioners() -> None:
    for _ in range(200):
        key = str(uuid.uuid4())
        for count in (1, 3, 4, 16):
            expected = DefaultPartitioner()(key.encode(), list(range(count)), [])
            assert partition_of(key, count) == expected
            assert key_hash(key) % count == expected


def test_a_partition_is_released_up_to_the_newest_snapshot_it_reached() -> None:
    board = ReleaseBoard({A: 2, B: 2}, max_snapshots=10)
    board.add(snap(0, a0=5, a1=3, b0=1, b1=0))
    board.add(snap(1, a0=9, a1=3, b0=2, b1=0))
    times = board.release_times({(A, 0): 5, (A, 1): 3, (B, 0): 2, (B, 1): None})
    assert times[A] == [at(0), at(1)]  # a0 reached only the first snapshot's end
    assert times[B] == [at(1), at(1)]  # empty partition: never committed counts as caught up


def test_a_partition_behind_every_snapshot_is_held() -> None:
    board = ReleaseBoard({A: 1}, max_snapshots=10)
    board.add(snap(0, a0=7))
    assert board.release_times({(A, 0): 6}) == {A: [None]}
    assert board.release_times({(A, 0): -1}) == {A: [None]}
    assert board.release_times({}) == {A: [None]}


def test_a_lagging_partition_releases_older_deadlines_as_it_catches_up() -> None:
    board = ReleaseBoard({A: 2}, max_snapshots=10)
    for second, end in enumerate((10, 20, 30, 40)):
        board.add(snap(second, a0=end, a1=1))
    assert board.release_times({(A, 0): 15, (A, 1): 1}) == {A: [at(0), at(3)]}
    assert board.release_times({(A, 0): 30, (A, 1): 1}) == {A: [at(2), at(3)]}
    assert board.release_times({(A, 0): 40, (A, 1): 1}) == {A: [at(3), at(3)]}


def test_snapshots_every_partition_passed_are_forgotten() -> None:
    board = ReleaseBoard({A: 2}, max_snapshots=10)
    for second, end in enumerate((10, 20, 30)):
        board.add(snap(second, a0=end, a1=end))
    board.release_times({(A, 0): 20, (A, 1): 30})
    assert [s.taken_at for s in board.snapshots] == [at(1), at(2)]
    board.release_times({(A, 0): 9, (A, 1): 9})  # offsets never go back; nothing breaks if so
    assert [s.taken_at for s in board.snapshots] == [at(1), at(2)]


def test_a_partition_missing_from_a_snapshot_is_not_released_by_it() -> None:
    board = ReleaseBoard({A: 2}, max_snapshots=10)
    board.add(snap(0, a0=0))
    assert board.release_times({(A, 0): 0, (A, 1): 100}) == {A: [at(0), None]}


def test_thinning_keeps_the_oldest_and_the_newest_and_spreads_the_rest() -> None:
    board = ReleaseBoard({A: 1}, max_snapshots=4)
    for second in (0, 1, 2, 3, 10, 11):
        board.add(snap(second, a0=second))
    times = [s.taken_at for s in board.snapshots]
    assert len(times) == 4
    assert times[0] == at(0)
    assert times[-1] == at(11)
    # Thinning can only delay a release: a reached snapshot is never later than the truth.
    assert board.release_times({(A, 0): 3}) == {A: [max(t for t in times if t <= at(3))]}


def test_a_clock_stepped_back_takes_the_kept_snapshots_back_with_it() -> None:
    # Snapshots are stamped by the poller's wall clock. Stepped back 30 s, one taken before the
    # step reads 30 s late on the new clock: a partition that reached only it was released up
    # to then, so deadlines fired while answers sent before them still waited to be applied.
    board = ReleaseBoard({A: 1}, max_snapshots=10)
    board.add(Snapshot(at(100), {(A, 0): 5}, monotonic=1000.0))
    board.add(Snapshot(at(71), {(A, 0): 9}, monotonic=1001.0))  # 1 s later, the clock 30 s back
    assert board.release_times({(A, 0): 5}) == {A: [at(70)]}
    assert board.release_times({(A, 0): 9}) == {A: [at(71)]}


def test_a_clock_stepped_forward_leaves_the_kept_snapshots_where_they_were() -> None:
    # Read on the new clock they are early, which only holds deadlines a little longer.
    board = ReleaseBoard({A: 1}, max_snapshots=10)
    board.add(Snapshot(at(0), {(A, 0): 5}, monotonic=1000.0))
    board.add(Snapshot(at(31), {(A, 0): 9}, monotonic=1001.0))
    assert board.release_times({(A, 0): 5}) == {A: [at(0)]}
