"""Celery's signals, with Celery's names, senders and arguments (``from conveyor import
signals`` or ``from conveyor.signals import task_success``).

Receivers take ``sender`` and ``**kwargs`` (new arguments may be added); see
docs/signals.md for where and in which process each one is sent. A receiver that raises
is logged and never breaks the task, the send or the worker.
"""

from __future__ import annotations

from .dispatch import Signal

__all__ = [
    "Signal",
    "after_setup_logger",
    "after_setup_task_logger",
    "after_task_publish",
    "beat_init",
    "before_task_publish",
    "heartbeat_sent",
    "setup_logging",
    "task_failure",
    "task_internal_error",
    "task_postrun",
    "task_prerun",
    "task_received",
    "task_rejected",
    "task_retry",
    "task_revoked",
    "task_success",
    "task_unknown",
    "worker_init",
    "worker_process_init",
    "worker_process_shutdown",
    "worker_ready",
    "worker_shutdown",
    "worker_shutting_down",
]

# -- sending (in the process that sends; sender: the task's name) ------------------------

before_task_publish = Signal(
    name="before_task_publish",
    providing_args={
        "body",
        "exchange",
        "routing_key",
        "headers",
        "properties",
        "declare",
        "retry_policy",
    },
)
"""Before a task message is published. Keys added to ``headers`` travel with the message
and reach the task as ``self.request.headers``."""

after_task_publish = Signal(
    name="after_task_publish", providing_args={"body", "exchange", "routing_key", "headers"}
)
"""After a task message reached the broker."""

# -- running (in the worker process that runs the task) ----------------------------------

task_received = Signal(name="task_received", providing_args={"request"})
"""A reserved message for a known task (sender: the consumer's executor)."""

task_prerun = Signal(name="task_prerun", providing_args={"task_id", "task", "args", "kwargs"})
"""Just before a task's code runs (sender: the task)."""

task_postrun = Signal(
    name="task_postrun",
    providing_args={"task_id", "task", "args", "kwargs", "retval", "state"},
)
"""After a task ran and its outcome was stored, whatever the outcome (sender: the task)."""

task_success = Signal(name="task_success", providing_args={"result", "runtime"})
"""After a task's success was stored (sender: the task)."""

task_failure = Signal(
    name="task_failure",
    providing_args={"task_id", "exception", "args", "kwargs", "traceback", "einfo"},
)
"""After a task's failure was stored (sender: the task)."""

task_retry = Signal(name="task_retry", providing_args={"request", "reason", "einfo"})
"""After a task's retry was sent and its RETRY state stored (sender: the task)."""

task_revoked = Signal(
    name="task_revoked", providing_args={"request", "terminated", "signum", "expired"}
)
"""A revoked or expired task was not run, or a running one was terminated (sender: the task)."""

task_rejected = Signal(name="task_rejected", providing_args={"message", "exc"})
"""A message that is not a task message (its body cannot be read); sender: the executor."""

task_unknown = Signal(name="task_unknown", providing_args={"name", "id", "message", "exc"})
"""A message for a task name this worker does not have; sender: the executor."""

task_internal_error = Signal(
    name="task_internal_error",
    providing_args={
        "task_id",
        "args",
        "kwargs",
        "request",
        "exception",
        "traceback",
        "einfo",
    },
)
"""The worker's own code failed on a message, outside the task's code."""

# -- the worker --------------------------------------------------------------------------

worker_init = Signal(name="worker_init")
"""In the supervisor, before any child starts (sender: the Worker)."""

worker_process_init = Signal(name="worker_process_init")
"""In each child that runs tasks, before it consumes."""

worker_process_shutdown = Signal(name="worker_process_shutdown", providing_args={"pid", "exitcode"})
"""In each child that runs tasks, just before it exits."""

worker_ready = Signal(name="worker_ready")
"""In the supervisor, once its children are started (sender: the pool)."""

worker_shutting_down = Signal(
    name="worker_shutting_down", providing_args={"sig", "how", "exitcode"}
)
"""In the supervisor, when a shutdown begins (sender: the worker's hostname)."""

worker_shutdown = Signal(name="worker_shutdown")
"""In the supervisor, when every child has exited (sender: the Worker)."""

heartbeat_sent = Signal(name="heartbeat_sent")
"""In the supervisor, after each lease heartbeat (sender: the pool)."""

# -- beat ---------------------------------------------------------------------------------

beat_init = Signal(name="beat_init")
"""When a scheduler starts: ``conveyor beat`` or ``worker --beat`` (sender: the Scheduler)."""

# -- logging (``conveyor worker`` and ``conveyor beat``) ----------------------------------

_LOGGING_ARGS = {"loglevel", "logfile", "format", "colorize"}

setup_logging = Signal(name="setup_logging", providing_args=_LOGGING_ARGS)
"""With a receiver connected, the worker and beat leave logging to the application."""

after_setup_logger = Signal(name="after_setup_logger", providing_args={"logger", *_LOGGING_ARGS})
"""After the worker or beat set up the root logger."""

after_setup_task_logger = Signal(
    name="after_setup_task_logger", providing_args={"logger", *_LOGGING_ARGS}
)
"""After the worker or beat set up the task logger (``conveyor.task``)."""
