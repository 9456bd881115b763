"""``conveyor control revoke|rate-limit|time-limit|add-consumer|cancel-consumer|pool-grow|
pool-shrink|shutdown|broadcast``: steer running workers (through their mailboxes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..app import Conveyor
from .common import app_option, ctx_app, json_arg
from .output import destination_option, echo_json, echo_table, json_option

__all__ = ["control"]


@click.group()
def control() -> None:
    """Change what running workers do; they answer within a heartbeat (a second)."""


timeout_option = click.option(
    "-t", "--timeout", default=1.0, show_default=True, help="Seconds to wait for replies."
)


def _replies(
    ctx: click.Context,
    app_spec: str | None,
    as_json: bool,
    send: Callable[[Conveyor], list[dict[str, Any]] | None],
) -> None:
    """Send a command, print each worker's reply; exit 1 on no reply or any error."""
    replies = send(ctx_app(ctx.find_root(), app_spec)) or []
    flat = [(worker, answer) for reply in replies for worker, answer in reply.items()]
    if as_json:
        echo_json({worker: answer for worker, answer in flat})
    elif flat:
        rows = []
        for worker, answer in sorted(flat):
            if isinstance(answer, dict) and ("ok" in answer or "error" in answer):
                rows.append(
                    [
                        worker,
                        "ok" if "ok" in answer else "error",
                        answer.get("ok") or answer.get("error"),
                    ]
                )
            else:
                rows.append([worker, "ok", answer])
        echo_table(["worker", "status", "reply"], rows)
    if not flat:
        click.echo("no worker replied", err=True)
        ctx.exit(1)
    if any(isinstance(answer, dict) and "error" in answer for _, answer in flat):
        ctx.exit(1)


@control.command()
@app_option
@click.argument("ids", nargs=-1, required=True)
@click.option("--terminate", is_flag=True, help="Also stop the task where it runs now.")
@click.option("-s", "--signal", "signal_name", default="SIGTERM", show_default=True)
@click.pass_context
def revoke(
    ctx: click.Context,
    app_spec: str | None,
    ids: tuple[str, ...],
    terminate: bool,
    signal_name: str,
) -> None:
    """Revoke tasks: they will not start on any worker (kept in the coordinator)."""
    app = ctx_app(ctx.find_root(), app_spec)
    app.control.revoke(list(ids), terminate=terminate, signal=signal_name)
    for task_id in ids:
        click.echo(f"revoked {task_id}" + (" (terminate)" if terminate else ""))


@control.command("rate-limit")
@app_option
@click.argument("task_name")
@click.argument("rate")
@click.pass_context
def rate_limit(ctx: click.Context, app_spec: str | None, task_name: str, rate: str) -> None:
    """Change a task's rate limit on every worker ("10/s", "100/m"; "none" for its own)."""
    app = ctx_app(ctx.find_root(), app_spec)
    app.control.rate_limit(task_name, None if rate.lower() == "none" else rate)
    click.echo(f"rate limit of {task_name}: {rate}")


@control.command("time-limit")
@app_option
@click.argument("task_name")
@click.argument("soft", type=float)
@click.argument("hard", type=float, required=False)
@destination_option
@timeout_option
@json_option
@click.pass_context
def time_limit(
    ctx: click.Context,
    app_spec: str | None,
    task_name: str,
    soft: float,
    hard: float | None,
    destination: list[str] | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Change a task's soft (and hard) time limit in seconds on running workers."""
    _replies(
        ctx,
        app_spec,
        as_json,
        lambda app: app.control.time_limit(
            task_name, soft, hard, destination=destination, reply=True, timeout=timeout
        ),
    )


def _one_argument_command(
    name: str, method: str, doc: str, argument: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> None:
    """``conveyor control NAME ARG``: ``app.control.METHOD(ARG)`` on workers, replies shown."""

    @control.command(name)
    @app_option
    @argument
    @destination_option
    @timeout_option
    @json_option
    @click.pass_context
    def command(
        ctx: click.Context,
        /,
        app_spec: str | None,
        destination: list[str] | None,
        timeout: float,
        as_json: bool,
        **given: Any,
    ) -> None:
        (value,) = given.values()
        _replies(
            ctx,
            app_spec,
            as_json,
            lambda app: getattr(app.control, method)(
                value, destination=destination, reply=True, timeout=timeout
            ),
        )

    command.help = doc


QUEUE = click.argument("queue")
SIZE = click.argument("n", type=int, default=1)


_one_argument_command("add-consumer", "add_consumer", "Make workers consume QUEUE too.", QUEUE)
_one_argument_command(
    "cancel-consumer", "cancel_consumer", "Make workers stop consuming QUEUE.", QUEUE
)
_one_argument_command("pool-grow", "pool_grow", "Start N more child processes (prefork).", SIZE)
_one_argument_command(
    "pool-shrink", "pool_shrink", "Stop N child processes, each after its task.", SIZE
)


@control.command()
@app_option
@destination_option
@timeout_option
@json_option
@click.pass_context
def shutdown(
    ctx: click.Context,
    app_spec: str | None,
    destination: list[str] | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Warm shutdown: workers finish running tasks, hand back the rest, and exit."""
    _replies(
        ctx,
        app_spec,
        as_json,
        lambda app: app.control.shutdown(destination=destination, reply=True, timeout=timeout),
    )


@control.command()
@app_option
@click.argument("command")
@click.option("--args", "arguments", help="Keyword arguments as a JSON object.")
@destination_option
@timeout_option
@json_option
@click.pass_context
def broadcast(
    ctx: click.Context,
    app_spec: str | None,
    command: str,
    arguments: str | None,
    destination: list[str] | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Send any command (your own ``@control_command`` ones too) and print the replies."""
    kwargs = json_arg(arguments, "--args", dict)
    _replies(
        ctx,
        app_spec,
        as_json,
        lambda app: app.control.broadcast(
            command, kwargs, destination=destination, reply=True, timeout=timeout
        ),
    )
