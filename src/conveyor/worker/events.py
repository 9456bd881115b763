"""A worker's events: noted in memory as tasks run, written to the broker in batches.

Writing each event as it happens would cost a round trip per event, three per task: more
than a quick task costs to run. So an executor only appends the event to its process's
buffer (``EventBuffer``), and the consumer writes what waits together with its acks, in
one ``Broker.add_events`` call (one packet: ``brokers/base.py``), once ``FLUSH_EVERY``
seconds passed since the last write (``flush_due``, from ``Outbox.take_acks``): on
SQLite the consumer writes them itself, between its own transactions (a second thread
writing to the file at the same time would make the consumer wait on the file's lock);
elsewhere it wakes the process's background thread (``_Flusher``) to write them, so that
compressing and sending a packet (about 1 us a quick task, most of it zlib, which lets
go of the GIL) runs beside the consumer, not in its way. That thread also writes what
waited ``STALE`` seconds (a long task's task-started, an idle consumer's last events).
Events are for watching: when the broker is unreachable they wait in the buffer, which
keeps at most ``MAX_BUFFERED`` (the oldest are dropped, with one warning).

The worker's own events come from the supervisor: ``worker-online`` when its pool is
ready, ``worker-heartbeat`` with each lease heartbeat, ``worker-offline`` when it stops
(the receivers below, on Celery's worker signals).
"""

from __future__ import annotations

import logging
import os
import platform
import threading
import time
from typing import Any

import msgspec

from .. import signals, states
from ..app import Conveyor
from ..event_runs import EVENTS_PER_RUN, RunLine
from ..events import (
    Event,
    TaskFailed,
    TaskReceived,
    TaskRejected,
    TaskRetried,
    TaskRevoked,
    TaskStarted,
    TaskSucceeded,
    WorkerEvent,
    WorkerHeartbeat,
    WorkerOffline,
    WorkerOnline,
    encode_event,
    encode_events,
    message_fields,
)
from ..message import Message
from ..outage import Outage
from ..pids import current_pid
from ..records import TaskRecord
from ..version import installed_version

__all__ = ["FLUSH_EVERY", "MAX_BUFFERED", "EventBuffer", "event_buffer"]

FLUSH_EVERY = 0.2
"""Seconds between the consumer's writes of buffered events."""
STALE = 0.5
"""Seconds after which the background thread writes what still waits."""
MAX_BUFFERED = 50_000
"""Events a process keeps while the broker cannot take them."""
MAX_HELD = 1024
"""Successes noted before a write is due anyway: each holds its message until then."""

logger = logging.getLogger("conveyor.worker")

_now = time.time_ns
"""Noted times (the executor's ``received`` too) are whole nanoseconds: a run line's
offsets are then integer arithmetic, without a call to ``int`` each."""
_SUCCESS = states.SUCCESS


