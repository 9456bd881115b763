"""``conveyor beat``: run the periodic task scheduler, list and edit its entries."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from ..app import Conveyor
from ..celery_settings import store_for_scheduler
from ..exceptions import ConveyorError
from .common import app_option, ctx_app, json_arg, loglevel_option

if TYPE_CHECKING:
    from ..beat.store import ScheduleStore

__all__ = ["beat"]


def _beat_open(ctx: click.Context, app_spec: str | None) -> tuple[Conveyor, ScheduleStore]:
    from ..beat import resolve_store

    app = ctx_app(ctx, app_spec)
    try:
        return app, resolve_store(app, (ctx.obj or {}).get("beat_store"))
    except ConveyorError as exc:
        raise click.ClickException(str(exc)) from None


def _no_entry(name: str) -> click.ClickException:
    return click.ClickException(f"no periodic task named {name!r} (see `conveyor beat list`)")


@contextmanager
def _entry(name: str) -> Iterator[None]:
    """Turn the store's KeyError for a missing entry into a message that names it."""
    try:
        yield
    except KeyError:
        raise _no_entry(name) from None


@click.group("beat", invoke_without_command=True)
@app_option
@loglevel_option
@click.option("--store", "store_spec", help="Schedule store: URL or module:attr [the broker's].")
@click.option(
    "-S",
    "--scheduler",
    help="Celery's scheduler class: django_celery_beat's DatabaseScheduler (or 'django') "
    "selects the Django store, as --store conveyor.contrib.django.store:DjangoStore does.",
)
@click.pass_context
def beat(
    ctx: click.Context,
    app_spec: str | None,
    loglevel: str,
    store_spec: str | None,
    scheduler: str | None,
) -> None:
    """Run the periodic task scheduler; its subcommands list and edit the entries.

    Any number of schedulers may run against one broker: each due run is sent once.
    """
    ctx.ensure_object(dict)
    if app_spec:
        ctx.obj["app"] = app_spec
    if scheduler and not store_spec:
        store_spec = store_for_scheduler(scheduler)
    ctx.obj["beat_store"] = store_spec
    if ctx.invoked_subcommand is not None:
        return
    from ..beat import Scheduler, serve
    from ..log import setup_logging

    app, store = _beat_open(ctx, None)
    try:
        app.import_includes()
        setup_logging(loglevel)  # after the imports: a setup_logging receiver takes over
        serve(Scheduler(app, store))
    except ConveyorError as exc:
        raise click.ClickException(str(exc)) from None


@beat.command("list")
@app_option
@click.option("-n", "--next", "count", default=3, show_default=True, help="Next runs shown.")
@click.pass_context
def beat_list(ctx: click.Context, app_spec: str | None, count: int) -> None:
    """Show each entry: schedule in plain English, state, last and next runs."""
    from ..beat.admin import format_entries

    app, store = _beat_open(ctx, app_spec)
    app.import_includes()
    lines = format_entries(app, store, count)
    click.echo("\n".join(lines) if lines else "no periodic tasks")


@beat.command("enable")
@app_option
@click.argument("name")
@click.pass_context
def beat_enable(ctx: click.Context, app_spec: str | None, name: str) -> None:
    """Enable entry NAME (runs missed while it was disabled do not fire)."""
    app, store = _beat_open(ctx, app_spec)
    with _entry(name):
        store.enable(name, datetime.fromtimestamp(app.clock(), UTC))
    click.echo(f"enabled {name}")


@beat.command("disable")
@app_option
@click.argument("name")
@click.pass_context
def beat_disable(ctx: click.Context, app_spec: str | None, name: str) -> None:
    """Disable entry NAME; running schedulers stop sending it within a second or so."""
    _, store = _beat_open(ctx, app_spec)
    with _entry(name):
        store.disable(name)
    click.echo(f"disabled {name}")


@beat.command("run-now")
@app_option
@click.argument("name")
@click.pass_context
def beat_run_now(ctx: click.Context, app_spec: str | None, name: str) -> None:
    """Send entry NAME once now (its schedule is unchanged); print the task id."""
    from ..beat import run_now

    app, store = _beat_open(ctx, app_spec)
    try:
        with _entry(name):
            result = run_now(app, name, store)
    except (ConveyorError, TypeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result.id)


@beat.command("add")
@app_option
@click.argument("name")
@click.option("--task", required=True, help="Name of the task to send.")
@click.option("--cron", help='A cron line: "*/5 * * * *".')
@click.option("--every", type=float, help="Seconds between runs.")
@click.option("--at", "at", help="Once, at this ISO date-time (app timezone unless given).")
@click.option("--args", "args_json", help="Positional arguments as a JSON list.")
@click.option("--kwargs", "kwargs_json", help="Keyword arguments as a JSON object.")
@click.option("-Q", "--queue", help="Queue to send to.")
@click.option(
    "--catch-up",
    type=click.Choice(["latest", "all", "skip"]),
    default="latest",
    show_default=True,
    help="Runs missed while no scheduler ran: fire the newest, all, or none.",
)
@click.option("--disabled", is_flag=True, help="Add it disabled.")
@click.option("--force", is_flag=True, help="Add it even if no module registers the task.")
@click.pass_context
def beat_add(
    ctx: click.Context,
    app_spec: str | None,
    name: str,
    task: str,
    cron: str | None,
    every: float | None,
    at: str | None,
    args_json: str | None,
    kwargs_json: str | None,
    queue: str | None,
    catch_up: str,
    disabled: bool,
    force: bool,
) -> None:
    """Add entry NAME (or change it, keeping its history); running schedulers pick it up."""
    from ..beat.admin import check_task_registered, cli_entry

    args = json_arg(args_json, "--args", list)
    kwargs = json_arg(kwargs_json, "--kwargs", dict)
    app, store = _beat_open(ctx, app_spec)
    try:
        entry = cli_entry(
            name,
            task,
            cron=cron,
            every=every,
            at=at,
            args=args,
            kwargs=kwargs,
            queue=queue,
            catch_up=catch_up,
            enabled=not disabled,
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if not force:
        try:
            check_task_registered(app, task)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    existed = store.get(name) is not None
    saved = store.upsert(entry, datetime.fromtimestamp(app.clock(), UTC))
    click.echo(f"{'changed' if existed else 'added'} {name}: {saved.describe()}")


@beat.command("remove")
@app_option
@click.argument("name")
@click.pass_context
def beat_remove(ctx: click.Context, app_spec: str | None, name: str) -> None:
    """Delete entry NAME and its history (an entry still in code comes back at the next
    scheduler start: remove it from the code, or disable it)."""
    _, store = _beat_open(ctx, app_spec)
    if not store.remove(name):
        raise _no_entry(name)
    click.echo(f"removed {name}")
