"""Coordinators: cluster-wide state. ``coordinator_from_url`` picks one beside the broker."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

from ..brokers import import_redis_support, parse_sqlite_url, redact_url, url_scheme
from ..exceptions import ImproperlyConfigured
from .base import Coordinator
from .memory import MemoryCoordinator
from .sqlite import SQLiteCoordinator

__all__ = ["Coordinator", "MemoryCoordinator", "SQLiteCoordinator", "coordinator_from_url"]


def coordinator_from_url(url: str, clock: Callable[[], float] = time.time) -> Coordinator:
    """The coordinator that lives where the broker at ``url`` lives."""
    scheme = url_scheme(url)
    coordinator: Coordinator
    if scheme == "memory":
        coordinator = MemoryCoordinator(clock=clock)
    elif scheme == "sqlite":
        path, timeout, synchronous = parse_sqlite_url(url)
        coordinator = SQLiteCoordinator(path, timeout=timeout, synchronous=synchronous, clock=clock)
    elif scheme in ("redis", "rediss"):
        module = import_redis_support("conveyor.coordination.redis", url)
        coordinator = cast(Coordinator, getattr(module, "RedisCoordinator").from_url(url))  # noqa: B009
    else:
        raise ImproperlyConfigured(f"no coordinator for broker URL {redact_url(url)!r}")
    coordinator.url = url
    return coordinator
