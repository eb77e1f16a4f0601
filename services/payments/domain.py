"""Payment simulator rules, pure: a seeded decision per order, payment ids, and refund checks.

Imports no I/O library; the same (seed, order id) always yields the same decision.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

_PAYMENT_NAMESPACE = uuid.UUID("2f0c9d5e-71b3-4e8a-a6f4-8c1d3b5e9a27")

AMOUNT_ABOVE_LIMIT = "amount above limit"
CARD_DECLINED = "card declined"


class Verdict(StrEnum):
    """What the simulated provider does with a charge; the values are stored."""

    COMPLETED = "completed"
    DECLINED = "declined"
    SILENT = "silent"


class Rules(Protocol):
    """The simulator's knobs (PaymentSimulatorSettings has exactly these)."""

    @property
    def seed(self) -> int: ...
    @property
    def decline_rate(self) -> float: ...
    @property
    def decline_above(self) -> float | None: ...
    @property
    def silent_rate(self) -> float: ...
    @property
    def duplicate_rate(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Decision:
    """The simulated provider's answer to one charge, and whether it answers twice."""

    verdict: Verdict
    reason: str | None = None
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Payment:
    """A charge this simulator decided: which order, how much, and its verdict."""

    order_id: uuid.UUID
    payment_id: uuid.UUID
    amount: Decimal
    currency: str
    verdict: Verdict
    reason: str | None


def payment_id_for(order_id: uuid.UUID) -> uuid.UUID:
    """Deterministic payment id: a repeated request for an order names the same payment."""
    return uuid.uuid5(_PAYMENT_NAMESPACE, str(order_id))


def decide(order_id: uuid.UUID, amount: Decimal, rules: Rules) -> Decision:
    """Silent, declined above the limit, declined at random, or completed; seeded per order."""
    rng = random.Random(f"{rules.seed}:{order_id}")
    # Draw every roll up front, so changing one rate never reshuffles the others' outcomes.
    silent_roll, decline_roll, duplicate_roll = rng.random(), rng.random(), rng.random()
    if silent_roll < rules.silent_rate:
        return Decision(Verdict.SILENT)
    duplicate = duplicate_roll < rules.duplicate_rate
    if rules.decline_above is not None and amount > Decimal(str(rules.decline_above)):
        return Decision(Verdict.DECLINED, AMOUNT_ABOVE_LIMIT, duplicate)
    if decline_roll < rules.decline_rate:
        return Decision(Verdict.DECLINED, CARD_DECLINED, duplicate)
    return Decision(Verdict.COMPLETED, None, duplicate)


def refund_refusal(known: Payment | None, order_id: uuid.UUID) -> str | None:
    """Why a refund of this payment can never be made, or None when it may be.

    A payment this simulator never saw may be an external payer's: that is refundable.
    """
    if known is None:
        return None
    if known.order_id != order_id:
        return f"payment {known.payment_id} belongs to order {known.order_id}, not {order_id}"
    if known.verdict is not Verdict.COMPLETED:
        return f"payment {known.payment_id} was {known.verdict}, not completed: nothing to refund"
    return None
