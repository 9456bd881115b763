"""Every key Conveyor keeps in a coordinator or a result backend, spelled in one place.

Stores are shared by every worker, producer and scheduler of an app, and by different
versions of Conveyor during a rolling upgrade: a key's spelling is part of the storage
format, so changing one here is a migration.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "CHORD_PREFIX",
    "GROUP_PREFIX",
    "REVOKED_GROUP",
    "TASK_PREFIX",
    "WORKERS_GROUP",
    "beat_claim_key",
    "chord_key",
    "concurrency_key",
    "idempotency_key",
    "lock_key",
    "lost_key",
    "mailbox_key",
    "rate_bucket_key",
    "rate_override_key",
    "reply_key",
    "revoked_key",
    "revoked_stamp_key",
    "task_lock_key",
]

# -- result backend --------------------------------------------------------------------------

TASK_PREFIX = "conveyor-task-"
"""A task's record (state, result), by task id."""
GROUP_PREFIX = "conveyor-group-"
"""A saved group's member ids, by group id."""
CHORD_PREFIX = "conveyor-chord-"
"""A chord's counters, sets and markers, by chord id."""


def chord_key(chord_id: str, *parts: object) -> str:
    """A chord's member set (no parts), or one of its buckets, counters and markers."""
    return ".".join([CHORD_PREFIX + chord_id, *(str(p) for p in parts)])


# -- coordinator -----------------------------------------------------------------------------


def revoked_key(task_id: str) -> str:
    """A revoked task id (``app.control.revoke``)."""
    return f"revoked:{task_id}"


def revoked_stamp_key(name: str, value: Any) -> str:
    """Where ``revoke_by_stamped_headers`` notes that a stamp's value is revoked."""
    return f"revoked-stamp:{name}:{json.dumps(value, sort_keys=True, default=str)}"


def lost_key(message_id: str) -> str:
    """Where a supervisor notes that a message's process died while running it."""
    return f"lost:{message_id}"


def rate_override_key(task_name: str) -> str:
    """A task's rate limit set at run time (``app.control.rate_limit``)."""
    return f"rate-limit:{task_name}"


def rate_bucket_key(task_name: str) -> str:
    """The token bucket that enforces a task's rate limit across workers."""
    return f"rate:{task_name}"


def idempotency_key(key: str) -> str:
    """The message id sent under an idempotency key (a send with the same key reuses it)."""
    return f"idempotency:{key}"


def task_lock_key(key: str) -> str:
    """The lock a task with ``lock=`` holds while it runs (``key``: the formatted template)."""
    return f"task-lock:{key}"


def concurrency_key(task_name: str, value: str | None = None) -> str:
    """The slots of a task's ``concurrency_limit``, per ``concurrency_key`` value if any."""
    return f"concurrency:{task_name}" if value is None else f"concurrency:{task_name}:{value}"


def lock_key(name: str) -> str:
    """A lock taken with ``app.lock(name)``."""
    return f"lock:{name}"


def beat_claim_key(run: str) -> str:
    """A scheduler's claim on one periodic run (``run``: its ``entry:due`` key)."""
    return f"beat:{run}"


WORKERS_GROUP = "workers"
"""The worker registry: one member per worker name, its record as JSON (``registry.py``)."""
REVOKED_GROUP = "revoked"
"""Revoked task ids with their reasons, listed for ``inspect().revoked()``."""


def mailbox_key(worker: str) -> str:
    """The list of control commands waiting for one worker (its supervisor takes them)."""
    return f"mailbox:{worker}"


def reply_key(request_id: str) -> str:
    """The list of workers' replies to one control command."""
    return f"reply:{request_id}"
