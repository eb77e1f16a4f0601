"""Which stack a command talks to: the environment's URLs, a running `checkout-saga dev`, or defaults.

`checkout-saga dev --data-dir D` writes its pid and URLs to D/dev.json. The other commands read
that file from `--data-dir` (before the command: `checkout-saga --data-dir D saga show ...`), or
from CHECKOUT_DEV_DATA_DIR, or from the default data dir; CHECKOUT_DATABASE_URL,
CHECKOUT_KAFKA__BOOTSTRAP_SERVERS and CHECKOUT_CART__CACHE_URL win over the file. Each command
says which stack it found.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped, unused-ignore]
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from services.platform.settings import Settings

DATABASE_ENV = "CHECKOUT_DATABASE_URL"
KAFKA_ENV = "CHECKOUT_KAFKA__BOOTSTRAP_SERVERS"
CACHE_ENV = "CHECKOUT_CART__CACHE_URL"
DATA_DIR_ENV = "CHECKOUT_DEV_DATA_DIR"
DEFAULT_DATA_DIR = Path(".checkout-saga")
"""`checkout-saga dev`'s default data dir (gitignored): PostgreSQL data, logs, its state file."""
STATE_FILE_NAME = "dev.json"
"""Written by a running `checkout-saga dev` into its data dir: its pid and unmasked URLs."""
_chosen: ContextVar[Path | None] = ContextVar("checkout_cli_data_dir", default=None)
"""The root command's `--data-dir` (ops/cli/main.py), set before its subcommand runs."""


@dataclass(frozen=True)
class Stack:
    """The settings a command uses and, in words, where its database and broker came from."""

    settings: Settings
    source: str

    def describe(self) -> str:
        """One line for the operator: which database and broker, and why those."""
        database = make_url(self.settings.database_url.get_secret_value())
        where = database.render_as_string(hide_password=True)
        return (
            f"stack: {self.source}: database {where}, kafka {self.settings.kafka.bootstrap_servers}"
        )


def dev_state(data_dir: Path) -> dict[str, Any] | None:
    """The state file of a `checkout-saga dev` that is still running, else None."""
    path = data_dir / STATE_FILE_NAME
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    # A dev stack killed with SIGKILL leaves its file behind; its URLs lead nowhere.
    pid = state.get("pid")
    alive = isinstance(pid, int) and pid > 0 and psutil.pid_exists(pid)
    return state if alive else None


def write_dev_state(data_dir: Path, state: dict[str, Any]) -> None:
    """Record a running dev stack (its pid and URLs) for the other commands and scripts."""
    path = data_dir / STATE_FILE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    # 0600: a URL from the environment may carry a password.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(state, file, indent=2)


def remove_dev_state(data_dir: Path) -> None:
    """Forget the dev stack of data_dir (it is stopping)."""
    (data_dir / STATE_FILE_NAME).unlink(missing_ok=True)


def choose_data_dir(data_dir: Path | None) -> None:
    """Remember the root command's `--data-dir` (None: not given) for this command's run."""
    _chosen.set(data_dir)


def chosen_data_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The data dir named by the root `--data-dir`, else CHECKOUT_DEV_DATA_DIR, else the default."""
    given = _chosen.get()
    if given is not None:
        return given
    return Path(environ[DATA_DIR_ENV]) if environ.get(DATA_DIR_ENV) else DEFAULT_DATA_DIR


def resolve(
    settings: Settings, data_dir: Path | None = None, environ: Mapping[str, str] = os.environ
) -> Stack:
    """The settings pointed at the dev stack of data_dir for what the environment leaves out."""
    data_dir = data_dir if data_dir is not None else chosen_data_dir(environ)
    state = dev_state(data_dir)
    from_env = [name for name in (DATABASE_ENV, KAFKA_ENV) if environ.get(name)]
    if state is None:
        if from_env:
            return Stack(settings, f"{' and '.join(from_env)} from the environment")
        return Stack(
            settings,
            f"no running `checkout-saga dev` in {data_dir} and no {DATABASE_ENV}: the defaults",
        )
    update: dict[str, object] = {}
    if not environ.get(DATABASE_ENV) and state.get("database_url"):
        update["database_url"] = SecretStr(str(state["database_url"]))
    if not environ.get(KAFKA_ENV) and state.get("bootstrap_servers"):
        kafka = {"bootstrap_servers": str(state["bootstrap_servers"])}
        update["kafka"] = settings.kafka.model_copy(update=kafka)
    # The cart cache, so that a change of the pricing rules reaches the dev stack's carts.
    if not environ.get(CACHE_ENV) and state.get("cache_url"):
        cache = {"cache_url": SecretStr(str(state["cache_url"]))}
        update["cart"] = settings.cart.model_copy(update=cache)
    source = f"the `checkout-saga dev` in {data_dir} (pid {state['pid']})"
    if from_env:
        source += f", with {' and '.join(from_env)} from the environment"
    return Stack(settings.model_copy(update=update), source)


def hint(data_dir: Path | None = None) -> str:
    """What to do when the stack a command found does not answer."""
    data_dir = data_dir if data_dir is not None else chosen_data_dir()
    return (
        f"start `checkout-saga dev` (or pass `checkout-saga --data-dir DIR ...` / set "
        f"{DATA_DIR_ENV} for one started with --data-dir DIR; looked in {data_dir}), "
        f"or set {DATABASE_ENV} and {KAFKA_ENV}"
    )
