"""What the pages show, read from the app's broker, result backend and schedule store.

Plain data in, plain data out: the pages render it, the tests read it. Nothing here keeps
state between requests, so any number of dashboards can watch one cluster.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .. import states
from ..beat.schedules import get_zone
from ..events import TaskReceived, TaskSent, decode_event
from ..exceptions import ConveyorError
from ..registry import read_workers
from ..serialization import decode_message
from .masking import Masker

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..beat.store import ScheduleStore

__all__ = [
    "DeadLetterView",
    "FlowNode",
    "PeriodicView",
    "Queries",
    "QueueView",
    "TaskRow",
    "TaskView",
    "TimelineRow",
    "WorkerView",
]


@dataclass(frozen=True)
class QueueView:
    name: str
    ready: int
    delayed: int
    reserved: int


@dataclass(frozen=True)
class DeadLetterView:
    id: str
    queue: str
    task: str
    reason: str
    failed_at: datetime
    resends: int
    args: str
    kwargs: str
    body: str


@dataclass(frozen=True)
class PeriodicView:
    name: str
    task: str
    schedule: str
    enabled: bool
    last_run: datetime | None
    next_run: datetime | None
    runs: int
    source: str


@dataclass(frozen=True)
class TaskView:
    id: str
    state: str
    task: str | None
    result: str
    traceback: str | None
    args: str | None
    kwargs: str | None
    worker: str | None
    retries: int
    date_done: datetime | None
    parent_id: str | None
    children: list[str] = field(default_factory=list)
    ready: bool = False
    can_retry: bool = False


@dataclass(frozen=True)
class TaskRow:
    id: str
    task: str
    state: str
    worker: str
    queue: str
    done: datetime | None
    retries: int


@dataclass(frozen=True)
class TimelineRow:
    when: datetime
    kind: str
    hostname: str
    detail: str


@dataclass
class FlowNode:
    """One task of a workflow and the tasks it led to, for the task page's graph."""

    id: str
    name: str
    state: str
    children: list[FlowNode] = field(default_factory=list)
    current: bool = False


@dataclass(frozen=True)
class RunningView:
    id: str
    name: str
    args: str
    started: datetime | None
    child: int | None


@dataclass(frozen=True)
class WorkerView:
    name: str
    status: str
    pool: str
    concurrency: int
    queues: list[str]
    children: list[int]
    started: datetime | None
    uptime: str
    load: str
    processed: int
    failed: int
    version: str
    running: list[RunningView]
    reserved: int


