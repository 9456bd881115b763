"""Every error Conveyor raises, under one root.

::

    ConveyorError
    ├── ImproperlyConfigured        unknown setting or option, bad URL
    ├── NotRegistered               no task of that name (also a KeyError)
    ├── DuplicateTaskName           two different functions under one name
    ├── EncodeError                 an argument or result cannot be sent (also a TypeError)
    │   └── PayloadTooLarge         the encoded message is over the size limit
    ├── DecodeError                 a message or stored value cannot be read
    ├── ContentDisallowed           a message in a content type the app did not accept
    ├── TimeoutError                a result did not arrive in time (also the builtin)
    ├── TaskRevokedError            the task was revoked or expired before it ran
    ├── MaxRetriesExceededError     retry() past max_retries with no exception to re-raise
    ├── TimeLimitExceeded           the hard time limit killed the task
    ├── WorkerLostError             the process running the task died, too often
    ├── RemoteTaskError             a task failed with an exception that cannot be rebuilt here
    ├── ChordError                  a chord member failed, so its callback did not run
    ├── BlockingCallError           get() called where it would block a running event loop
    └── BrokerError                 the broker or result store is unreachable or refused

    Interrupt (BaseException: ``except Exception`` in user code cannot swallow these)
    ├── Retry                       raised by ``Task.retry()``
    ├── Ignore                      end the task now, store IGNORED, no retry
    ├── Reject                      refuse the message: requeue it or dead-letter it
    ├── SoftTimeLimitExceeded       the soft time limit passed; the task may clean up
    └── Terminated                  the task was revoked with terminate=True while running
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

__all__ = [
    "BlockingCallError",
    "BrokerError",
    "ChordError",
    "ContentDisallowed",
    "ConveyorError",
    "DecodeError",
    "DuplicateTaskName",
    "EncodeError",
    "Ignore",
    "ImproperlyConfigured",
    "Interrupt",
    "MaxRetriesExceededError",
    "NotRegistered",
    "PayloadTooLarge",
    "Reject",
    "RemoteTaskError",
    "Retry",
    "SoftTimeLimitExceeded",
    "TaskRevokedError",
    "Terminated",
    "TimeLimitExceeded",
    "TimeoutError",
    "WorkerLostError",
]


class ConveyorError(Exception):
    """Root of every error Conveyor raises."""


class ImproperlyConfigured(ConveyorError):
    """A setting, option or URL that Conveyor does not understand."""


class NotRegistered(ConveyorError, KeyError):
    """No task is registered under the name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "task not registered"


class DuplicateTaskName(ConveyorError):
    """Two different functions were registered under one task name."""


class EncodeError(ConveyorError, TypeError):
    """A value cannot be encoded for sending."""


class PayloadTooLarge(EncodeError):
    """The encoded message is larger than ``max_payload_size``."""


class DecodeError(ConveyorError):
    """A message or stored value cannot be decoded."""


class ContentDisallowed(ConveyorError):
    """A message was encoded in a content type the app does not accept."""


class TimeoutError(ConveyorError, builtins.TimeoutError):
    """A result was not ready within the timeout."""


class TaskRevokedError(ConveyorError):
    """The task was revoked, or expired, before it ran."""


class MaxRetriesExceededError(ConveyorError):
    """``retry()`` was called past ``max_retries`` and there was no exception to re-raise."""


class TimeLimitExceeded(ConveyorError):
    """The task ran past its hard time limit and its process was killed."""


class WorkerLostError(ConveyorError):
    """The process running the task died (a crash, a kill) on each of its deliveries."""


class BrokerError(ConveyorError):
    """The broker or result store could not be reached or refused the operation."""


class ChordError(ConveyorError):
    """A chord's header member failed (or was revoked): the callback did not run.

    The message names the member's task id and task, and the error it raised.
    """


class BlockingCallError(ConveyorError, RuntimeError):
    """A blocking wait (``result.get()``, ``join()``) was called on a thread that runs an
    event loop; the message names the coroutine to await instead (``result.aget()``)."""


class RemoteTaskError(ConveyorError):
    """A task failed with an exception whose class cannot be rebuilt in this process."""

    def __init__(self, exc_type: str, exc_module: str, message: str, traceback: str | None = None):
        super().__init__(
            f"{exc_module}.{exc_type}: {message}" if exc_module else f"{exc_type}: {message}"
        )
        self.exc_type = exc_type
        self.exc_module = exc_module
        self.message = message
        self.traceback = traceback


class Interrupt(BaseException):
    """Control flow out of a running task; user code's ``except Exception`` cannot swallow it."""


class Retry(Interrupt):
    """Raised by ``Task.retry()``: the worker sends the task again and records RETRY.

    ``args_override`` and ``kwargs_override`` (None: the same again) and ``options`` (send
    options such as ``queue``) are what ``retry()`` was given for the next attempt.
    ``is_eager`` and ``sig`` are Celery's: whether the task ran eagerly, and the signature
    of the next attempt. ``exc`` may be a string, as in Celery (kept in ``excs``).
    """

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | str | None = None,
        when: float | datetime | None = None,
        is_eager: bool = False,
        sig: Any = None,
        *,
        args_override: tuple[Any, ...] | None = None,
        kwargs_override: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ):
        self.message = message
        self.exc: BaseException | None = None if isinstance(exc, str) else exc
        self.excs: str | None = exc if isinstance(exc, str) else None
        if exc is not None and not isinstance(exc, str):
            self.excs = repr(exc)
        self.when = when
        self.is_eager = is_eager
        self.sig = sig
        self.args_override = args_override
        self.kwargs_override = kwargs_override
        self.options: dict[str, Any] = options or {}
        super().__init__(message, exc, when)

    def humanize(self) -> str:
        """When the next attempt is due, as Celery words it: ``in 30s``, ``at 2026-...``."""
        if isinstance(self.when, int | float):
            return f"in {self.when}s"
        return f"at {self.when}"

    def __str__(self) -> str:
        if self.message:
            return self.message
        when = f" {self.humanize()}" if self.when is not None else ""
        return f"Retry{when}: {self.excs}" if self.excs else f"Retry{when}"


class Ignore(Interrupt):
    """End the task without a result or a retry; its state becomes IGNORED."""


class Reject(Interrupt):
    """Refuse the message: back to its queue when ``requeue`` is true, else to the dead letters."""

    def __init__(self, reason: Any = None, requeue: bool = False):
        self.reason = reason
        self.requeue = requeue
        super().__init__(reason, requeue)


class SoftTimeLimitExceeded(Interrupt):
    """The task's soft time limit passed; catch it to clean up before the hard limit."""


class Terminated(Interrupt):
    """The running task was revoked with ``terminate=True``; it ends REVOKED."""
