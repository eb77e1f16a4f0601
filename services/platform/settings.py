"""Process settings from environment variables (prefix CHECKOUT_), built once and passed in."""

from __future__ import annotations

import os
from typing import Annotated, Literal, Self

from pydantic import BaseModel, BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

SECRETS_DIR_ENV = "CHECKOUT_SECRETS_DIR"
"""A directory of secret files (e.g. /run/secrets): one file per setting, named like its variable."""


class KafkaSettings(BaseModel):
    """Kafka client settings; security options pass straight through to aiokafka."""

    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "checkout-saga"
    topic_partitions: int = Field(default=8, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1)
    # Off by default because Tansu (the embedded broker) rejects aiokafka's idempotent producer;
    # turn it on against Apache Kafka.
    enable_idempotence: bool = False
    # A string, so CHECKOUT_KAFKA__ACKS=1 loads from the environment like "all" does.
    acks: Literal["all", "1", "0"] = "all"
    # Short group timeouts keep joins fast on Tansu and in tests; production may raise them.
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 500
    rebalance_timeout_ms: int = 10000
    fetch_max_wait_ms: int = 25
    # Tansu answers a fetch late rather than as soon as data arrives, so the fetch wait is both
    # the latency of a hop and the rate of empty polls: short while records flow, longer once a
    # consumer has seen nothing for idle_after_s (an idle stack then costs little CPU).
    idle_fetch_max_wait_ms: int = Field(default=250, ge=1, le=60_000)
    idle_after_s: float = Field(default=10.0, gt=0)
    max_poll_records: int = 200
    linger_ms: int = 0
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None


class DatabaseTlsSettings(BaseModel):
    """TLS to PostgreSQL with libpq's sslmode meanings; unset, the URL's `?ssl=` decides."""

    mode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = None
    # PEM files: the CA that signed the server's certificate (else the system's), and a client
    # certificate and key for servers that authenticate clients by certificate.
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None

    @model_validator(mode="after")
    def _files_need_a_verifying_mode(self) -> Self:
        if self.mode in (None, "disable", "allow", "prefer") and (self.ca_file or self.cert_file):
            raise ValueError("certificate files need mode require, verify-ca or verify-full")
        if self.key_file and not self.cert_file:
            raise ValueError("key_file needs cert_file")
        return self


class RelaySettings(BaseModel):
    """Outbox relay tuning."""

    batch_size: int = Field(default=500, ge=1, le=10_000)
    # LISTEN/NOTIFY wakes the relay at once (and a lost LISTEN connection is reopened with one
    # full pass); this poll only covers a lost notification, so it can be slow: each poll is a
    # transaction per schema, every interval, for nothing while the stack is idle.
    poll_interval_s: float = Field(default=5.0, gt=0)
    # Keys hash into lanes; one relay at a time owns a lane, so order per key holds with many relays.
    lanes: int = Field(default=8, ge=1, le=256)
    sent_retention_s: float = Field(default=24 * 3600, ge=60)
    inbox_retention_s: float = Field(default=7 * 24 * 3600, ge=3600)
    purge_interval_s: float = Field(default=600, gt=0)


class ConsumerSettings(BaseModel):
    """How a consumer batches records and retries a transient failure before handing them back."""

    # Concurrent transactions per fetched batch: partition p goes to slot p % parallel, so one
    # partition's records stay in order in one transaction while other partitions proceed.
    parallel: int = Field(default=2, ge=1, le=64)
    # A smaller batch is one transaction: splitting a trickle doubles the commits for nothing
    # (at 50 checkouts/s, 2 slots cost 37 ms of CPU per saga against 27 ms with one, measured).
    parallel_min_records: int = Field(default=64, ge=1, le=100_000)

    retry_attempts: int = Field(default=5, ge=1, le=50)
    retry_base_delay_s: float = Field(default=0.05, ge=0)
    retry_max_delay_s: float = Field(default=2.0, ge=0)


class StuckAfterSettings(BaseModel):
    """Seconds a saga may stay in a state before the admin API calls it stuck, per state."""

    # A reservation is answered in milliseconds when inventory keeps up.
    submitted: float = Field(default=30.0, gt=0)
    # Unset: the payment timeout plus 30 s, past which the deadline should have failed it.
    stock_reserved: float | None = Field(default=None, gt=0)


class SagaSettings(BaseModel):
    """Saga orchestrator policy."""

    payment_timeout_s: float = Field(default=30.0, gt=0)
    timeout_poll_interval_s: float = Field(default=0.5, gt=0)
    timeout_batch_size: int = Field(default=100, ge=1)
    timeout_gate_snapshots: int = Field(
        default=120,
        ge=2,
        description="End-offset snapshots of the payment-answer topics the timeout poller keeps "
        "while the saga consumer lags; a deadline fires only once the answers on the broker "
        "before it are applied. Fewer snapshots only delay a lagging partition's deadlines.",
    )
    # A message for a saga that does not exist yet (it overtook its CheckoutStarted) is retried
    # for this long after it occurred, then dead-lettered.
    orphan_grace_s: float = Field(default=60.0, ge=0)
    stuck_after_s: StuckAfterSettings = StuckAfterSettings()

    def stuck_limits_s(self) -> dict[str, float]:
        """Seconds per state (by its stored name) after which a saga in it is stuck."""
        reserved = self.stuck_after_s.stock_reserved
        return {
            "Submitted": self.stuck_after_s.submitted,
            "StockReserved": self.payment_timeout_s + 30.0 if reserved is None else reserved,
        }


