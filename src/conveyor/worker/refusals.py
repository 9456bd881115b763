"""What happens to a delivery that does not end in a stored outcome of its own run: it is
rejected by its task (dead-lettered, or requeued as a new delivery), refused before it runs
(dead-lettered with the reason, recorded as FAILURE where it has an id), or handed back
after the worker's own code failed on it, counted, so a message that trips the worker
every time ends in the dead letters. Never dropped.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, cast

from .. import signals, states
from ..app import Conveyor
from ..brokers.base import Broker, Delivery
from ..exceptions import ConveyorError, DecodeError, Reject, WorkerLostError
from ..keys import lost_key
from ..message import Message
from ..records import ErrorRecord, TaskRecord, fence, format_traceback
from ..serialization import decode_message
from . import notify
from .outbox import Outbox, Tracker

if TYPE_CHECKING:
    from .executor import Executor

__all__ = ["Refusals", "failure_record", "keeps_arguments", "named"]

logger = logging.getLogger("conveyor.worker")


class Refusals:
    """For ``Executor``: rejections, refusals and hand-backs."""

    app: Conveyor
    hostname: str
    tracker: Tracker
    broker: Broker
    outbox: Outbox

    if TYPE_CHECKING:  # the executor's, which this mixin calls

        def forget(self, delivery: Delivery) -> None: ...
        def _write(self, message: Message, attempt: int | None, record: TaskRecord) -> bool: ...

    def _rejected(self, delivery: Delivery, message: Message, attempt: int, reject: Reject) -> str:
        """``Reject``: dead-letter the message with the reason, or with ``requeue=True``
        hand it back as a new delivery (``request.delivery_info["redelivered"]``). Each
        requeue counts as a delivery, so ``task_max_deliveries`` ends a task that rejects
        every time in the dead letters."""
        name, limit = message.task, self.app.conf.task_max_deliveries
        if reject.requeue and delivery.delivery_count < limit:
            logger.info(
                "%s[%s] rejected, requeued (delivery %d of at most %d): %s",
                name,
                message.id,
                delivery.delivery_count,
                limit,
                reject.reason,
            )
            if self.outbox.events is not None:
                self.outbox.events.rejected_requeued(message, self.hostname, str(reject.reason))
            self._hand_back(delivery)
            return states.REJECTED
        if reject.requeue:
            reason = (
                f"rejected by the task on each of its {delivery.delivery_count} deliveries "
                f"(task_max_deliveries is {limit}): {reject.reason}"
            )
        else:
            reason = f"rejected by the task: {reject.reason}"
        logger.warning("%s[%s] %s; dead-lettered", name, message.id, reason)
        self._write(message, attempt, TaskRecord(status=states.REJECTED, result=reason, task=name))
        self._dead_letter(delivery, reason)
        return states.REJECTED

    def _hand_back(self, delivery: Delivery) -> None:
        """Back to its queue as a new delivery: its lease passes now, which counts."""
        self.broker.extend([delivery], 0.0)
        self.broker.recover_expired()
        self.tracker.released([delivery])

    def worker_error(self, delivery: Delivery, exc: Exception) -> None:
        """The worker's own code failed on a delivery: hand it back counted as a delivery,
        so a message that trips the worker every time ends in the dead letters."""
        self.forget(delivery)
        if signals.task_internal_error.receivers:
            with contextlib.suppress(DecodeError):
                notify.internal_error(
                    cast("Executor", self), delivery, decode_message(delivery.body), exc
                )
        limit = self.app.conf.task_max_deliveries
        if delivery.delivery_count < limit:
            self._hand_back(delivery)
            return
        reason = (
            f"the worker failed on each of its {delivery.delivery_count} deliveries "
            f"(task_max_deliveries is {limit}), the last time with {named(exc)}"
        )
        try:
            message: Message | None = decode_message(delivery.body)
        except DecodeError:
            message = None
        attempt = (
            None
            if message is None
            else fence(message.retries, delivery.delivery_count, resends=delivery.resends)
        )
        self._refuse(delivery, message, attempt, exc, reason)

    def _too_many_deliveries(self, delivery: Delivery, limit: int) -> ConveyorError:
        """Why a message came round too often: its process died while running it (the
        supervisor leaves a note), or its lease passed (the worker froze or was killed)."""
        died = self.app.coordinator.get(lost_key(delivery.id))
        if died is not None:
            return WorkerLostError(
                f"its worker process died while running it ({died}); delivered "
                f"{delivery.delivery_count} times, task_max_deliveries is {limit}"
            )
        return ConveyorError(
            f"delivered {delivery.delivery_count} times without finishing (its worker died "
            f"or froze past its lease each time); task_max_deliveries is {limit}"
        )

    def _nack(self, delivery: Delivery, delay: float | None = None) -> None:
        self.broker.nack(delivery, delay)
        self.tracker.released([delivery])

    def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        self.broker.dead_letter(delivery, reason)
        self.tracker.released([delivery])

    def _refuse(
        self,
        delivery: Delivery,
        message: Message | None,
        attempt: int | None,
        exc: BaseException,
        reason: str,
    ) -> str:
        """Dead-letter a message that cannot run, and record why where it has an id."""
        logger.error("dead-lettered message %s: %s", delivery.id, reason)
        if message is not None:
            self._write(message, attempt, failure_record(message.task, message, exc))
        self._dead_letter(delivery, reason)
        return states.FAILURE


def named(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def failure_record(name: str, message: Message, exc: BaseException) -> TaskRecord:
    return TaskRecord(
        status=states.FAILURE,
        result=f"{type(exc).__name__}: {exc}",
        exception=ErrorRecord.from_exception(exc),
        traceback=format_traceback(exc),
        task=name,
        retries=message.retries,
        argsrepr=message.shown_args(),
        kwargsrepr=message.shown_kwargs(),
        args=message.args if keeps_arguments(message) else None,
        kwargs=message.kwargs if keeps_arguments(message) else None,
    )


def keeps_arguments(message: Message) -> bool:
    """Whether a failure keeps its arguments (to be sent again): JSON ones only, and never
    those the sender hid behind ``argsrepr``/``kwargsrepr``."""
    return message.payload is None and message.argsrepr is None and message.kwargsrepr is None
