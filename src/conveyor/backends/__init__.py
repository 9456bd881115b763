"""Result backends: where task states and results live. ``backend_from_url`` picks one."""

from __future__ import annotations

from typing import cast

from conveyor.backends.base import ResultBackend
from conveyor.backends.memory import MemoryBackend
from conveyor.backends.sqlite import SQLiteBackend
from conveyor.redaction import redact_url
from conveyor.storage import KNOWN_SCHEMES, open_store, unsupported

__all__ = ["MemoryBackend", "ResultBackend", "SQLiteBackend", "backend_from_url"]


def backend_from_url(url: str) -> ResultBackend:
    """A backend for ``memory://`` (a fresh one each call), ``sqlite://...`` or ``redis://...``."""
    unknown = unsupported(url, "results kept beside the broker") or (
        f"unknown result backend URL {redact_url(url)!r}; known schemes: {', '.join(KNOWN_SCHEMES)}"
    )
    return cast(ResultBackend, open_store("backend", url, unknown))
