"""``conveyor``: worker, beat, call, result, purge, dead-letters and demo."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from . import states
from .app import Conveyor
from .celery_settings import store_for_scheduler
from .exceptions import ConveyorError
from .locate import locate_app

if TYPE_CHECKING:
    from .beat.store import ScheduleStore

__all__ = ["load_app", "main"]


def load_app(spec: str | None) -> Conveyor:
    """Import what ``-A`` names (``proj``, ``proj.celery:app``, ``proj.celery.app``: see
    ``conveyor.locate``); in a Django project, the app ``conveyor.contrib.django``
    configured (see ``django_project_app``)."""
    spec = spec or os.environ.get("CONVEYOR_APP")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if not spec:
        found = django_project_app(None)
        if found is None:
            raise click.UsageError("which app? pass -A module:app (or set CONVEYOR_APP)")
        return found
    app, module_name = locate_app(spec)
    if app is not None:
        return _loaded(app)
    found = django_project_app(module_name)
    if found is not None:
        return found
    raise click.UsageError(f"no Conveyor app found in {module_name!r}: pass -A {module_name}:NAME")


def _loaded(app: Conveyor) -> Conveyor:
    django_project_app(None, app)  # an app defined in a Django project needs Django set up
    app.set_current()
    return app


def django_project_app(module_name: str | None, found: Conveyor | None = None) -> Conveyor | None:
    """Set Django up when DJANGO_SETTINGS_MODULE is set (or ``module_name`` is a Django
    project package) and return the app its integration configured; None otherwise."""
    try:
        from .contrib.django.project import project_app
    except ImportError:  # pragma: no cover - the contrib package ships with conveyor
        return None
    try:
        return project_app(module_name, found)
    except ConveyorError as exc:
        raise click.UsageError(str(exc)) from None


def _app(ctx: click.Context, local: str | None) -> Conveyor:
    return load_app(local or (ctx.obj or {}).get("app"))


app_option = click.option("-A", "--app", "app_spec", help="module:app to load.")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "FATAL")
loglevel_option = click.option(
    "-l",
    "--loglevel",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="INFO",
    show_default=True,
    callback=lambda ctx, param, value: value.upper(),
    help="Log level.",
)

CELERY_WORKER_FLAGS = {
    "without_gossip": "--without-gossip",
    "without_mingle": "--without-mingle",
    "without_heartbeat": "--without-heartbeat",
}
"""Celery worker flags for AMQP features Conveyor's workers do not have: accepted, noted."""


class Commands(click.Group):
    """The command group: an error of Conveyor's (an unreachable broker, a bad URL) ends
    any command with a one-line message and exit status 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConveyorError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-A", "--app", "app_spec", help="module:app to load (or CONVEYOR_APP).")
@click.version_option(package_name="conveyor-tasks")
@click.pass_context
def main(ctx: click.Context, app_spec: str | None) -> None:
    """Conveyor: a distributed task queue with Celery's API."""
    ctx.obj = {"app": app_spec}


@main.command()
@app_option
@click.option("-c", "--concurrency", type=int, help="Child processes or threads [CPU count].")
@click.option(
    "-Q", "--queues", help="Comma-separated queues to consume [task_queues, else default]."
)
@click.option("-n", "--hostname", help="Worker name [conveyor@HOST].")
@click.option(
    "-P", "--pool", type=click.Choice(["prefork", "threads", "solo"]), help="Pool [prefork]."
)
@loglevel_option
@click.option("--prefetch-multiplier", type=int, help="Messages each consumer reserves at once.")
@click.option("--max-tasks-per-child", type=int, help="Replace a child after this many tasks.")
@click.option("-B", "--beat", is_flag=True, help="Also run the periodic task scheduler.")
@click.option("--without-gossip", is_flag=True, help="Celery's; no effect here.")
@click.option("--without-mingle", is_flag=True, help="Celery's; no effect here.")
@click.option("--without-heartbeat", is_flag=True, help="Celery's; no effect here.")
@click.option(
    "-O",
    "--optimization",
    type=click.Choice(["default", "fair"]),
    help="Celery's; workers here always reserve fairly.",
)
@click.pass_context
def worker(
    ctx: click.Context,
    app_spec: str | None,
    concurrency: int | None,
    queues: str | None,
    hostname: str | None,
    pool: str | None,
    loglevel: str,
    prefetch_multiplier: int | None,
    max_tasks_per_child: int | None,
    beat: bool,
    without_gossip: bool,
    without_mingle: bool,
    without_heartbeat: bool,
    optimization: str | None,
) -> None:
    """Start a worker."""
    from .log import setup_logging
    from .worker import Worker

    app = _app(ctx, app_spec)
    app.import_includes()  # before logging: a setup_logging receiver may be connected there
    setup_logging(loglevel)
    _note_celery_flags(
        without_gossip=without_gossip,
        without_mingle=without_mingle,
        without_heartbeat=without_heartbeat,
        optimization=optimization,
    )
    queue_list = [q.strip() for q in queues.split(",") if q.strip()] if queues else None
    try:
        pool_runner = Worker(
            app, queue_list, concurrency, pool, hostname, prefetch_multiplier, max_tasks_per_child
        )
        with _beat_beside(app, beat):
            code = pool_runner.run()
    except ConveyorError as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


