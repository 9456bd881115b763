"""From a reserved delivery to an acknowledged outcome: decode, check, run, store, answer.

Anything that cannot run (a malformed body, an unknown task, refused content, arguments
that do not fit) is dead-lettered with the reason and recorded as FAILURE, never dropped.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import datetime
from typing import Any

from .. import signals, states, workflow
from ..app import Conveyor
from ..brokers.base import Delivery
from ..exceptions import (
    BrokerError,
    ContentDisallowed,
    DecodeError,
    EncodeError,
    NotRegistered,
    SoftTimeLimitExceeded,
)
from ..message import Message
from ..records import (
    LEVEL_RECEIVED,
    ErrorRecord,
    TaskRecord,
    fence,
)
from ..request import Request
from ..retries import next_message
from ..serialization import (
    decode_message,
    unpickle_arguments,
)
from ..stamps import stamp_keys
from ..task import AnyTask
from . import metrics, notify
from .aio_executor import AsyncExecution
from .guards import POSTPONE, REVOKE, Guards, Verdict
from .outbox import Outbox, Tracker, reply_address
from .outcome_records import keep_lineage, success_record
from .refusals import Refusals, failure_record, named
from .trace import Outcome, trace

__all__ = ["Executor", "Tracker"]

logger = logging.getLogger("conveyor.worker")


class Executor(AsyncExecution, Refusals):
    """One consumer's deliveries, each to its outcome; ``async def`` tasks through the
    mixin (aio_executor.py)."""

    def __init__(
        self, app: Conveyor, hostname: str, tracker: Tracker, inline_loop: bool = False
    ) -> None:
        self.app = app
        self.hostname = hostname
        self.tracker = tracker
        self.broker = app.broker
        self.results = app.results
        self.clock = app.clock
        self._soft_limits = threading.current_thread() is threading.main_thread()
        self.guards = Guards(app)
        self.outbox = Outbox(app, tracker)
        self._ran_for: float | None = None
        """Seconds the task being concluded ran, for its event (``_event``)."""
        self._taken: Message | None = None
        self._taken_at = 0
        """The message ``handle`` took up and when (``time.time_ns``), until it starts: the
        task-received of one that never starts goes with its outcome (``_event``)."""
        self._sent: list[Any] | None = None
        """What the task being concluded sent as it ran, for its record (``_lineage``)."""
        self._decoded: dict[str, Message] = {}
        self._started_info = {"pid": os.getpid(), "hostname": hostname}
        """STARTED's info, as Celery's: which process runs the task."""
        self.running = False
        """True while a task's own code runs: only then may a terminate signal interrupt."""
        self.running_id = ""
        """The delivery of the ``def`` task whose code runs, "" between them: a terminate
        signal aimed at it stops it even while coroutines are in flight (child.py)."""
        self.runtime: float | None = None
        """Seconds the last task's code ran (read by ``metrics.measured``)."""
        recorder = metrics.current()
        if recorder is not None:  # metrics on: handle tells the recorder (off: no cost)
            self.handle = metrics.measured(self, recorder)  # type: ignore[method-assign,assignment]
        self._init_async(inline_loop)

    # -- the pipeline -------------------------------------------------------------------

    def received(self, deliveries: list[Delivery]) -> None:
        """Record RECEIVED for a reserved batch, in one write (``task_track_received``).

        Written with each message's attempt fence, so it never hides a newer state; the
        decoded messages are kept for ``handle``.
        """
        items = []
        for delivery in deliveries:
            try:
                message = self._decoded[delivery.id] = decode_message(delivery.body)
            except DecodeError:
                continue
            if message.ignore_result:
                continue
            record = TaskRecord(
                status=states.RECEIVED,
                task=message.task,
                retries=message.retries,
                worker=self.hostname,
                parent_id=message.parent_id,
                root_id=message.root_id if message.root_id != message.id else None,
            )
            attempt = fence(
                message.retries, delivery.delivery_count, LEVEL_RECEIVED, resends=delivery.resends
            )
            items.append((message.id, self.results.encode(record, attempt), attempt))
        if items:
            self.results.write_encoded(items)

    def forget(self, delivery: Delivery) -> None:
        """Drop what ``received`` kept for a delivery handed back unrun."""
        self._decoded.pop(delivery.id, None)

    def peek(self, delivery: Delivery) -> Message | None:
        """A reserved delivery's message, decoded once and kept for ``handle``."""
        message = self._decoded.get(delivery.id)
        if message is None:
            try:
                message = self._decoded[delivery.id] = decode_message(delivery.body)
            except DecodeError:
                return None
        return message

    def request(self, task: AnyTask, message: Message, delivery: Delivery) -> Request:
        """The request of a message not running yet (signals), its arguments as sent."""
        attempt = fence(message.retries, delivery.delivery_count, resends=delivery.resends)
        args, kwargs = tuple(message.args), dict(message.kwargs)
        return self._context(task, message, delivery, args, kwargs, attempt)

    def handle(self, delivery: Delivery) -> str:
        """Process one delivery; returns the final state."""
        try:
            message = self._decoded.pop(delivery.id, None) or decode_message(delivery.body)
        except DecodeError as exc:
            state = self._refuse(delivery, None, None, exc, str(exc))
            if signals.task_rejected.receivers:
                notify.rejected(self, delivery, exc)
            return state
        attempt = fence(message.retries, delivery.delivery_count, resends=delivery.resends)
        self._taken, self._taken_at = message, time.time_ns()
        if delivery.redelivered and self._already_done(message, delivery):
            logger.info(
                "%s[%s] redelivered after it had finished; acked without running",
                message.task,
                message.id,
            )
            self._event_stored(message)
            workflow.resume(self.app, message)  # workflow hook: finish what the crash cut short
            self.outbox.ack(delivery, message)
            return states.SUCCESS
        try:
            task = self.app.tasks[message.task]
        except NotRegistered as exc:
            state = self._refuse(delivery, message, attempt, exc, str(exc))
            if signals.task_unknown.receivers:
                notify.unknown(self, delivery, message, exc)
            return state
        limit = self.app.conf.task_max_deliveries
        if delivery.delivery_count > limit:
            error = self._too_many_deliveries(delivery, limit)
            return self._refuse(delivery, message, attempt, error, str(error))
        if message.expires is not None and self.clock() >= message.expires:
            when = datetime.fromtimestamp(message.expires).isoformat(timespec="seconds")
            state = self._finish(
                delivery,
                message,
                attempt,
                TaskRecord(status=states.REVOKED, result=f"expired at {when}", task=message.task),
            )
            if signals.task_revoked.receivers:
                notify.revoked(self, task, self.request(task, message, delivery), expired=True)
            return state
        try:
            args, kwargs = self._arguments(task, message)
        except BrokerError:
            raise
        except (ContentDisallowed, TypeError) as exc:
            return self._refuse(delivery, message, attempt, exc, f"{message.task}: {exc}")
        except Exception as exc:
            reason = f"{message.task}: its arguments could not be read: {named(exc)}"
            return self._refuse(delivery, message, attempt, exc, reason)
        try:
            admission = self.guards.admit(task, message, delivery, args, kwargs)
        except BrokerError:
            raise
        except Exception as exc:
            reason = f"{message.task}: the checks before it runs failed: {named(exc)}"
            if signals.task_internal_error.receivers:
                notify.internal_error(self, delivery, message, exc)
            return self._refuse(delivery, message, attempt, exc, reason)
        if admission.verdict is not None:
            state = self._turn_away(delivery, message, attempt, admission.verdict)
            if state == states.REVOKED and signals.task_revoked.receivers:
                context = self._context(task, message, delivery, args, kwargs, attempt)
                notify.revoked(self, task, context)
            return state
        if task.is_async:
            return self._submit(delivery, message, task, attempt, args, kwargs, admission)
        try:
            return self._run(delivery, message, task, attempt, args, kwargs)
        finally:
            self.guards.release(admission)

    def _run(
        self,
        delivery: Delivery,
        message: Message,
        task: AnyTask,
        attempt: int,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> str:
        context = self._context(task, message, delivery, args, kwargs, attempt)
        if self.outbox.continuing:
            self.outbox.flush_writes()  # a workflow goes on before the next task starts
        if self._to_start or self._starting:
            self.start_async()  # async tasks handed over start before a def task runs
        started = None
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
        time_limit = message.time_limit or task.time_limit or self.app.conf.task_time_limit
        soft_limit = (
            message.soft_time_limit or task.soft_time_limit or self.app.conf.task_soft_time_limit
        )
        started_at = time.monotonic()
        deadline = time.time() + time_limit if time_limit else None
        if message.parent_id is not None or message.root_id not in (None, message.id):
            lineage = getattr(self.tracker, "lineage", None)
            if lineage is not None:  # a prefork child: the outcome of a kill keeps them
                lineage(delivery, message.parent_id, message.root_id)
        self.tracker.started(delivery, message.id, deadline, attempt)
        self._event_running(message)
        if message.headers and "stamped_headers" in message.headers:
            stamped = getattr(self.tracker, "stamped", None)
            if stamped is not None:  # a prefork child: its supervisor terminates by stamp
                stamped(delivery, stamp_keys(message.headers))
        for hook in self.app.on_task_start:
            hook(task, context)
        if signals.task_prerun.receivers:
            notify.prerun(task, context)
        outcome: Outcome | None = None
        try:
            if started is not None:
                self.outbox.running(message.id, started, attempt)
            self.running_id = delivery.id
            self.running = True
            with _soft_limit(soft_limit if self._soft_limits else None):
                outcome = trace(task, context, args, kwargs)
        finally:
            self.running = False
            self.running_id = ""
            self.outbox.stopped()
            self.tracker.finished(delivery, outcome is None or outcome.state == states.FAILURE)
            for hook in self.app.on_task_end:
                hook(task, context)
        runtime = self.runtime = time.monotonic() - started_at
        self._sent = context.sent
        state = self._conclude(delivery, message, task, attempt, outcome, runtime)
        self._sent = None  # not stored by an outcome that writes no record (a requeue)
        if notify.listening_after_run():
            notify.after_run(self, task, context, outcome, state, runtime)
        return state

    def _turn_away(
        self, delivery: Delivery, message: Message, attempt: int, verdict: Verdict
    ) -> str:
        """A task the guards did not admit: revoked, skipped, or postponed in the broker."""
        if verdict.action == POSTPONE:
            logger.debug(
                "%s[%s] postponed %.2fs: %s",
                message.task,
                message.id,
                verdict.delay,
                verdict.reason,
            )
            if self.outbox.events is not None and self._taken is message:
                self.outbox.events.received(message, self.hostname, self._taken_at)
            self._taken = None
            self._nack(delivery, verdict.delay)
            return states.PENDING
        status = states.REVOKED if verdict.action == REVOKE else states.IGNORED
        logger.info("%s[%s] %s: %s", message.task, message.id, status.lower(), verdict.reason)
        record = TaskRecord(
            status=status, result=verdict.reason, task=message.task, retries=message.retries
        )
        return self._finish(delivery, message, attempt, record)

    def _already_done(self, message: Message, delivery: Delivery) -> bool:
        """Whether this attempt already stored its outcome (the worker died before the ack)."""
        record = self.results.read(message.id)
        return (
            record is not None
            and record.retries == message.retries
            and record.resends == delivery.resends
            and (record.status in states.READY_STATES or record.status == states.RETRY)
        )

    def _track_started(self, task: AnyTask) -> bool:
        if task.track_started is not None:
            return task.track_started
        return bool(self.app.conf.task_track_started)

    def _arguments(self, task: AnyTask, message: Message) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if message.content_type == "pickle":
            if "pickle" not in self.app.conf.accept_content or message.payload is None:
                raise ContentDisallowed(
                    "refused a pickled message: this app does not accept pickle "
                    "(set accept_content=['json', 'pickle'] only if every producer is trusted)"
                )
            args, kwargs = unpickle_arguments(message.payload)
        elif message.content_type == "json":
            args, kwargs = tuple(message.args), dict(message.kwargs)
        else:
            raise ContentDisallowed(f"unknown content type {message.content_type!r}")
        if task.typing:
            task.spec.check(message.task, args, kwargs)
            if message.content_type == "json":
                args, kwargs = task.spec.convert(args, kwargs)
        return args, kwargs

    def _context(
        self,
        task: AnyTask,
        message: Message,
        delivery: Delivery,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        attempt: int,
    ) -> Request:
        return Request(
            id=message.id,
            task=message.task,
            args=args,
            kwargs=kwargs,
            retries=message.retries,
            hostname=self.hostname,
            delivery_info={
                "exchange": "",
                "routing_key": delivery.queue,
                "queue": delivery.queue,
                "priority": delivery.priority,
                "redelivered": delivery.redelivered,
            },
            called_directly=False,
            parent_id=message.parent_id,
            root_id=message.root_id,
            group_id=message.group_id,
            group_index=message.group_index,
            headers=dict(message.headers),
            eta=message.eta,
            expires=message.expires,
            delivery_count=delivery.delivery_count,
            time_limit=message.time_limit,
            soft_time_limit=message.soft_time_limit,
            ignore_result=message.ignore_result,
            fence=attempt,
            message=message,
        )

    # -- outcomes -----------------------------------------------------------------------

    def _conclude(
        self,
        delivery: Delivery,
        message: Message,
        task: AnyTask,
        attempt: int,
        outcome: Outcome,
        runtime: float,
    ) -> str:
        name, task_id = message.task, message.id
        self._ran_for = runtime
        if outcome.state == states.SUCCESS:
            try:
                record = success_record(task, message, outcome.retval, self.hostname)
                state = self._finish(delivery, message, attempt, record)
            except EncodeError as error:
                logger.error("%s[%s] ran; its result cannot be stored: %s", name, task_id, error)
                outcome.exc = error  # the task failed after all (task_failure, not task_success)
                return self._finish(
                    delivery, message, attempt, failure_record(name, message, error)
                )
            logger.info("%s[%s] succeeded in %.4fs: %.200r", name, task_id, runtime, outcome.retval)
            return state
        if outcome.state == states.RETRY:
            assert outcome.retry is not None
            return self._retry(delivery, message, task, attempt, outcome)
        if outcome.state == states.REVOKED:
            logger.warning("%s[%s] terminated: %s", name, task_id, outcome.exc)
            return self._finish(
                delivery,
                message,
                attempt,
                TaskRecord(status=states.REVOKED, result="terminated", task=name),
            )
        if outcome.state == states.IGNORED:
            return self._finish(
                delivery, message, attempt, TaskRecord(status=states.IGNORED, task=name)
            )
        if outcome.state == states.REJECTED:
            assert outcome.reject is not None
            return self._rejected(delivery, message, attempt, outcome.reject)
        assert outcome.exc is not None
        logger.error(
            "%s[%s] raised %s: %s (args %s, kwargs %s)",
            name,
            task_id,
            type(outcome.exc).__name__,
            outcome.exc,
            message.shown_args(),
            message.shown_kwargs(),
            exc_info=outcome.exc,
        )
        record = failure_record(name, message, outcome.exc)
        if task.dead_letter:
            self._write(message, attempt, record)
            self._dead_letter(delivery, f"failed: {type(outcome.exc).__name__}: {outcome.exc}")
            return states.FAILURE
        return self._finish(delivery, message, attempt, record)

    def _retry(
        self, delivery: Delivery, message: Message, task: AnyTask, attempt: int, outcome: Outcome
    ) -> str:
        retry = outcome.retry
        assert retry is not None
        now = self.clock()
        again = next_message(message, retry, task, now)
        try:
            envelope = self.app.envelope(again, task)
        except Exception as unsent:
            cause = unsent if isinstance(unsent, EncodeError) else named(unsent)
            error = EncodeError(f"{message.task}: its retry could not be sent: {cause}")
            logger.error("%s[%s] %s", message.task, message.id, error)
            return self._finish(
                delivery, message, attempt, failure_record(message.task, message, error)
            )
        self.app.publish_envelopes([envelope])
        delay = (again.eta or now) - now
        logger.info(
            "%s[%s] retry %d in %.1fs: %s",
            message.task,
            message.id,
            again.retries,
            delay,
            outcome.exc,
        )
        exc = outcome.exc or outcome.retry
        assert exc is not None
        record = TaskRecord(
            status=states.RETRY,
            result=str(exc),
            task=message.task,
            exception=ErrorRecord.from_exception(exc),
            retries=message.retries,
            traceback=outcome.einfo.traceback if outcome.einfo else None,
            worker=self.hostname,
            retry_at=again.eta or now,
        )
        self._write(message, attempt, record)
        self.outbox.ack(delivery, message)
        return states.RETRY

    def _write(self, message: Message, attempt: int | None, record: TaskRecord) -> bool:
        self._lineage(message, record)
        self._event(message, record)
        if workflow.handed_on(message, record):  # workflow hook: Task.replace() took over
            return True
        reply = None
        if message.reply and record.status in states.READY_STATES:
            reply = reply_address(message, record)
        stored = message.ignore_result or self.results.write(message.id, record, attempt, reply)
        if stored:  # workflow hook: continue the chain, count the chord member, run links
            workflow.after_outcome(self.app, message, record)
        return stored

    def _lineage(self, message: Message, record: TaskRecord) -> None:
        """``keep_lineage``, with what the task being concluded sent, and after a success its
        link callbacks and chain's next step among its children, as Celery lists them."""
        sent, self._sent = self._sent, None
        keep_lineage(record, message, sent, self._ran_for)
        if record.status == states.SUCCESS and (message.callbacks or message.chain):
            record.children = [*record.children, *workflow.sent_on_success(self.app, message)]

    def _event_stored(self, message: Message) -> None:
        """The event of an outcome stored before this delivery: a supervisor that killed the
        task's process (hard time limit, terminate) stored it and sent the message round
        again, so its event is written here (a worker that died before its ack may have
        written it already: events are at least once there)."""
        if self.outbox.events is not None:
            record = self.results.read(message.id)
            if record is not None:
                hostname = record.worker or self.hostname
                self.outbox.events.outcome(
                    message, record, hostname, None, self._unstarted(message)
                )

    def _event_running(self, message: Message) -> None:
        """Note that the task taken up starts (``worker/events.py``)."""
        if self.outbox.events is not None:
            self.outbox.events.running(message, self.hostname, self._taken_at)
        self._taken = None

    def _event(self, message: Message, record: TaskRecord) -> None:
        """Note an outcome's event (``worker/events.py``), with the runtime ``_conclude`` saw."""
        runtime, self._ran_for = self._ran_for, None
        received = self._unstarted(message)
        if self.outbox.events is not None:
            self.outbox.events.outcome(message, record, self.hostname, runtime, received)

    def _unstarted(self, message: Message) -> int | None:
        """When ``message`` was taken up, if it is the one ``handle`` holds and it never
        started (an async task's outcome may be concluded while another is handled)."""
        if self._taken is not message:
            return None
        self._taken = None
        return self._taken_at

    def _finish(
        self, delivery: Delivery, message: Message, attempt: int, record: TaskRecord
    ) -> str:
        """Store the outcome soon (see ``Outbox``), then ack."""
        self._lineage(message, record)
        self._event(message, record)
        if workflow.handed_on(message, record):  # workflow hook: Task.replace() took over
            pass
        elif message.ignore_result:
            workflow.after_outcome(self.app, message, record)
        else:
            self.outbox.outcome(delivery, message, record, attempt)
        self.outbox.ack(delivery, message)
        return record.status


class _soft_limit:
    """Raise SoftTimeLimitExceeded in the main thread after ``seconds``."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds

    def __enter__(self) -> None:
        if self.seconds:
            signal.signal(signal.SIGALRM, _raise_soft_limit)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def __exit__(self, *exc: object) -> None:
        if self.seconds:
            signal.setitimer(signal.ITIMER_REAL, 0)


def _raise_soft_limit(signum: int, frame: object) -> None:
    raise SoftTimeLimitExceeded("soft time limit exceeded")
