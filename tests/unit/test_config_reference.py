"""docs/configuration.md is current, complete, and names variables the settings really read."""

from __future__ import annotations

import os
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pytest
from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ops.config_reference import (
    DESCRIPTIONS,
    OTHER_VARIABLES,
    UNDOCUMENTED,
    EnvVar,
    environment_variables,
    render,
)
from services.platform.settings import Settings
from tests.support import infra

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "configuration.md"
REGENERATE = "python -m ops.config_reference > docs/configuration.md"


def test_committed_reference_is_current() -> None:
    assert REFERENCE.read_text() == render(), f"docs/configuration.md is stale: run `{REGENERATE}`"


def test_every_variable_has_a_meaning_and_appears_in_the_reference() -> None:
    variables = environment_variables()
    undocumented = [v.name for v in variables if v.description == UNDOCUMENTED]
    assert not undocumented, (
        f"describe {undocumented} in ops/config_reference.py DESCRIPTIONS "
        f"(or with Field(description=...)), then run `{REGENERATE}`"
    )
    text = REFERENCE.read_text()
    for variable in variables:
        assert f"| `{variable.name}` |" in text, variable.name


def test_no_description_outlives_its_setting() -> None:
    stale = set(DESCRIPTIONS) - {v.name for v in environment_variables()}
    assert not stale, f"remove {sorted(stale)} from DESCRIPTIONS"


def test_variables_read_outside_settings_are_documented() -> None:
    names = {name for name, _ in OTHER_VARIABLES}
    assert {infra.DATABASE_ENV, infra.KAFKA_ENV, infra.REDIS_ENV, infra.NO_DOCKER_ENV} <= names
    compose = (ROOT / "docker-compose.yml").read_text()
    for name in names - {infra.DATABASE_ENV, infra.KAFKA_ENV, infra.REDIS_ENV, infra.NO_DOCKER_ENV}:
        assert f"${{{name}" in compose, f"{name} is not a docker-compose.yml variable"


def _probe_value(annotation: Any, default: Any) -> tuple[str, Any] | None:
    """(environment text, expected value) different from the default, when one parses."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in get_args(annotation) if a is not type(None)]
        return _probe_value(inner, default)
    if origin is Literal:
        others = [a for a in get_args(annotation) if isinstance(a, str) and a != default]
        return (others[0], others[0]) if others else (str(default), default)
    if annotation is bool:
        return ("false", False) if default else ("true", True)
    if annotation is int:
        value = (default or 0) + 1
        return str(value), value
    if annotation is float:
        value = (default or 0) + 0.5
        return str(value), value
    if annotation in (str, SecretStr):
        return "probe-value", "probe-value"
    return None


def _read(settings: BaseModel, variable: EnvVar) -> Any:
    value: Any = settings
    for name in variable.path:
        value = getattr(value, name)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _field(variable: EnvVar) -> Any:
    model: type[BaseModel] = Settings
    for name in variable.path[:-1]:
        model = model.model_fields[name].annotation  # type: ignore[assignment]
    return model.model_fields[variable.path[-1]]


_VERIFY = {"CHECKOUT_DATABASE_TLS__MODE": "verify-full"}
COMPANIONS: dict[str, dict[str, str]] = {
    "CHECKOUT_DATABASE_TLS__CA_FILE": _VERIFY,
    "CHECKOUT_DATABASE_TLS__CERT_FILE": _VERIFY,
    "CHECKOUT_DATABASE_TLS__KEY_FILE": {**_VERIFY, "CHECKOUT_DATABASE_TLS__CERT_FILE": "c.pem"},
}
"""Variables that are only valid together with others (certificate files need a TLS mode)."""


@pytest.mark.parametrize("variable", environment_variables(), ids=lambda v: v.name)
def test_each_documented_name_sets_its_setting(
    variable: EnvVar, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.upper().startswith("CHECKOUT_")]:
        monkeypatch.delenv(key)
    field = _field(variable)
    probe = _probe_value(field.annotation, field.default)
    assert probe is not None, f"no probe value for {variable.name}: extend _probe_value"
    text, expected = probe
    for name, value in COMPANIONS.get(variable.name, {}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(variable.name, text)
    assert _read(Settings(), variable) == expected


class _Nested(BaseModel):
    """A group."""

    token: SecretStr | None = None


class _Example(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EX_", env_nested_delimiter="__")

    url: SecretStr = SecretStr("postgresql://user:hunter2@db:5432/app")
    key: SecretStr = SecretStr("hunter2")
    group: _Nested = _Nested()


def test_secrets_never_show_in_the_reference() -> None:
    by_name = {v.name: v for v in environment_variables(_Example)}
    assert set(by_name) == {"EX_URL", "EX_KEY", "EX_GROUP__TOKEN"}
    assert by_name["EX_URL"].default == "`postgresql://user:***@db:5432/app`"
    assert by_name["EX_KEY"].default == "(secret)"
    assert by_name["EX_GROUP__TOKEN"].default == "(unset)"
    assert "hunter2" not in render(_Example)
