"""Plain-English descriptions of schedules, so nobody needs crontab.guru to read one."""

from __future__ import annotations

from datetime import timedelta

from .fields import CronField, join_words, list_words, runs, step_of

__all__ = ["describe_crontab", "describe_interval", "describe_solar", "ordinal"]

_LISTED_TIMES = 4
"""Up to this many clock times are spelled out ("At 08:00 and 17:30")."""


def ordinal(number: int) -> str:
    if 10 <= number % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def describe_interval(every: timedelta) -> str:
    seconds = every.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"Every {unit}" if count == 1 else f"Every {count} {unit}s"
    return f"Every {seconds:g} seconds"


def describe_solar(event: str, lat: float, lon: float) -> str:
    """``At sunset at 48.8566°N 2.3522°E``; ``dusk_civil`` reads "civil dusk"."""
    kind, _, which = event.partition("_")
    name = f"{which} {kind}" if kind in ("dawn", "dusk") else event.replace("_", " ")
    north = f"{abs(lat):.10g}°{'N' if lat >= 0 else 'S'}"
    east = f"{abs(lon):.10g}°{'E' if lon >= 0 else 'W'}"
    return f"At {name} at {north} {east}"


def describe_crontab(
    minute: CronField,
    hour: CronField,
    day_of_week: CronField,
    day_of_month: CronField,
    month_of_year: CronField,
) -> str:
    text = _time_phrase(minute, hour)
    if not day_of_month.every:
        count = len(day_of_month.values)
        text += f" on day{'s' if count > 1 else ''} {list_words(day_of_month)} of the month"
    if not day_of_week.every:
        # Both day fields must match (Celery's rule, not cron's "either").
        text += (" if it is " if not day_of_month.every else " on ") + list_words(day_of_week)
    if not month_of_year.every:
        text += f" in {list_words(month_of_year)}"
    return text


def _time_phrase(minute: CronField, hour: CronField) -> str:
    if minute.every and hour.every:
        return "Every minute"
    minute_step = step_of(minute)
    if hour.every:
        if minute_step:
            return _every_minutes(minute_step)
        return f"At {_minutes(minute)} past every hour"
    if not minute.every and len(minute.values) * len(hour.values) <= _LISTED_TIMES:
        times = [f"{h:02d}:{m:02d}" for h in hour.sorted() for m in minute.sorted()]
        return "At " + join_words(times)
    if minute.every:
        lead = "Every minute"
    elif minute_step:
        lead = _every_minutes(minute_step)
    else:
        lead = f"At {_minutes(minute)}"
    return f"{lead} past {_hours(hour)}"


def _every_minutes(step: int) -> str:
    return f"Every {step} minutes" if 60 % step == 0 else f"At every {ordinal(step)} minute"


def _minutes(field: CronField) -> str:
    if len(field.values) == 1:
        return f"minute {field.sorted()[0]}"
    return f"minutes {list_words(field)}"


def _hours(field: CronField) -> str:
    step = step_of(field)
    if step:
        return f"every {ordinal(step)} hour"
    values = field.sorted()
    if len(values) == 1:
        return f"hour {values[0]}"
    spans = runs(values)
    if len(spans) == 1:
        return f"every hour from {spans[0][0]} through {spans[0][1]}"
    return f"hours {list_words(field)}"