def _note_celery_flags(**flags: Any) -> None:
    given = [CELERY_WORKER_FLAGS[name] for name in CELERY_WORKER_FLAGS if flags.get(name)]
    if flags.get("optimization"):
        given.append(f"-O {flags['optimization']}")
    if given:
        logging.getLogger("conveyor.worker").info(
            "%s: Celery's, no effect here (workers share no gossip, mingle or AMQP "
            "heartbeats, and each reserves only what it can start)",
            " ".join(given),
        )


def _json_arg(value: str | None, what: str, kind: type) -> Any:
    if value is None:
        return kind()
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{what} must be JSON: {exc}") from None
    if not isinstance(parsed, kind):
        raise click.BadParameter(f"{what} must be a JSON {kind.__name__}")
    return parsed


def _show(value: Any) -> str:
    try:
        return json.dumps(value, default=str)
    except TypeError:
        return repr(value)


def _progress_line(meta: Any) -> str | None:
    if isinstance(meta, dict) and isinstance(meta.get("total"), int | float) and meta["total"]:
        current, total = meta.get("current", 0), meta["total"]
        width = 30
        filled = int(width * min(current / total, 1))
        return f"\r[{'#' * filled}{'.' * (width - filled)}] {current}/{total}"
    return None


@main.command()
@app_option
@click.argument("name")
@click.option("--args", "args_json", help="Positional arguments as a JSON list.")
@click.option("--kwargs", "kwargs_json", help="Keyword arguments as a JSON object.")
@click.option("-Q", "--queue", help="Queue to send to.")
@click.option("--countdown", type=float, help="Seconds to wait before running.")
@click.option("--priority", type=click.IntRange(0, 9), help="0-9, higher runs first.")
@click.option("--wait", is_flag=True, help="Wait for the result and print it.")
@click.option("--timeout", type=float, help="Seconds to wait with --wait.")
@click.pass_context
def call(
    ctx: click.Context,
    app_spec: str | None,
    name: str,
    args_json: str | None,
    kwargs_json: str | None,
    queue: str | None,
    countdown: float | None,
    priority: int | None,
    wait: bool,
    timeout: float | None,
) -> None:
    """Send task NAME; print its id (and with --wait, its result)."""
    app = _app(ctx, app_spec)
    options = {
        k: v
        for k, v in {"queue": queue, "countdown": countdown, "priority": priority}.items()
        if v is not None
    }
    args = _json_arg(args_json, "--args", list)
    kwargs = _json_arg(kwargs_json, "--kwargs", dict)
    try:
        result = app.send_task(name, args, kwargs, **options)
    except (ConveyorError, TypeError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result.id)
    if not wait:
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    shown = False
    while True:
        record = app.results.read(result.id)
        if record is not None and record.status in states.READY_STATES:
            break
        if record is not None:
            line = _progress_line(record.result)
            if line:
                click.echo(line, nl=False, err=True)
                shown = True
        if deadline is not None and time.monotonic() >= deadline:
            raise click.ClickException(f"no result after {timeout}s (state {result.state})")
        app.results.wait(result.id, 0.1)
    if shown:
        click.echo("", err=True)
    if record.status == states.SUCCESS:
        click.echo(_show(record.result))
        return
    click.echo(f"{record.status}: {record.result}", err=True)
    if record.traceback:
        click.echo(record.traceback, err=True)
    sys.exit(1)