class PaymentSimulatorSettings(BaseModel):
    """Rules the payment simulator answers by; decisions are seeded per order, so reproducible."""

    enabled: bool = True
    seed: int = 0
    decline_rate: float = Field(default=0.0, ge=0, le=1)
    decline_above: float | None = Field(default=None, gt=0)
    silent_rate: float = Field(default=0.0, ge=0, le=1)
    duplicate_rate: float = Field(default=0.0, ge=0, le=1)
    delay_ms: int = Field(default=0, ge=0)


class CartApiSettings(BaseModel):
    """The cart service's HTTP API: who the buyer is, where it listens, when carts are abandoned."""

    # The buyer is `Authorization: Bearer <buyer id>` or this header; a real deployment puts
    # an authenticating proxy in front that sets one of them.
    buyer_header: str = "X-Buyer-Id"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    abandon_after_s: float = Field(default=24 * 3600, gt=0)
    abandon_poll_interval_s: float = Field(default=60.0, gt=0)
    abandon_batch_size: int = Field(default=100, ge=1, le=10_000)
    idempotency_ttl_s: float = Field(default=7 * 24 * 3600, gt=0)
    guest_ttl_s: float = Field(default=7 * 24 * 3600, gt=0)
    # Guest sessions expired or ended (merged) this long ago are deleted, with their carts
    # that became no order; until then a retried merge still answers as the first one did.
    guest_purge_after_s: float = Field(default=30 * 24 * 3600, gt=0)
    # The cart summary cache in Redis (or Valkey): redis://[:password@]host:port/db, rediss://
    # for TLS; unset, GET /cart reads PostgreSQL every time.
    cache_url: SecretStr | None = None
    # Also the bound on a stale entry that another process may serve when a write could not
    # invalidate it (Redis unreachable at that moment).
    cache_ttl_s: float = Field(default=60.0, ge=1, le=24 * 3600)
    # Short: a slow or dead Redis must cost a request little before it falls back to PostgreSQL.
    cache_timeout_s: float = Field(default=0.1, gt=0, le=10)
    # After a failure the cache is left alone this long: reads go straight to PostgreSQL.
    cache_retry_after_s: float = Field(default=1.0, gt=0, le=600)
    cache_max_connections: int = Field(default=50, ge=1, le=10_000)
    # Whether the shop's prices (offers, shipping bands, fixed discounts) include tax (gross) or
    # not (net): tax is then extracted from them or added to them.
    prices_include_tax: bool = False
    # Failed coupon code guesses allowed per window, per buyer and per client address; past
    # them POST /cart/coupons answers 429 until the window ends.
    coupon_guesses_per_buyer: int = Field(default=10, ge=1, le=10_000)
    coupon_guesses_per_client: int = Field(default=30, ge=1, le=100_000)
    coupon_guess_window_s: float = Field(default=900.0, ge=1, le=24 * 3600)


class AdminSettings(BaseModel):
    """The operator's admin API: sagas, orders, stock, dead letters, health, metrics, AsyncAPI."""

    # When set, every endpoint but /health/* wants `Authorization: Bearer <token>`.
    token: SecretStr | None = None
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8081, ge=1, le=65535)


class Settings(BaseSettings):
    """Everything a process needs; e.g. CHECKOUT_DATABASE_URL, CHECKOUT_KAFKA__BOOTSTRAP_SERVERS."""

    model_config = SettingsConfigDict(
        env_prefix="CHECKOUT_", env_nested_delimiter="__", extra="ignore"
    )

    database_url: SecretStr = SecretStr("postgresql+asyncpg://postgres@127.0.0.1:5432/checkout")
    database_pool_size: int = Field(default=10, ge=1)
    database_tls: DatabaseTlsSettings = DatabaseTlsSettings()
    kafka: KafkaSettings = KafkaSettings()
    relay: RelaySettings = RelaySettings()
    consumer: ConsumerSettings = ConsumerSettings()
    saga: SagaSettings = SagaSettings()
    payments: PaymentSimulatorSettings = PaymentSimulatorSettings()
    cart: CartApiSettings = CartApiSettings()
    admin: AdminSettings = AdminSettings()
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v),
    ] = "INFO"
    # `json`: one JSON object per line carrying the message's order, message and causation ids.
    log_format: Literal["text", "json"] = "text"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the environment, then files in $CHECKOUT_SECRETS_DIR.

        Files are how orchestrators hand out secrets (Docker and Kubernetes mount them):
        `checkout_database_url`, `checkout_admin__token`, `checkout_kafka__sasl_password`.
        A directory that is named but missing is an error, not a silent fallback to defaults.
        """
        files = NestedSecretsSettingsSource(
            file_secret_settings,
            secrets_dir=os.environ.get(SECRETS_DIR_ENV),
            secrets_dir_missing="error",
        )
        return init_settings, env_settings, files