class EventBuffer:
    """The task events of one worker process, waiting to be written.

    A task that starts is held open (``_open``) until its outcome: if that is a success and
    no write came between, its three events go as one run line (``event_runs.py``); a write
    that finds it still open writes its task-received and task-started on their own, and
    its outcome follows alone.

    The executor notes a task twice: when it starts (``running``, with the time its
    delivery was taken up) and at its outcome. One call each, and no lock: a lock round
    trip per event cost a quick task more than its run line. Whoever pops a task's entry
    from ``_open`` (one atomic dict operation) owns it: its outcome (a run line), or a
    write (its received and started on their own); the entry never changes once open."""

    def __init__(self, app: Conveyor) -> None:
        self.app = app
        self.pid = os.getpid()
        self._pending: list[Event | RunLine | _Ran] = []
        """Only appended to, and taken from the front (``flush``), so no lock is needed."""
        self._open: dict[str, tuple[int, Message, str, int]] = {}
        """Task id -> (received at, message, hostname, started at), ``_now()``'s times."""
        self._io = threading.Lock()
        """One write at a time, so events reach the stream in the order they happened."""
        self._dropped = 0
        self._flusher: _Flusher | None = None
        self._in_background = not app.broker.one_writer
        self.written = time.monotonic()
        """When the buffer was last written (or found empty)."""

    # -- noting events (the executors' threads) ------------------------------------------

    def running(self, message: Message, hostname: str, received: int) -> None:
        """A task starts; ``received``: when its delivery was taken up (``time.time_ns``)."""
        key = message.id
        earlier = self._open.pop(key, None)
        self._open[key] = (received, message, hostname, _now())
        if earlier is not None:  # started again before its outcome (a redelivery)
            self._pending += self._opened(earlier)
        if self._flusher is None:
            self._flusher = _Flusher(self)

    def received(self, message: Message, hostname: str, received: int) -> None:
        """The task-received of a delivery taken up that does not start (postponed)."""
        self._pending.append(_received_event(message, hostname, self.pid, received))

    def outcome(
        self,
        message: Message,
        record: TaskRecord,
        hostname: str,
        runtime: float | None,
        received: int | None = None,
    ) -> None:
        """The event of a stored outcome (none for IGNORED and custom states), after the
        task-received of a task that never started (``received``, when it was taken up)."""
        uuid = message.id
        entry = self._open.pop(uuid, None)
        if entry is not None:
            if record.status == _SUCCESS:
                at, _, host, started = entry
                result = record.result
                shown = "None" if result is None else _short(result)
                self._pending.append(_Ran(at, message, host, started, _now(), shown, runtime))
                return
            self._pending += self._opened(entry)
        elif received is not None:
            self.received(message, hostname, received)
        event = _outcome_event(message, record, runtime)
        if event is not None:
            event.hostname, event.pid = hostname, self.pid
            self._pending.append(event)
            if isinstance(event, TaskRetried):
                self.flush()  # before the next attempt's events, which another worker may write

    def rejected_requeued(self, message: Message, hostname: str, reason: str) -> None:
        entry = self._open.pop(message.id, None)
        if entry is not None:
            self._pending += self._opened(entry)
        self._pending.append(
            TaskRejected(
                timestamp=time.time(),
                hostname=hostname,
                pid=self.pid,
                uuid=message.id,
                name=message.task,
                requeue=True,
                reason=reason,
            )
        )

    def _opened(self, entry: tuple[int, Message, str, int]) -> list[Event]:
        """The task-received and task-started of an open task."""
        received, message, hostname, started = entry
        return [
            _received_event(message, hostname, self.pid, received),
            TaskStarted(
                timestamp=started / 1e9,
                hostname=hostname,
                pid=self.pid,
                uuid=message.id,
                name=message.task,
                retries=message.retries,
            ),
        ]

    # -- writing -------------------------------------------------------------------------

    def flush_due(self) -> None:
        """Write the buffered events if ``FLUSH_EVERY`` passed since the last write (the
        consumer, with its acks)."""
        if time.monotonic() - self.written >= FLUSH_EVERY or len(self._pending) >= MAX_HELD:
            if self._in_background and self._flusher is not None:
                self.written = time.monotonic()
                self._flusher.wake.set()
            else:
                self.flush()

    def flush(self, started_before: int | None = None) -> None:
        """Write every buffered event now (from any thread), and the received and started
        of the tasks still open (only those started before ``started_before``, a ``_now()``
        time, when given: a task that ends soon then keeps its run line)."""
        self.written = time.monotonic()
        if not self._pending and not self._open:
            return
        with self._io:
            taken = self._pending[: len(self._pending)]
            del self._pending[: len(taken)]
            batch = _run_lines(taken, self.pid)
            for key in self._open.copy():  # taken after the batch: their later events follow
                if started_before is not None:
                    seen = self._open.get(key)
                    if seen is None or seen[3] >= started_before:
                        continue
                entry = self._open.pop(key, None)
                if entry is not None:
                    batch += self._opened(entry)
            if not batch:
                return
            runs = list(map(type, batch)).count(RunLine)
            try:
                self.app.broker.add_events(
                    encode_events(batch),
                    int(self.app.conf.events_max_length),
                    len(batch) + runs * (EVENTS_PER_RUN - 1),
                )
            except Exception as exc:
                self._keep(batch, exc)

    def _keep(self, batch: list[Event | RunLine], exc: Exception) -> None:
        """The write failed: keep the events for the next one, the newest MAX_BUFFERED."""
        self._pending[:0] = batch
        over = len(self._pending) - MAX_BUFFERED
        if over > 0:
            del self._pending[:over]
            if not self._dropped:
                logger.warning("events could not be written (%s); dropping the oldest", exc)
            self._dropped += over
        else:
            logger.debug("events could not be written (%s); trying again", exc)


