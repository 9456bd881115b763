"""Entries: one named periodic task each, whether declared in code or added at run time.

Code declares entries in ``app.conf.beat_schedule`` and with ``@app.periodic_task``; the
scheduler copies them into the store when it starts. Runs are counted from ``since``, a
point that only moves forward, so every scheduler sharing a store agrees on what is due.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..exceptions import ImproperlyConfigured
from ..options import ALL_SEND_OPTIONS, check_options
from .schedules import Schedule, to_schedule

if TYPE_CHECKING:
    from ..app import Conveyor

__all__ = ["CATCH_UP", "SOURCES", "Entry", "code_entries", "declare", "entry_from_config"]

CATCH_UP = ("latest", "all", "skip")
"""What a scheduler does with runs missed while no scheduler ran: fire the newest of them,
fire them all, or drop them."""
SOURCES = ("code", "runtime", "removed")
"""Where an entry came from: declared in code, added through the API or CLI, or declared in
code once and since removed from it (kept disabled, so its history stays)."""
_RESERVED_OPTIONS = frozenset({"idempotency_key", "task_id"})
_CONFIG_KEYS = frozenset({"task", "schedule", "args", "kwargs", "options", "enabled", "catch_up"})


@dataclass
class Entry:
    """A periodic task: what to send, when, and what has run so far."""

    name: str
    task: str
    schedule: Schedule
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    enabled: bool = True
    catch_up: str = "latest"
    last_run_at: datetime | None = None
    """When the last run was published (scheduled or run-now)."""
    total_run_count: int = 0
    since: datetime | None = None
    """Runs due after this instant are still to fire: set when the entry is created,
    re-enabled or rescheduled, and moved to each run's due time as it fires."""
    source: str = "runtime"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"name: a non-empty string is needed, not {self.name!r}")
        if not isinstance(self.task, str) or not self.task:
            raise ValueError(f"task: the task's name is needed for entry {self.name!r}")
        self.schedule = to_schedule(self.schedule)
        if self.catch_up not in CATCH_UP:
            raise ValueError(
                f"catch_up: {self.catch_up!r} for entry {self.name!r}; use one of "
                + ", ".join(CATCH_UP)
            )
        if self.source not in SOURCES:
            raise ValueError(f"source: {self.source!r}; use one of {', '.join(SOURCES)}")
        if isinstance(self.args, str | bytes) or not isinstance(self.args, Sequence):
            raise ValueError(f"args: a list or tuple for entry {self.name!r}, not {self.args!r}")
        self.args = tuple(self.args)
        self.kwargs = dict(self.kwargs)
        self.options = dict(self.options)
        check_options(self.options, ALL_SEND_OPTIONS, "option")
        reserved = _RESERVED_OPTIONS.intersection(self.options)
        if reserved:
            raise ValueError(
                f"options: {', '.join(sorted(reserved))} is set by the scheduler for each run "
                f"of {self.name!r}"
            )

    def describe(self) -> str:
        return self.schedule.describe()

    def same_definition(self, other: Entry) -> bool:
        """Whether what ``other`` sends, and when, is what this entry sends."""
        return (
            self.task == other.task
            and self.schedule == other.schedule
            and list(self.args) == list(other.args)
            and dict(self.kwargs) == dict(other.kwargs)
            and dict(self.options) == dict(other.options)
            and self.catch_up == other.catch_up
        )

    def redefined(self, other: Entry) -> Entry:
        """This entry's run state with ``other``'s definition."""
        return replace(
            self,
            task=other.task,
            schedule=other.schedule,
            args=other.args,
            kwargs=other.kwargs,
            options=other.options,
            catch_up=other.catch_up,
        )


def entry_from_config(name: str, config: Mapping[str, Any]) -> Entry:
    """An entry from a ``beat_schedule`` item: task, schedule, args, kwargs, options, ..."""
    if not isinstance(config, Mapping):
        raise ImproperlyConfigured(f"beat_schedule[{name!r}] must be a dict, not {config!r}")
    unknown = set(config) - _CONFIG_KEYS
    if unknown:
        raise ImproperlyConfigured(
            f"beat_schedule[{name!r}] has unknown key(s) {sorted(unknown)}; known: "
            f"{', '.join(sorted(_CONFIG_KEYS))}"
            + (
                " (intervals are counted on a fixed grid: drop 'relative')"
                if "relative" in unknown
                else ""
            )
        )
    for key in ("task", "schedule"):
        if key not in config:
            raise ImproperlyConfigured(f"beat_schedule[{name!r}] needs {key!r}")
    try:
        return Entry(
            name=name,
            task=config["task"],
            schedule=config["schedule"],
            args=config.get("args") or (),
            kwargs=config.get("kwargs") or {},
            options=config.get("options") or {},
            enabled=bool(config.get("enabled", True)),
            catch_up=config.get("catch_up", "latest"),
            source="code",
        )
    except ValueError as exc:
        raise ImproperlyConfigured(f"beat_schedule[{name!r}]: {exc}") from exc


_declared: weakref.WeakKeyDictionary[Conveyor, dict[str, Entry]] = weakref.WeakKeyDictionary()


def code_entries(app: Conveyor) -> dict[str, Entry]:
    """Every entry the app's code declares: ``beat_schedule``, then ``@app.periodic_task``."""
    found = {name: entry_from_config(name, conf) for name, conf in app.conf.beat_schedule.items()}
    for name, entry in _declared.get(app, {}).items():
        if name in found:
            raise ImproperlyConfigured(
                f"periodic task {name!r} is declared twice: in beat_schedule and with "
                "@app.periodic_task; rename one"
            )
        found[name] = entry
    return found


def declare(app: Conveyor, entry: Entry) -> None:
    """Add an entry the app's code declares (``@app.periodic_task``)."""
    _declared.setdefault(app, {})[entry.name] = entry
