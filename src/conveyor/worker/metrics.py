"""What the worker tells a metrics exporter about each message it handles.

Off unless an exporter installs a ``Recorder`` (``conveyor.contrib.prometheus`` does, for
``conveyor worker --metrics-port``) before the worker's consumers start: an executor made
then has its ``handle`` wrapped by ``measured``, one made without a recorder is left as
it is, so a worker without metrics pays nothing per task. The recorder is told once per
message, after its outcome, so it can count without a lock of its own or a round trip.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..brokers.base import Delivery
from ..message import Message

if TYPE_CHECKING:
    from .executor import Executor

__all__ = ["Recorder", "current", "install", "measured", "uninstall"]


class Recorder(Protocol):
    """Told about each message a consumer handled."""

    def handled(
        self, message: Message | None, queue: str, state: str, runtime: float | None, wait: float
    ) -> None:
        """``state``: the executor's answer (SUCCESS, FAILURE, RETRY, REVOKED, IGNORED,
        REJECTED; PENDING for a message postponed by a rate or concurrency limit).
        ``message`` is None when its body could not be decoded. ``runtime``: seconds the
        task's own code ran, None when it did not run. ``wait``: seconds from when it was
        due (sent, or its eta) until the worker took it up, 0.0 when unknown."""


_recorder: Recorder | None = None


def install(recorder: Recorder) -> None:
    """Tell ``recorder`` about every message the executors made from now on handle."""
    global _recorder
    _recorder = recorder


def uninstall() -> None:
    global _recorder
    _recorder = None


def current() -> Recorder | None:
    return _recorder


def measured(executor: Executor, recorder: Recorder) -> Callable[[Delivery], str]:
    """``executor.handle``, telling ``recorder`` about each message it handles."""
    inner = executor.handle
    peek = executor.peek
    now = time.time

    def handle(delivery: Delivery) -> str:
        message = peek(delivery)
        taken = now()
        executor.runtime = None
        state = inner(delivery)
        wait = 0.0
        if message is not None and message.sent_at:
            wait = max(0.0, taken - max(message.sent_at, message.eta or 0.0))
        recorder.handled(message, delivery.queue, state, executor.runtime, wait)
        return state

    return handle
