"""The configuration reference (docs/configuration.md), generated from the Settings model.

Walks `Settings` and its nested models: every environment variable with its type, constraints,
default and meaning. A field's `description` wins; otherwise the meaning comes from DESCRIPTIONS
below, so settings.py stays as it is. Regenerate with
`python -m ops.config_reference > docs/configuration.md`; a unit test keeps the committed
copy current and fails on any variable without a meaning. Imports only the settings.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit, urlunsplit

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from services.platform.settings import Settings

UNDOCUMENTED = "(undocumented)"

DESCRIPTIONS: dict[str, str] = {
    # Process
    "CHECKOUT_DATABASE_URL": "PostgreSQL URL with the asyncpg driver "
    "(`postgresql+asyncpg://user:password@host:5432/checkout`). Every service keeps its tables "
    "in its own schema of this one database.",
    "CHECKOUT_DATABASE_POOL_SIZE": "Connections each process keeps open; as many again may be "
    "opened briefly under load.",
    # PostgreSQL TLS
    "CHECKOUT_DATABASE_TLS__MODE": "libpq's sslmode: `disable`, `allow`, `prefer`, `require` "
    "(encrypted, server unchecked unless a CA file is given), `verify-ca` (its certificate is "
    "checked), `verify-full` (certificate and host name). Unset, the URL's `?ssl=` decides. "
    "Applies to every connection: services, migrations, the relay's LISTEN, the CLI.",
    "CHECKOUT_DATABASE_TLS__CA_FILE": "PEM file of the CA that signed the server's certificate "
    "(default: the system's trusted CAs). Needs mode `require` or stricter.",
    "CHECKOUT_DATABASE_TLS__CERT_FILE": "PEM client certificate, for servers that authenticate "
    "clients by certificate (`cert` in pg_hba.conf).",
    "CHECKOUT_DATABASE_TLS__KEY_FILE": "PEM private key of the client certificate (when it is not "
    "in the certificate file).",
    "CHECKOUT_LOG_LEVEL": "Python logging level: `DEBUG`, `INFO`, `WARNING`, `ERROR` (any case).",
    "CHECKOUT_LOG_FORMAT": "`text` for people; `json` for log shippers: one JSON object per line, "
    "carrying the handled message's order, message and causation ids.",
    # Kafka
    "CHECKOUT_KAFKA__BOOTSTRAP_SERVERS": "Comma-separated `host:port` list of brokers.",
    "CHECKOUT_KAFKA__CLIENT_ID": "Client id prefix the brokers see (`-relay` and `-admin` are "
    "appended for the relay's producer and topic creation).",
    "CHECKOUT_KAFKA__TOPIC_PARTITIONS": "Partitions of every topic the product creates at "
    "startup. Existing topics are left as they are (a different count is logged).",
    "CHECKOUT_KAFKA__REPLICATION_FACTOR": "Replicas of every topic the product creates: 1 on a "
    "single broker, 3 in production.",
    "CHECKOUT_KAFKA__ENABLE_IDEMPOTENCE": "Idempotent producer (no duplicates from producer "
    "retries). Must stay `false` on the embedded Tansu broker, which rejects it; `true` on "
    "Apache Kafka.",
    "CHECKOUT_KAFKA__ACKS": "Producer acknowledgements. Keep `all`: the outbox marks a row sent "
    "once Kafka acknowledged it, so anything weaker can lose messages when a broker fails "
    "(`1` and `0` are accepted).",
    "CHECKOUT_KAFKA__SESSION_TIMEOUT_MS": "Consumer-group session timeout: how long a silent "
    "consumer keeps its partitions. Short joins fast on Tansu; Apache Kafka refuses values below "
    "its `group.min.session.timeout.ms` (6000 by default).",
    "CHECKOUT_KAFKA__HEARTBEAT_INTERVAL_MS": "Consumer heartbeat interval; at most a third of "
    "the session timeout.",
    "CHECKOUT_KAFKA__REBALANCE_TIMEOUT_MS": "How long a rebalance waits for members to rejoin.",
    "CHECKOUT_KAFKA__FETCH_MAX_WAIT_MS": "Longest a fetch waits for data. Tansu may hold every "
    "fetch this long (each hop pays up to half of it), so keep it small there; Apache Kafka "
    "answers as soon as data arrives.",
    "CHECKOUT_KAFKA__MAX_POLL_RECORDS": "Most records one poll hands to a consumer.",
    "CHECKOUT_KAFKA__LINGER_MS": "How long the relay's producer waits to fill a batch.",
    "CHECKOUT_KAFKA__SECURITY_PROTOCOL": "Transport to the brokers; `SSL` and `SASL_SSL` use the "
    "`SSL_*` files below, `SASL_*` the `SASL_*` credentials.",
    "CHECKOUT_KAFKA__SASL_MECHANISM": "SASL mechanism, when the protocol is `SASL_PLAINTEXT` or "
    "`SASL_SSL`.",
    "CHECKOUT_KAFKA__SASL_USERNAME": "SASL user name.",
    "CHECKOUT_KAFKA__SASL_PASSWORD": "SASL password (masked wherever settings are printed).",
    "CHECKOUT_KAFKA__SSL_CAFILE": "PEM file of the CA that signed the brokers' certificates "
    "(default: the system's trust store).",
    "CHECKOUT_KAFKA__SSL_CERTFILE": "PEM client certificate, for brokers that require mutual TLS.",
    "CHECKOUT_KAFKA__SSL_KEYFILE": "PEM private key of the client certificate.",
    # Relay
    "CHECKOUT_RELAY__BATCH_SIZE": "Outbox rows of one lane the relay publishes per database "
    "transaction; it repeats until the lane is drained.",
    "CHECKOUT_RELAY__POLL_INTERVAL_S": "Seconds between relay passes when no notification came "
    "(LISTEN/NOTIFY wakes it at once; the poll only covers a lost notification).",
    "CHECKOUT_RELAY__LANES": "Lanes the message keys hash into. One relay at a time owns a lane, "
    "so per-key order holds with any number of relays; more lanes spread the work wider.",
    "CHECKOUT_RELAY__SENT_RETENTION_S": "Seconds sent outbox rows are kept before the purge "
    "(default 24 h).",
    "CHECKOUT_RELAY__INBOX_RETENTION_S": "Seconds processed message ids are kept for duplicate "
    "detection (default 7 days); must exceed any redelivery window. The journal (the checkout "
    "timeline's rows) is kept as long.",
    "CHECKOUT_RELAY__PURGE_INTERVAL_S": "Seconds between purges of old outbox, inbox and journal "
    "rows.",
    "CHECKOUT_KAFKA__IDLE_FETCH_MAX_WAIT_MS": "Fetch wait of a consumer that has seen no record for "
    "KAFKA__IDLE_AFTER_S: fewer empty polls while idle, at the cost of that much latency for the "
    "first record after a quiet spell (see docs/performance.md).",
    "CHECKOUT_KAFKA__IDLE_AFTER_S": "Seconds without a record before a consumer switches to the "
    "idle fetch wait; the first record switches it back.",
    # Consumer
    "CHECKOUT_CONSUMER__PARALLEL": "Transactions a consumer runs at once for one fetched batch: "
    "partition p is applied by slot p % parallel, in order, one transaction per slot.",
    "CHECKOUT_CONSUMER__PARALLEL_MIN_RECORDS": "Batches smaller than this are applied as one "
    "transaction; larger ones are split into CONSUMER__PARALLEL slots.",
    "CHECKOUT_CONSUMER__RETRY_ATTEMPTS": "Attempts at a message that failed transiently (e.g. a "
    "lost database connection) before it is handed back to Kafka for redelivery.",
    "CHECKOUT_CONSUMER__RETRY_BASE_DELAY_S": "Backoff ceiling of the first retry; it doubles per "
    "attempt, and each delay is random below it (full jitter).",
    "CHECKOUT_CONSUMER__RETRY_MAX_DELAY_S": "Upper bound of the backoff ceiling.",
    # Saga
    "CHECKOUT_SAGA__PAYMENT_TIMEOUT_S": "Seconds the saga waits for a payment answer after "
    "stock is reserved; then it releases the stock and fails the order (`payment timeout`).",
    "CHECKOUT_SAGA__TIMEOUT_POLL_INTERVAL_S": "Seconds between scans for sagas past their "
    "payment deadline.",
    "CHECKOUT_SAGA__TIMEOUT_BATCH_SIZE": "Expired sagas one scan handles.",
    "CHECKOUT_SAGA__ORPHAN_GRACE_S": "Seconds a message for a saga that does not exist yet (it "
    "overtook its `CheckoutStarted`) is retried after it occurred; then it is dead-lettered.",
    "CHECKOUT_SAGA__STUCK_AFTER_S__SUBMITTED": "Seconds a saga may wait for its reservation "
    "before the admin API lists it as stuck (`/admin/v1/sagas/stuck`, gauge "
    "`checkout_sagas_stuck`).",
    "CHECKOUT_SAGA__STUCK_AFTER_S__STOCK_RESERVED": "Seconds a saga may wait for its payment "
    "before it is listed as stuck; unset, the payment timeout plus 30 s (its deadline should "
    "have failed it by then).",
    # Payment simulator
    "CHECKOUT_PAYMENTS__ENABLED": "Whether the payment simulator answers `PaymentRequested`; "
    "`false` when a real or scripted payer answers instead.",
    "CHECKOUT_PAYMENTS__SEED": "Seed of the simulator's per-order decisions (same seed, same "
    "answers).",
    "CHECKOUT_PAYMENTS__DECLINE_RATE": "Share of payments declined (0..1).",
    "CHECKOUT_PAYMENTS__DECLINE_ABOVE": "Decline every payment whose amount is above this.",
    "CHECKOUT_PAYMENTS__SILENT_RATE": "Share of payment requests never answered (the saga's "
    "payment timeout then fails them).",
    "CHECKOUT_PAYMENTS__DUPLICATE_RATE": "Share of answers sent twice (exercises duplicate "
    "handling).",
    "CHECKOUT_PAYMENTS__DELAY_MS": "Milliseconds each answer is held back before it is sent.",
    # Cart API
    "CHECKOUT_CART__BUYER_HEADER": "Header naming the buyer when there is no `Authorization: "
    "Bearer <buyer id>`. Neither is verified: put an authenticating proxy in front.",
    "CHECKOUT_CART__HTTP_HOST": "Address the cart HTTP API binds (`0.0.0.0` in a container).",
    "CHECKOUT_CART__HTTP_PORT": "Port of the cart HTTP API.",
    "CHECKOUT_CART__ABANDON_AFTER_S": "Seconds of inactivity after which an active cart is marked "
    "abandoned (default 24 h).",
    "CHECKOUT_CART__ABANDON_POLL_INTERVAL_S": "Seconds between scans for idle carts.",
    "CHECKOUT_CART__ABANDON_BATCH_SIZE": "Idle carts one scan marks abandoned.",
    "CHECKOUT_CART__IDEMPOTENCY_TTL_S": "Seconds an `Idempotency-Key` and its answer are kept "
    "(default 7 days).",
    "CHECKOUT_CART__GUEST_TTL_S": "Seconds a guest token (`POST /api/v1/guest-sessions`) stays "
    "valid after it is issued (default 7 days).",
    # Cart summary cache
    "CHECKOUT_CART__CACHE_URL": "Redis or Valkey URL of the cart summary cache "
    "(`redis://:password@host:6379/0`, `rediss://` for TLS). Unset, `GET /cart` reads PostgreSQL "
    "every time, in a production process; `checkout-saga dev` then starts an embedded Valkey.",
    "CHECKOUT_CART__CACHE_TTL_S": "Seconds a cached cart lives. Also the bound on a stale cart "
    "that another API process may serve after a write that could not reach Redis.",
    "CHECKOUT_CART__CACHE_TIMEOUT_S": "Connect and read timeout of one Redis call; past it the "
    "request reads PostgreSQL instead.",
    "CHECKOUT_CART__CACHE_RETRY_AFTER_S": "Seconds the cache is left alone after a Redis failure "
    "(reads go straight to PostgreSQL meanwhile).",
    "CHECKOUT_CART__CACHE_MAX_CONNECTIONS": "Redis connections one API process may open.",
    "CHECKOUT_CART__GUEST_PURGE_AFTER_S": "Guest sessions expired or ended (merged) this many "
    "seconds ago are deleted by the abandon job, with their carts that became no order.",
    "CHECKOUT_CART__PRICES_INCLUDE_TAX": "true: offer, shipping and fixed discount prices include "
    "tax (gross; the tax shown is extracted); false: they are net and tax is added "
    "(docs/pricing-rules.md).",
    "CHECKOUT_CART__COUPON_GUESSES_PER_BUYER": "Refused coupon codes a buyer may send per window "
    "before `POST /cart/coupons` answers 429.",
    "CHECKOUT_CART__COUPON_GUESSES_PER_CLIENT": "Refused coupon codes one client address may send "
    "per window, all buyers together, before 429.",
    "CHECKOUT_CART__COUPON_GUESS_WINDOW_S": "Length in seconds of the fixed window the coupon "
    "guess limits count in (429's Retry-After is the rest of it).",
    # Admin API
    "CHECKOUT_ADMIN__TOKEN": "When set, every admin endpoint except `/health/*` requires "
    "`Authorization: Bearer <token>`; unset, the admin API is open to whoever reaches it.",
    "CHECKOUT_ADMIN__HTTP_HOST": "Address the admin HTTP API binds (`0.0.0.0` in a container).",
    "CHECKOUT_ADMIN__HTTP_PORT": "Port of the admin HTTP API.",
}
"""Meanings of the variables whose settings field has no `description`."""

SECTION_TITLES: dict[str, str] = {
    "": "Process",
    "database_tls": "PostgreSQL TLS",
    "kafka": "Kafka clients",
    "relay": "Outbox relay",
    "consumer": "Consumers",
    "saga": "Saga orchestrator",
    "payments": "Payment simulator",
    "cart": "Cart service and HTTP API",
    "admin": "Admin API",
}
"""Heading per settings group ("" is the top level); a group missing here uses its field name."""

OTHER_VARIABLES: tuple[tuple[str, str], ...] = (
    (
        "CHECKOUT_TEST_DATABASE_URL",
        "Test suite only: PostgreSQL server the tests create their databases on "
        "(any driver; e.g. `postgresql://postgres:pw@127.0.0.1:5432/postgres`).",
    ),
    (
        "CHECKOUT_TEST_KAFKA_BOOTSTRAP",
        "Test suite only: bootstrap servers of a broker for the tests.",
    ),
    (
        "CHECKOUT_TEST_REDIS_URL",
        "Test suite only: `redis://` URL of a Redis or Valkey server for the cart cache tests "
        "(they use keys of their own buyers only).",
    ),
    (
        "CHECKOUT_TEST_NO_DOCKER",
        "Test suite only: any value skips the Docker probe, so the embedded pair is used.",
    ),
    (
        "POSTGRES_PASSWORD",
        "`docker-compose.yml` only: password of the `checkout` database user "
        "(default `checkout`); the services' `CHECKOUT_DATABASE_URL` is built from it.",
    ),
)
"""Variables read outside Settings: by the test suite and by docker-compose.yml."""


@dataclass(frozen=True)
class EnvVar:
    """One environment variable of the Settings model."""

    name: str
    path: tuple[str, ...]
    """Attribute path on a Settings instance, e.g. ("kafka", "bootstrap_servers")."""
    group: str
    type: str
    default: str
    description: str


def environment_variables(settings_cls: type[BaseModel] = Settings) -> list[EnvVar]:
    """Every variable the settings read, in declaration order (top level first, then groups)."""
    config = settings_cls.model_config
    prefix = str(config.get("env_prefix", "")).upper()
    delimiter = str(config.get("env_nested_delimiter") or "__")
    every = list(_walk(settings_cls, prefix, delimiter, ()))
    return [v for v in every if not v.group] + [v for v in every if v.group]


def _walk(
    model: type[BaseModel], prefix: str, delimiter: str, path: tuple[str, ...]
) -> Iterator[EnvVar]:
    for name, field in model.model_fields.items():
        env_name = f"{prefix}{name.upper()}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _walk(annotation, f"{env_name}{delimiter}", delimiter, (*path, name))
            continue
        yield EnvVar(
            name=env_name,
            path=(*path, name),
            group=path[0] if path else "",
            type=_type_text(annotation, field),
            default=_default_text(field),
            description=field.description or DESCRIPTIONS.get(env_name, UNDOCUMENTED),
        )


def _type_text(annotation: Any, field: FieldInfo) -> str:
    text = _annotation_text(annotation)
    bounds = _bounds_text(field)
    return f"{text}, {bounds}" if bounds else text


def _annotation_text(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        values = [f"`{v}`" for v in get_args(annotation)]
        return "one of " + ", ".join(values)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        inner = " or ".join(_annotation_text(a) for a in args)
        return f"{inner}, optional" if len(args) < len(get_args(annotation)) else inner
    if annotation is SecretStr:
        return "string (secret)"
    names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _bounds_text(field: FieldInfo) -> str:
    symbols = (
        (annotated_types.Ge, "ge", "≥"),
        (annotated_types.Gt, "gt", ">"),
        (annotated_types.Le, "le", "≤"),
        (annotated_types.Lt, "lt", "<"),
    )
    parts = []
    for item in field.metadata:
        for kind, attribute, symbol in symbols:
            if isinstance(item, kind):
                parts.append(f"{symbol} {_value_text(getattr(item, attribute))}")
    return ", ".join(parts)


def _default_text(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "(unset)"
    if isinstance(value, SecretStr):
        return _secret_default(value.get_secret_value())
    return f"`{_value_text(value)}`"


def _secret_default(secret: str) -> str:
    """A secret's default: a URL is shown without its password, anything else not at all."""
    parts = urlsplit(secret)
    if parts.scheme and parts.hostname and parts.password is None:
        return f"`{secret}`"
    if parts.scheme and parts.hostname:
        netloc = f"{parts.username}:***@{parts.netloc.rsplit('@', 1)[1]}"
        return f"`{urlunsplit(parts._replace(netloc=netloc))}`"
    return "(secret)"


