"""Schedules: when a periodic task is due.

``crontab`` (Celery's fields), ``schedule`` (a fixed interval) and ``clocked`` (once);
``solar`` lives in its own module. Each answers ``next_run(after)`` in the zone of
``after`` (the scheduler passes the app's timezone), so a 02:30 job means 02:30 on the wall
clock across DST changes: it runs once at the end of the spring-forward gap (03:00 in
Europe/Paris) and once, at the first 02:30, on the fall-back day. Schedules convert to
plain data (``to_data``) for stores.

Celery's own questions work too, for code that asks them: ``is_due(last_run_at)`` and
``remaining_estimate(last_run_at)``, reading the time from ``nowfun`` or the app's clock.
"""

from __future__ import annotations

import calendar
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from ..current import current_app
from .data import ClockedData, CrontabData, IntervalData, ScheduleData
from .describe import describe_crontab, describe_interval
from .fields import (
    DAY_OF_MONTH,
    DAY_OF_WEEK,
    HOUR,
    MINUTE,
    MONTH_NAMES,
    MONTH_OF_YEAR,
    parse_field,
)

if TYPE_CHECKING:
    from ..app import Conveyor

__all__ = [
    "BEGINNING",
    "ClockedData",
    "CrontabData",
    "ImpossibleSchedule",
    "IntervalData",
    "Schedule",
    "ScheduleData",
    "clocked",
    "crontab",
    "get_zone",
    "maybe_schedule",
    "require_aware",
    "schedstate",
    "schedule",
    "to_schedule",
]

BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)
"""Where a one-off schedule starts counting: its single run belongs to it whenever it was made."""

_SEARCH_YEARS = 401
"""The Gregorian calendar repeats every 400 years, so a date that exists shows up within it."""
_DST_MARGIN = timedelta(hours=3)
"""Wider than any DST shift: wall times this far back may still be ahead after a fall-back."""
_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def get_zone(name: str, field: str = "timezone") -> ZoneInfo:
    """The zone called ``name``; a ValueError naming ``field`` when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValueError(f"{field}: unknown time zone {name!r}") from exc


def require_aware(value: datetime, what: str = "after") -> datetime:
    """``value``, refused when naive: schedules compare instants, not wall-clock times."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, not {value!r}")
    return value


class schedstate(NamedTuple):
    """Celery's answer to ``is_due``: whether a run is due, and seconds until the next check."""

    is_due: bool
    next: float


class ImpossibleSchedule(ValueError, RuntimeError):
    """A crontab whose days never occur. A ValueError, raised when it is made; also the
    RuntimeError that Celery raises later, when it first looks for the next run."""


