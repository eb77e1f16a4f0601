"""Security basics: secrets come from the environment and never render; e-mails are masked."""

from __future__ import annotations

import logging

import pytest

from services.platform.broker import security_kwargs
from services.platform.settings import Settings
from services.platform.telemetry.logs import mask_emails

DB_PASSWORD = "db-pa55-word"
SASL_PASSWORD = "sasl-pa55-word"
ADMIN_TOKEN = "admin-t0ken"
SECRETS = (DB_PASSWORD, SASL_PASSWORD, ADMIN_TOKEN)


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings built only from environment variables, with every secret set."""
    monkeypatch.setenv(
        "CHECKOUT_DATABASE_URL", f"postgresql+asyncpg://app:{DB_PASSWORD}@db:5432/checkout"
    )
    monkeypatch.setenv("CHECKOUT_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("CHECKOUT_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("CHECKOUT_KAFKA__SASL_USERNAME", "checkout")
    monkeypatch.setenv("CHECKOUT_KAFKA__SASL_PASSWORD", SASL_PASSWORD)
    monkeypatch.setenv("CHECKOUT_ADMIN__TOKEN", ADMIN_TOKEN)
    return Settings()


def test_secrets_load_from_the_environment(settings: Settings) -> None:
    assert DB_PASSWORD in settings.database_url.get_secret_value()
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == SASL_PASSWORD
    assert settings.admin.token is not None
    assert settings.admin.token.get_secret_value() == ADMIN_TOKEN


def test_settings_never_render_a_secret(settings: Settings) -> None:
    renderings = [repr(settings), str(settings), settings.model_dump_json(), str(settings.kafka)]
    for text in renderings:
        for secret in SECRETS:
            assert secret not in text


def test_logging_the_settings_shows_no_secret(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("checkout_saga.test").info("settings: %s", settings)
    for secret in SECRETS:
        assert secret not in caplog.text


def test_sasl_options_reach_the_kafka_clients(settings: Settings) -> None:
    options = security_kwargs(settings.kafka)
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "checkout"
    assert options["sasl_plain_password"] == SASL_PASSWORD


def test_buyer_email_is_masked() -> None:
    masked = mask_emails("checkout of buyer@example.com started")
    assert "buyer@example.com" not in masked
    assert "@example.com" in masked
