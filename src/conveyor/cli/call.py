"""``conveyor call`` and ``conveyor result``: send a task, read its outcome."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from .. import states
from ..exceptions import ConveyorError
from .common import app_option, ctx_app, json_arg, show_value

__all__ = ["call", "result"]


def _progress_line(meta: Any) -> str | None:
    if isinstance(meta, dict) and isinstance(meta.get("total"), int | float) and meta["total"]:
        current, total = meta.get("current", 0), meta["total"]
        width = 30
        filled = int(width * min(current / total, 1))
        return f"\r[{'#' * filled}{'.' * (width - filled)}] {current}/{total}"
    return None


@click.command()
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
    app = ctx_app(ctx, app_spec)
    options = {
        k: v
        for k, v in {"queue": queue, "countdown": countdown, "priority": priority}.items()
        if v is not None
    }
    args = json_arg(args_json, "--args", list)
    kwargs = json_arg(kwargs_json, "--kwargs", dict)
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
        click.echo(show_value(record.result))
        return
    click.echo(f"{record.status}: {record.result}", err=True)
    if record.traceback:
        click.echo(record.traceback, err=True)
    sys.exit(1)


@click.command()
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
    app = ctx_app(ctx, app_spec)
    record = app.results.wait(task_id, timeout) if wait else app.results.read(task_id)
    if record is None:
        click.echo(f"{states.UNKNOWN}: no task {task_id} was sent, or its result expired")
        sys.exit(1)
    click.echo(f"{record.status}: {show_value(record.result)}")
    if record.argsrepr is not None or record.kwargsrepr is not None:
        click.echo(f"args: {record.argsrepr}  kwargs: {record.kwargsrepr}")
    if show_tb and record.traceback:
        click.echo(record.traceback)
