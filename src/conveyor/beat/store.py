"""Schedule stores: where entries live, so every scheduler, the CLI and an admin see the same.

A store only reads and writes rows (the abstract methods); the rules for merging code
declarations and run-time edits live in the base class, once, so a store on another
database (Django's models, Redis) implements storage and nothing else. ``version()`` is a
cheap number that changes on every write: schedulers poll it to notice edits.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import msgspec

from ..exceptions import ImproperlyConfigured
from ..redaction import redact_url
from ..storage import open_store
from .data import CrontabData, IntervalData, ScheduleData, SolarData
from .entries import Entry
from .schedules import Schedule, clocked, crontab, schedule
from .solar import solar

if TYPE_CHECKING:
    from ..app import Conveyor

__all__ = [
    "MemoryStore",
    "ScheduleStore",
    "SyncReport",
    "default_store",
    "first_version",
    "resolve_store",
    "schedule_from_data",
    "store_from_url",
]

logger = logging.getLogger("conveyor.beat")


def first_version() -> int:
    """Where a store's version starts when it has none (a new store, or one emptied by
    FLUSHDB or ``manage.py flush``): the clock, not 0 or 1, so a few writes after an
    emptying cannot bring the number back to the one a running scheduler saw last (it
    would keep its old entries)."""
    return time.time_ns()


class Definition(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An entry's definition as plain data (its run state is kept beside it)."""

    task: str
    schedule: ScheduleData
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    options: dict[str, Any] = {}
    catch_up: str = "latest"
    source: str = "runtime"


def schedule_from_data(data: ScheduleData) -> Schedule:
    """The schedule a store kept as data (``Schedule.to_data``)."""
    if isinstance(data, CrontabData):
        return crontab(
            data.minute,
            data.hour,
            data.day_of_week,
            data.day_of_month,
            data.month_of_year,
            timezone=data.timezone,
        )
    if isinstance(data, IntervalData):
        return schedule(data.seconds, data.anchor)
    if isinstance(data, SolarData):
        return solar(data.event, data.lat, data.lon)
    return clocked(data.at)


def encode_definition(entry: Entry) -> bytes:
    try:
        return msgspec.json.encode(
            Definition(
                task=entry.task,
                schedule=entry.schedule.to_data(),
                args=list(entry.args),
                kwargs=dict(entry.kwargs),
                options=dict(entry.options),
                catch_up=entry.catch_up,
                source=entry.source,
            )
        )
    except (TypeError, msgspec.EncodeError) as exc:
        raise ValueError(
            f"entry {entry.name!r}: args, kwargs and options must be JSON: {exc}"
        ) from exc


def decode_entry(
    name: str,
    definition: bytes | str,
    enabled: bool,
    last_run_at: datetime | None,
    total_run_count: int,
    since: datetime | None,
) -> Entry:
    data = msgspec.json.decode(definition, type=Definition)
    return Entry(
        name=name,
        task=data.task,
        schedule=schedule_from_data(data.schedule),
        args=data.args,
        kwargs=data.kwargs,
        options=data.options,
        enabled=bool(enabled),
        catch_up=data.catch_up,
        last_run_at=last_run_at,
        total_run_count=total_run_count,
        since=since,
        source=data.source,
    )


