"""The executor's side of ``async def`` tasks: hand them to this process's event loop
(aio.py) and return at once, then store and acknowledge their outcomes on the consumer's
thread (``collect``), as for a ``def`` task: only that thread writes its outbox and runs
workflow hooks.

``Executor`` mixes ``AsyncExecution`` in; the consumer calls ``between_batches`` when its
buffer is empty (start what was handed over, store what ended), ``wait_idle`` to wait for
messages, and ``finish_async`` before it stops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from .. import signals, states, workflow
from ..app import Conveyor
from ..brokers.base import Broker, Delivery
from ..exceptions import BrokerError
from ..message import Message
from ..records import LEVEL_STARTED, ResultStore, TaskRecord, at_level
from ..task import AnyTask
from . import metrics, notify
from .aio import HARD_GRACE, AsyncRunner, Job, runner_for
from .guards import Admission, Guards
from .late import DELAY
from .outbox import Outbox, Tracker
from .outcome_records import keep_lineage, success_record
from .trace import Outcome

if TYPE_CHECKING:
    from ..request import Request
    from .executor import Executor

__all__ = ["AsyncExecution"]

logger = logging.getLogger("conveyor.worker")

START_BATCH = 64
"""Async tasks handed to the loop together at most (one wake-up of the loop each time)."""
STARTED_BATCH = 256
"""STARTED records of async tasks handed to their writer together at most."""
ASYNC_IDLE_WAIT = 0.005
"""Longest wait, on the event loop's signal, before the consumer looks for new messages
again while async tasks start and end (``wait_idle``; an ending task cuts it short). Once
none has for ``ASYNC_BUSY`` seconds (long coroutines), the consumer waits in the broker
again (up to 50 ms), so it does not poll the broker needlessly."""
ASYNC_BUSY = 1.0
QUICK_ASYNC = 0.002
"""Seconds the consumer waits for the coroutines it just started before it waits for
messages (most quick ones end by then)."""


@dataclass(slots=True)
class _Pending:
    """What the executor needs back when an async task ends."""

    delivery: Delivery
    message: Message
    attempt: int
    admission: Admission
    taken: float
    """When the consumer took it up (for the metrics' queue wait)."""
    written: TaskRecord | None = None
    """Its SUCCESS record, when the loop thread stored it (``_write_early``)."""
    told: bool = False
    """Its end was told to the tracker as it ended (``Tracker.ended``)."""


class _StartedWriter:
    """A thread that writes the STARTED of async tasks still running ``DELAY`` after they
    started, those due together (a task that ended first never writes one, as for a ``def``
    task); it ends after ``IDLE_EXIT`` seconds without any (the executor starts another)."""

    IDLE_EXIT = 10.0

    def __init__(self, results: ResultStore) -> None:
        self.results = results
        self.items: dict[str, tuple[float, TaskRecord, int]] = {}
        """By task id, in the order they started: when, the record and its fence."""
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.ended = False
        threading.Thread(target=self._run, name="conveyor-started", daemon=True).start()

    def add(self, items: dict[str, tuple[TaskRecord, int, float]]) -> bool:
        """Queue ``items`` (by task id: the record, its fence and when the task started, in
        the order they started); False if the thread has ended (they were not taken)."""
        with self.lock:
            if self.ended:
                return False
            for task_id, (record, fence, at) in items.items():
                self.items[task_id] = (at, record, fence)
        self.ready.set()
        return True

    def done(self, task_id: str) -> None:
        """The task ended: its STARTED, if not written yet, never will be."""
        if task_id in self.items:
            with self.lock:
                self.items.pop(task_id, None)

    def _run(self) -> None:
        while True:
            woken = self.ready.wait(self.IDLE_EXIT)
            with self.lock:
                if not woken and not self.items:
                    self.ended = True
                    return
                self.ready.clear()
                oldest = next(iter(self.items.values()), None)
            if oldest is None:
                continue
            time.sleep(max(0.0, oldest[0] + DELAY - time.monotonic()))
            due = time.monotonic() - DELAY
            with self.lock:
                taken = []
                for task_id, item in self.items.items():  # in the order they started
                    if item[0] > due:
                        break
                    taken.append((task_id, item))
                for task_id, _ in taken:
                    del self.items[task_id]
                if self.items:
                    self.ready.set()  # the rest come due later
            if not taken:
                continue
            try:
                encode = self.results.encode
                self.results.write_encoded(
                    [
                        (task_id, encode(record, fence), fence)
                        for task_id, (_, record, fence) in taken
                    ]
                )
            except Exception as exc:  # a STARTED is a courtesy: the outcome still comes
                logger.warning("could not record %d async task(s) as STARTED: %s", len(taken), exc)


class AsyncExecution:
    """Async tasks, for ``Executor``: handed to the loop, concluded on this thread."""

    app: Conveyor
    hostname: str
    tracker: Tracker
    guards: Guards
    outbox: Outbox
    results: ResultStore
    _started_info: dict[str, Any]
    _sent: list[Any] | None
    _ran_for: float | None

    if TYPE_CHECKING:  # the executor's, which this mixin calls

        def _context(
            self,
            task: AnyTask,
            message: Message,
            delivery: Delivery,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
            attempt: int,
        ) -> Request: ...
        def _track_started(self, task: AnyTask) -> bool: ...
        def _conclude(
            self,
            delivery: Delivery,
            message: Message,
            task: AnyTask,
            attempt: int,
            outcome: Outcome,
            runtime: float,
        ) -> str: ...
        def worker_error(self, delivery: Delivery, exc: Exception) -> None: ...
        def _event(self, message: Message, record: TaskRecord) -> None: ...
        def _event_running(self, message: Message) -> None: ...
        def _nack(self, delivery: Delivery, delay: float | None = None) -> None: ...

    @property
    def running(self) -> bool:
        """Whether a terminate signal aimed at no task in particular may interrupt this
        thread now: a def task's own code runs, and no async task of this consumer is in
        flight (the signal may be for one of them, which the loop cancels itself). An
        aimed signal is checked against ``running_id`` instead (``child.interrupt``)."""
        return self._running_def and not self.in_flight

    @running.setter
    def running(self, value: bool) -> None:
        self._running_def = value

    def _init_async(self, inline_loop: bool) -> None:
        self._running_def = False
        self._runner: AsyncRunner | None = None
        self.inline_loop = inline_loop
        """``--pool asyncio``: the event loop runs on this consumer's thread (aio.py)."""
        self.in_flight = 0
        """Async tasks handed to the loop whose outcome ``collect`` has not stored yet."""
        self.completed: deque[tuple[Job, Outcome, float]] = deque()
        """Async tasks that ended, for ``collect`` (appended on the loop's thread)."""
        self._async_at = 0.0
        """When async tasks last started or ended (``wait_idle``)."""
        self._quick_hit = True
        """The last wait for quick coroutines saw one end (else it is tried once a second)."""
        self._quick_at = 0.0
        self._to_start: list[Job] = []
        """Async tasks handed over, started together by ``start_async``."""
        self._starting: dict[str, tuple[TaskRecord, int, float]] = {}
        """STARTED records of async tasks by task id, with their fence and when the task
        started, waiting for ``write_started``."""
        self._started_writer: _StartedWriter | None = None
        self._parked = False
        """The consumer waits for the coroutines it just started (``between_batches``): the
        loop thread then stores a success itself (``_write_early``)."""

    def _submit(
        self,
        delivery: Delivery,
        message: Message,
        task: AnyTask,
        attempt: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        admission: Admission,
    ) -> str:
        """Hand an async task to the event loop and return at once (STARTED): its outcome
        is stored and acked by ``collect``, on this thread, once the coroutine ends."""
        runner = self._runner
        if runner is None:
            limit = int(self.app.conf.worker_async_concurrency)
            runner = self._runner = runner_for(limit, self.app.coordinator, self.inline_loop)
        try:
            runner.acquire(self._slots_full)
            context = self._context(task, message, delivery, args, kwargs, attempt)
            if self.outbox.continuing:
                self.outbox.flush_writes()
            if not message.ignore_result and self._track_started(task):
                started = TaskRecord(
                    status=states.STARTED,
                    result=self._started_info,
                    task=message.task,
                    retries=message.retries,
                    worker=self.hostname,
                    parent_id=message.parent_id,
                    root_id=None if message.root_id == message.id else message.root_id,
                )
                level = at_level(attempt, LEVEL_STARTED)  # never hides a later state
                self._starting[message.id] = (started, level, time.monotonic())
                if len(self._starting) >= STARTED_BATCH:
                    self.write_started()
            conf = self.app.conf
            time_limit = message.time_limit or task.time_limit or conf.task_time_limit
            soft_limit = (
                message.soft_time_limit or task.soft_time_limit or conf.task_soft_time_limit
            )
            # the loop cancels it at its hard limit; its process is replaced only if it
            # has not ended HARD_GRACE later
            deadline = time.time() + time_limit + HARD_GRACE if time_limit else None
            if message.parent_id is not None or message.root_id not in (None, message.id):
                lineage = getattr(self.tracker, "lineage", None)
                if lineage is not None:  # a prefork child: the outcome of a kill keeps them
                    lineage(delivery, message.parent_id, message.root_id)
            self.tracker.started(delivery, message.id, deadline, attempt)
            self._event_running(message)
            for hook in self.app.on_task_start:
                hook(task, context)
            if signals.task_prerun.receivers:
                notify.prerun(task, context)
        except BaseException:
            runner.give_back_slot()
            self.guards.release(admission)
            raise
        pending = _Pending(delivery, message, attempt, admission, time.time())
        job = Job(task, context, args, kwargs, soft_limit, time_limit, self._ended, pending)
        self.in_flight += 1
        self._to_start.append(job)
        if len(self._to_start) >= START_BATCH and not runner.inline:  # inline: at the next wait
            self.start_async()
        return states.STARTED

    def start_async(self) -> bool:
        """Start the async tasks handed over since the last call, with one wake-up of the
        loop, and hand their STARTED to its writer; whether any started."""
        if self._starting:  # first: a task that ends at once then takes its STARTED back
            self.write_started()
        return self._launch()

    def _launch(self) -> bool:
        jobs = self._to_start
        if jobs:
            self._to_start = []
            self._async_at = time.monotonic()
            # their starts reach the supervisor before they run: a coroutine that kills
            # its process is charged for it, not the def task running beside it
            self.tracker.flush()
            if self._runner is not None:
                self._runner.submit(jobs)
        return bool(jobs)

    def between_batches(self) -> None:
        """The consumer's buffer is empty (or all slots are taken): start the async tasks
        handed over, store and acknowledge the ones that ended. Quick coroutines (a cache
        read, a no-op) end within a moment: waiting that moment for them here stores
        their outcome now instead of after the consumer's next wait for messages. Their
        STARTED, never due, is dropped here: handing it to its writer would wake that
        thread twice, and each wake-up of a thread costs this one's round trip ~20 us."""
        runner = self._runner
        now = time.monotonic()
        if (
            self._to_start
            and not self.completed
            and runner is not None
            and (self._quick_hit or now - self._quick_at > 1.0)  # not while tasks run long
        ):
            self._launch()
            # one write per task pays only for a lone one, and only across threads
            self._parked = self.in_flight == 1 and not runner.inline
            try:
                runner.wait_slot_freed(QUICK_ASYNC, until=lambda: bool(self.completed))
            finally:
                self._parked = False
            self._quick_hit, self._quick_at = bool(self.completed), now
        elif self.start_async() and runner is not None and runner.inline:
            runner.run_ready()  # no loop thread starts them meanwhile
        self.collect()
        self.write_started()

    def write_started(self) -> None:
        """Hand the STARTED of the async tasks started since the last call to a thread that
        writes those still running ``DELAY`` after they started, together: the consumer
        goes on starting tasks meanwhile. A STARTED written after its task ended is refused
        by its fence, so the order does not matter."""
        items, self._starting = self._starting, {}
        if items:
            writer = self._started_writer
            if writer is None or not writer.add(items):
                writer = self._started_writer = _StartedWriter(self.results)
                writer.add(items)

    def _ended(self, job: Job, outcome: Outcome, runtime: float) -> None:
        """On the loop thread: queue the outcome for ``collect``."""
        writer = self._started_writer
        if writer is not None:
            writer.done(job.task_id)
        if job.time_limit or job.cause is not None:
            # a hard deadline, or a terminate, stands until the supervisor hears it ended
            pending: _Pending = job.owner
            try:
                self.tracker.ended(pending.delivery, outcome.state == states.FAILURE)
                pending.told = True
            except Exception:
                logger.exception("could not tell the supervisor that %s ended", job.task_id)
        if (self._parked or self._running_def) and outcome.state == states.SUCCESS:
            self._write_early(job, outcome, runtime)
        self.completed.append((job, outcome, runtime))

    def _write_early(self, job: Job, outcome: Outcome, runtime: float) -> None:
        """On the loop thread, while the consumer waits for this coroutine, or runs a
        ``def`` task: store its success now. Waking the consumer to store it costs a thread
        wake-up (tens of us on a virtual machine) before the write, which a caller waiting
        for the result sees, and a ``def`` task would hold it until it returns; the
        consumer still acks, and runs the signals and events, when it is free. Only an
        outcome that continues no workflow (workflow hooks run on the consumer's thread)
        and whose result is kept; anything that fails here is left to the consumer."""
        pending: _Pending = job.owner
        message = pending.message
        if message.ignore_result or workflow.continues(message):
            return
        try:
            record = success_record(job.task, message, outcome.retval, self.hostname)
            keep_lineage(record, message, job.context.sent, runtime)
            self.outbox.write_now(message, record, pending.attempt)
        except Exception as exc:
            logger.debug("%s[%s]: stored by the consumer (%s)", message.task, message.id, exc)
            return
        pending.written = record

    def collect(self) -> None:
        """Store and acknowledge the outcomes of the async tasks that ended, in order."""
        if self.completed:
            self._async_at = time.monotonic()
        while self.completed:
            job, outcome, runtime = self.completed.popleft()
            self.in_flight -= 1
            pending: _Pending = job.owner
            self._starting.pop(job.task_id, None)  # not handed to the writer yet: never due
            delivery, message, task = pending.delivery, pending.message, job.task
            try:
                if not pending.told:
                    self.tracker.finished(delivery, outcome.state == states.FAILURE)
                for hook in self.app.on_task_end:
                    hook(task, job.context)
                self.guards.release(pending.admission)
                if pending.written is not None:
                    state = self._stored(delivery, message, pending.written, outcome, runtime)
                else:
                    self._sent = job.context.sent
                    state = self._conclude(
                        delivery, message, task, pending.attempt, outcome, runtime
                    )
                    self._sent = None  # not stored by an outcome that writes no record
                if notify.listening_after_run():
                    notify.after_run(
                        cast("Executor", self), task, job.context, outcome, state, runtime
                    )
                recorder = metrics.current()
                if recorder is not None:  # handle() told it STARTED; now the outcome
                    due = max(message.sent_at or pending.taken, message.eta or 0.0)
                    wait = max(0.0, pending.taken - due)
                    recorder.handled(message, delivery.queue, state, runtime, wait)
            except BrokerError as exc:  # not the message's fault: back to its queue
                logger.warning("%s[%s]: %s; its message goes back", message.task, message.id, exc)
                try:
                    self._nack(delivery)
                except Exception:
                    logger.exception("could not hand back %s; its lease will pass", delivery.id)
            except Exception as exc:
                logger.exception("worker error on message %s; it counts as a delivery", delivery.id)
                try:
                    self.worker_error(delivery, exc)
                except Exception:
                    logger.exception("could not hand back %s; its lease will pass", delivery.id)

    def _stored(
        self,
        delivery: Delivery,
        message: Message,
        record: TaskRecord,
        outcome: Outcome,
        runtime: float,
    ) -> str:
        """``_conclude`` for a success the loop thread stored (``_write_early``)."""
        self._ran_for = runtime
        self._event(message, record)
        self.outbox.ack(delivery, message)
        name, task_id, retval = message.task, message.id, outcome.retval
        logger.info("%s[%s] succeeded in %.4fs: %.200r", name, task_id, runtime, retval)
        return states.SUCCESS

    def wait_idle(self, broker: Broker, seconds: float) -> None:
        """Wait for new messages, at most ``seconds``; while async tasks run and end often,
        briefly and on the event loop's signal instead (woken the moment one ends), then
        the consumer looks for messages again. Not in the broker: a Redis BLPOP's timeout
        ends only at the server's next cron tick (100 ms at its default hz), which would
        hold a finished coroutine's outcome that long. Inline (``--pool asyncio``), never in
        the broker while coroutines are in flight: the loop runs only while this thread
        waits, so it waits on the loop, up to ``seconds``, then looks for messages again."""
        runner = self._runner
        if self.in_flight and runner is not None:
            busy = time.monotonic() - self._async_at < ASYNC_BUSY
            if busy or runner.inline:  # inline, the loop runs only while this thread waits
                wait = min(seconds, ASYNC_IDLE_WAIT) if busy else seconds
                runner.wait_slot_freed(wait, until=lambda: bool(self.completed))
                return
        broker.wait(seconds)

    def finish_async(self) -> None:
        """Wait for this consumer's running async tasks to end and store their outcomes
        (warm shutdown, or the consumer's last task)."""
        if self.in_flight:
            logger.info("waiting for %d running async task(s) to end", self.in_flight)
        while self.in_flight:
            self._slots_full()
            if self.in_flight and self._runner is not None:
                self._runner.wait_slot_freed(0.05)

    def _slots_full(self) -> None:
        """Waiting for running async tasks (every slot taken, or shutdown): start what was
        handed over, store what ended, and send the supervisor the start notices waiting
        for the child's next write, since that may be a while."""
        self.between_batches()
        self.tracker.flush()
