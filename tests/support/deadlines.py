"""What the outboxes tell about payment deadlines: when a saga asked for payment, when its
deadline fired, when its payer's answer reached the broker, and which clock wrote each row;
and, for a clock that jumped (Jumps), which firings break a rule and which show the jump;
jump() moves the saga processes' fake clock back and then forward while deadlines are pending.

Every outbox row is stamped twice: `occurred_at` in its envelope by the clock of the process
that wrote it, `created_at` by PostgreSQL's clock (the real one here), and the relay adds
`sent_at` (PostgreSQL's clock) once the broker has the record. A saga's deadline is the time of
its PaymentRequested step plus the payment timeout, on the writer's clock, and a deadline fires
(OrderFailed "payment timeout") when the firing process's clock says it has passed, so the two
envelopes tell what each clock said, and the database stamps what really happened.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts import DEAD_LETTER_TOPIC, TOPICS
from tests.chaos.invariants import until
from tests.support.clock import FakeClock

TIMEOUT_REASON = "payment timeout"
SWITCH = timedelta(seconds=2)
"""libfaketime re-reads its offset about once a second, per process: a process may still be on
the old clock this long after the offset changed."""
SLACK = timedelta(seconds=1)
"""A row's envelope is stamped a moment after its step read the clock (longer on a busy
machine): the checks give way this much, far less than a jump."""


@dataclass(frozen=True)
class Stamp:
    """When a row was written: by its writer's clock, and by the database's."""

    clock: datetime
    db: datetime

    @property
    def skew_s(self) -> float:
        """How far the writer's clock was from the database's."""
        return (self.clock - self.db).total_seconds()


@dataclass
class Timeout:
    """A saga failed by its payment deadline: the request, the firing, the payer's answers."""

    order_id: str
    requested: Stamp
    fired: Stamp
    answered: list[datetime] = field(default_factory=list)  # sent_at of each PaymentCompleted

    def line(self) -> str:
        """What a failure report shows of it (database times, and each row's clock skew)."""
        answers = ", ".join(a.time().isoformat() for a in self.answered) or "none"
        return (
            f"{self.order_id}: asked {self.requested.db.time()} ({self.requested.skew_s:+.2f}s), "
            f"fired {self.fired.db.time()} ({self.fired.skew_s:+.2f}s), answers sent {answers}"
        )


async def _rows(db: AsyncEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    async with db.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(text(sql), params)]


_STAMPED = (
    "SELECT message_key AS k, created_at AS db, "
    "(convert_from(payload, 'UTF8')::jsonb ->> 'occurred_at')::timestamptz AS clock, "
    "convert_from(payload, 'UTF8')::jsonb -> 'payload' ->> 'reason' AS reason "
    "FROM saga.outbox WHERE topic = :t AND message_key = ANY(:keys)"
)


async def timeouts(db: AsyncEngine, order_ids: list[uuid.UUID]) -> list[Timeout]:
    """Every saga of these orders that failed by its payment deadline."""
    keys = [str(o) for o in order_ids]
    requests = {
        r["k"]: Stamp(r["clock"], r["db"])
        for r in await _rows(db, _STAMPED, t=TOPICS["PaymentRequested"], keys=keys)
    }
    fired = [
        r
        for r in await _rows(db, _STAMPED, t=TOPICS["OrderFailed"], keys=keys)
        if r["reason"] == TIMEOUT_REASON
    ]
    found = {
        r["k"]: Timeout(r["k"], requests[r["k"]], Stamp(r["clock"], r["db"]))
        for r in fired
        if r["k"] in requests
    }
    answers = await _rows(
        db,
        "SELECT message_key AS k, sent_at FROM payments.outbox "
        "WHERE topic = :t AND message_key = ANY(:keys) AND sent_at IS NOT NULL",
        t=TOPICS["PaymentCompleted"],
        keys=list(found),
    )
    for r in answers:
        found[r["k"]].answered.append(r["sent_at"])
    return list(found.values())


async def saga_skews(db: AsyncEngine, since: datetime) -> list[float]:
    """How far the saga processes' clocks were from the database's in rows written since."""
    found = await _rows(
        db,
        "SELECT extract(epoch FROM (convert_from(payload, 'UTF8')::jsonb ->> 'occurred_at')"
        "::timestamptz - created_at) AS s FROM saga.outbox "
        "WHERE created_at >= :since AND topic <> :dead",  # a dead letter keeps foreign bytes
        since=since,
        dead=DEAD_LETTER_TOPIC,
    )
    return [float(r["s"]) for r in found]


async def pending(db: AsyncEngine, order_ids: list[uuid.UUID]) -> int:
    """Sagas of these orders whose payment deadline is set and not yet fired or cleared."""
    found = await _rows(
        db,
        "SELECT count(*) AS n FROM saga.sagas WHERE id = ANY(:ids) "
        "AND payment_deadline IS NOT NULL AND state NOT IN ('Confirmed', 'Failed')",
        ids=order_ids,
    )
    return int(found[0]["n"])


async def database_now(db: AsyncEngine) -> datetime:
    """PostgreSQL's clock."""
    now: datetime = (await _rows(db, "SELECT clock_timestamp() AS t"))[0]["t"]
    return now


