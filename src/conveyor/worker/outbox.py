"""What a consumer owes the stores: outcomes to write and acks to send, batched.

Outcomes are written before their acks, always. An outcome whose message continues a
workflow is written by the consumer's thread before its next task (only that thread runs
workflow hooks); the others, and the STARTED of a task still running ``DELAY`` after it
began, may be written by the late writer's thread (``late.py``), several in one call.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from .. import states, workflow
from ..app import Conveyor
from ..brokers.base import Delivery
from ..message import EVERY_OUTCOME, Message
from ..records import LEVEL_STARTED, TaskRecord, at_level
from ..serialization import explain_result
from .events import EventBuffer, event_buffer
from .late import DELAY, RESULT_DELAY, late_writer

__all__ = ["Outbox", "Tracker", "reply_address"]

logger = logging.getLogger("conveyor.worker")


@dataclass(slots=True)
class _Write:
    """An outcome waiting to be stored; ``continues``: its message has workflow hooks."""

    delivery: Delivery
    message: Message
    record: TaskRecord
    data: bytes
    fence: int
    continues: bool
    at: float


@dataclass(slots=True)
class _Started:
    """The running task's STARTED, written only if it is still running ``DELAY`` later."""

    item: tuple[str, TaskRecord, int] | None
    """Its task id, record and fence; encoded only if it is written (most tasks end first)."""
    since: float


class Tracker(Protocol):
    """Told what a consumer holds, so leases are kept alive and hard limits enforced."""

    def reserved(self, deliveries: list[Delivery]) -> None: ...
    def started(
        self, delivery: Delivery, task_id: str, hard_deadline: float | None, fence: int
    ) -> None: ...
    def finished(self, delivery: Delivery, failed: bool = False) -> None:
        """The task's code ended (``failed``: it raised and will not be retried); its
        message is still held until it is acknowledged."""

    def ended(self, delivery: Delivery, failed: bool = False) -> None:
        """``finished`` for an async task whose coroutine had a hard time limit or was
        cancelled by a terminate, told on the loop's thread as it ends: its outcome waits
        for the consumer, which may run a ``def`` task meanwhile, and the supervisor must
        not hold the limit or the terminate against it."""

    def released(self, deliveries: list[Delivery]) -> None:
        """Acked, handed back or dead-lettered: no longer held."""

    def flush(self) -> None:
        """Deliver buffered notices now (the consumer is about to sleep or exit)."""


