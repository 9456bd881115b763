"""Periodic tasks: schedules, entries in a shared store, and schedulers safe to run in copies.

::

    from conveyor.beat import crontab

    app.conf.beat_schedule = {
        "nightly-report": {"task": "reports.nightly", "schedule": crontab(minute=0, hour=3)},
    }

    @app.periodic_task(crontab(minute="*/15"), name="refresh-cache")
    def refresh_cache() -> None: ...

``conveyor beat -A shop.tasks:app`` (or ``conveyor worker --beat``) runs them.
"""

from __future__ import annotations

from .entries import CATCH_UP, Entry, code_entries
from .scheduler import Scheduler, due_key, run_now
from .schedules import Schedule, clocked, crontab, schedule
from .service import BeatThread, serve
from .sqlite import SQLiteStore
from .store import (
    MemoryStore,
    ScheduleStore,
    SyncReport,
    default_store,
    resolve_store,
    store_from_url,
)

__all__ = [
    "CATCH_UP",
    "BeatThread",
    "Entry",
    "MemoryStore",
    "SQLiteStore",
    "Schedule",
    "ScheduleStore",
    "Scheduler",
    "SyncReport",
    "clocked",
    "code_entries",
    "crontab",
    "default_store",
    "due_key",
    "resolve_store",
    "run_now",
    "schedule",
    "serve",
    "store_from_url",
]
