"""``conveyor tasks list`` and ``conveyor tasks show``: task history from the result backend
and the event stream."""

from __future__ import annotations

import json
from typing import Any

import click

from ..app import Conveyor
from ..events import AnyEvent, TaskReceived, TaskSent, parse_age
from ..records import TaskRecord
from .common import app_option, ctx_app
from .events import format_table, line_of, when

__all__ = ["task_detail", "tasks"]


@click.group()
def tasks() -> None:
    """Task history: the records the result backend keeps, and their events."""


@tasks.command("list")
@app_option
@click.option("--state", help="Only tasks in this state (SUCCESS, FAILURE, RETRY, ...).")
@click.option("--name", help="Only tasks of this name.")
@click.option("--since", help="Only tasks that ended this long ago or later (90s, 15m, 1h, 2d).")
@click.option("--limit", default=50, show_default=True, help="Tasks per page.")
@click.option("--page", default=1, show_default=True, help="Which page (1 is the newest).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per task.")
@click.pass_context
def tasks_list(
    ctx: click.Context,
    app_spec: str | None,
    state: str | None,
    name: str | None,
    since: str | None,
    limit: int,
    page: int,
    as_json: bool,
) -> None:
    """List tasks from the result backend, newest first, a page at a time."""
    app = ctx_app(ctx.find_root(), app_spec)
    start = None
    if since is not None:
        try:
            start = app.clock() - parse_age(since)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--since") from None
    if limit < 1 or page < 1:
        raise click.BadParameter("--limit and --page start at 1")
    found = app.results.list(
        state=state.upper() if state else None,
        name=name,
        since=start,
        limit=limit,
        offset=(page - 1) * limit,
    )
    if as_json:
        for task_id, record in found:
            click.echo(json.dumps({"id": task_id, **_record_dict(record)}, default=str))
        return
    rows = [
        (
            task_id,
            record.status,
            record.task or "",
            when(record.date_done),
            record.worker or "",
            record.retries,
            _summary(record),
        )
        for task_id, record in found
    ]
    for line in format_table(("id", "state", "name", "done", "worker", "retries", "info"), rows):
        click.echo(line)
    click.echo(f"page {page}: {len(found)} task(s)", err=True)


@tasks.command("show")
@app_option
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print the detail as one JSON object.")
@click.pass_context
def tasks_show(ctx: click.Context, app_spec: str | None, task_id: str, as_json: bool) -> None:
    """A task's arguments, result or traceback, timeline, retries, parent and children."""
    app = ctx_app(ctx.find_root(), app_spec)
    detail = task_detail(app, task_id)
    if detail is None:
        raise click.ClickException(
            f"no task {task_id}: no record in the result backend and no event in the stream "
            "(a record lives result_expires seconds; the stream keeps events_max_length)"
        )
    if as_json:
        click.echo(json.dumps(detail, default=str, indent=2))
        return
    record: dict[str, Any] = detail["record"] or {}
    lines = [
        ("id", task_id),
        ("name", detail["name"] or ""),
        ("state", record.get("status", detail["state_from_events"] or "")),
        ("worker", record.get("worker") or ""),
        ("args", detail["args"] if detail["args"] is not None else ""),
        ("kwargs", detail["kwargs"] if detail["kwargs"] is not None else ""),
        ("retries", detail["retries"]),
        ("parent", detail["parent_id"] or ""),
        ("root", detail["root_id"] or ""),
        ("children", ", ".join(detail["children"])),
        ("done", when(record.get("date_done"))),
    ]
    if record.get("status") == "SUCCESS":
        lines.append(("result", json.dumps(record.get("result"), default=str)))
    elif record.get("result") is not None:
        lines.append(("info", json.dumps(record.get("result"), default=str)))
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        click.echo(f"{label:<{width}}  {value}")
    if record.get("traceback"):
        click.echo("\ntraceback:\n" + str(record["traceback"]).rstrip())
    click.echo("\ntimeline:")
    if not detail["events"]:
        click.echo("  (no events kept for this task)")
    for event in detail["timeline"]:
        click.echo("  " + line_of(event))


def task_detail(app: Conveyor, task_id: str) -> dict[str, Any] | None:
    """What ``tasks show`` prints (and the dashboard may show): the task's record, its
    events in time order, and what they tell (arguments, lineage, children, retries)."""
    record = app.results.read(task_id)
    timeline = app.events.of_task(task_id)
    if record is None and not timeline:
        return None
    sent = [e for e in timeline if isinstance(e, TaskReceived | TaskSent)]
    first = sent[0] if sent else None
    args = first.args if first is not None else None
    kwargs = first.kwargs if first is not None else None
    if record is not None and record.argsrepr is not None:
        args, kwargs = record.argsrepr, record.kwargsrepr
    name = record.task if record is not None and record.task else None
    if name is None and timeline:
        name = getattr(timeline[0], "name", None)
    retries = record.retries if record is not None else 0
    retried = sum(1 for e in timeline if e.type == "task-retried")
    return {
        "id": task_id,
        "name": name,
        "record": _record_dict(record) if record is not None else None,
        "state_from_events": _state_of(timeline),
        "args": args,
        "kwargs": kwargs,
        "retries": max(retries, retried),
        "parent_id": (first.parent_id if first is not None else None)
        or (record.parent_id if record is not None else None),
        "root_id": first.root_id if first is not None else None,
        "children": _children(app, task_id, record),
        "events": [e.to_dict() for e in timeline],
        "timeline": timeline,
    }


def _children(app: Conveyor, task_id: str, record: TaskRecord | None) -> list[str]:
    """Tasks whose parent is this one: named in the record, or received (or sent) with it
    as their parent."""
    found = [_child_id(c) for c in record.children] if record is not None else []
    for event in app.events.children_of(task_id):
        if event.uuid not in found:
            found.append(event.uuid)
    return found


def _child_id(child: Any) -> str:
    """A stored child's id: its ``as_tuple()`` data's first id (or a bare id)."""
    return child if isinstance(child, str) else str(child[0][0])


def _state_of(timeline: list[AnyEvent]) -> str | None:
    states = {
        "task-sent": "PENDING",
        "task-received": "RECEIVED",
        "task-started": "STARTED",
        "task-succeeded": "SUCCESS",
        "task-failed": "FAILURE",
        "task-retried": "RETRY",
        "task-revoked": "REVOKED",
        "task-rejected": "REJECTED",
    }
    return states.get(timeline[-1].type) if timeline else None


def _record_dict(record: TaskRecord) -> dict[str, Any]:
    import msgspec

    data: dict[str, Any] = msgspec.to_builtins(record)
    return data


def _summary(record: TaskRecord) -> str:
    if record.exception is not None:
        text = f"{record.exception.type}: {record.exception.message}"
    elif record.result is None:
        text = ""
    else:
        text = json.dumps(record.result, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
