"""``conveyor inspect active|reserved|scheduled|stats|registered|ping|active_queues|revoked|
conf|query_task``: Celery's inspect commands, answered from the worker registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..inspection import SCHEDULED_LIMIT, Inspect
from .common import app_option, ctx_app
from .output import destination_option, echo_json, echo_table, json_option, when

__all__ = ["inspect"]

Rows = Callable[[dict[str, Any]], tuple[list[str], list[list[Any]]]]


@click.group()
def inspect() -> None:
    """What running workers do, read from the registry (no round trip to the workers)."""


def _reply(
    ctx: click.Context,
    app_spec: str | None,
    destination: list[str] | None,
    as_json: bool,
    ask: Callable[[Inspect], dict[str, Any] | None],
    rows: Rows,
) -> None:
    app = ctx_app(ctx.find_root(), app_spec)
    reply = ask(app.control.inspect(destination))
    if reply is None:
        click.echo(
            "no workers online" + (f" among {', '.join(destination)}" if destination else ""),
            err=True,
        )
        ctx.exit(1)
    if as_json:
        echo_json(reply)
        return
    headers, table = rows(reply)
    if table:
        echo_table(headers, table)
    else:
        click.echo(f"nothing {ctx.info_name} on {len(reply)} worker(s)", err=True)


timeout_option = click.option(
    "-t", "--timeout", type=float, help="Accepted for Celery's sake: the registry answers at once."
)


def _command(
    name: str, ask: Callable[[Inspect], dict[str, Any] | None], rows: Rows, doc: str
) -> None:
    @inspect.command(name)
    @app_option
    @destination_option
    @json_option
    @timeout_option
    @click.pass_context
    def command(
        ctx: click.Context,
        app_spec: str | None,
        destination: list[str] | None,
        as_json: bool,
        timeout: float | None,
    ) -> None:
        _reply(ctx, app_spec, destination, as_json, ask, rows)

    command.help = doc


def _requests(reply: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    rows = [
        [
            worker,
            r["id"],
            r["name"] or "",
            r["args"] or "",
            r["kwargs"] or "",
            when(r["time_start"]),
            r["worker_pid"] or "",
        ]
        for worker, requests in sorted(reply.items())
        for r in requests
    ]
    return ["worker", "id", "name", "args", "kwargs", "started", "pid"], rows


def _reserved(reply: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    rows = [
        [
            worker,
            r["id"],
            r["name"] or "",
            r["delivery_info"]["routing_key"],
            r["delivery_info"]["redelivered"],
            r["args"] or "",
            r["kwargs"] or "",
        ]
        for worker, requests in sorted(reply.items())
        for r in requests
    ]
    return ["worker", "id", "name", "queue", "redelivered", "args", "kwargs"], rows


def _scheduled(reply: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    rows = [
        [
            worker,
            s["eta"],
            s["request"]["id"],
            s["request"]["name"] or "",
            s["request"]["delivery_info"]["routing_key"],
            s["priority"],
            s["request"]["args"] or "",
            s["request"]["kwargs"] or "",
        ]
        for worker, scheduled in sorted(reply.items())
        for s in scheduled
    ]
    return ["worker", "eta", "id", "name", "queue", "priority", "args", "kwargs"], rows


def _per_worker(column: str, key: Callable[[Any], Any] = lambda v: v) -> Rows:
    def rows(reply: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
        table = [[worker, key(v)] for worker, values in sorted(reply.items()) for v in values]
        return ["worker", column], table

    return rows


def _ping(reply: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    return ["worker", "reply"], [[w, r.get("ok", r)] for w, r in sorted(reply.items())]


def _stats(reply: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    rows = []
    for worker, s in sorted(reply.items()):
        pool = s["pool"]
        rows.append(
            [
                worker,
                s["pid"],
                pool["implementation"],
                pool["max-concurrency"],
                " ".join(str(p) for p in pool["processes"]),
                s["processed"],
                s["failed"],
                s["uptime"],
            ]
        )
    headers = ["worker", "pid", "pool", "concurrency", "processes", "processed", "failed"]
    return [*headers, "uptime"], rows


def _conf(reply: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    rows = [
        [worker, name, value]
        for worker, conf in sorted(reply.items())
        for name, value in sorted(conf.items())
        if value not in (None, [], {}, "")
    ]
    return ["worker", "setting", "value"], rows


_command("active", lambda i: i.active(), _requests, "Tasks each worker runs now.")
_command("reserved", lambda i: i.reserved(), _reserved, "Messages workers hold, not started.")
_command(
    "scheduled",
    lambda i: i.scheduled(),
    _scheduled,
    "Delayed messages (eta, countdown, retry delay) of the workers' queues, soonest first "
    f"(at most {SCHEDULED_LIMIT}), each under the first worker by name that consumes its queue.",
)
_command("stats", lambda i: i.stats(), _stats, "Pool, processes and counts of each worker.")
_command("registered", lambda i: i.registered(), _per_worker("task"), "Tasks each worker knows.")
_command("ping", lambda i: i.ping(), _ping, "Workers whose heartbeat is current.")
_command(
    "active_queues",
    lambda i: i.active_queues(),
    _per_worker("queue", lambda q: q["name"]),
    "Queues each worker consumes.",
)
_command("revoked", lambda i: i.revoked(), _per_worker("id"), "Revoked task ids.")
_command(
    "conf", lambda i: i.conf(), _conf, "Each worker's settings (set ones only, unless --json)."
)


@inspect.command("query_task")
@app_option
@click.argument("ids", nargs=-1, required=True)
@destination_option
@json_option
@timeout_option
@click.pass_context
def query_task(
    ctx: click.Context,
    app_spec: str | None,
    ids: tuple[str, ...],
    destination: list[str] | None,
    as_json: bool,
    timeout: float | None,
) -> None:
    """Where these task ids are: running (active) or held (reserved), and on which worker."""

    def rows(reply: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
        table = [
            [worker, task_id, state, request.get("name") or ""]
            for worker, found in sorted(reply.items())
            for task_id, (state, request) in sorted(found.items())
        ]
        return ["worker", "id", "state", "name"], table

    _reply(ctx, app_spec, destination, as_json, lambda i: i.query_task(*ids), rows)
