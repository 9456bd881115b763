"""Solar schedules: a run at sunrise, sunset, a dawn, a dusk or solar noon, at one place.

Celery's ``solar(event, lat, lon)``, computed with the ``ephem`` package (an optional
extra: ``pip install 'conveyor-tasks[solar]'``). Each event is looked for from local mean
midnight of its day (midnight shifted by the longitude), never from the time asked about,
so every scheduler finds the same due time to the second, which is what lets several run
side by side. Where the sun does not reach an event's altitude on a day (polar summer or
winter), that day has no run.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .data import SolarData
from .describe import describe_solar
from .schedules import Schedule, require_aware

if TYPE_CHECKING:
    from ..app import Conveyor

__all__ = ["EVENTS", "solar"]

EVENTS: dict[str, tuple[str, str, bool]] = {
    "dawn_astronomical": ("next_rising", "-18", True),
    "dawn_nautical": ("next_rising", "-12", True),
    "dawn_civil": ("next_rising", "-6", True),
    "sunrise": ("next_rising", "-0:34", False),
    "solar_noon": ("next_transit", "0", False),
    "sunset": ("next_setting", "-0:34", False),
    "dusk_civil": ("next_setting", "-6", True),
    "dusk_nautical": ("next_setting", "-12", True),
    "dusk_astronomical": ("next_setting", "-18", True),
}
"""Celery's events: the ephem method, the sun's altitude (degrees) and whether its centre
(True) or its upper edge (sunrise and sunset, with refraction folded into -0:34) counts."""

_SEARCH_DAYS = 370
"""Every event happens at least once a year, even at the poles."""


def _ephem() -> Any:
    try:
        return importlib.import_module("ephem")
    except ImportError as exc:
        raise ImportError(
            "solar schedules need the ephem package: pip install 'conveyor-tasks[solar]'"
        ) from exc


def _coordinate(name: str, value: object, limit: int) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}: expected degrees as a number, not {value!r}")
    if not -limit <= value <= limit:
        raise ValueError(f"{name}: {value!r} is out of range (-{limit} to {limit} degrees)")
    return float(value)


class solar(Schedule):
    """``solar("sunset", 48.8566, 2.3522)``: at sunset in Paris, every day.

    ``event`` is one of ``EVENTS``; ``lat`` and ``lon`` are degrees (north and east are
    positive). Runs are instants, so the app's timezone and DST do not move them.
    """

    def __init__(
        self,
        event: str,
        lat: float,
        lon: float,
        *,
        nowfun: Callable[[], datetime] | None = None,
        app: Conveyor | None = None,
    ) -> None:
        if event not in EVENTS:
            raise ValueError(
                f"event: {event!r} is not a solar event; use one of {', '.join(EVENTS)}"
            )
        self.event = event
        self.lat = _coordinate("lat", lat, 90)
        self.lon = _coordinate("lon", lon, 180)
        _ephem()  # missing: fail now, with the fix, not at the first run
        self._bind(nowfun, app)

    def next_run(self, after: datetime) -> datetime | None:
        require_aware(after)
        day = self._solar_day(after.astimezone(UTC)) - timedelta(days=1)
        for offset in range(_SEARCH_DAYS):
            found = self._on(day + timedelta(days=offset))
            if found is not None and found > after:
                return found.astimezone(after.tzinfo)
        return None

    def _solar_day(self, instant: datetime) -> date:
        return (instant + timedelta(hours=self.lon / 15)).date()

    def _on(self, day: date) -> datetime | None:
        """The event on ``day`` (local mean midnight to the next), to the second; None
        when the sun does not reach its altitude that day."""
        start = datetime(day.year, day.month, day.day) - timedelta(hours=self.lon / 15)
        method, horizon, centre = EVENTS[self.event]
        ephem = _ephem()
        observer = ephem.Observer()
        observer.lat, observer.lon = str(self.lat), str(self.lon)
        observer.elev, observer.pressure, observer.horizon = 0, 0, horizon
        observer.date = ephem.Date(start)
        options = {"use_center": True} if centre else {}
        try:
            found = getattr(observer, method)(ephem.Sun(), **options)
        except ephem.CircumpolarError:
            return None
        moment: datetime = found.datetime()
        moment = (moment + timedelta(microseconds=500_000)).replace(microsecond=0, tzinfo=UTC)
        return moment if moment < (start + timedelta(days=1)).replace(tzinfo=UTC) else None

    def describe(self) -> str:
        return describe_solar(self.event, self.lat, self.lon)

    def _arguments(self) -> tuple[Any, ...]:
        return (self.event, self.lat, self.lon)

    def to_data(self) -> SolarData:
        return SolarData(event=self.event, lat=self.lat, lon=self.lon)

    def __repr__(self) -> str:
        return f"solar({self.event!r}, {self.lat!r}, {self.lon!r})"
