"""Database connections in workers: never shared across a fork, never kept broken or stale.

A prefork child starts as a copy of the supervisor, including any connection the
supervisor opened (the beat thread's setup, a result write). Two processes talking over one
socket corrupt each other's session, and closing it politely from the child would end the
parent's session too; so the child first closes its copy of the socket's file descriptor
(as Celery does) and only then closes the connection object.

Around each task, connections are treated as Django treats them around each request:
closed when broken or older than ``CONN_MAX_AGE`` (so ``CONN_MAX_AGE = 0`` means a fresh
connection per task). A connection inside an atomic block is never touched: that is a
test's transaction, or a task run eagerly inside the caller's.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

__all__ = [
    "close_inherited_connections",
    "close_old_connections",
    "forget_inherited_caches",
    "heal",
]


def close_inherited_connections() -> None:
    """Run first thing in a forked child: drop the parent's connections without I/O."""
    for conn in connections.all(initialized_only=True):
        raw = conn.connection
        fileno = getattr(raw, "fileno", None)
        if raw is not None and callable(fileno):
            with contextlib.suppress(Exception):
                os.close(fileno())
        with contextlib.suppress(Exception):
            conn.close()
        conn.connection = None
        conn.in_atomic_block = False
        conn.run_on_commit = []


def forget_inherited_caches() -> None:
    """Run first thing in a forked child: build its own cache clients on first use.

    A cache client made in the parent (memcached, a Redis client without fork checks) holds
    sockets the child must not talk over. The parent's objects are dropped without I/O;
    closing them here could end the parent's sessions.
    """
    from asgiref.local import Local
    from django.core.cache import caches

    caches._connections = Local(caches.thread_critical)  # type: ignore[attr-defined]


def close_old_connections(*_: Any) -> None:
    """Close connections that are broken or past ``CONN_MAX_AGE``, outside transactions."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()


def heal(using: str | None = None) -> None:
    """Before a query from a long-lived thread (beat, a worker's supervisor): close the
    connection if an error left it unusable, so the query reconnects instead of failing."""
    conn = connections[using or DEFAULT_DB_ALIAS]
    if conn.connection is None or conn.in_atomic_block or not conn.errors_occurred:
        return
    if conn.is_usable():
        conn.errors_occurred = False
    else:
        conn.close()
