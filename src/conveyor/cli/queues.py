"""``conveyor queues``, ``purge`` and ``dead-letters``: what waits, and what failed for good."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click
import msgspec

from ..exceptions import DecodeError
from ..serialization import decode_message
from .common import app_option, ctx_app

__all__ = ["dead_letters", "purge", "queues"]


@click.command()
@app_option
@click.option("-Q", "--queue", help="Only this queue.")
@click.option("-f", "--force", is_flag=True, help="Do not ask.")
@click.pass_context
def purge(ctx: click.Context, app_spec: str | None, queue: str | None, force: bool) -> None:
    """Delete waiting messages (of one queue, or of all)."""
    app = ctx_app(ctx, app_spec)
    what = f"queue {queue!r}" if queue else "every queue"
    if not force and not click.confirm(f"Delete all waiting messages in {what}?", default=False):
        return
    click.echo(f"purged {app.broker.purge(queue)} message(s) from {what}")


@click.command()
@app_option
@click.pass_context
def queues(ctx: click.Context, app_spec: str | None) -> None:
    """Show how many messages wait in each queue."""
    app = ctx_app(ctx, app_spec)
    stats = app.broker.stats()
    click.echo(f"{'queue':<24}{'ready':>10}{'delayed':>10}{'reserved':>10}")
    for name, s in sorted(stats.items()):
        click.echo(f"{name:<24}{s.ready:>10}{s.delayed:>10}{s.reserved:>10}")


@click.group("dead-letters")
def dead_letters() -> None:
    """Messages that could not be processed, kept with the reason."""


@dead_letters.command("list")
@app_option
@click.option("--limit", default=100, show_default=True)
@click.pass_context
def dead_letters_list(ctx: click.Context, app_spec: str | None, limit: int) -> None:
    """List dead letters, oldest first."""
    app = ctx_app(ctx.find_root(), app_spec)
    letters = app.broker.dead_letters(limit)
    for letter in letters:
        when = datetime.fromtimestamp(letter.failed_at).isoformat(timespec="seconds")
        click.echo(f"{letter.id}  {when}  queue={letter.queue}  {letter.reason}")
    click.echo(f"{len(letters)} dead letter(s)", err=True)


@dead_letters.command("show")
@app_option
@click.argument("letter_id")
@click.option("--json", "as_json", is_flag=True, help="Print it as one JSON object.")
@click.pass_context
def dead_letters_show(
    ctx: click.Context, app_spec: str | None, letter_id: str, as_json: bool
) -> None:
    """Show one dead letter: why it failed, and its message (body decoded where it can be)."""
    app = ctx_app(ctx.find_root(), app_spec)
    found = [letter for letter in app.broker.dead_letters(1_000_000) if letter.id == letter_id]
    if not found:
        raise click.ClickException(f"no dead letter {letter_id} (dead-letters list shows them)")
    letter = found[0]
    detail: dict[str, Any] = {
        "id": letter.id,
        "queue": letter.queue,
        "priority": letter.priority,
        "reason": letter.reason,
        "failed_at": letter.failed_at,
        "resends": letter.resends,
    }
    try:
        message = decode_message(letter.body)
    except DecodeError as exc:
        detail["body"] = letter.body.decode("utf-8", "backslashreplace")
        detail["body_error"] = str(exc)
    else:
        detail["message"] = msgspec.to_builtins(message)
    if as_json:
        click.echo(json.dumps(detail, default=str, indent=2))
        return
    when = datetime.fromtimestamp(letter.failed_at).isoformat(timespec="seconds")
    rows = [
        ("id", letter.id),
        ("queue", letter.queue),
        ("priority", str(letter.priority)),
        ("failed at", when),
        ("re-sent", f"{letter.resends} time(s)"),
        ("reason", letter.reason),
    ]
    if "message" in detail:
        rows += [
            ("task", message.task),
            ("args", message.shown_args()),
            ("kwargs", message.shown_kwargs()),
            ("retries", str(message.retries)),
        ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"{label:<{width}}  {value}")
    click.echo("\nbody:")
    if "message" in detail:
        click.echo(json.dumps(detail["message"], default=str, indent=2))
    else:
        click.echo(f"{detail['body']}\n(not a message this Conveyor reads: {detail['body_error']})")


@dead_letters.command("retry")
@app_option
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Re-send every dead letter.")
@click.pass_context
def dead_letters_retry(
    ctx: click.Context, app_spec: str | None, ids: tuple[str, ...], all_: bool
) -> None:
    """Send dead letters back to their queues."""
    if not ids and not all_:
        raise click.UsageError("name the ids to re-send, or pass --all")
    app = ctx_app(ctx.find_root(), app_spec)
    count = app.control.retry_dead_letters(None if all_ else list(ids))
    click.echo(f"re-sent {count} message(s)")


@dead_letters.command("purge")
@app_option
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Delete every dead letter.")
@click.pass_context
def dead_letters_purge(
    ctx: click.Context, app_spec: str | None, ids: tuple[str, ...], all_: bool
) -> None:
    """Delete dead letters."""
    if not ids and not all_:
        raise click.UsageError("name the ids to delete, or pass --all")
    app = ctx_app(ctx.find_root(), app_spec)
    count = app.broker.purge_dead_letters(None if all_ else list(ids))
    click.echo(f"deleted {count} dead letter(s)")
