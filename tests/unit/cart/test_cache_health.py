"""The cart cache's pure rules: backoff, owed invalidations and their bound, the entry format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.cart.cache import CachedCart, decode, encode, keys
from services.cart.cache_health import CacheHealth
from services.cart.promotion_types import DiscountKind, Promotion, Stacking
from services.cart.quote import next_moment


def test_a_failure_backs_off_and_starts_one_outage() -> None:
    health = CacheHealth(ttl_s=60, retry_after_s=1)
    assert health.failed(10.0)
    assert not health.failed(10.5)  # the same outage: logged once
    assert not health.usable(10.9)
    assert health.usable(11.5)
    assert health.succeeded()
    assert not health.succeeded()


def test_an_owed_buyer_reads_postgresql_until_delivered() -> None:
    health = CacheHealth(ttl_s=60, retry_after_s=1)
    health.owe("a", 0.0)
    assert not health.may_read("a", 5.0)
    assert health.may_read("b", 5.0)
    assert health.owed(5.0) == ["a"]
    health.delivered(["a"])
    assert health.may_read("a", 5.0)


def test_an_owed_invalidation_lapses_after_twice_the_ttl() -> None:
    health = CacheHealth(ttl_s=60, retry_after_s=1)
    health.owe("a", 0.0)
    assert not health.may_read("a", 119.9)
    assert health.may_read("a", 120.0)
    assert health.owed(120.0) == []


def test_too_many_owed_buyers_make_every_read_bypass_for_the_bound() -> None:
    health = CacheHealth(ttl_s=60, retry_after_s=1, max_pending=2)
    health.owe("a", 0.0)
    health.owe("b", 0.0)
    health.owe("c", 1.0)
    assert health.owed(1.0) == []
    assert not health.may_read("z", 120.9)
    assert health.may_read("z", 121.0)


def test_an_entry_is_a_hit_only_at_its_generation() -> None:
    cart = CachedCart(7, b'{"version":7,"note":"a b c"}')
    entry = encode(3, cart)
    assert decode(entry, 3) == cart
    assert decode(entry.decode(), 3) == cart
    assert decode(entry, 4) is None
    assert decode(None, 0) is None
    assert decode(b"garbage", 0) is None


def test_an_entry_of_older_pricing_rules_is_no_hit() -> None:
    cart = CachedCart(2, b"{}")
    entry = encode(5, cart, rules=1)
    assert decode(entry, 5, rules=1) == cart
    assert decode(entry, 5, rules=2) is None
    assert decode(entry, 5) is None


def test_keys_share_a_slot_and_hide_the_buyer() -> None:
    generation, body = keys("buyer {with} braces")
    assert generation.endswith(":gen")
    assert body.endswith(":body")
    tag = generation[generation.index("{") : generation.index("}") + 1]
    assert tag in body
    assert "braces" not in generation


def test_the_next_moment_is_the_first_promotion_bound_ahead() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    hour = timedelta(hours=1)
    promotions = [
        Promotion(
            "a",
            None,
            DiscountKind.PERCENTAGE,
            Decimal(5),
            Stacking.STACKABLE,
            valid_from=now - hour,
            valid_until=now + 3 * hour,
        ),
        Promotion(
            "b",
            None,
            DiscountKind.PERCENTAGE,
            Decimal(5),
            Stacking.STACKABLE,
            valid_from=now + 2 * hour,
        ),
        Promotion("c", None, DiscountKind.PERCENTAGE, Decimal(5), Stacking.STACKABLE),
    ]

    assert next_moment(promotions, now) == now + 2 * hour
    assert next_moment(promotions, now + 3 * hour) is None
    assert next_moment([], now) is None
