"""The journal's pure parts: notes per record, details kept short and storable, rows in order."""

from __future__ import annotations

import uuid

from contracts import Reservation, StockReservationCompleted
from services.platform import journal
from services.platform.outbox import OutboxMessage, _journal_rows


def _message() -> OutboxMessage:
    held = Reservation(reservation_id=uuid.uuid4(), sku="SKU-1", quantity=1)
    return OutboxMessage.of(StockReservationCompleted(order_id=uuid.uuid4(), reservations=[held]))


def _consumed(before: int) -> journal.Consumed:
    return journal.Consumed("k", uuid.uuid4(), "T", "topic", "applied", before=before)


def test_notes_are_collected_per_block_and_go_nowhere_outside_one() -> None:
    journal.note("nobody is listening")  # must not raise, nor leak into the next block
    with journal.noting() as notes:
        journal.note("a")
        journal.note("b")
    with journal.noting() as others:
        pass
    assert journal.detail_of(notes) == "a; b"
    assert journal.detail_of(others) is None


def test_a_detail_is_cut_and_storable() -> None:
    assert journal.cut("x" * 5000) == "x" * 1000
    assert journal.cut("a\x00b") == "a\ufffdb"


def test_each_consumed_record_comes_just_before_the_messages_it_caused() -> None:
    m1, m2, m3 = _message(), _message(), _message()
    first, second, third = _consumed(0), _consumed(2), _consumed(3)

    # Given out of order: the records keep their order among themselves by `before`.
    rows = _journal_rows([m1, m2, m3], [second, first, third])

    assert [r[1] for r in rows] == [
        first.message_id,
        m1.message_id,
        m2.message_id,
        second.message_id,
        m3.message_id,
        third.message_id,
    ]
    assert [r[4] for r in rows] == ["in", "out", "out", "in", "out", "in"]
    assert rows[1][2] == StockReservationCompleted.message_type
    assert rows[1][0] == m1.key


def test_records_that_produced_nothing_keep_their_order() -> None:
    records = [_consumed(0) for _ in range(4)]

    rows = _journal_rows([], records)

    assert [r[1] for r in rows] == [r.message_id for r in records]