class Schedule(ABC):
    """When runs are due. Subclasses give ``next_run``, ``describe`` and ``to_data``.

    ``nowfun`` and ``app`` (Celery's keyword arguments) serve ``is_due`` and
    ``remaining_estimate`` called directly; the scheduler keeps its own clock.
    """

    nowfun: Callable[[], datetime] | None = None
    _app: Conveyor | None = None

    def _bind(self, nowfun: Callable[[], datetime] | None, app: Conveyor | None) -> None:
        if nowfun is not None and not callable(nowfun):
            raise ValueError(f"nowfun: a function returning a datetime, not {nowfun!r}")
        self.nowfun, self._app = nowfun, app

    @property
    def app(self) -> Conveyor:
        """The app given as ``app=``, else the current app (as in Celery)."""
        if self._app is None:
            return current_app()
        return self._app

    @app.setter
    def app(self, app: Conveyor | None) -> None:
        self._app = app

    def now(self) -> datetime:
        """``nowfun()`` or the app's clock, in the app's timezone (a naive time is UTC)."""
        zone = get_zone(self.app.conf.timezone, "timezone setting")
        if self.nowfun is None:
            return datetime.fromtimestamp(self.app.clock(), zone)
        return _as_utc(self.nowfun()).astimezone(zone)

    @abstractmethod
    def next_run(self, after: datetime) -> datetime | None:
        """The first run strictly after ``after`` (aware), in its zone; None when none is left."""

    @abstractmethod
    def describe(self) -> str:
        """A plain-English sentence such as "At minute 15 past every hour"."""

    @abstractmethod
    def to_data(self) -> ScheduleData:
        """Plain data for a store; ``store.schedule_from_data`` turns it back into a schedule."""

    def origin(self, created: datetime) -> datetime | None:
        """Where a new entry starts counting runs: only runs after its creation are its own."""
        return created

    def _since(self, last_run_at: datetime | None, now: datetime) -> datetime:
        """Where runs are counted from, in the zone of ``now``: ``last_run_at`` (naive: UTC,
        as in Celery), or where a new entry would start."""
        since = self.origin(now) if last_run_at is None else _as_utc(last_run_at)
        return (since or BEGINNING).astimezone(now.tzinfo)

    def remaining_estimate(self, last_run_at: datetime | None) -> timedelta:
        """Celery's estimate: the time from now to the first run after ``last_run_at``
        (negative when overdue); ``timedelta.max`` when no run is left."""
        now = self.now()
        due = self.next_run(self._since(last_run_at, now))
        return timedelta.max if due is None else due - now

    def is_due(self, last_run_at: datetime | None, now: datetime | None = None) -> schedstate:
        """Celery's answer: ``schedstate(is_due, next)``, ``next`` being the seconds until
        the next check. ``now`` defaults to ``self.now()``; times are read in its zone."""
        now = self.now() if now is None else require_aware(now, "now")
        since = self._since(last_run_at, now)
        due = self.next_run(since)
        if due is None:
            return schedstate(False, math.inf)
        if due > now:
            return schedstate(False, (due - now).total_seconds())
        following = self.next_run(now)
        wait = math.inf if following is None else (following - now).total_seconds()
        return schedstate(not self._stale(since, now), wait)

    def _stale(self, since: datetime, now: datetime) -> bool:
        """Whether every run missed since ``since`` is too old to send (crontab only)."""
        return False

    def next_runs(self, after: datetime, count: int) -> list[datetime]:
        found: list[datetime] = []
        current: datetime | None = after
        while current is not None and len(found) < count:
            current = self.next_run(current)
            if current is not None:
                found.append(current)
        return found

    def period(self, at: datetime) -> float | None:
        """Seconds between the next two runs after ``at``; None for a one-off."""
        pair = self.next_runs(at, 2)
        return (pair[1] - pair[0]).total_seconds() if len(pair) == 2 else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and self.to_data() == other.to_data()

    def __hash__(self) -> int:
        return hash(msgspec.json.encode(self.to_data()))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """``(rebuild, args)``: the two-part form Celery's schedules give, ``rebuild(*args)``
        making an equal schedule (pickle uses it too). ``nowfun`` goes along; an app does
        not pickle, and the copy finds the current one."""
        keywords = dict(self._keywords())
        if self.nowfun is not None:
            keywords["nowfun"] = self.nowfun
        return (_rebuild, (type(self), self._arguments(), keywords))

    def _arguments(self) -> tuple[Any, ...]:
        """The positional arguments that make this schedule again (``__reduce__``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be copied")

    def _keywords(self) -> dict[str, Any]:
        return {}

    def __str__(self) -> str:
        return self.describe()


def _rebuild(kind: type[Schedule], args: tuple[Any, ...], keywords: dict[str, Any]) -> Schedule:
    """A schedule made again from ``__reduce__``'s parts."""
    return kind(*args, **keywords)


def _as_utc(value: datetime) -> datetime:
    """An aware datetime as given; a naive one read as UTC (Celery's rule)."""
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)
    return value


