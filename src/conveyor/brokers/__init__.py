"""Brokers: where messages wait. ``broker_from_url`` picks one from a URL."""

from __future__ import annotations

import importlib
from typing import cast
from urllib.parse import parse_qsl

from conveyor.brokers.base import Broker, DeadLetter, Delivery, Envelope, QueueStats
from conveyor.brokers.memory import MemoryBroker
from conveyor.brokers.sqlite import SYNCHRONOUS, SQLiteBroker
from conveyor.exceptions import ImproperlyConfigured
from conveyor.redaction import redact_url

__all__ = [
    "Broker",
    "DeadLetter",
    "Delivery",
    "Envelope",
    "MemoryBroker",
    "QueueStats",
    "SQLiteBroker",
    "broker_from_url",
    "redact_url",
]

KNOWN_SCHEMES = ("memory://", "sqlite://", "redis://", "rediss://")
REDIS_SCHEMES = ("redis", "rediss")


RABBITMQ_SCHEMES = ("amqp", "amqps", "pyamqp", "librabbitmq", "rpc")
"""Celery's URL schemes for RabbitMQ (``rpc://`` sends results over it)."""


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


def url_scheme(url: str) -> str:
    return url.partition("://")[0].lower() if "://" in url else ""


def parse_sqlite_url(url: str) -> tuple[str, float, str]:
    """Path, lock timeout and durability of ``sqlite:///relative.db`` or
    ``sqlite:////abs.db[?timeout=s][&synchronous=normal|full]``.

    ``sqlite://`` alone means ./conveyor.db. Shared with ``backend_from_url``, the
    coordinator and the schedule store.
    """
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


def import_redis_support(module: str, url: str) -> object:
    """The Redis implementation module, or a hint to install the extra it needs."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"cannot use {redact_url(url)!r}: redis support: pip install 'conveyor-tasks[redis]'"
        ) from exc


def broker_from_url(url: str) -> Broker:
    """A broker for ``memory://`` (a fresh one each call), ``sqlite://...`` or ``redis://...``."""
    scheme = url_scheme(url)
    broker: Broker
    if scheme == "memory":
        broker = MemoryBroker()
    elif scheme == "sqlite":
        path, timeout, synchronous = parse_sqlite_url(url)
        broker = SQLiteBroker(path, timeout=timeout, synchronous=synchronous)
    elif scheme in REDIS_SCHEMES:
        module = import_redis_support("conveyor.brokers.redis", url)
        broker = cast(Broker, getattr(module, "RedisBroker").from_url(url))  # noqa: B009
    else:
        raise ImproperlyConfigured(
            unsupported(url, "the embedded SQLite broker (./conveyor.db)")
            or f"unknown broker URL {redact_url(url)!r}; known schemes: {', '.join(KNOWN_SCHEMES)}"
        )
    broker.url = url
    return broker
