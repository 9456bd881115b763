"""Conveyor: a task queue with Celery's API, at-least-once delivery and no server to start."""

from __future__ import annotations

from . import states
from .app import Conveyor, current_app, shared_task
from .exceptions import (
    ConveyorError,
    Ignore,
    MaxRetriesExceededError,
    Reject,
    Retry,
    SoftTimeLimitExceeded,
    TaskRevokedError,
    TimeLimitExceeded,
)
from .log import get_task_logger
from .result import AsyncResult, EagerResult
from .task import Task

__all__ = [
    "AsyncResult",
    "Conveyor",
    "ConveyorError",
    "EagerResult",
    "Ignore",
    "MaxRetriesExceededError",
    "Reject",
    "Retry",
    "SoftTimeLimitExceeded",
    "Task",
    "TaskRevokedError",
    "TimeLimitExceeded",
    "current_app",
    "get_task_logger",
    "shared_task",
    "states",
]

__version__ = "0.1.0.dev0"
