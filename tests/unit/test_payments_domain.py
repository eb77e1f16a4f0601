"""Payment simulator rules without I/O: seeded, reproducible decisions and refund checks."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from services.payments.domain import (
    AMOUNT_ABOVE_LIMIT,
    CARD_DECLINED,
    Decision,
    Payment,
    Verdict,
    decide,
    payment_id_for,
    refund_refusal,
)
from services.platform.settings import PaymentSimulatorSettings as Rules

ORDERS = [uuid.UUID(int=(0x1234 << 96) + i) for i in range(2000)]
TEN = Decimal("10.00")


def test_default_rules_complete_every_charge_once() -> None:
    assert {decide(o, TEN, Rules()) for o in ORDERS[:200]} == {Decision(Verdict.COMPLETED)}


def test_a_decision_is_reproducible_per_seed_and_order() -> None:
    rules = Rules(seed=42, decline_rate=0.5, silent_rate=0.3, duplicate_rate=0.5)

    first = [decide(o, TEN, rules) for o in ORDERS[:300]]

    assert first == [decide(o, TEN, rules.model_copy()) for o in ORDERS[:300]]
    other_seed = [decide(o, TEN, rules.model_copy(update={"seed": 43})) for o in ORDERS[:300]]
    assert first != other_seed


def test_silence_comes_before_every_other_rule() -> None:
    rules = Rules(silent_rate=1.0, decline_above=1, decline_rate=1.0, duplicate_rate=1.0)

    assert decide(ORDERS[0], TEN, rules) == Decision(Verdict.SILENT)


@pytest.mark.parametrize(
    ("amount", "verdict"),
    [("100.01", Verdict.DECLINED), ("100.00", Verdict.COMPLETED), ("0.01", Verdict.COMPLETED)],
)
def test_amounts_above_the_limit_are_declined(amount: str, verdict: Verdict) -> None:
    decision = decide(ORDERS[0], Decimal(amount), Rules(decline_above=100))

    assert decision.verdict is verdict
    assert decision.reason == (AMOUNT_ABOVE_LIMIT if verdict is Verdict.DECLINED else None)


def test_the_limit_is_checked_before_the_decline_rate() -> None:
    decision = decide(ORDERS[0], Decimal("500"), Rules(decline_above=100, decline_rate=1.0))

    assert decision.reason == AMOUNT_ABOVE_LIMIT


def test_the_decline_rate_declines_the_card() -> None:
    decision = decide(ORDERS[0], TEN, Rules(decline_rate=1.0))

    assert decision == Decision(Verdict.DECLINED, CARD_DECLINED)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_rates_hold_over_many_orders(rate: float) -> None:
    decisions = [decide(o, TEN, Rules(seed=1, decline_rate=rate)) for o in ORDERS]

    declined = sum(d.verdict is Verdict.DECLINED for d in decisions) / len(ORDERS)
    assert abs(declined - rate) < 0.05


def test_changing_one_rate_does_not_reshuffle_another() -> None:
    quiet = [decide(o, TEN, Rules(seed=3, silent_rate=0.3)) for o in ORDERS[:500]]
    loud = [decide(o, TEN, Rules(seed=3, silent_rate=0.3, decline_rate=0.9)) for o in ORDERS[:500]]

    assert [d.verdict is Verdict.SILENT for d in quiet] == [
        d.verdict is Verdict.SILENT for d in loud
    ]


def test_duplicates_are_flagged_on_answers_only() -> None:
    assert decide(ORDERS[0], TEN, Rules(duplicate_rate=1.0)).duplicate
    assert decide(ORDERS[0], TEN, Rules(duplicate_rate=1.0, decline_rate=1.0)).duplicate
    assert not decide(ORDERS[0], TEN, Rules(duplicate_rate=0.0)).duplicate


def test_payment_ids_are_deterministic_per_order() -> None:
    assert payment_id_for(ORDERS[0]) == payment_id_for(ORDERS[0])
    assert payment_id_for(ORDERS[0]) != payment_id_for(ORDERS[1])


def _payment(verdict: Verdict) -> Payment:
    return Payment(ORDERS[0], payment_id_for(ORDERS[0]), TEN, "EUR", verdict, None)


def test_refund_rules() -> None:
    assert refund_refusal(None, ORDERS[0]) is None  # an external payer's payment
    assert refund_refusal(_payment(Verdict.COMPLETED), ORDERS[0]) is None
    assert "nothing to refund" in (refund_refusal(_payment(Verdict.DECLINED), ORDERS[0]) or "")
    assert "nothing to refund" in (refund_refusal(_payment(Verdict.SILENT), ORDERS[0]) or "")
    assert "belongs to order" in (refund_refusal(_payment(Verdict.COMPLETED), ORDERS[1]) or "")