@main.command()
@app_option
@click.argument("task_id")
@click.option("--wait", is_flag=True, help="Wait until the task is ready.")
@click.option("--timeout", type=float, help="Seconds to wait with --wait.")
@click.option("--traceback", "show_tb", is_flag=True, help="Print the traceback of a failure.")
@click.pass_context
def result(
    ctx: click.Context,
    app_spec: str | None,
    task_id: str,
    wait: bool,
    timeout: float | None,
    show_tb: bool,
) -> None:
    """Print the state and result of TASK_ID."""
    app = _app(ctx, app_spec)
    record = app.results.wait(task_id, timeout) if wait else app.results.read(task_id)
    if record is None:
        click.echo(f"{states.UNKNOWN}: no task {task_id} was sent, or its result expired")
        sys.exit(1)
    click.echo(f"{record.status}: {_show(record.result)}")
    if record.argsrepr is not None or record.kwargsrepr is not None:
        click.echo(f"args: {record.argsrepr}  kwargs: {record.kwargsrepr}")
    if show_tb and record.traceback:
        click.echo(record.traceback)


@main.command()
@app_option
@click.option("-Q", "--queue", help="Only this queue.")
@click.option("-f", "--force", is_flag=True, help="Do not ask.")
@click.pass_context
def purge(ctx: click.Context, app_spec: str | None, queue: str | None, force: bool) -> None:
    """Delete waiting messages (of one queue, or of all)."""
    app = _app(ctx, app_spec)
    what = f"queue {queue!r}" if queue else "every queue"
    if not force and not click.confirm(f"Delete all waiting messages in {what}?", default=False):
        return
    click.echo(f"purged {app.broker.purge(queue)} message(s) from {what}")


@main.command()
@app_option
@click.pass_context
def queues(ctx: click.Context, app_spec: str | None) -> None:
    """Show how many messages wait in each queue."""
    app = _app(ctx, app_spec)
    stats = app.broker.stats()
    click.echo(f"{'queue':<24}{'ready':>10}{'delayed':>10}{'reserved':>10}")
    for name, s in sorted(stats.items()):
        click.echo(f"{name:<24}{s.ready:>10}{s.delayed:>10}{s.reserved:>10}")


@main.group("dead-letters")
def dead_letters() -> None:
    """Messages that could not be processed, kept with the reason."""


@dead_letters.command("list")
@app_option
@click.option("--limit", default=100, show_default=True)
@click.pass_context
def dead_letters_list(ctx: click.Context, app_spec: str | None, limit: int) -> None:
    """List dead letters, oldest first."""
    app = _app(ctx.find_root(), app_spec)
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
    app = _app(ctx.find_root(), app_spec)
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
    app = _app(ctx.find_root(), app_spec)
    count = app.broker.purge_dead_letters(None if all_ else list(ids))
    click.echo(f"deleted {count} dead letter(s)")


@main.command()
@click.option("-c", "--concurrency", default=2, show_default=True, help="Worker processes.")
def demo(concurrency: int) -> None:
    """Run a real worker on a temporary embedded broker and send it example tasks."""
    from .demo import run_demo

    sys.exit(run_demo(concurrency))


# -- periodic tasks: `conveyor beat` and `conveyor worker --beat` ------------------------


@contextmanager
def _beat_beside(app: Conveyor, enabled: bool) -> Iterator[None]:
    """With ``--beat``, a scheduler thread in this process (the prefork supervisor, or the
    threads/solo worker) for as long as the worker runs."""
    if not enabled:
        yield
        return
    from .beat import BeatThread

    app.import_includes()  # entries declared in included modules must be synced too
    with BeatThread(app):
        yield


def _beat_open(ctx: click.Context, app_spec: str | None) -> tuple[Conveyor, ScheduleStore]:
    from .beat import resolve_store

    app = _app(ctx, app_spec)
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


@main.group("beat", invoke_without_command=True)
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
    from .beat import Scheduler, serve
    from .log import setup_logging

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
    from .beat.admin import format_entries

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
    from .beat import run_now

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
    from .beat.admin import check_task_registered, cli_entry

    args = _json_arg(args_json, "--args", list)
    kwargs = _json_arg(kwargs_json, "--kwargs", dict)
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


if __name__ == "__main__":  # pragma: no cover
    main()
