"""``conveyor events`` (the event stream, live) and ``conveyor top`` (the cluster, live)."""

from __future__ import annotations

import json
import sys
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import click

from ..app import Conveyor
from ..events import (
    AnyEvent,
    TaskEvent,
    TaskFailed,
    TaskRetried,
    TaskSucceeded,
    WorkerEvent,
    WorkerOffline,
)
from .common import app_option, ctx_app

__all__ = ["events", "format_table", "line_of", "top", "when"]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Lines of a table whose columns are as wide as their widest cell."""
    cells = [[str(h) for h in headers]]
    cells += [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]


def when(timestamp: float | None) -> str:
    """A Unix time as local ISO time to the millisecond ("" for None)."""
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp).isoformat(sep=" ", timespec="milliseconds")


def line_of(event: AnyEvent) -> str:
    """One line per event: time, kind, task id and name or worker, then what matters."""
    head = f"{when(event.timestamp)}  {event.type:<16}  "
    if isinstance(event, TaskEvent):
        text = f"{head}{event.uuid}  {event.name or ''}  {event.hostname}"
        if isinstance(event, TaskSucceeded):
            text += f"  {event.runtime:.4f}s  -> {event.result}"
        elif isinstance(event, TaskFailed | TaskRetried):
            text += f"  {event.exception}"
        return text
    return f"{head}{event.hostname}  pid {event.pid}"


@click.command()
@app_option
@click.option("--since", help="Start this long ago (90s, 15m, 1h, 2d); default: from now.")
@click.option("--all", "from_start", is_flag=True, help="Start from the oldest event kept.")
@click.option(
    "--follow/--no-follow", default=True, show_default=True, help="Keep waiting for more."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event.")
@click.option("--task", "task_id", help="Only this task's events.")
@click.pass_context
def events(
    ctx: click.Context,
    app_spec: str | None,
    since: str | None,
    from_start: bool,
    follow: bool,
    as_json: bool,
    task_id: str | None,
) -> None:
    """Print the event stream, one line per event (Ctrl-C stops).

    With --follow (the default) and neither --since nor --all, only new events show.
    """
    app = ctx_app(ctx, app_spec)
    start: float | str | None = since
    if since is None and not from_start and follow:
        start = app.clock()
    if task_id is not None:
        stream: list[AnyEvent] = app.events.of_task(task_id)
        for event in stream:
            _echo(event, as_json)
        return
    try:
        for event in app.events.tail(since=start, follow=follow):
            _echo(event, as_json)
    except KeyboardInterrupt:
        return


def _echo(event: AnyEvent, as_json: bool) -> None:
    click.echo(json.dumps(event.to_dict(), default=str) if as_json else line_of(event))


# -- top ----------------------------------------------------------------------------------

WINDOW = 10.0
"""Seconds over which top counts tasks per second."""


@dataclass
class _Worker:
    hostname: str
    seen: float
    freq: float
    online: bool = True
    active: int = 0
    done: int = 0
    failed: int = 0


@dataclass
class TopState:
    """What ``conveyor top`` knows, built from the events it read."""

    workers: dict[str, _Worker] = field(default_factory=dict)
    finished: deque[tuple[float, bool]] = field(default_factory=deque)
    """(time, failed) of each task ended within the window."""
    failures: deque[TaskFailed] = field(default_factory=lambda: deque(maxlen=5))
    cursor: str | None = None

    def add(self, event: AnyEvent) -> None:
        self.cursor = event.id or self.cursor
        if isinstance(event, WorkerEvent):
            worker = self.workers.setdefault(
                event.hostname, _Worker(event.hostname, event.timestamp, event.freq)
            )
            worker.seen, worker.freq = event.timestamp, event.freq
            worker.online = not isinstance(event, WorkerOffline)
            worker.active = getattr(event, "active", worker.active)
            return
        if isinstance(event, TaskSucceeded | TaskFailed):
            failed = isinstance(event, TaskFailed)
            self.finished.append((event.timestamp, failed))
            doer = self.workers.get(event.hostname)
            if doer is not None:
                doer.done += 1
                doer.failed += failed
            if isinstance(event, TaskFailed):
                self.failures.append(event)

    def rates(self, now: float) -> tuple[float, float]:
        """Tasks ended, and tasks failed, per second over the last WINDOW seconds."""
        while self.finished and self.finished[0][0] < now - WINDOW:
            self.finished.popleft()
        failed = sum(1 for _, f in self.finished if f)
        return len(self.finished) / WINDOW, failed / WINDOW


def frame(app: Conveyor, state: TopState, now: float) -> list[str]:
    """The lines of one view of the cluster."""
    per_second, failing = state.rates(now)
    lines = [
        f"conveyor top  {when(now)}   tasks/s {per_second:.1f}   failures/s {failing:.1f}"
        f"   (last {WINDOW:.0f}s)",
        "",
    ]
    rows = []
    for worker in sorted(state.workers.values(), key=lambda w: w.hostname):
        if not worker.online:
            status = "offline"
        elif now - worker.seen > 3 * max(worker.freq, 1.0):
            status = "lost?"
        else:
            status = "online"
        rows.append((worker.hostname, status, worker.active, worker.done, worker.failed))
    lines += format_table(("worker", "status", "active", "done", "failed"), rows)
    lines.append("")
    stats = app.broker.stats()
    queue_rows = [(name, s.ready, s.delayed, s.reserved) for name, s in sorted(stats.items())]
    lines += format_table(("queue", "ready", "delayed", "reserved"), queue_rows)
    if state.failures:
        lines += ["", "recent failures:"]
        lines += [
            f"  {when(f.timestamp)}  {f.name}[{f.uuid}]  {f.exception}"
            for f in reversed(state.failures)
        ]
    return lines


@click.command()
@app_option
@click.option("--interval", default=1.0, show_default=True, help="Seconds between redraws.")
@click.option("--once", is_flag=True, help="Print one view and exit (the default when piped).")
@click.pass_context
def top(ctx: click.Context, app_spec: str | None, interval: float, once: bool) -> None:
    """A live view of workers, queue depths, tasks per second and failures.

    Redraws in place in a terminal (plain ANSI); piped, it prints one view without escapes.
    """
    app = ctx_app(ctx, app_spec)
    live = sys.stdout.isatty() and not once
    state = TopState()
    for event in app.events.tail(since=app.clock() - 600):  # who is around, recent rates
        state.add(event)
    stop = threading.Event()
    try:
        while True:
            text = "\n".join(frame(app, state, app.clock()))
            if live:
                click.echo("\x1b[H\x1b[2J" + text, nl=True)
            else:
                click.echo(text)
                return
            if stop.wait(interval):
                return
            for event in app.events.tail(after=state.cursor, since=app.clock() - interval):
                state.add(event)
    except KeyboardInterrupt:
        return
