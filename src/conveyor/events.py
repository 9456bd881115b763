"""Events: what happened to tasks and workers, kept in a bounded stream in the broker.

Workers (and, with ``task_send_sent_event``, senders) append events; ``app.events.tail()``,
``conveyor events``, ``conveyor top`` and ``conveyor tasks show`` read them. The kinds and
their fields follow Celery's event reference (``task-succeeded`` has ``runtime`` and
``result``, ``task-failed`` has ``exception`` and ``traceback``, ...), so a tool written for
Celery's events finds the names it expects. The stream keeps about ``events_max_length``
of the newest events: it is for watching a cluster and recent history, not an audit log.

Each event is one msgspec struct, tagged by its ``type``, stored as JSON. ``id`` is the
event's place in the stream (the broker's cursor), filled in when it is read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Union

import msgspec

from .brokers.base import Broker, Envelope
from .event_runs import RunLine
from .exceptions import DecodeError
from .pids import current_pid
from .serialization import decode_message

if TYPE_CHECKING:
    from .config import Settings
    from .message import Message

__all__ = [
    "TASK_EVENTS",
    "WORKER_EVENTS",
    "AnyEvent",
    "Event",
    "EventReceiver",
    "Events",
    "TaskEvent",
    "TaskFailed",
    "TaskReceived",
    "TaskRejected",
    "TaskRetried",
    "TaskRevoked",
    "TaskSent",
    "TaskStarted",
    "TaskSucceeded",
    "WorkerEvent",
    "WorkerHeartbeat",
    "WorkerOffline",
    "WorkerOnline",
    "decode_event",
    "encode_event",
    "encode_events",
    "message_fields",
    "since_time",
]


class Event(msgspec.Struct, tag_field="type", kw_only=True, omit_defaults=True, gc=False):
    """Fields every event has (Celery's ``timestamp``, ``hostname``, ``pid``).

    ``gc=False``: an event holds only strings and numbers, so the garbage collector need
    not track the thousands a busy worker buffers between writes."""

    timestamp: float
    """Unix time the event happened, by the clock of the process that sent it."""
    hostname: str = ""
    pid: int = 0
    id: str = ""
    """Where the event sits in the stream; empty until read back."""

    @property
    def type(self) -> str:
        """Celery's name of the event kind: ``task-succeeded``, ``worker-online``, ..."""
        tag: str = msgspec.inspect.type_info(type(self)).tag  # type: ignore[attr-defined]
        return tag

    def to_dict(self) -> dict[str, Any]:
        """The event as Celery's event dicts look (``type`` included), for JSON output."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        return data


class TaskEvent(Event, kw_only=True, omit_defaults=True):
    uuid: str
    """The task's id (Celery's field name)."""
    name: str | None = None
    """The task's name."""


class TaskSent(TaskEvent, tag="task-sent", kw_only=True, omit_defaults=True):
    args: str | None = None
    kwargs: str | None = None
    retries: int = 0
    eta: float | None = None
    expires: float | None = None
    queue: str | None = None
    root_id: str | None = None
    parent_id: str | None = None


class TaskReceived(TaskEvent, tag="task-received", kw_only=True, omit_defaults=True):
    args: str | None = None
    kwargs: str | None = None
    retries: int = 0
    eta: float | None = None
    expires: float | None = None
    queue: str | None = None
    root_id: str | None = None
    parent_id: str | None = None


class TaskStarted(TaskEvent, tag="task-started", kw_only=True, omit_defaults=True):
    retries: int = 0


class TaskSucceeded(TaskEvent, tag="task-succeeded", kw_only=True, omit_defaults=True):
    result: str | None = None
    """The result's repr, shortened."""
    runtime: float = 0.0
    """Seconds the task's code ran."""


class TaskFailed(TaskEvent, tag="task-failed", kw_only=True, omit_defaults=True):
    exception: str = ""
    """``Type: message``, as Celery shows it."""
    traceback: str | None = None
    runtime: float | None = None


class TaskRetried(TaskEvent, tag="task-retried", kw_only=True, omit_defaults=True):
    exception: str = ""
    traceback: str | None = None
    retries: int = 0
    """The attempt that asked for the retry (0 for the first run)."""
    eta: float | None = None
    """When the next attempt is due."""


class TaskRevoked(TaskEvent, tag="task-revoked", kw_only=True, omit_defaults=True):
    terminated: bool = False
    expired: bool = False
    reason: str | None = None


class TaskRejected(TaskEvent, tag="task-rejected", kw_only=True, omit_defaults=True):
    requeue: bool = False
    reason: str | None = None


class WorkerEvent(Event, kw_only=True, omit_defaults=True):
    freq: float = 0.0
    """Seconds between this worker's heartbeats."""
    sw_ident: str = "conveyor"
    sw_ver: str = ""
    sw_sys: str = ""