def _value_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_HEADER = """\
# Configuration reference

<!-- Generated by `python -m ops.config_reference > docs/configuration.md`; do not edit.
     tests/unit/test_config_reference.py fails when this file and the settings disagree. -->

Every process (`checkout-saga run`, `migrate`, `dev`, `demo`, `bench`, `stock`, `saga`) reads its
settings once, at start, from environment variables and, when `{prefix}SECRETS_DIR` names a
directory (e.g. `/run/secrets`), from files in it (no `.env` file is read).

- Names are `{prefix}` + the setting, upper case; grouped settings join the group and the setting
  with `{delimiter}`, e.g. `{prefix}KAFKA{delimiter}BOOTSTRAP_SERVERS`. Names are case-insensitive.
- Booleans take `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`); durations are seconds
  (`_S`) or milliseconds (`_MS`), fractions allowed for seconds.
- A value outside its type or bounds stops the process at start with a message naming the
  setting (e.g. `kafka.topic_partitions`). A **misspelled name is ignored silently** (unknown
  `{prefix}*` variables are allowed), so check the spelling against this page.
- Secret files are how Docker and Kubernetes hand out secrets: one file per setting, named like
  its variable (any case), holding the value: `checkout_database_url`, `checkout_admin{delimiter}token`,
  `checkout_kafka{delimiter}sasl_password`. An environment variable wins over a file; a named
  directory that does not exist stops the process at start. Secrets never appear in logs or
  in `repr` of the settings.
- `checkout-saga demo` and `bench` drive an already running stack when both
  `{prefix}DATABASE_URL` and `{prefix}KAFKA{delimiter}BOOTSTRAP_SERVERS` are set, and otherwise
  start embedded servers for the run. `stock`, `saga`, `outbox`, `catalog`, `pricing` and `dlq` talk to
  `{prefix}DATABASE_URL` / `{prefix}KAFKA{delimiter}BOOTSTRAP_SERVERS`, else to the running
  `checkout-saga dev` of the data dir given by `checkout-saga --data-dir DIR ...` or
  `CHECKOUT_DEV_DATA_DIR` (default `.checkout-saga`), else to the defaults; each says which on
  stderr.

[architecture.md](architecture.md#kafka-client-settings) compares Kafka client settings for
production and for development and tests.
"""