class _Flusher:
    """The background thread that writes a buffer's events: when the consumer wakes it,
    and what waited ``STALE`` seconds."""

    def __init__(self, buffer: EventBuffer) -> None:
        self.buffer = buffer
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name="conveyor-events", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        buffer = self.buffer
        while True:
            if self.wake.wait(STALE / 2):
                self.wake.clear()
                started_before: int | None = _now() - int(STALE * 1e9)
            elif time.monotonic() - buffer.written >= STALE:
                started_before = None
            else:
                continue
            try:
                buffer.flush(started_before)
            except Exception:
                logger.exception("writing events failed")


_buffers: dict[tuple[int, int], EventBuffer] = {}
_buffers_lock = threading.Lock()


def event_buffer(app: Conveyor) -> EventBuffer | None:
    """This process's buffer for ``app``, or None when ``worker_send_task_events`` is off."""
    if not app.conf.worker_send_task_events:
        return None
    key = (current_pid(), id(app))
    with _buffers_lock:
        buffer = _buffers.get(key)
        if buffer is None:
            buffer = _buffers[key] = EventBuffer(app)
        return buffer


class _Ran(msgspec.Struct, gc=False):
    """A success noted, not yet a run line. Untracked by the garbage collector, as the run
    line is: a thousand of them waiting for a write, each holding its message, made the
    collector's passes cost events on as much again as the rest of their noting."""

    at: int
    message: Message
    host: str
    started: int
    done: int
    shown: str
    runtime: float | None


def _run_lines(batch: list[Event | RunLine | _Ran], pid: int) -> list[Event | RunLine]:
    """The batch with each success noted made a run line (``event_runs.py``). Made here,
    at the write, not at the outcome: in one loop over the batch the reads of the messages'
    fields cost a third of what they cost between a consumer's tasks."""
    lines: list[Event | RunLine] = []
    add = lines.append
    for item in batch:
        if type(item) is not _Ran:
            add(item)  # type: ignore[arg-type]
            continue
        at, message, started, runtime = item.at, item.message, item.started, item.runtime
        uuid, root_id = message.id, message.root_id
        args, kwargs = message.argsrepr, message.kwargsrepr  # _shown's, without calls
        if args is None:
            args = _short(message.args) if message.args else "()"
        if kwargs is None:
            kwargs = _short(message.kwargs) if message.kwargs else "{}"
        add(
            RunLine(
                at / 1e9,
                (started - at) // 1000,
                (item.done - at) // 1000,
                item.host,
                pid,
                uuid,
                message.task,
                args,
                kwargs,
                message.retries,
                message.eta,
                message.expires,
                message.queue,
                0 if root_id == uuid else root_id,
                message.parent_id,
                item.shown,
                int(runtime * 1e9) if runtime else 0,
            )
        )
    return lines


def _received_event(message: Message, hostname: str, pid: int, at: int) -> TaskReceived:
    shown = message_fields(message, *_shown(message))
    return TaskReceived(timestamp=at / 1e9, hostname=hostname, pid=pid, **shown)


