"""Result backends: where task states and results live. ``backend_from_url`` picks one."""

from __future__ import annotations

from typing import cast

from conveyor.backends.base import ResultBackend
from conveyor.backends.memory import MemoryBackend
from conveyor.backends.sqlite import SQLiteBackend
from conveyor.brokers import (
    KNOWN_SCHEMES,
    REDIS_SCHEMES,
    import_redis_support,
    parse_sqlite_url,
    redact_url,
    unsupported,
    url_scheme,
)
from conveyor.exceptions import ImproperlyConfigured

__all__ = ["MemoryBackend", "ResultBackend", "SQLiteBackend", "backend_from_url"]


def backend_from_url(url: str) -> ResultBackend:
    """A backend for ``memory://`` (a fresh one each call), ``sqlite://...`` or ``redis://...``."""
    scheme = url_scheme(url)
    backend: ResultBackend
    if scheme == "memory":
        backend = MemoryBackend()
    elif scheme == "sqlite":
        path, timeout, synchronous = parse_sqlite_url(url)
        backend = SQLiteBackend(path, timeout=timeout, synchronous=synchronous)
    elif scheme in REDIS_SCHEMES:
        module = import_redis_support("conveyor.backends.redis", url)
        backend = cast(ResultBackend, getattr(module, "RedisBackend").from_url(url))  # noqa: B009
    else:
        known = ", ".join(KNOWN_SCHEMES)
        raise ImproperlyConfigured(
            unsupported(url, "results kept beside the broker")
            or f"unknown result backend URL {redact_url(url)!r}; known schemes: {known}"
        )
    backend.url = url
    return backend