class crontab(Schedule):
    """``crontab(minute="*/15", hour="8-17", day_of_week="mon-fri")``.

    Fields take numbers, lists of numbers or cron patterns (``*``, ``*/n``, ``a-b``,
    ``a-b/n``, names, comma lists), and read back as sets of numbers. As in Celery, a day
    must match both day_of_month and day_of_week, and two crontabs are equal when their
    fields expand to the same sets. ``timezone`` overrides the app's zone for this schedule.
    """

    def __init__(
        self,
        minute: object = "*",
        hour: object = "*",
        day_of_week: object = "*",
        day_of_month: object = "*",
        month_of_year: object = "*",
        *,
        timezone: str | None = None,
        nowfun: Callable[[], datetime] | None = None,
        app: Conveyor | None = None,
    ) -> None:
        self.minute = parse_field(MINUTE, minute)
        self.hour = parse_field(HOUR, hour)
        self.day_of_week = parse_field(DAY_OF_WEEK, day_of_week)
        self.day_of_month = parse_field(DAY_OF_MONTH, day_of_month)
        self.month_of_year = parse_field(MONTH_OF_YEAR, month_of_year)
        self._check_days_exist()
        self.timezone = timezone
        self._zone = None if timezone is None else get_zone(timezone, "timezone")
        self._bind(nowfun, app)

    @classmethod
    def from_string(cls, line: str, *, timezone: str | None = None) -> crontab:
        """``crontab.from_string("15 * * * *")``: minute hour day-of-month month day-of-week."""
        text = _NICKNAMES.get(line.strip().lower(), line)
        parts = text.split()
        if len(parts) != 5:
            raise ValueError(
                f"cron line {line!r} has {len(parts)} field(s); it needs 5: "
                "minute hour day_of_month month_of_year day_of_week"
            )
        minute, hour, day_of_month, month_of_year, day_of_week = parts
        return cls(minute, hour, day_of_week, day_of_month, month_of_year, timezone=timezone)

    def _check_days_exist(self) -> None:
        longest = {m: calendar.monthrange(2024, m)[1] for m in range(1, 13)}  # 2024: Feb 29
        if any(
            day <= longest[m] for m in self.month_of_year.values for day in self.day_of_month.values
        ):
            return
        months = ", ".join(MONTH_NAMES[m - 1] for m in self.month_of_year.sorted())
        raise ImpossibleSchedule(
            f"day_of_month: {self.day_of_month.text!r} never occurs in month_of_year "
            f"{self.month_of_year.text!r} ({months}), so it would never run: pick days "
            "those months have"
        )

    def _key(self) -> tuple[frozenset[int], ...]:
        fields = (self.minute, self.hour, self.day_of_week, self.day_of_month, self.month_of_year)
        return tuple(f.values for f in fields)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, crontab):
            return self._key() == other._key() and self.timezone == other.timezone
        return super().__eq__(other)

    def __hash__(self) -> int:
        return hash((self._key(), self.timezone))

    def _stale(self, since: datetime, now: datetime) -> bool:
        """Celery's ``beat_cron_starting_deadline``: no missed run is recent enough."""
        deadline = self.app.conf.beat_cron_starting_deadline
        if deadline is None:
            return False
        oldest = now - timedelta(seconds=deadline, microseconds=1)
        recent = self.next_run(max(since, oldest))
        return recent is None or recent > now

    def to_cron(self) -> str:
        """The five fields in cron order."""
        fields = (self.minute, self.hour, self.day_of_month, self.month_of_year, self.day_of_week)
        return " ".join(f.text.replace(" ", "") for f in fields)

    def _arguments(self) -> tuple[Any, ...]:
        fields = (self.minute, self.hour, self.day_of_week, self.day_of_month, self.month_of_year)
        return tuple(f.text for f in fields)

    def _keywords(self) -> dict[str, Any]:
        return {} if self.timezone is None else {"timezone": self.timezone}

    def to_data(self) -> CrontabData:
        return CrontabData(
            minute=self.minute.text,
            hour=self.hour.text,
            day_of_week=self.day_of_week.text,
            day_of_month=self.day_of_month.text,
            month_of_year=self.month_of_year.text,
            timezone=self.timezone,
        )

    def describe(self) -> str:
        text = describe_crontab(
            self.minute, self.hour, self.day_of_week, self.day_of_month, self.month_of_year
        )
        return f"{text} ({self.timezone})" if self.timezone else text

    def __repr__(self) -> str:
        zone = f", timezone={self.timezone!r}" if self.timezone else ""
        return f"crontab.from_string({self.to_cron()!r}{zone})"

    def next_run(self, after: datetime) -> datetime | None:
        zone = self._zone or require_aware(after).tzinfo
        assert zone is not None
        after_utc = after.astimezone(UTC)
        local = after.astimezone(zone).replace(tzinfo=None)
        steady = _steady(zone, after_utc)
        start = local if steady else local - _DST_MARGIN
        best: datetime | None = None
        horizon: datetime | None = None
        for wall in self._walls(start.replace(second=0, microsecond=0)):
            if horizon is not None and wall > horizon:
                break
            for instant in self._instants(wall, zone):
                if instant > after_utc and (best is None or instant < best):
                    best, horizon = instant, wall + _DST_MARGIN
            if best is not None and steady:  # wall order is time order: the first one wins
                break
        return None if best is None else best.astimezone(after.tzinfo)

    def _walls(self, start: datetime) -> Iterator[datetime]:
        """Matching wall-clock minutes from ``start`` on, in order."""
        first_day = start.date()
        hours, minutes = self.hour.sorted(), self.minute.sorted()
        for year in range(start.year, start.year + _SEARCH_YEARS):
            for month in self.month_of_year.sorted():
                if (year, month) < (first_day.year, first_day.month):
                    continue
                last = calendar.monthrange(year, month)[1]
                for day in self.day_of_month.sorted():
                    if day > last:
                        break
                    current = date(year, month, day)
                    if current < first_day or not self._weekday_matches(current):
                        continue
                    for hour in hours:
                        for minute in minutes:
                            wall = datetime(year, month, day, hour, minute)
                            if wall >= start:
                                yield wall

    def _weekday_matches(self, day: date) -> bool:
        return (day.weekday() + 1) % 7 in self.day_of_week.values

    def _instants(self, wall: datetime, zone: tzinfo) -> list[datetime]:
        """The UTC instants a wall time stands for across DST changes.

        A job with fixed hours runs once a day whatever the clocks do: a time in the
        spring-forward gap runs when the gap ends, a time that occurs twice runs at its
        first occurrence. A job on every hour (``hour="*"``) keeps its spacing in real time
        instead: it has no run in the gap and runs at both occurrences of a repeated hour.
        """
        early = wall.replace(tzinfo=zone).astimezone(UTC)
        late = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
        if early == late:
            return [early]
        if early < late:  # the wall time occurs twice
            return [early, late] if self.hour.every else [early]
        return [] if self.hour.every else [_gap_end(zone, late, early)]