def _uptime(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"


def _json(value: Any) -> str:
    try:
        return json.dumps(value, default=repr, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _when(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


class Queries:
    """Reads for the pages of one app."""

    def __init__(self, app: Conveyor, masker: Masker, store: Callable[[], ScheduleStore]):
        self.app = app
        self.masker = masker
        self._store = store

    def function_of(self, task: str | None) -> Callable[..., Any] | None:
        found = self.app.tasks.get(task) if task else None
        return getattr(found, "run", None) if found is not None else None

    # -- workers ------------------------------------------------------------------------

    def workers(self) -> list[WorkerView]:
        now = self.app.clock()
        views = []
        for entry in read_workers(self.app.coordinator, now):
            r = entry.record
            running = []
            for item in r.get("active") or []:
                name = item.get("name")
                args = f"{item.get('args', '')} {item.get('kwargs', '')}".strip()
                running.append(
                    RunningView(
                        id=str(item.get("id", "")),
                        name=str(name or "?"),
                        args=self.masker.text(name, args) or "",
                        started=_when(item.get("time_start")),
                        child=item.get("worker_pid"),
                    )
                )
            started = r.get("started")
            views.append(
                WorkerView(
                    name=entry.name,
                    status=entry.status,
                    pool=str(r.get("pool", "?")),
                    concurrency=int(r.get("concurrency") or 0),
                    queues=list(r.get("queues") or []),
                    children=list(r.get("children") or []),
                    started=_when(started),
                    uptime=_uptime(now - float(started)) if started else "?",
                    load=" ".join(f"{x:.2f}" for x in r.get("load") or []),
                    processed=int(r.get("processed") or 0),
                    failed=int(r.get("failed") or 0),
                    version=str(r.get("version", "")),
                    running=running,
                    reserved=len(r.get("reserved") or []),
                )
            )
        return views

    # -- queues -------------------------------------------------------------------------

    def queues(self) -> list[QueueView]:
        return [
            QueueView(name, s.ready, s.delayed, s.reserved)
            for name, s in sorted(self.app.broker.stats().items())
        ]

    # -- dead letters -------------------------------------------------------------------

    def dead_letters(self, limit: int = 200) -> list[DeadLetterView]:
        return [self._letter(letter) for letter in self.app.broker.dead_letters(limit)]

    def dead_letter(self, letter_id: str) -> DeadLetterView | None:
        for letter in self.app.broker.dead_letters(10_000):
            if letter.id == letter_id:
                return self._letter(letter)
        return None

    def _letter(self, letter: Any) -> DeadLetterView:
        task, args, kwargs = "?", "", ""
        try:
            message = decode_message(letter.body)
        except ConveyorError as exc:
            body = f"(unreadable: {exc})"
        else:
            task = message.task
            if message.payload is not None:
                args = kwargs = f"(arguments serialized as {message.content_type}: not shown)"
            else:
                shown_args, shown_kwargs = self.masker.arguments(
                    task, message.args, message.kwargs, self.function_of(task)
                )
                args, kwargs = _json(shown_args), _json(shown_kwargs)
            body = _json(
                {
                    "id": message.id,
                    "task": task,
                    "queue": message.queue,
                    "priority": message.priority,
                    "retries": message.retries,
                    "eta": message.eta,
                    "parent_id": message.parent_id,
                    "root_id": message.root_id,
                    "headers": message.headers,
                }
            )
        return DeadLetterView(
            id=letter.id,
            queue=letter.queue,
            task=task,
            reason=letter.reason,
            failed_at=datetime.fromtimestamp(letter.failed_at, UTC),
            resends=letter.resends,
            args=args,
            kwargs=kwargs,
            body=body,
        )

    # -- tasks --------------------------------------------------------------------------

    def task(self, task_id: str) -> TaskView | None:
        record = self.app.results.read(task_id)
        if record is None:
            return None
        name = record.task
        if record.status == states.SUCCESS:
            result = _json(self.masker.value(name, record.result))
        elif record.exception is not None:
            result = f"{record.exception.type}: {record.exception.message}"
        else:
            result = _json(self.masker.value(name, record.result))
        args, kwargs = (
            self.masker.text(name, record.argsrepr),
            self.masker.text(name, record.kwargsrepr),
        )
        if record.args is not None or record.kwargs is not None:
            shown_args, shown_kwargs = self.masker.arguments(
                name, record.args or [], record.kwargs or {}, self.function_of(name)
            )
            args, kwargs = _json(shown_args), _json(shown_kwargs)
        return TaskView(
            id=task_id,
            state=record.status,
            task=name,
            result=result,
            traceback=record.traceback,
            args=args,
            kwargs=kwargs,
            worker=record.worker,
            retries=record.retries,
            date_done=_when(record.date_done),
            parent_id=record.parent_id,
            children=list(record.children),
            ready=record.status in states.READY_STATES,
            can_retry=record.status == states.FAILURE
            and name is not None
            and (record.args is not None or record.kwargs is not None),
        )

    def task_rows(
        self,
        state: str | None,
        name: str | None,
        worker: str | None,
        since: float | None,
        page: int,
        queue: str | None = None,
        per_page: int = 50,
    ) -> tuple[list[TaskRow], bool]:
        """One page of stored tasks, newest first, and whether another page follows: the
        store filters and pages, so a page costs the same among 100,000 records."""
        found = self.app.results.list(
            state=state,
            name=name,
            since=since,
            limit=per_page + 1,
            offset=page * per_page,
            worker=worker,
            queue=queue,
        )
        rows = [
            TaskRow(
                tid,
                r.task or "?",
                r.status,
                r.worker or "",
                r.queue or "",
                _when(r.date_done),
                r.retries,
            )
            for tid, r in found[:per_page]
        ]
        return rows, len(found) > per_page

    def retry(self, task_id: str) -> str:
        """Send a failed task again, as a new task with the same name and arguments."""
        record = self.app.results.read(task_id)
        if record is None or record.status != states.FAILURE or record.task is None:
            raise ValueError(f"task {task_id} has not failed")
        if record.args is None and record.kwargs is None:
            raise ValueError(f"task {task_id} kept no arguments to send again")
        return self.app.send_task(record.task, record.args or [], record.kwargs or {}).id

    def timeline(self, task_id: str, name: str | None) -> list[TimelineRow]:
        rows = []
        for event in self.app.events.of_task(task_id):
            detail = ""
            for attr in ("exception", "reason", "result", "queue"):
                value = getattr(event, attr, None)
                if value:
                    shown = self.masker.text(name, str(value)) if attr == "result" else value
                    detail = f"{attr}: {shown}"
                    break
            runtime = getattr(event, "runtime", None)
            if runtime is not None:
                detail = f"{detail} (ran {runtime:.3f} s)".strip()
            eta = getattr(event, "eta", None)
            if event.type == "task-retried" and eta:
                detail = f"{detail}; next attempt {_when(eta):%H:%M:%S}".strip("; ")
            rows.append(
                TimelineRow(
                    _when(event.timestamp) or datetime.now(UTC), event.type, event.hostname, detail
                )
            )
        return rows

    def flow(self, task_id: str, limit: int = 200) -> FlowNode | None:
        """The workflow a task belongs to, as a tree from its root: every task the event
        stream saw with the same ``root_id``, under its parent, each with its state."""
        root = next(
            (r for e in self.app.events.of_task(task_id) if (r := getattr(e, "root_id", None))),
            None,
        )
        if root is None:
            return None
        match = b'"root_id":' + json.dumps(root).encode()
        tasks: dict[str, tuple[str, str | None]] = {}
        for _, data in self.app.broker.read_events(after=None, since=None, limit=5000, match=match):
            event = decode_event(data)
            if isinstance(event, TaskReceived | TaskSent) and event.uuid not in tasks:
                tasks[event.uuid] = (event.name or "?", event.parent_id)
            if len(tasks) >= limit:
                break
        if len(tasks) < 2:
            return None
        found = self.app.results.read_many(list(tasks))
        states_of = {
            tid: record.status if record is not None else states.PENDING
            for tid, record in zip(tasks, found, strict=True)
        }
        nodes = {
            tid: FlowNode(tid, name, states_of[tid], current=tid == task_id)
            for tid, (name, _) in tasks.items()
        }
        top = nodes.get(root) or FlowNode(root, "?", states.PENDING)
        for tid, (_, parent) in tasks.items():
            if tid == root:
                continue
            nodes.get(parent or "", top).children.append(nodes[tid])
        return top

    # -- periodic tasks -----------------------------------------------------------------

    def store(self) -> ScheduleStore:
        return self._store()

    def periodic(self) -> list[PeriodicView]:
        zone = get_zone(self.app.conf.timezone, "timezone setting")
        now = datetime.fromtimestamp(self.app.clock(), UTC)
        views = []
        for entry in sorted(self.store().list(), key=lambda e: e.name):
            next_run = None
            if entry.enabled:
                after = max(entry.since or now, now)
                upcoming = entry.schedule.next_runs(after.astimezone(zone), 1)
                next_run = upcoming[0] if upcoming else None
            views.append(
                PeriodicView(
                    name=entry.name,
                    task=entry.task,
                    schedule=entry.describe(),
                    enabled=entry.enabled,
                    last_run=entry.last_run_at,
                    next_run=next_run,
                    runs=entry.total_run_count,
                    source=entry.source,
                )
            )
        return views
