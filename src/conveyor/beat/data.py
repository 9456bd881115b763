"""Schedules as plain data: what stores keep, as tagged msgspec structs (JSON-ready).

A store on another database can map these fields to columns of its own (a crontab's five
fields, an interval's seconds, a solar event and place); ``schedule_from_data`` (in
``store.py``) turns them back into schedules.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

__all__ = ["ClockedData", "CrontabData", "IntervalData", "ScheduleData", "SolarData"]


class CrontabData(msgspec.Struct, tag="crontab", kw_only=True, omit_defaults=True):
    minute: str = "*"
    hour: str = "*"
    day_of_week: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"
    timezone: str | None = None


class IntervalData(msgspec.Struct, tag="interval", kw_only=True, omit_defaults=True):
    seconds: float
    anchor: datetime | None = None


class ClockedData(msgspec.Struct, tag="clocked", kw_only=True):
    at: datetime


class SolarData(msgspec.Struct, tag="solar", kw_only=True):
    event: str
    lat: float
    lon: float


ScheduleData = CrontabData | IntervalData | ClockedData | SolarData
