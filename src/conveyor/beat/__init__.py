"""Periodic tasks: schedules, entries in a shared store, and schedulers safe to run in copies.

::

    from conveyor.beat import crontab

    app.conf.beat_schedule = {
        "nightly-report": {"task": "reports.nightly", "schedule": crontab(minute=0, hour=3)},
    }

    @app.periodic_task(crontab(minute="*/15"), name="refresh-cache")
    def refresh_cache() -> None: ...

``conveyor beat -A shop.tasks:app`` (or ``conveyor worker --beat``) runs them. What
``celery.schedules`` offers is here too: ``crontab``, ``schedule``, ``solar``,
``crontab_parser``, ``maybe_schedule``, ``ParseException`` and ``schedstate``.

The schedules are plain data and load with the package; the scheduler, its service and
the stores load on first use, so ``@app.periodic_task`` does not pull the runtime in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .entries import CATCH_UP, Entry, code_entries
from .fields import ParseException, crontab_parser
from .schedules import (
    ImpossibleSchedule,
    Schedule,
    clocked,
    crontab,
    maybe_schedule,
    schedstate,
    schedule,
)
from .solar import solar

if TYPE_CHECKING:
    from .scheduler import Scheduler, due_key, run_now
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
    "ImpossibleSchedule",
    "MemoryStore",
    "ParseException",
    "SQLiteStore",
    "Schedule",
    "ScheduleStore",
    "Scheduler",
    "SyncReport",
    "clocked",
    "code_entries",
    "crontab",
    "crontab_parser",
    "default_store",
    "due_key",
    "maybe_schedule",
    "resolve_store",
    "run_now",
    "schedstate",
    "schedule",
    "serve",
    "solar",
    "store_from_url",
]


def __getattr__(name: str) -> Any:
    if name in ("Scheduler", "due_key", "run_now"):
        from . import scheduler

        return getattr(scheduler, name)
    if name in ("BeatThread", "serve"):
        from . import service

        return getattr(service, name)
    if name == "SQLiteStore":
        from . import sqlite

        return sqlite.SQLiteStore
    if name in _STORE_NAMES:
        from . import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_STORE_NAMES = frozenset(
    (
        "MemoryStore",
        "ScheduleStore",
        "SyncReport",
        "default_store",
        "resolve_store",
        "store_from_url",
    )
)
