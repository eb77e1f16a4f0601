"""Which stack the operator's commands talk to, and what they say when it does not answer."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ops.cli import cli
from ops.cli.stack import DATA_DIR_ENV, resolve, write_dev_state
from services.platform.settings import Settings

DEV_URL = "postgresql+asyncpg://postgres@127.0.0.1:54999/checkout"


def _dev_stack(data_dir: Path, pid: int | None = None) -> None:
    """A dev.json as a running `checkout-saga dev` writes it (this process stands in for it)."""
    state = {
        "pid": pid or os.getpid(),
        "database_url": DEV_URL,
        "bootstrap_servers": "127.0.0.1:19092",
        "services": [],
    }
    write_dev_state(data_dir, state)


def test_a_dev_stack_in_another_data_dir_is_found_by_that_dir(tmp_path: Path) -> None:
    _dev_stack(tmp_path)
    found = resolve(Settings(), tmp_path, environ={})
    assert found.settings.database_url.get_secret_value() == DEV_URL
    assert found.settings.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert f"the `checkout-saga dev` in {tmp_path} (pid {os.getpid()})" in found.describe()


def test_the_data_dir_comes_from_the_environment_when_not_given(tmp_path: Path) -> None:
    _dev_stack(tmp_path)
    found = resolve(Settings(), environ={DATA_DIR_ENV: str(tmp_path)})
    assert found.settings.kafka.bootstrap_servers == "127.0.0.1:19092"


def test_urls_in_the_environment_win_over_the_dev_stack(tmp_path: Path) -> None:
    _dev_stack(tmp_path)
    environ = {"CHECKOUT_KAFKA__BOOTSTRAP_SERVERS": "kafka.example:9092"}
    settings = Settings(kafka={"bootstrap_servers": "kafka.example:9092"})
    found = resolve(settings, tmp_path, environ=environ)
    assert found.settings.kafka.bootstrap_servers == "kafka.example:9092"
    assert found.settings.database_url.get_secret_value() == DEV_URL
    assert "CHECKOUT_KAFKA__BOOTSTRAP_SERVERS from the environment" in found.source


def test_a_dead_dev_stack_is_not_used_and_the_defaults_are_named(tmp_path: Path) -> None:
    _dev_stack(tmp_path, pid=2**22 + 12345)  # above the kernel's pid_max: never alive
    found = resolve(Settings(), tmp_path, environ={})
    assert found.settings.database_url == Settings().database_url
    assert f"no running `checkout-saga dev` in {tmp_path}" in found.source


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("command", [["dlq", "list"], ["dlq", "replay", "--all"]])
def test_dlq_without_a_broker_says_what_to_do_in_one_line_not_a_traceback(
    tmp_path: Path, command: list[str]
) -> None:
    # Before: a 70-line aiokafka traceback (and the broker of no stack at all).
    write_dev_state(
        tmp_path,
        {
            "pid": os.getpid(),
            "database_url": DEV_URL,
            "bootstrap_servers": f"127.0.0.1:{_closed_port()}",
        },
    )
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), *command], env={})
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"stack: the `checkout-saga dev` in {tmp_path}")
    assert lines[1].startswith("kafka 127.0.0.1:")
    assert "bootstrap" in lines[1].lower()
    assert lines[2].startswith("start `checkout-saga dev`")
    assert len(lines) == 3, result.stderr
    assert "Traceback" not in result.output


def test_database_commands_name_the_stack_and_say_what_to_do(tmp_path: Path) -> None:
    write_dev_state(
        tmp_path,
        {
            "pid": os.getpid(),
            "database_url": f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/checkout",
            "bootstrap_servers": "127.0.0.1:1",
        },
    )
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "saga", "list"], env={})
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"stack: the `checkout-saga dev` in {tmp_path}")
    assert lines[1].startswith("database postgresql+asyncpg://postgres@127.0.0.1:")
    assert len(lines) == 3, result.stderr


def test_the_dev_stacks_cart_cache_is_found_unless_the_environment_names_one(
    tmp_path: Path,
) -> None:
    # Without it, a pricing rule changed from the CLI would leave the dev stack's carts stale.
    write_dev_state(
        tmp_path,
        {
            "pid": os.getpid(),
            "database_url": DEV_URL,
            "bootstrap_servers": "127.0.0.1:19092",
            "cache_url": "redis://127.0.0.1:16379/0",
        },
    )
    found = resolve(Settings(), tmp_path, environ={})
    assert found.settings.cart.cache_url is not None
    assert found.settings.cart.cache_url.get_secret_value() == "redis://127.0.0.1:16379/0"
    environ = {"CHECKOUT_CART__CACHE_URL": "redis://cache.example:6379/0"}
    settings = Settings(cart={"cache_url": "redis://cache.example:6379/0"})
    found = resolve(settings, tmp_path, environ=environ)
    assert found.settings.cart.cache_url is not None
    assert found.settings.cart.cache_url.get_secret_value() == "redis://cache.example:6379/0"
