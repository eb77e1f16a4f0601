"""Prometheus metrics of one process, in a registry of its own (nothing global, nothing at import).

Names only: the platform defines the saga's metrics too, but imports nothing of the saga.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

# Saga steps take milliseconds to minutes (a payment may wait for its deadline).
_SAGA_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
_HANDLING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

CounterSource = Callable[[], dict[str, float]]
"""Reads a set of monotonically growing numbers (e.g. a relay's stats) at scrape time."""


class Metrics:
    """Every metric of the product, registered in one CollectorRegistry per instance."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self._consumer_metrics()
        self._saga_counters()
        self._saga_histograms()
        self._database_metrics()
        self._cart_business_metrics()
        self.http_refusals = Counter(
            "checkout_http_refusals",
            "HTTP requests an API refused (4xx: invalid input, no token, unknown id), by status.",
            ["api", "status"],
            registry=self.registry,
        )

    def _consumer_metrics(self) -> None:
        r = self.registry
        self.messages = Counter(
            "checkout_messages",
            "Deliveries by service, message type and outcome (applied, duplicate = inbox "
            "duplicate, dead_lettered, retried = a transient failure retried, failed).",
            ["service", "message_type", "outcome"],
            registry=r,
        )
        self.conflicts = Counter(
            "checkout_optimistic_conflicts",
            "Optimistic-version conflicts: the message was re-handled from a fresh read.",
            ["service", "message_type"],
            registry=r,
        )
        self.handling = Histogram(
            "checkout_message_handling_seconds",
            "Time one record's use case took inside its batch transaction (committed ones).",
            ["service", "message_type"],
            buckets=_HANDLING_BUCKETS,
            registry=r,
        )
        self.batches = Histogram(
            "checkout_consumer_batch_records",
            "Records applied in one consumer transaction (the group commit's size).",
            ["service"],
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=r,
        )

    def _saga_counters(self) -> None:
        r = self.registry
        self.transitions = Counter(
            "checkout_saga_transitions",
            "Saga table rows applied, by row name and outcome (applied, duplicate).",
            ["transition", "outcome"],
            registry=r,
        )
        self.rejections = Counter(
            "checkout_saga_rejections",
            "Messages the saga rejected (no row for the state and event), parked as dead letters.",
            ["state", "event"],
            registry=r,
        )
        self.checkout_conflicts = Counter(
            "checkout_saga_checkout_conflicts",
            "CheckoutStarted messages refused because their order id already has a saga started "
            "by a different checkout (items, amounts, buyer, currency, policy or cart), parked "
            "as dead letters; the first checkout stands. By the state of that saga.",
            ["state"],
            registry=r,
        )
        self.anomalies = Counter(
            "checkout_saga_anomalies",
            "Anomalies a saga recorded (e.g. a payment failure after confirmation).",
            ["transition"],
            registry=r,
        )

    def _saga_histograms(self) -> None:
        r = self.registry
        self.time_in_state = Histogram(
            "checkout_saga_time_in_state_seconds",
            "Time a saga spent in a state before leaving it (since its previous write).",
            ["state"],
            buckets=_SAGA_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "checkout_saga_duration_seconds",
            "End-to-end time from a saga's creation to its final state.",
            ["outcome"],
            buckets=_SAGA_BUCKETS,
            registry=r,
        )

    def _database_metrics(self) -> None:
        r = self.registry
        self.sagas = Gauge("checkout_sagas", "Sagas per state.", ["state"], registry=r)
        self.sagas_stuck = Gauge(
            "checkout_sagas_stuck",
            "Sagas in a state longer than its limit (CHECKOUT_SAGA__STUCK_AFTER_S__<STATE>), "
            "per state that is not final.",
            ["state"],
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "checkout_outbox_backlog", "Unsent outbox rows per schema.", ["schema"], registry=r
        )
        self.outbox_oldest_age = Gauge(
            "checkout_outbox_oldest_unsent_age_seconds",
            "Age of the oldest unsent outbox row per schema (0 when none is waiting).",
            ["schema"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "checkout_consumer_lag",
            "Messages not yet consumed: end offset minus the group's committed offset, summed "
            "over the topic's partitions.",
            ["service", "topic"],
            registry=r,
        )
        self.refresh_failures = Counter(
            "checkout_metrics_refresh_failures",
            "Scrape-time probes (database, broker) that failed; their gauges kept old values.",
            ["probe"],
            registry=r,
        )

        self.relays = _SummedCounters("checkout_relay", "Outbox relay, since process start")
        r.register(self.relays)
        # e.g. checkout_cart_cache_hits_total, _misses_total, _errors_total (failed Redis calls).
        self.cart_cache = _SummedCounters("checkout_cart_cache", "Cart summary cache")
        r.register(self.cart_cache)

    def _cart_business_metrics(self) -> None:
        # From the cart's tables at scrape time (services/cart/business.py defines each figure).
        # `window` names the span the figure covers (e.g. 24h); a series is dropped, not set to
        # NaN, when its figure is undefined or nothing is left in the window.
        r = self.registry
        self.cart_active = Gauge(
            "checkout_cart_active_carts",
            "Carts active now, by kind of buyer (buyer: signed in, guest).",
            ["kind"],
            registry=r,
        )
        self.cart_ended = Gauge(
            "checkout_cart_ended_carts",
            "Carts that ended in the window (by their last write): checked_out (incl. cleared) "
            "or abandoned. Merged guest carts are no ending.",
            ["window", "outcome"],
            registry=r,
        )
        self.cart_conversion = Gauge(
            "checkout_cart_conversion_ratio",
            "Carts checked out over carts ended in the window (absent when none ended).",
            ["window"],
            registry=r,
        )
        self.cart_abandonment = Gauge(
            "checkout_cart_abandonment_ratio",
            "Carts abandoned over carts ended in the window (absent when none ended).",
            ["window"],
            registry=r,
        )
        self._cart_order_metrics()

    def _cart_order_metrics(self) -> None:
        r = self.registry
        self.cart_completed_checkouts = Gauge(
            "checkout_cart_completed_checkouts",
            "Checkout groups created in the window that completed or partially completed.",
            ["window", "currency"],
            registry=r,
        )
        self.cart_average_order_value = Gauge(
            "checkout_cart_average_order_value",
            "Mean balance due of those checkout groups, in the currency (rounded to the cent).",
            ["window", "currency"],
            registry=r,
        )
        self.cart_promotion_uses = Gauge(
            "checkout_cart_promotion_uses",
            "Promotion uses redeemed in the window and not given back, per promotion.",
            ["window", "promotion_id"],
            registry=r,
        )
        self.cart_promotion_uses_returned = Gauge(
            "checkout_cart_promotion_uses_returned",
            "Promotion uses redeemed in the window and given back (the order failed).",
            ["window", "promotion_id"],
            registry=r,
        )
        self.cart_discount_amount = Gauge(
            "checkout_cart_discount_amount",
            "Discounts granted in the window by uses not given back, per currency.",
            ["window", "currency"],
            registry=r,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class _SummedCounters(Collector):
    """Counters read at scrape time from several sources (e.g. every relay of the process), summed.

    Sources are never removed: a stopped relay's counts stay, so the sums never go down.
    """

    def __init__(self, prefix: str, documentation: str) -> None:
        self.prefix, self.documentation = prefix, documentation
        self._sources: list[CounterSource] = []

    def add(self, source: CounterSource) -> None:
        """Add one source's numbers to the sums."""
        self._sources.append(source)

    def collect(self) -> Iterable[Metric]:
        """One counter per key, e.g. checkout_relay_published_total."""
        sums: dict[str, float] = {}
        for source in self._sources:
            for name, value in source().items():
                sums[name] = sums.get(name, 0) + value
        for name, value in sorted(sums.items()):
            yield CounterMetricFamily(
                f"{self.prefix}_{name}", f"{self.documentation}: {name}", value=value
            )