def _outcome_event(message: Message, record: TaskRecord, runtime: float | None) -> Event | None:
    status, now, uuid, name = record.status, time.time(), message.id, message.task
    if status == states.SUCCESS:
        result = record.result
        shown = "None" if result is None else _short(result)
        return TaskSucceeded(
            timestamp=now, uuid=uuid, name=name, result=shown, runtime=runtime or 0.0
        )
    if status == states.FAILURE:
        return TaskFailed(
            timestamp=now,
            uuid=uuid,
            name=name,
            exception=_exception(record),
            traceback=record.traceback,
            runtime=runtime,
        )
    if status == states.RETRY:
        return TaskRetried(
            timestamp=now,
            uuid=uuid,
            name=name,
            exception=_exception(record),
            traceback=record.traceback,
            retries=message.retries,
            eta=record.retry_at,
        )
    reason = record.result if isinstance(record.result, str) else None
    if status == states.REVOKED:
        return TaskRevoked(
            timestamp=now,
            uuid=uuid,
            name=name,
            terminated=reason == "terminated",
            expired=bool(reason and reason.startswith("expired")),
            reason=reason,
        )
    if status == states.REJECTED:
        return TaskRejected(timestamp=now, uuid=uuid, name=name, requeue=False, reason=reason)
    return None


def _exception(record: TaskRecord) -> str:
    if record.exception is not None:
        return f"{record.exception.type}: {record.exception.message}"
    return str(record.result)


def _shown(message: Message) -> tuple[str, str]:
    """A task's arguments as its events show them: the sender's ``argsrepr``/``kwargsrepr``,
    else a short repr."""
    args = message.argsrepr if message.argsrepr is not None else _short(message.args)
    kwargs = message.kwargsrepr if message.kwargsrepr is not None else _short(message.kwargs)
    return args, kwargs


def _short(value: Any) -> str:
    """A repr cut to 200 characters (the builtin repr: reprlib's costs ten times more)."""
    if not value:
        return "()" if isinstance(value, (list, tuple)) else repr(value)
    text = repr(tuple(value)) if isinstance(value, list) else repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


# -- the worker's own events (the supervisor's process) -----------------------------------


_outage = Outage(logger)
"""Failed writes of the worker's own events, reported once an outage (when the pool has no
outage of its own to share: ``LeaseKeeper.outage``, which its other loops report in)."""


def _worker_event(
    kind: type[WorkerEvent], app: Conveyor, hostname: str, sender: Any = None, **fields: Any
) -> None:
    if not app.conf.worker_send_task_events:
        return
    event = kind(
        timestamp=time.time(),
        hostname=hostname,
        pid=os.getpid(),
        freq=max(float(app.conf.broker_lease) / 3.0, 0.05),
        sw_ver=installed_version(),
        sw_sys=platform.system(),
        **fields,
    )
    outage = getattr(getattr(sender, "keeper", None), "outage", None) or _outage
    try:
        app.broker.add_events([encode_event(event)], int(app.conf.events_max_length))
    except Exception as exc:
        outage.failed(f"writing the {event.type} event", exc)
        return
    outage.ended(f"writing the {event.type} event")


def _pool_parts(sender: Any) -> tuple[Conveyor, str] | None:
    app, hostname = getattr(sender, "app", None), getattr(sender, "hostname", None)
    if isinstance(app, Conveyor) and isinstance(hostname, str):
        return app, hostname
    return None


def _on_ready(sender: Any = None, **kwargs: Any) -> None:
    parts = _pool_parts(sender)
    if parts is not None:
        _worker_event(WorkerOnline, *parts, sender=sender)


def _on_heartbeat(sender: Any = None, **kwargs: Any) -> None:
    parts = _pool_parts(sender)
    if parts is not None:
        keeper = getattr(sender, "keeper", None)
        active = len(keeper.running()) if keeper is not None else 0
        _worker_event(WorkerHeartbeat, *parts, sender=sender, active=active)


def _on_shutdown(sender: Any = None, **kwargs: Any) -> None:
    parts = _pool_parts(sender)
    if parts is not None:
        _worker_event(WorkerOffline, *parts, sender=sender)


signals.worker_ready.connect(_on_ready, weak=False, dispatch_uid="conveyor.worker.events.ready")
signals.heartbeat_sent.connect(
    _on_heartbeat, weak=False, dispatch_uid="conveyor.worker.events.heartbeat"
)
signals.worker_shutdown.connect(
    _on_shutdown, weak=False, dispatch_uid="conveyor.worker.events.shutdown"
)