@dataclass(frozen=True)
class Jumps:
    """A clock that went back, then forward (moments by the database's clock), and the timeout."""

    back_at: datetime
    forward_at: datetime
    back_s: int
    forward_s: int
    timeout: timedelta

    def offset_at(self, moment: datetime) -> float | None:
        """The clock's offset at a database moment (None: just after a switch, either one)."""
        if self.near_switch(moment):
            return None
        if moment < self.back_at:
            return 0.0
        return -self.back_s if moment < self.forward_at else self.forward_s

    def near_switch(self, moment: datetime) -> bool:
        """Whether a database moment is just after a switch (a process may be on either clock)."""
        return any(s <= moment < s + SWITCH for s in (self.back_at, self.forward_at))

    def frame(self, stamp: Stamp) -> float | None:
        """Which clock wrote a row: its offset (0 before the jumps; None: none of them)."""
        for offset in (0, -self.back_s, self.forward_s):
            if abs(stamp.skew_s - offset) < 1.5:
                return offset
        return None

    def early_on_its_clock(self, t: Timeout) -> bool:
        """Fired before its deadline on the clock of the process that fired it (a bug).

        Rows written just after a switch are left out: a step that read the clock before it
        may stamp its envelope after it, on a clock a jump away.
        """
        if self.near_switch(t.requested.db) or self.near_switch(t.fired.db):
            return False
        return t.fired.clock < t.requested.clock + self.timeout - SLACK

    def answered_in_time(self, t: Timeout) -> bool:
        """Its payer's answer was on the broker before the deadline by the saga's clock (a bug).

        The deadline gate exists so that this never happens: a deadline fires only once every
        answer on the broker before it has been applied (the saga is then Confirmed instead).
        """
        if self.near_switch(t.requested.db):
            return False
        deadline = t.requested.clock + self.timeout - SLACK
        for sent in t.answered:
            offset = self.offset_at(sent)
            if offset is not None and sent + timedelta(seconds=offset) < deadline:
                return True
        return False

    def findings(self, found: list[Timeout]) -> dict[str, list[Timeout]]:
        """The fired deadlines sorted by what they show; each row's stamps say its clock."""
        framed = [(t, self.frame(t.requested), self.frame(t.fired)) for t in found]
        back, forward = -self.back_s, self.forward_s
        return {
            "early on its clock": [t for t in found if self.early_on_its_clock(t)],
            "payer answered in time": [t for t in found if self.answered_in_time(t)],
            "fired while back": [t for t, _, fired in framed if fired == back],
            "fired after the forward jump": [t for t, _, fired in framed if fired == forward],
            "asked before the jumps, fired after": [
                t for t, asked, fired in framed if asked == 0 and fired == forward
            ],
            "asked while back, fired forward within the timeout": [
                t
                for t, asked, fired in framed
                if asked == back and fired == forward and t.fired.db - t.requested.db < self.timeout
            ],
        }


@dataclass(frozen=True)
class JumpPlan:
    """Back `back_s` once `pending` deadlines are, for `back_for`, then forward `forward_s`."""

    back_s: int
    back_for: timedelta
    forward_s: int
    pending: int
    timeout: timedelta  # the payment timeout the fleet runs with
    wait_s: float  # how long to wait for each condition


async def jump(
    db: AsyncEngine, clock: FakeClock, order_ids: list[uuid.UUID], plan: JumpPlan
) -> tuple[Jumps, tuple[int, int]]:
    """Move the clock back, then forward (it stays there); when, and the deadlines each met.

    Paced by the sagas' state and the database's clock, not by a load's progress or this
    process's sleeps: on a busy machine an asyncio.sleep(7) took 13 s, and the sagas were so
    far behind the load that none had asked for a payment when a third of it was sent.
    """

    async def deadlines_pending(since: datetime) -> list[str]:
        waiting = await pending(db, order_ids)
        if waiting >= plan.pending and await database_now(db) >= since:
            return []
        return [f"{waiting} deadlines pending"]

    problems = await until(lambda: deadlines_pending(datetime.min.replace(tzinfo=UTC)), plan.wait_s)
    assert not problems, f"before going back: {problems}"
    back_at, met_back = await _switch(db, clock, order_ids, -plan.back_s, plan.wait_s)
    problems = await until(lambda: deadlines_pending(back_at + plan.back_for), plan.wait_s)
    assert not problems, f"before going forward: {problems}"
    forward_at, met_forward = await _switch(db, clock, order_ids, plan.forward_s, plan.wait_s)
    jumps = Jumps(back_at, forward_at, plan.back_s, plan.forward_s, plan.timeout)
    return jumps, (met_back, met_forward)


async def _switch(
    db: AsyncEngine, clock: FakeClock, order_ids: list[uuid.UUID], offset: int, wait_s: float
) -> tuple[datetime, int]:
    """Move the clock; when (database clock), and how many deadlines were pending then.

    Returns once the saga processes write rows stamped by the moved clock.
    """
    waiting, at = await pending(db, order_ids), await database_now(db)
    clock.set_offset(offset)

    async def moved() -> list[str]:
        skews = await saga_skews(db, at)
        return [] if any(abs(s - offset) < 1.0 for s in skews) else [f"skews {skews[-5:]}"]

    problems = await until(moved, wait_s, 0.2)
    assert not problems, f"the saga's clock never showed offset {offset}: {problems}"
    return at, waiting
