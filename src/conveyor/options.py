"""Which options a task definition and a send accept, and the error for any other.

Tasks, beat entries and the eager runner all check options against these tables; they sit
here, below all of them, so an entry can be checked without importing the task API.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from .exceptions import ImproperlyConfigured

__all__ = [
    "ALL_SEND_OPTIONS",
    "CELERY_TRANSPORT_OPTIONS",
    "SEND_OPTIONS",
    "TASK_OPTIONS",
    "check_options",
    "check_task_options",
]

TASK_OPTIONS = frozenset(
    {
        "name",
        "bind",
        "base",
        "queue",
        "priority",
        "max_retries",
        "default_retry_delay",
        "ignore_result",
        "acks_late",
        "serializer",
        "on_failure",
        "on_success",
        "on_retry",
        "after_return",
        "before_start",
        "autoretry_for",
        "dont_autoretry_for",
        "retry_kwargs",
        "retry_backoff",
        "retry_backoff_max",
        "retry_jitter",
        "time_limit",
        "soft_time_limit",
        "rate_limit",
        "expires",
        "typing",
        "track_started",
        "dead_letter",
        "shared",
        "concurrency_limit",
        "concurrency_key",
        "lock",
        "on_locked",
        "lock_timeout",
        "idempotency_key",
        "pydantic",
        "pydantic_strict",
        "pydantic_context",
        "pydantic_dump_kwargs",
        "dashboard_mask",
    }
)

SEND_OPTIONS = frozenset(
    {
        "countdown",
        "eta",
        "expires",
        "queue",
        "priority",
        "task_id",
        "headers",
        "ignore_result",
        "serializer",
        "time_limit",
        "soft_time_limit",
        "link",
        "link_error",
        "parent_id",
        "root_id",
        "group_id",
        "group_index",
        "chord",
        "chain",
        "retries",
        "idempotency_key",
        "argsrepr",
        "kwargsrepr",
    }
)

CELERY_TRANSPORT_OPTIONS = frozenset(
    {
        "retry",
        "retry_policy",
        "routing_key",
        "exchange",
        "exchange_type",
        "compression",
        "add_to_parent",
        "shadow",
        "connection",
        "producer",
        "publisher",
        "reply_to",
        "mandatory",
    }
)
"""Accepted for Celery compatibility; they have no meaning on Conveyor's brokers."""

ALL_SEND_OPTIONS = SEND_OPTIONS | CELERY_TRANSPORT_OPTIONS


def check_options(options: Mapping[str, Any], known: frozenset[str], what: str) -> None:
    """Refuse an option ``known`` does not hold, suggesting the closest name."""
    for name in options:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ImproperlyConfigured(f"unknown {what} {name!r}{hint}")


def check_task_options(options: Mapping[str, Any]) -> None:
    """The options of ``@app.task`` and ``@shared_task``."""
    check_options(options, TASK_OPTIONS, "task option")
