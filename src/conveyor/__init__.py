"""Conveyor: a task queue with Celery's API, at-least-once delivery and no server to start."""

from __future__ import annotations

from . import states
from . import workflow as _workflow  # noqa: F401  (lends Task.replace: runtime_hooks.py)
from .app import Conveyor, current_app, shared_task
from .canvas import chain, chord, chunks, group, maybe_signature, signature, xmap, xstarmap
from .exceptions import (
    ChordError,
    ConveyorError,
    Ignore,
    MaxRetriesExceededError,
    Reject,
    Retry,
    SoftTimeLimitExceeded,
    TaskRevokedError,
    TimeLimitExceeded,
)
from .groupresult import GroupResult, ResultSet
from .log import get_task_logger
from .result import AsyncResult, EagerResult
from .routing import Queue
from .signatures import Signature
from .task import Task
from .worker import eager as _eager  # noqa: F401  (lends Task.apply: runtime_hooks.py)

__all__ = [
    "AsyncResult",
    "ChordError",
    "Conveyor",
    "ConveyorError",
    "EagerResult",
    "GroupResult",
    "Ignore",
    "MaxRetriesExceededError",
    "Queue",
    "Reject",
    "ResultSet",
    "Retry",
    "Signature",
    "SoftTimeLimitExceeded",
    "Task",
    "TaskRevokedError",
    "TimeLimitExceeded",
    "chain",
    "chord",
    "chunks",
    "current_app",
    "get_task_logger",
    "group",
    "maybe_signature",
    "shared_task",
    "signature",
    "states",
    "xmap",
    "xstarmap",
]

__version__ = "0.1.0.dev0"