@dataclass
class SyncReport:
    """What ``sync`` changed, by entry name (the scheduler logs it at start)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)


def _now(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else now.astimezone(UTC)


class ScheduleStore(ABC):
    """Entries by name. Implement the abstract methods; each must be atomic on its own."""

    url: str = ""

    @abstractmethod
    def list(self) -> list[Entry]:
        """Every entry, by name."""

    @abstractmethod
    def get(self, name: str) -> Entry | None:
        """The entry called ``name``, or None."""

    @abstractmethod
    def save(self, entry: Entry) -> None:
        """Insert or replace the entry, definition and run state alike."""

    @abstractmethod
    def remove(self, name: str) -> bool:
        """Delete the entry; whether there was one."""

    @abstractmethod
    def record_run(self, name: str, due: datetime, ran_at: datetime, manual: bool = False) -> bool:
        """Count a published run and note ``ran_at`` as the last run.

        A scheduled run also moves ``since`` to ``due``, and only when ``due`` is past
        ``since``: recording one run twice counts it once. A manual run (run-now) leaves
        ``since`` alone, so no scheduled run is lost to it. Whether anything changed.
        """

    @abstractmethod
    def skip_to(self, name: str, until: datetime) -> bool:
        """Move ``since`` forward to ``until`` without counting a run (dropped catch-up)."""

    @abstractmethod
    def version(self) -> int:
        """A cheap number that changes whenever anything in the store changes."""

    def atomic(self) -> AbstractContextManager[None]:
        """Group several calls into one transaction, where the store has them."""
        return nullcontext()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    # -- the rules, shared by every store ---------------------------------------------

    def upsert(self, entry: Entry, now: datetime | None = None) -> Entry:
        """Add an entry, or give an existing one this definition while keeping its history.

        A new or rescheduled entry counts runs from now (a one-off, from the beginning);
        an entry enabled by this call counts from now, so nothing missed while it was off
        fires.
        """
        at = _now(now)
        with self.atomic():
            current = self.get(entry.name)
            if current is None:
                saved = replace(
                    entry, since=entry.schedule.origin(at), last_run_at=None, total_run_count=0
                )
            else:
                source = current.source if current.source == "code" else entry.source
                saved = replace(current.redefined(entry), enabled=entry.enabled, source=source)
                if entry.schedule != current.schedule:
                    saved.since = entry.schedule.origin(at)
                elif entry.enabled and not current.enabled:
                    saved.since = at
            self.save(saved)
            return saved

    def set_enabled(self, name: str, enabled: bool, now: datetime | None = None) -> Entry:
        """Enable or disable an entry; KeyError when there is none."""
        with self.atomic():
            current = self.get(name)
            if current is None:
                raise KeyError(name)
            if current.enabled == enabled:
                return current
            changed = replace(current, enabled=enabled)
            if enabled:
                changed.since = _now(now)
            self.save(changed)
            return changed

    def enable(self, name: str, now: datetime | None = None) -> Entry:
        return self.set_enabled(name, True, now)

    def disable(self, name: str) -> Entry:
        return self.set_enabled(name, False)

    def sync(self, declared: Mapping[str, Entry], now: datetime | None = None) -> SyncReport:
        """Make the store match the code: add and update declared entries, disable the rest.

        Code owns the definition of its entries; whether one is enabled is run-time state
        and survives a restart (a declaration with enabled=False always disables). An
        entry no longer declared is disabled, not deleted, so its history stays; declared
        again, it comes back enabled.
        """
        at = _now(now)
        report = SyncReport()
        with self.atomic():
            existing = {entry.name: entry for entry in self.list()}
            for name, wanted in declared.items():
                current = existing.get(name)
                if current is None:
                    self.save(replace(wanted, source="code", since=wanted.schedule.origin(at)))
                    report.added.append(name)
                    continue
                merged = replace(current.redefined(wanted), source="code")
                if current.source == "removed" or not wanted.enabled:
                    merged.enabled = wanted.enabled
                if wanted.schedule != current.schedule:
                    merged.since = wanted.schedule.origin(at)
                elif merged.enabled and not current.enabled:
                    merged.since = at
                if merged != current:
                    self.save(merged)
                    report.updated.append(name)
            for name, current in existing.items():
                if current.source == "code" and name not in declared:
                    self.save(replace(current, enabled=False, source="removed"))
                    report.disabled.append(name)
        return report


class MemoryStore(ScheduleStore):
    """Entries in this process only: for tests and the memory:// broker."""

    def __init__(self) -> None:
        self.url = "memory://"
        self._rows: dict[str, tuple[bytes, bool, datetime | None, int, datetime | None]] = {}
        self._version = 0
        self._lock = threading.RLock()

    def _entry(self, name: str) -> Entry:
        return decode_entry(name, *self._rows[name])

    def list(self) -> list[Entry]:
        with self._lock:
            return [self._entry(name) for name in sorted(self._rows)]

    def get(self, name: str) -> Entry | None:
        with self._lock:
            return self._entry(name) if name in self._rows else None

    def save(self, entry: Entry) -> None:
        row = (encode_definition(entry), entry.enabled, entry.last_run_at, entry.total_run_count)
        with self._lock:
            self._rows[entry.name] = (*row, entry.since)
            self._version += 1

    def remove(self, name: str) -> bool:
        with self._lock:
            found = self._rows.pop(name, None) is not None
            self._version += found
            return found

    def record_run(self, name: str, due: datetime, ran_at: datetime, manual: bool = False) -> bool:
        with self._lock:
            row = self._rows.get(name)
            if row is None or (not manual and row[4] is not None and row[4] >= due):
                return False
            since = row[4] if manual else due
            self._rows[name] = (row[0], row[1], ran_at, row[3] + 1, since)
            self._version += 1
            return True

    def skip_to(self, name: str, until: datetime) -> bool:
        with self._lock:
            row = self._rows.get(name)
            if row is None or (row[4] is not None and row[4] >= until):
                return False
            self._rows[name] = (*row[:4], until)
            self._version += 1
            return True

    def version(self) -> int:
        return self._version

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            yield

    def atomic(self) -> AbstractContextManager[None]:
        return self._locked()


def store_from_url(url: str) -> ScheduleStore:
    """The schedule store that lives where the broker at ``url`` lives."""
    unknown = f"no schedule store for URL {redact_url(url)!r}"
    return cast(ScheduleStore, open_store("schedule store", url, unknown))


_defaults: weakref.WeakKeyDictionary[Conveyor, ScheduleStore] = weakref.WeakKeyDictionary()
_defaults_lock = threading.Lock()


def default_store(app: Conveyor) -> ScheduleStore:
    """The app's store: the ``beat_store`` setting's, else beside its broker; one per app,
    so its schedulers share it."""
    with _defaults_lock:
        store = _defaults.get(app)
        if store is None:
            url = app.broker_url
            spec = app.conf.beat_store
            store = _defaults[app] = (
                resolve_store(app, spec)
                if spec
                else store_from_url(url if "://" in url else "memory://")
            )
        return store


def resolve_store(app: Conveyor, spec: str | None) -> ScheduleStore:
    """A store from ``--store``: a URL, or ``module:attribute`` naming a store or a factory
    that takes the app (how a Django store plugs in)."""
    if not spec:
        return default_store(app)
    if "://" in spec:
        return store_from_url(spec)
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ImproperlyConfigured(f"cannot load schedule store {spec!r}: {exc}") from exc
    if callable(obj) and not isinstance(obj, ScheduleStore):
        obj = obj(app)
    if not isinstance(obj, ScheduleStore):
        raise ImproperlyConfigured(f"{spec!r} is not a ScheduleStore (nor makes one)")
    return obj
