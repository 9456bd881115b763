"""Coordinators: cluster-wide state. ``coordinator_from_url`` picks one beside the broker."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import cast

from ..redaction import redact_url
from ..storage import open_store
from .base import Coordinator
from .memory import MemoryCoordinator
from .sqlite import SQLiteCoordinator

__all__ = ["Coordinator", "MemoryCoordinator", "SQLiteCoordinator", "coordinator_from_url"]


def coordinator_from_url(url: str, clock: Callable[[], float] = time.time) -> Coordinator:
    """The coordinator that lives where the broker at ``url`` lives."""
    unknown = f"no coordinator for broker URL {redact_url(url)!r}"
    return cast(Coordinator, open_store("coordinator", url, unknown, clock=clock))