def _steady(zone: tzinfo, at: datetime) -> bool:
    """No UTC offset change within the DST margin of ``at`` (the common, fast case)."""
    before = (at - _DST_MARGIN).astimezone(zone).utcoffset()
    return (
        before == at.astimezone(zone).utcoffset() == (at + _DST_MARGIN).astimezone(zone).utcoffset()
    )


def _gap_end(zone: tzinfo, low: datetime, high: datetime) -> datetime:
    """The instant clocks jumped forward, between ``low`` (before) and ``high`` (after)."""
    offset = low.astimezone(zone).utcoffset()
    lo, hi = math.floor(low.timestamp()), math.ceil(high.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(zone).utcoffset() == offset:
            lo = mid
        else:
            hi = mid
    return datetime.fromtimestamp(hi, UTC)


class schedule(Schedule):
    """Every ``run_every`` (a timedelta or seconds), on a grid counted from ``anchor``.

    The grid (from the Unix epoch unless an anchor is given) makes due times the same in
    every scheduler process, which is what lets several run side by side.
    """

    def __init__(
        self,
        run_every: timedelta | float,
        anchor: datetime | None = None,
        *,
        nowfun: Callable[[], datetime] | None = None,
        app: Conveyor | None = None,
    ) -> None:
        if isinstance(run_every, bool) or not isinstance(run_every, timedelta | int | float):
            raise ValueError(f"run_every: expected a timedelta or seconds, not {run_every!r}")
        every = run_every if isinstance(run_every, timedelta) else timedelta(seconds=run_every)
        if every <= timedelta(0):
            raise ValueError(f"run_every: must be more than zero, not {run_every!r}")
        if anchor is not None:
            require_aware(anchor, "anchor")
        self.run_every = every
        self.anchor = anchor
        self._bind(nowfun, app)

    @property
    def seconds(self) -> float:
        return self.run_every.total_seconds()

    def next_run(self, after: datetime) -> datetime | None:
        base = self.anchor or BEGINNING
        steps = (require_aware(after) - base) // self.run_every + 1
        return (base + steps * self.run_every).astimezone(after.tzinfo)

    def describe(self) -> str:
        text = describe_interval(self.run_every)
        return f"{text} from {self.anchor.isoformat()}" if self.anchor else text

    def _arguments(self) -> tuple[Any, ...]:
        return (self.run_every, self.anchor)

    def to_data(self) -> IntervalData:
        return IntervalData(seconds=self.seconds, anchor=self.anchor)

    def __repr__(self) -> str:
        anchor = f", anchor={self.anchor!r}" if self.anchor else ""
        return f"schedule({self.seconds:g}{anchor})"


class clocked(Schedule):
    """Once, at ``clocked_time``; a naive time is read in the app's timezone."""

    def __init__(
        self,
        clocked_time: datetime,
        *,
        nowfun: Callable[[], datetime] | None = None,
        app: Conveyor | None = None,
    ) -> None:
        if not isinstance(clocked_time, datetime):
            raise ValueError(f"clocked_time: expected a datetime, not {clocked_time!r}")
        self.clocked_time = clocked_time
        self._bind(nowfun, app)

    def at(self, zone: tzinfo | None) -> datetime:
        if self.clocked_time.tzinfo is None:
            return self.clocked_time.replace(tzinfo=zone or UTC)
        return self.clocked_time

    def next_run(self, after: datetime) -> datetime | None:
        when = self.at(require_aware(after).tzinfo)
        return (
            when.astimezone(after.tzinfo) if when.astimezone(UTC) > after.astimezone(UTC) else None
        )

    def origin(self, created: datetime) -> datetime | None:
        return None

    def describe(self) -> str:
        when = self.clocked_time
        text = f"Once, at {when:%Y-%m-%d %H:%M}"
        if when.second or when.microsecond:
            text = f"Once, at {when:%Y-%m-%d %H:%M:%S}"
        offset = when.utcoffset()
        if offset is None:
            return text
        return f"{text} UTC" if not offset else f"{text} {when.isoformat(timespec='minutes')[-6:]}"

    def _arguments(self) -> tuple[Any, ...]:
        return (self.clocked_time,)

    def to_data(self) -> ClockedData:
        return ClockedData(at=self.clocked_time)

    def __repr__(self) -> str:
        return f"clocked({self.clocked_time!r})"


def to_schedule(value: Any) -> Schedule:
    """What a beat_schedule entry may say: a schedule, a timedelta, seconds or a cron line."""
    if isinstance(value, Schedule):
        return value
    if isinstance(value, str):
        return crontab.from_string(value)
    if isinstance(value, datetime):
        return clocked(value)
    if isinstance(value, timedelta | int | float) and not isinstance(value, bool):
        return schedule(value)
    raise ValueError(
        f"schedule: expected crontab(...), schedule(...), clocked(...), solar(...), a "
        f"timedelta, seconds or a cron line, not {value!r}"
    )


def maybe_schedule(
    value: Any, relative: bool = False, app: Conveyor | None = None
) -> Schedule | None:
    """Celery's helper: ``to_schedule`` that keeps None and binds ``app``. ``relative`` is
    accepted for Celery's callers and changes nothing: intervals run on a fixed grid."""
    if value is None:
        return None
    found = to_schedule(value)
    if app is not None:
        found.app = app
    return found
