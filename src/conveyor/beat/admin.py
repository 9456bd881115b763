"""What ``conveyor beat list|add`` need, kept apart from click so other front ends can reuse it."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .entries import Entry, code_entries
from .schedules import Schedule, clocked, crontab, get_zone, schedule
from .store import ScheduleStore

if TYPE_CHECKING:
    from ..app import Conveyor

__all__ = ["check_task_registered", "cli_entry", "format_entries"]


def _when(value: datetime, zone: Any) -> str:
    return f"{value.astimezone(zone):%Y-%m-%d %H:%M:%S %Z}"


def format_entries(app: Conveyor, store: ScheduleStore, count: int = 3) -> list[str]:
    """Each entry with its description, state, last run and next ``count`` runs, in the
    app's timezone. Entries declared in code but not yet synced are shown as such."""
    zone = get_zone(app.conf.timezone, "timezone setting")
    now = datetime.fromtimestamp(app.clock(), UTC)
    stored = {entry.name: entry for entry in store.list()}
    declared = code_entries(app)
    lines: list[str] = []
    for name in sorted(set(stored) | set(declared)):
        entry = stored.get(name)
        synced = entry is not None
        if entry is None:
            entry = declared[name]
        state = "enabled" if entry.enabled else "disabled"
        source = {"code": "from code", "runtime": "added at run time"}.get(
            entry.source, "removed from code"
        )
        if not synced:
            source = "in code, not in the store until a scheduler starts"
        lines.append(f"{name}  [{state}, {source}]")
        lines.append(f"  task:       {entry.task}")
        lines.append(f"  schedule:   {entry.describe()}{_cron_suffix(entry.schedule)}")
        if entry.args or entry.kwargs or entry.options:
            lines.append(
                f"  arguments:  args={list(entry.args)} kwargs={dict(entry.kwargs)} "
                f"options={dict(entry.options)}"
            )
        last = "never" if entry.last_run_at is None else _when(entry.last_run_at, zone)
        lines.append(
            f"  last run:   {last} ({entry.total_run_count} run(s), catch-up {entry.catch_up})"
        )
        if entry.enabled:
            after = max(entry.since or now, now)
            upcoming = entry.schedule.next_runs(after.astimezone(zone), count)
            shown = ", ".join(_when(run, zone) for run in upcoming) or "none left"
            lines.append(f"  next runs:  {shown}")
    return lines


def _cron_suffix(value: Schedule) -> str:
    return f"  ({value.to_cron()})" if isinstance(value, crontab) else ""


def cli_entry(
    name: str,
    task: str,
    *,
    cron: str | None = None,
    every: float | None = None,
    at: str | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    queue: str | None = None,
    catch_up: str = "latest",
    enabled: bool = True,
) -> Entry:
    """An entry from ``conveyor beat add`` options; ValueError says what is wrong."""
    given = [
        flag
        for flag, value in (("--cron", cron), ("--every", every), ("--at", at))
        if value is not None
    ]
    if len(given) != 1:
        raise ValueError("give exactly one of --cron, --every and --at")
    when: Schedule
    if cron is not None:
        when = crontab.from_string(cron)
    elif every is not None:
        when = schedule(every)
    else:
        assert at is not None
        try:
            when = clocked(datetime.fromisoformat(at))
        except ValueError as exc:
            raise ValueError(f"--at: {at!r} is not an ISO date-time (2030-01-31T09:00)") from exc
    return Entry(
        name=name,
        task=task,
        schedule=when,
        args=args,
        kwargs=kwargs or {},
        options={"queue": queue} if queue else {},
        enabled=enabled,
        catch_up=catch_up,
    )


def check_task_registered(app: Conveyor, task: str) -> None:
    """ValueError when no module the app loads registers ``task``: a typo would otherwise
    show only when the first run reaches the dead-letter store."""
    app.import_includes()
    if task in app.tasks:
        return
    close = difflib.get_close_matches(task, list(app.tasks), n=1, cutoff=0.8)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(
        f"no task named {task!r} is registered by the app's modules{hint}: check the name, "
        "or pass --force to add it anyway"
    )
