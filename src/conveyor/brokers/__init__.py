"""Brokers: where messages wait. ``broker_from_url`` picks one from a URL."""

from __future__ import annotations

from typing import cast

from conveyor.brokers.base import Broker, DeadLetter, Delivery, Envelope, Peeked, QueueStats
from conveyor.brokers.memory import MemoryBroker
from conveyor.brokers.sqlite import SQLiteBroker
from conveyor.redaction import redact_url
from conveyor.storage import KNOWN_SCHEMES, open_store, unsupported

__all__ = [
    "Broker",
    "DeadLetter",
    "Delivery",
    "Envelope",
    "MemoryBroker",
    "Peeked",
    "QueueStats",
    "SQLiteBroker",
    "broker_from_url",
    "redact_url",
]


def broker_from_url(url: str) -> Broker:
    """A broker for ``memory://`` (a fresh one each call), ``sqlite://...`` or ``redis://...``."""
    unknown = unsupported(url, "the embedded SQLite broker (./conveyor.db)") or (
        f"unknown broker URL {redact_url(url)!r}; known schemes: {', '.join(KNOWN_SCHEMES)}"
    )
    return cast(Broker, open_store("broker", url, unknown))