class Outbox:
    def __init__(self, app: Conveyor, tracker: Tracker) -> None:
        self.app = app
        self.tracker = tracker
        self.broker = app.broker
        self.results = app.results
        self.acks: list[tuple[Delivery, Message]] = []
        self.writes: list[_Write] = []
        self.continuing = False
        """An outcome waiting to be written continues a workflow: write before the next task."""
        self._started: _Started | None = None
        self._state = threading.Lock()
        """Guards ``writes`` and ``_started``, shared with the late writer's thread."""
        self._io = threading.Lock()
        """One state write at a time, so outcomes land in order and before their acks."""
        self._late = late_writer()
        self._late.register(self)
        self.flushes_next = False
        """Set by the consumer while it collects ended async tasks right before its next
        broker call, which stores every waiting outcome first (``take_acks``): an outcome
        noted meanwhile does not wake the late writer, which would find nothing left."""
        self.events: EventBuffer | None = event_buffer(app)
        """Where the executor notes task events (None: ``worker_send_task_events`` off)."""

    def outcome(self, delivery: Delivery, message: Message, record: TaskRecord, fence: int) -> None:
        """Write this outcome soon (``flush_writes`` or ``write_late``)."""
        continues = workflow.continues(message)
        try:
            data = self.results.encode(record, fence)
        except (TypeError, ValueError, OverflowError):
            raise explain_result(message.task, record.result) from None
        write = _Write(delivery, message, record, data, fence, continues, time.monotonic())
        with self._state:
            self.writes.append(write)
            self.continuing = self.continuing or continues
        if not continues and not self.flushes_next:
            self._late.poke()

    def write_now(self, message: Message, record: TaskRecord, fence: int) -> None:
        """Store one outcome at once, from any thread: the loop thread stores a quick
        coroutine's success this way while the consumer waits for it (aio_executor.py),
        instead of waking the consumer to write it. Raises what encoding or the store
        raised; the consumer then stores the outcome as usual."""
        data = self.results.encode(record, fence)
        with self._io:
            stored = self.results.write_encoded(
                [(message.id, data, fence)],
                {message.id: reply_address(message, record)} if message.reply else {},
            )
        if not stored[0]:
            _refused(message)

    def running(self, task_id: str, started: TaskRecord, fence: int) -> None:
        """A task began: its STARTED is written if it still runs ``DELAY`` later."""
        item = (task_id, started, at_level(fence, LEVEL_STARTED))
        with self._state:
            self._started = _Started(item, time.monotonic())
        self._late.poke()

    def stopped(self) -> None:
        """The task's code ended: its STARTED, if not written yet, never will be."""
        if self._started is not None:
            with self._state:
                self._started = None

    def flush_writes(self) -> None:
        """Store every outcome still waiting, then run their workflow hooks."""
        with self._io:
            with self._state:
                writes, self.writes = self.writes, []
                self.continuing = False
            if not writes:
                return
            try:
                stored = self.results.write_encoded(
                    [(w.message.id, w.data, w.fence) for w in writes], _replies(writes)
                )
            except BaseException:
                with self._state:
                    self.writes[:0] = writes
                    self.continuing = any(w.continues for w in self.writes)
                raise
        for write, ok in zip(writes, stored, strict=True):
            if not ok:
                _refused(write.message)
            elif write.continues:
                try:  # workflow hook: continue the chain, count the chord member, run links
                    workflow.after_outcome(self.app, write.message, write.record)
                except Exception:
                    logger.exception(
                        "%s[%s]: its workflow did not continue; it is delivered again to finish it",
                        write.message.task,
                        write.message.id,
                    )
                    self._redeliver(write.delivery)

    def write_late(self) -> bool:
        """From the late writer's thread: STARTED of a task running for ``DELAY``, and the
        waiting outcomes that continue no workflow, in one call. The outcomes go with a
        STARTED, or alone once the oldest has waited ``RESULT_DELAY``. Whether anything
        is left for a later look."""
        with self._io:
            with self._state:
                now = time.monotonic()
                started = self._started
                item = None
                if started is not None and now - started.since >= DELAY:
                    item, started.item = started.item, None
                writes = [w for w in self.writes if not w.continues]
                if writes and (item is not None or now - writes[0].at >= RESULT_DELAY):
                    self.writes = [w for w in self.writes if w.continues]
                else:
                    writes = []
                waiting = (started is not None and started.item is not None) or any(
                    not w.continues for w in self.writes
                )
            if not writes and item is None:
                return waiting
            items = [(w.message.id, w.data, w.fence) for w in writes]
            if item is not None:
                task_id, record, fence = item
                items.append((task_id, self.results.encode(record, fence), fence))
            try:
                stored = self.results.write_encoded(items, _replies(writes))
            except Exception as exc:
                with self._state:
                    self.writes[:0] = writes
                logger.debug("background write failed (%s); the consumer writes it", exc)
                return False
        for write, ok in zip(writes, stored, strict=False):
            if not ok:
                _refused(write.message)
        return waiting

    def close(self) -> None:
        """Stop taking part in background writes (the consumer has stored everything),
        and write the events noted so far."""
        self._late.unregister(self)
        if self.events is not None:
            self.events.flush()

    def _redeliver(self, delivery: Delivery) -> None:
        """Take back a pending ack and let the lease pass now, so the message comes round
        again (counted) and the stored outcome's continuation is resumed."""
        self.acks = [(d, m) for d, m in self.acks if d is not delivery]
        self.broker.extend([delivery], 0.0)
        self.broker.recover_expired()
        self.tracker.released([delivery])

    def ack(self, delivery: Delivery, message: Message) -> None:
        """Acks wait for ``flush_acks``: one write for a batch, not one per task.

        The result is already stored, and the supervisor keeps the lease alive until the
        ack lands; if the worker dies first, the redelivery finds the stored outcome and
        is acked without running again.
        """
        self.acks.append((delivery, message))

    def take_acks(self) -> list[tuple[Delivery, Message]]:
        """Store the waiting outcomes, then hand over the pending acks to send (results
        always land before their acks). Give them to ``acked`` once sent."""
        self.flush_writes()
        if self.events is not None:
            self.events.flush_due()
        acks, self.acks = self.acks, []
        return acks

    def untake_acks(self, acks: list[tuple[Delivery, Message]]) -> None:
        """Sending them failed: keep them for the next try."""
        self.acks[:0] = acks

    def acked(self, acks: list[tuple[Delivery, Message]], done: list[bool]) -> None:
        for (_, message), ok in zip(acks, done, strict=True):
            if not ok:
                logger.warning(
                    "%s[%s]: ack refused: the lease passed and another worker took it",
                    message.task,
                    message.id,
                )
        if acks:
            self.tracker.released([delivery for delivery, _ in acks])

    def flush_acks(self) -> None:
        acks = self.take_acks()
        if not acks:
            return
        try:
            done = self.broker.ack_many([delivery for delivery, _ in acks])
        except BaseException:
            self.untake_acks(acks)
            raise
        self.acked(acks, done)


def _replies(writes: list[_Write]) -> dict[str, str]:
    """The task ids whose outcome is handed to a sender waiting for it, with where
    (``reply_address``)."""
    return {w.message.id: reply_address(w.message, w.record) for w in writes if w.message.reply}


def reply_address(message: Message, record: TaskRecord) -> str:
    """Where an outcome's reply goes: a success to the sender's own list (``reply_to``),
    anything else to the key's own reply list (""), which forgetting the result deletes:
    a failure whose message is re-sent from the dead letters must not reach a ``get()``
    after the re-send. An event loop's list takes every outcome (``EVERY_OUTCOME``)."""
    to = message.reply_to
    if to and (record.status == states.SUCCESS or to.startswith(EVERY_OUTCOME)):
        return to
    return ""


def _refused(message: Message) -> None:
    logger.warning(
        "%s[%s]: result refused, a newer attempt owns this task", message.task, message.id
    )
