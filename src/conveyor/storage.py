"""Which class serves a URL, per role: one table from scheme to ``"module:Class"``.

Classes load only when a URL names them, so an app on SQLite never imports Redis support.
A store is built the same way for every role: ``memory://`` takes no arguments,
``sqlite://`` a file path with its options, ``redis://`` (and ``sentinel://``,
``redis+cluster://``) the URL itself.
"""

from __future__ import annotations

import importlib
from typing import Any, Literal
from urllib.parse import parse_qsl

from conveyor.exceptions import ImproperlyConfigured
from conveyor.redaction import redact_url
from conveyor.sqlite_file import SYNCHRONOUS

__all__ = [
    "KNOWN_SCHEMES",
    "STORES",
    "Role",
    "open_store",
    "parse_sqlite_url",
    "unsupported",
    "url_scheme",
]

Role = Literal["broker", "backend", "coordinator", "schedule store"]

_REDIS = ("redis", "rediss", "sentinel")
_CLUSTER = ("redis+cluster", "rediss+cluster")
STORES: dict[Role, dict[str, str]] = {
    "broker": {
        "memory": "conveyor.brokers.memory:MemoryBroker",
        "sqlite": "conveyor.brokers.sqlite:SQLiteBroker",
        **dict.fromkeys(_REDIS, "conveyor.brokers.redis:RedisBroker"),
        **dict.fromkeys(_CLUSTER, "conveyor.brokers.redis_cluster:ClusterBroker"),
    },
    "backend": {
        "memory": "conveyor.backends.memory:MemoryBackend",
        "sqlite": "conveyor.backends.sqlite:SQLiteBackend",
        **dict.fromkeys(_REDIS, "conveyor.backends.redis:RedisBackend"),
        **dict.fromkeys(_CLUSTER, "conveyor.cluster_stores:ClusterBackend"),
    },
    "coordinator": {
        "memory": "conveyor.coordination.memory:MemoryCoordinator",
        "sqlite": "conveyor.coordination.sqlite:SQLiteCoordinator",
        **dict.fromkeys(_REDIS, "conveyor.coordination.redis:RedisCoordinator"),
        **dict.fromkeys(_CLUSTER, "conveyor.cluster_stores:ClusterCoordinator"),
    },
    "schedule store": {
        "memory": "conveyor.beat.store:MemoryStore",
        "sqlite": "conveyor.beat.sqlite:SQLiteStore",
        **dict.fromkeys(_REDIS, "conveyor.beat.redis:RedisStore"),
        **dict.fromkeys(_CLUSTER, "conveyor.cluster_stores:ClusterScheduleStore"),
    },
}
"""Role -> URL scheme -> the class that serves it. A new store is a row here (and its
factory in the contract tests: docs/internals.md)."""

KNOWN_SCHEMES = (
    "memory://",
    "sqlite://",
    "redis://",
    "rediss://",
    "sentinel://",
    "redis+cluster://",
    "rediss+cluster://",
)

RABBITMQ_SCHEMES = ("amqp", "amqps", "pyamqp", "librabbitmq", "rpc")
"""Celery's URL schemes for RabbitMQ (``rpc://`` sends results over it)."""


def url_scheme(url: str) -> str:
    return url.partition("://")[0].lower() if "://" in url else ""


def unsupported(url: str, unset: str) -> str | None:
    """Why a RabbitMQ URL cannot be used, and what to use instead (``unset``: what leaving
    the setting unset gives); None for other URLs."""
    if url_scheme(url) not in RABBITMQ_SCHEMES:
        return None
    return (
        f"{redact_url(url)!r}: RabbitMQ is not supported; use Redis (redis://host:6379/0) for "
        f"several machines, or leave the setting unset for {unset} "
        f"(known schemes: {', '.join(KNOWN_SCHEMES)})"
    )


def open_store(role: Role, url: str, unknown: str, **local: Any) -> Any:
    """The ``role`` store for ``url``, its ``url`` attribute set; ``unknown``: the error for
    a scheme the role has no class for. ``local`` options (a clock) go to memory and SQLite
    stores; Redis keeps its own time."""
    scheme = url_scheme(url)
    spec = STORES[role].get(scheme)
    if spec is None:
        raise ImproperlyConfigured(unknown)
    cls = _load(spec, url)
    if scheme == "memory":
        store = cls(**local)
    elif scheme == "sqlite":
        path, timeout, synchronous = parse_sqlite_url(url)
        store = cls(path, timeout=timeout, synchronous=synchronous, **local)
    else:
        store = cls(url)
    store.url = url
    return store


def _load(spec: str, url: str) -> Any:
    module, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        if url_scheme(url) not in (*_REDIS, *_CLUSTER):
            raise
        raise ImproperlyConfigured(
            f"cannot use {redact_url(url)!r}: redis support: pip install 'conveyor-tasks[redis]'"
        ) from exc


def parse_sqlite_url(url: str) -> tuple[str, float, str]:
    """Path, lock timeout and durability of ``sqlite:///relative.db`` or
    ``sqlite:////abs.db[?timeout=s][&synchronous=normal|full]``; ``sqlite://`` alone means
    ./conveyor.db."""
    rest, _, query = url.partition("://")[2].partition("?")
    if rest and not rest.startswith("/"):
        raise ImproperlyConfigured(
            f"bad SQLite URL {redact_url(url)!r}: it takes no host; use sqlite:///relative/path.db "
            "or sqlite:////absolute/path.db"
        )
    path = rest[1:] or "conveyor.db"
    if path == ":memory:":
        raise ImproperlyConfigured(
            f"bad SQLite URL {redact_url(url)!r}: an in-memory SQLite database is private to one "
            "connection; use memory:// instead"
        )
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - {"timeout", "synchronous"})
    if unknown:
        raise ImproperlyConfigured(
            f"unknown option(s) {unknown} in {redact_url(url)!r}; known: timeout, synchronous"
        )
    synchronous = options.get("synchronous", "normal").lower()
    if synchronous not in SYNCHRONOUS:
        raise ImproperlyConfigured(
            f"bad synchronous={options['synchronous']!r} in {redact_url(url)!r}; "
            f"valid choices: {', '.join(SYNCHRONOUS)}"
        )
    try:
        return path, float(options.get("timeout", 30.0)), synchronous
    except ValueError:
        raise ImproperlyConfigured(f"bad timeout in {redact_url(url)!r}: not a number") from None
