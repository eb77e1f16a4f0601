"""The one command-line entry point: `checkout-saga` (run services, migrate, the embedded stack)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer

from services.platform.settings import Settings

cli = typer.Typer(
    name="checkout-saga",
    help="Event-driven checkout saga over Kafka and PostgreSQL.",
    no_args_is_help=True,
    add_completion=False,
)


def _settings() -> Settings:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    return settings


@cli.command()
def migrate(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply the database migrations (CHECKOUT_DATABASE_URL) up to a revision."""
    from services.platform import migrate as migrations

    settings = _settings()
    migrations.upgrade(settings.database_url.get_secret_value(), revision)
    typer.echo(f"database migrated to {revision}")


@cli.command()
def run(
    services: Annotated[
        list[str] | None,
        typer.Argument(
            help=(
                "Services to run: saga inventory orders cart payments (default: all); "
                "`relay` alone runs only the outbox relay of every service."
            )
        ),
    ] = None,
    relay: Annotated[
        bool, typer.Option(help="Also run the outbox relay for these services.")
    ] = True,
) -> None:
    """Run services (and their outbox relay) here until Ctrl-C; `run relay` runs only a relay."""
    from services.runtime import SERVICES, create_app

    settings = _settings()
    names = list(services or SERVICES)
    if names == ["relay"]:
        from services.cli_relay import run_relay

        run_relay(settings)
        return
    app = create_app(settings, [n for n in names if n != "relay"], relay=relay or "relay" in names)
    asyncio.run(app.run())


@cli.command()
def asyncapi() -> None:
    """Print the AsyncAPI document (every topic, payload and header) as JSON."""
    from services.runtime import asyncapi_json

    typer.echo(asyncapi_json(Settings()), nl=False)


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