class WorkerOnline(WorkerEvent, tag="worker-online", kw_only=True, omit_defaults=True):
    pass


class WorkerHeartbeat(WorkerEvent, tag="worker-heartbeat", kw_only=True, omit_defaults=True):
    active: int = 0
    """Tasks running now."""


class WorkerOffline(WorkerEvent, tag="worker-offline", kw_only=True, omit_defaults=True):
    pass


AnyEvent = Union[  # noqa: UP007 - msgspec needs a runtime union of the classes
    TaskSent,
    TaskReceived,
    TaskStarted,
    TaskSucceeded,
    TaskFailed,
    TaskRetried,
    TaskRevoked,
    TaskRejected,
    WorkerOnline,
    WorkerHeartbeat,
    WorkerOffline,
]
TASK_EVENTS = (
    "task-sent",
    "task-received",
    "task-started",
    "task-succeeded",
    "task-failed",
    "task-retried",
    "task-revoked",
    "task-rejected",
)
WORKER_EVENTS = ("worker-online", "worker-heartbeat", "worker-offline")

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[AnyEvent] = msgspec.json.Decoder(AnyEvent)


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def encode_events(events: Sequence[Event | RunLine]) -> list[bytes]:
    """Many events encoded in one call, as one item for ``Broker.add_events`` (JSON lines,
    the last newline left out): a worker's batch costs one encoder call, and is stored
    without being split and joined again. A run line (``event_runs.py``) stands for three."""
    if not events:
        return []
    return [_encoder.encode_lines(events)[:-1]]


def message_fields(message: Message, args: str, kwargs: str) -> dict[str, Any]:
    """The fields task-sent and task-received take from the task's message, with its
    arguments as shown (``args``, ``kwargs``: each sender of events has its own repr)."""
    return {
        "uuid": message.id,
        "name": message.task,
        "args": args,
        "kwargs": kwargs,
        "retries": message.retries,
        "eta": message.eta,
        "expires": message.expires,
        "queue": message.queue,
        "root_id": message.root_id,
        "parent_id": message.parent_id,
    }


def decode_event(data: bytes, id: str = "") -> AnyEvent | None:
    """An event read from the stream; None for one this version does not know."""
    try:
        event = _decoder.decode(data)
    except msgspec.DecodeError:
        return None
    event.id = id
    return event


def since_time(since: float | datetime | timedelta | str | None, now: float) -> float | None:
    """A start time as a Unix time: a timestamp, a datetime, an age (``timedelta`` or text
    like ``90s``, ``15m``, ``1h``, ``2d``) counted back from ``now``."""
    if since is None:
        return None
    if isinstance(since, datetime):
        return since.timestamp()
    if isinstance(since, timedelta):
        return now - since.total_seconds()
    if isinstance(since, str):
        return now - parse_age(since)
    return float(since)


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_age(text: str) -> float:
    """Seconds in ``90s``, ``15m``, ``1h``, ``2d`` or ``1w`` (a bare number is seconds)."""
    raw = text.strip().lower()
    unit = _UNITS.get(raw[-1:]) if raw else None
    number = raw[:-1] if unit is not None else raw
    try:
        value = float(number)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an age: write a number and a unit, like 90s, 15m, 1h or 2d"
        ) from None
    return value * (unit or 1.0)