def render(settings_cls: type[BaseModel] = Settings) -> str:
    """docs/configuration.md: the header, one table per settings group, the other variables."""
    config = settings_cls.model_config
    prefix = str(config.get("env_prefix", "")).upper()
    delimiter = str(config.get("env_nested_delimiter") or "__")
    lines = [_HEADER.format(prefix=prefix, delimiter=delimiter)]
    variables = environment_variables(settings_cls)
    for group in dict.fromkeys(v.group for v in variables):
        lines.append(f"## {SECTION_TITLES.get(group, group)}\n")
        if group:
            lines.append(_group_intro(settings_cls, group) + "\n")
        lines.append("| Variable | Type | Default | Meaning |")
        lines.append("|---|---|---|---|")
        lines.extend(
            f"| `{v.name}` | {_cell(v.type)} | {_cell(v.default)} | {_cell(v.description)} |"
            for v in variables
            if v.group == group
        )
        lines.append("")
    lines.append("## Other variables\n")
    lines.append("Read outside the settings model, so not by the product's processes.\n")
    lines.append("| Variable | Meaning |")
    lines.append("|---|---|")
    lines.extend(f"| `{name}` | {_cell(meaning)} |" for name, meaning in OTHER_VARIABLES)
    return "\n".join(lines) + "\n"


def _group_intro(settings_cls: type[BaseModel], group: str) -> str:
    model = settings_cls.model_fields[group].annotation
    doc = (getattr(model, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main() -> None:
    """Print the reference (redirect it to docs/configuration.md)."""
    print(render(), end="")


if __name__ == "__main__":
    main()
