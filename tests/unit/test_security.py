"""Security basics: secrets from the environment or files, never rendered; TLS; masked e-mails."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsError

from services.platform.broker import security_kwargs
from services.platform.db import connect_args, ssl_option
from services.platform.settings import SECRETS_DIR_ENV, DatabaseTlsSettings, Settings
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


def _secret_files(directory: Path) -> None:
    (directory / "checkout_database_url").write_text(
        f"postgresql+asyncpg://app:{DB_PASSWORD}@db:5432/checkout\n"
    )
    (directory / "CHECKOUT_KAFKA__SASL_PASSWORD").write_text(SASL_PASSWORD)
    (directory / "checkout_admin__token").write_text(f"{ADMIN_TOKEN}\n")


def test_secrets_load_from_files_in_the_secrets_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _secret_files(tmp_path)
    monkeypatch.setenv(SECRETS_DIR_ENV, str(tmp_path))
    settings = Settings()
    assert settings.database_url.get_secret_value().endswith(f":{DB_PASSWORD}@db:5432/checkout")
    assert settings.kafka.sasl_password == SecretStr(SASL_PASSWORD)
    assert settings.admin.token == SecretStr(ADMIN_TOKEN)
    for secret in SECRETS:
        assert secret not in repr(settings)


def test_the_environment_overrides_a_secret_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _secret_files(tmp_path)
    monkeypatch.setenv(SECRETS_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("CHECKOUT_ADMIN__TOKEN", "from-the-environment")
    assert Settings().admin.token == SecretStr("from-the-environment")


def test_a_missing_secrets_dir_is_an_error_not_silent_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(SECRETS_DIR_ENV, str(tmp_path / "not-mounted"))
    with pytest.raises(SettingsError, match="does not exist"):
        Settings()


def test_database_tls_is_left_to_the_url_unless_configured() -> None:
    assert connect_args(DatabaseTlsSettings()) == {}
    assert connect_args(DatabaseTlsSettings(mode="prefer")) == {"ssl": "prefer"}


def test_database_tls_modes_check_what_libpq_checks() -> None:
    require = ssl_option(DatabaseTlsSettings(mode="require"))
    verify_ca = ssl_option(DatabaseTlsSettings(mode="verify-ca"))
    verify_full = ssl_option(DatabaseTlsSettings(mode="verify-full"))
    assert isinstance(require, ssl.SSLContext)
    assert isinstance(verify_ca, ssl.SSLContext)
    assert isinstance(verify_full, ssl.SSLContext)
    assert (require.verify_mode, require.check_hostname) == (ssl.CERT_NONE, False)
    assert (verify_ca.verify_mode, verify_ca.check_hostname) == (ssl.CERT_REQUIRED, False)
    assert (verify_full.verify_mode, verify_full.check_hostname) == (ssl.CERT_REQUIRED, True)


def test_database_tls_refuses_certificates_it_would_not_check() -> None:
    with pytest.raises(ValidationError, match="need mode"):
        DatabaseTlsSettings(mode="prefer", ca_file="/etc/ssl/ca.pem")
    with pytest.raises(ValidationError, match="key_file needs cert_file"):
        DatabaseTlsSettings(mode="verify-full", key_file="/etc/ssl/client.key")


def test_database_tls_loads_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHECKOUT_DATABASE_TLS__MODE", "verify-full")
    monkeypatch.setenv("CHECKOUT_DATABASE_TLS__CA_FILE", "/etc/ssl/db-ca.pem")
    tls = Settings().database_tls
    assert (tls.mode, tls.ca_file) == ("verify-full", "/etc/ssl/db-ca.pem")