class Events:
    """``app.events``: send and read the app's event stream."""

    def __init__(
        self, broker: Broker, conf: Settings, clock: Any = time.time, hostname: str = ""
    ) -> None:
        self.broker = broker
        self.conf = conf
        self.clock = clock
        self.hostname = hostname

    @property
    def max_length(self) -> int:
        return int(self.conf.events_max_length)

    def send(self, events: Sequence[Event]) -> None:
        """Append events to the stream now (workers buffer theirs: ``worker/events.py``)."""
        if events:
            self.broker.add_events(encode_events(events), self.max_length)

    def Receiver(
        self,
        connection: object = None,
        handlers: dict[str, Callable[[dict[str, Any]], object]] | None = None,
        **kwargs: Any,
    ) -> EventReceiver:
        """Celery's ``app.events.Receiver(connection, handlers={...})``; ``connection`` (and
        Celery's ``app``, ``node_id``, ... keywords) are accepted and not needed."""
        return EventReceiver(self, handlers)

    def sent(self, envelopes: Sequence[Envelope]) -> None:
        """``task-sent`` for published messages (``task_send_sent_event``); a message that
        does not decode is left out (the worker dead-letters it)."""
        events: list[Event] = []
        now, pid = self.clock(), current_pid()
        for envelope in envelopes:
            try:
                message = decode_message(envelope.body)
            except DecodeError:
                continue
            shown = message_fields(message, message.shown_args(), message.shown_kwargs())
            events.append(TaskSent(timestamp=now, hostname=self.hostname, pid=pid, **shown))
        self.send(events)

    def read(
        self,
        after: str | None = None,
        since: float | datetime | timedelta | str | None = None,
        limit: int = 1000,
        task_id: str | None = None,
        match: bytes | None = None,
    ) -> list[AnyEvent]:
        """One page of events, oldest first: those after the cursor ``after`` (an event's
        ``id``), else those from ``since`` on, else from the oldest kept. ``task_id``: only
        that task's events (searched by the broker)."""
        start = since_time(since, self.clock()) if after is None else None
        if task_id is not None:
            match = _task_match(task_id)
        stored = self.broker.read_events(after=after, since=start, limit=limit, match=match)
        events = [decode_event(data, event_id) for event_id, data in stored]
        found = [e for e in events if e is not None]
        if task_id is not None:  # the bytes matched; the field must too
            return [e for e in found if getattr(e, "uuid", None) == task_id]
        return found

    def tail(
        self,
        since: float | datetime | timedelta | str | None = None,
        follow: bool = False,
        poll: float = 0.25,
        after: str | None = None,
        stop: Any = None,
    ) -> Iterator[AnyEvent]:
        """The stream's events in order, from ``since`` (a Unix time, datetime, timedelta or
        an age such as ``"15m"``; None: the oldest kept), or after the cursor ``after``.

        ``follow=False`` ends at the newest event; ``follow=True`` keeps waiting for more,
        polling every ``poll`` seconds, until ``stop`` (a ``threading.Event``) is set or the
        caller stops iterating.
        """
        start = since_time(since, self.clock()) if after is None else None
        cursor = after
        while True:
            page = self.read(after=cursor, since=start if cursor is None else None, limit=500)
            yield from page
            if page:
                cursor = page[-1].id
                continue
            if not follow or (stop is not None and stop.is_set()):
                return
            if cursor is None and start is None:
                start = self.clock() - poll * 4  # nothing kept yet: from now on
            if stop is not None:
                if stop.wait(poll):
                    return
            else:
                time.sleep(poll)

    def of_task(self, task_id: str) -> list[AnyEvent]:
        """Every kept event of one task, in time order: its timeline."""
        found = self._search(_task_match(task_id))
        return [e for e in found if getattr(e, "uuid", None) == task_id]

    def children_of(self, task_id: str) -> list[TaskReceived | TaskSent]:
        """The received (or sent) events of tasks whose parent is ``task_id``."""
        return [
            e
            for e in self._search(_parent_match(task_id))
            if isinstance(e, TaskReceived | TaskSent) and e.parent_id == task_id
        ]

    def _search(self, match: bytes) -> list[AnyEvent]:
        found: list[AnyEvent] = []
        cursor: str | None = None
        while True:
            stored = self.broker.read_events(after=cursor, limit=1000, match=match)
            found += [e for e in (decode_event(d, i) for i, d in stored) if e is not None]
            if len(stored) < 1000:
                return sorted(found, key=lambda e: e.timestamp)
            cursor = stored[-1].id


class EventReceiver:
    """Celery's ``app.events.Receiver``: hands each new event, as Celery's event dict, to
    the handler of its type (or ``"*"``). The connection Celery needs is not: the events
    come from the broker the app already has."""

    def __init__(
        self,
        events: Events,
        handlers: dict[str, Callable[[dict[str, Any]], object]] | None = None,
        poll: float = 0.25,
    ) -> None:
        self.events = events
        self.handlers = dict(handlers or {})
        self.poll = poll
        self.should_stop = False
        """Set it (from a handler) to end ``capture``, as in Celery."""

    def capture(
        self, limit: int | None = None, timeout: float | None = None, wakeup: bool = True
    ) -> None:
        """Hand new events to the handlers until ``limit`` of them were handled, ``timeout``
        seconds pass without one, or ``should_stop`` is set. ``wakeup`` is Celery's (it
        asks workers for a heartbeat) and changes nothing here: heartbeats come anyway."""
        cursor: str | None = None
        start: float | None = self.events.clock()
        handled, quiet_since = 0, time.monotonic()
        while not self.should_stop:
            page = self.events.read(after=cursor, since=start if cursor is None else None)
            for event in page:
                cursor = event.id
                handler = self.handlers.get(event.type) or self.handlers.get("*")
                if handler is not None:
                    handler(event.to_dict())
                handled += 1
                if (limit is not None and handled >= limit) or self.should_stop:
                    return
            if page:
                quiet_since = time.monotonic()
                continue
            if timeout is not None and time.monotonic() - quiet_since >= timeout:
                return
            time.sleep(self.poll)


def _parent_match(task_id: str) -> bytes:
    return b'"parent_id":' + _encoder.encode(task_id)


def _task_match(task_id: str) -> bytes:
    """The bytes only the encoded events of this task contain (its ``uuid`` field)."""
    return b'"uuid":' + _encoder.encode(task_id)
