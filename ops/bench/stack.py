"""Where the bench runs: a stack that is already running, or one it starts and owns.

An owned stack is embedded PostgreSQL and Tansu started by the bench process (unless the
environment names them), migrated and seeded, with every service spawned as OS processes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from ops.bench.fleet import ServiceFleet, child_environ, fleet_commands
from ops.cli.stack import chosen_data_dir, dev_state
from ops.devstack import DevOptions, Infrastructure, dev_settings
from services.platform import migrate
from services.platform.embedded import free_port
from services.platform.settings import Settings

SHORT_SESSION_TIMEOUT_MS = 2000
"""Tansu holds each consumer-group join for about half the session timeout (DESIGN §7)."""


@dataclass(frozen=True)
class Payer:
    """The payment simulator's rules for an owned stack, and the saga's payment deadline."""

    decline_rate: float = 0.1
    silent_rate: float = 0.0
    duplicate_rate: float = 0.02
    payment_timeout_s: float | None = None

    def timeout_s(self) -> float:
        """The deadline: as asked, else 3 s when some payers stay silent, else 60 s.

        A silent payer makes its saga wait for the deadline; without silent payers a long one
        keeps a loaded saga from failing on a deadline that only measures queueing.
        """
        if self.payment_timeout_s is not None:
            return self.payment_timeout_s
        return 3.0 if self.silent_rate > 0 else 60.0

    def environ(self) -> dict[str, str]:
        """CHECKOUT_* variables that configure it in the service processes."""
        return {
            "CHECKOUT_PAYMENTS__DECLINE_RATE": str(self.decline_rate),
            "CHECKOUT_PAYMENTS__SILENT_RATE": str(self.silent_rate),
            "CHECKOUT_PAYMENTS__DUPLICATE_RATE": str(self.duplicate_rate),
            "CHECKOUT_SAGA__PAYMENT_TIMEOUT_S": str(self.timeout_s()),
            "CHECKOUT_SAGA__TIMEOUT_POLL_INTERVAL_S": "0.2",
        }


@dataclass
class Stack:
    """The settings the bench talks with and, for an owned stack, what it started."""

    settings: Settings
    owned: bool
    infra: Infrastructure | None = None
    fleet: ServiceFleet | None = None
    notes: list[str] = field(default_factory=list)


def running_stack() -> Settings | None:
    """Settings of an already running stack (environment URLs, or a live `checkout-saga dev`)."""
    if os.environ.get("CHECKOUT_DATABASE_URL") and os.environ.get(
        "CHECKOUT_KAFKA__BOOTSTRAP_SERVERS"
    ):
        return Settings()
    state = dev_state(chosen_data_dir())
    if state is None:
        return None
    settings = Settings()
    kafka = settings.kafka.model_copy(update={"bootstrap_servers": str(state["bootstrap_servers"])})
    return settings.model_copy(
        update={"database_url": SecretStr(str(state["database_url"])), "kafka": kafka}
    )


@contextlib.contextmanager
def owned_servers(scratch: Path) -> Iterator[tuple[Settings, Infrastructure]]:
    """Embedded PostgreSQL and Tansu (or the environment's), migrated; stopped on exit."""
    infra = Infrastructure(DevOptions(data_dir=scratch, kafka_port=free_port()))
    try:
        settings = Settings()
        # Their announcements go to stderr: stdout carries only the JSON report.
        with contextlib.redirect_stdout(sys.stderr):
            database_url = infra.start_database(settings)
            bootstrap = infra.start_kafka(settings)
            migrate.upgrade(database_url)
        short = infra.kafka is not None and not os.environ.get("CHECKOUT_KAFKA__SESSION_TIMEOUT_MS")
        yield dev_settings(settings, database_url, bootstrap, short=short), infra
    finally:
        infra.stop()


def service_environ(settings: Settings, payer: Payer) -> dict[str, str]:
    """The environment of the spawned services: this stack's URLs, the payer, group timeouts."""
    kafka = settings.kafka
    return child_environ(
        {
            "CHECKOUT_DATABASE_URL": settings.database_url.get_secret_value(),
            "CHECKOUT_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "CHECKOUT_KAFKA__SESSION_TIMEOUT_MS": str(kafka.session_timeout_ms),
            "CHECKOUT_KAFKA__TOPIC_PARTITIONS": str(kafka.topic_partitions),
            **payer.environ(),
        }
    )


def new_fleet(settings: Settings, payer: Payer, processes: int, log_dir: Path) -> ServiceFleet:
    """The service and relay processes of an owned stack (not started yet)."""
    return ServiceFleet(service_environ(settings, payer), log_dir, fleet_commands(processes))


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    """A temp dir for the embedded servers' data and the processes' logs."""
    return tempfile.TemporaryDirectory(prefix="checkout-bench-")
