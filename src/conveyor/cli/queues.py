"""``conveyor queues``, ``purge`` and ``dead-letters``: what waits, and what failed for good."""

from __future__ import annotations

from datetime import datetime

import click

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
