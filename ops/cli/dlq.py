"""`checkout-saga dlq list|replay`: dead letters from the `checkout.dead_letter` topic."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer
from aiokafka.errors import KafkaError

from ops.cli import stack
from services.platform.dlq import DeadLetter, DeadLetterFilter, read_dead_letters, replay
from services.platform.settings import KafkaSettings, Settings

T = TypeVar("T")

dlq_app = typer.Typer(
    help=(
        "Dead letters: messages a consumer rejected for good (invalid, unknown type, "
        "contradicting the saga), with the reason and origin in dlq_* headers."
    ),
    no_args_is_help=True,
)

TopicOpt = Annotated[str | None, typer.Option("--topic", help="Only those from this topic.")]
ServiceOpt = Annotated[
    str | None, typer.Option("--service", help="Only those this service rejected.")
]
ErrorOpt = Annotated[
    str | None, typer.Option("--error", help="Only those whose error contains this text.")
]


def _kafka() -> KafkaSettings:
    """The broker of the stack this command talks to (said on stderr)."""
    found = stack.resolve(Settings())
    typer.echo(found.describe(), err=True)
    return found.settings.kafka


def _on_broker(kafka: KafkaSettings, work: Coroutine[Any, Any, T]) -> T:
    """Run `work` against the broker; one line saying what to do when it cannot be reached."""
    # aiokafka logs each failed connection attempt itself; the one line below says it all.
    client_log = logging.getLogger("aiokafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    try:
        return asyncio.run(work)
    except (KafkaError, OSError) as exc:
        kind, text = type(exc).__name__, str(exc)
        reason = text if text.startswith(kind) else f"{kind}: {text}"
        typer.echo(f"kafka {kafka.bootstrap_servers}: {reason}", err=True)
        typer.echo(stack.hint(), err=True)
        raise typer.Exit(2) from None
    finally:
        client_log.setLevel(level)


def _letters(kafka: KafkaSettings, where: DeadLetterFilter) -> list[DeadLetter]:
    return _on_broker(kafka, read_dead_letters(kafka, where))


@dlq_app.command("list")
def list_(
    topic: TopicOpt = None,
    service: ServiceOpt = None,
    error: ErrorOpt = None,
    message_id: Annotated[
        str | None, typer.Option("--message-id", help="Only this message (or letter) id.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """List dead letters (each once, oldest first per partition)."""
    letters = _letters(_kafka(), DeadLetterFilter(topic, service, error, message_id))
    if as_json:
        typer.echo(json.dumps([letter.summary() for letter in letters], indent=2))
        return
    for letter in letters:
        s = letter.summary()
        typer.echo(
            f"{s['message_id'] or '-'}  {s['original_topic']}[{s['original_partition']}]"
            f"@{s['original_offset']}  by {s['rejected_by']} after {s['attempts']}  {s['error']}"
        )
    typer.echo(f"{len(letters)} dead letter(s)")


@dlq_app.command("replay")
def replay_(
    message_id: Annotated[
        str | None, typer.Argument(help="The message (or letter) id to replay.")
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Replay every letter matching the filters.")
    ] = False,
    topic: TopicOpt = None,
    service: ServiceOpt = None,
    error: ErrorOpt = None,
) -> None:
    """Republish dead letters to their original topic (original bytes, key, headers).

    A replayed message is consumed like a new delivery: if its cause is gone it is applied
    (once: its id goes through the inbox); if it is still invalid it is dead-lettered again,
    under a new offset, so it shows up in `dlq list` once more.
    """
    if (message_id is None) == (not all_):
        raise typer.BadParameter("give a MESSAGE_ID or --all (with optional filters), not both")
    kafka = _kafka()
    letters = _letters(kafka, DeadLetterFilter(topic, service, error, message_id))
    if message_id is not None and not letters:
        typer.echo(f"no dead letter with id {message_id}", err=True)
        raise typer.Exit(1)
    sent = _on_broker(kafka, replay(kafka, letters))
    typer.echo(f"replayed {sent} dead letter(s)")
