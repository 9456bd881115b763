"""``DjangoStore``: beat's schedule store on the ``PeriodicTask`` models.

Schedulers, ``conveyor beat`` subcommands, the admin and the setup command all read and
write the same rows. The integration makes it the app's store (the ``beat_store``
setting), so ``conveyor beat`` and ``conveyor worker --beat`` use it unless
``CONVEYOR_BEAT_STORE`` says otherwise. Run-state updates (``record_run``, ``skip_to``)
are single conditional UPDATEs, so two schedulers recording one run count it once.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet

from ...beat.entries import Entry
from ...beat.schedules import Schedule, clocked, crontab, get_zone, schedule
from ...beat.store import ScheduleStore, encode_definition
from .db import heal
from .models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    ScheduleVersion,
    entry_of,
)

if TYPE_CHECKING:
    from ...app import Conveyor

__all__ = ["DjangoStore"]

logger = logging.getLogger("conveyor.beat")

ScheduleRow = IntervalSchedule | CrontabSchedule | ClockedSchedule


def to_db(value: datetime | None) -> datetime | None:
    """Aware times as the database field wants them (naive UTC when USE_TZ is off)."""
    if value is None or settings.USE_TZ:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def schedule_row(value: Schedule, using: str | None = None, zone: tzinfo = UTC) -> ScheduleRow:
    """A schedule row with these fields: an existing one when there is one (a naive
    ``clocked`` time is read in ``zone``, the app's)."""
    fields: dict[str, Any]
    model: type[ScheduleRow]
    if isinstance(value, crontab):
        data = value.to_data()
        model, fields = (
            CrontabSchedule,
            {
                "minute": data.minute,
                "hour": data.hour,
                "day_of_week": data.day_of_week,
                "day_of_month": data.day_of_month,
                "month_of_year": data.month_of_year,
                "timezone": data.timezone or "",
            },
        )
    elif isinstance(value, schedule):
        model = IntervalSchedule
        fields = {**IntervalSchedule.fields_for(value.run_every), "anchor": to_db(value.anchor)}
    elif isinstance(value, clocked):
        model, fields = ClockedSchedule, {"clocked_time": to_db(value.at(zone))}
    else:
        raise ValueError(f"the database store cannot keep a {type(value).__name__} schedule")
    rows: QuerySet[Any] = model.objects.using(using)
    existing: ScheduleRow | None = rows.filter(**fields).order_by("pk").first()
    return existing if existing is not None else rows.create(**fields)


def delete_unused_schedules(using: str | None = None) -> int:
    """Delete schedule rows no periodic task uses; the count deleted."""
    deleted = 0
    for model in (IntervalSchedule, CrontabSchedule, ClockedSchedule):
        deleted += model.objects.using(using).filter(periodictask__isnull=True).delete()[0]
    return deleted


class DjangoStore(ScheduleStore):
    """Entries in the ``PeriodicTask`` table of database ``using`` (the default one)."""

    def __init__(self, app: Conveyor | None = None, using: str | None = None) -> None:
        self.using = using
        self.zone: tzinfo = get_zone(app.conf.timezone, "timezone setting") if app else UTC
        self.url = f"django://{using or 'default'}"

    def _rows(self) -> QuerySet[PeriodicTask]:
        heal(self.using)
        return PeriodicTask.objects.using(self.using).select_related(
            "interval", "crontab", "clocked"
        )

    def atomic(self) -> AbstractContextManager[None]:
        return transaction.atomic(using=self.using)

    def _entry(self, row: PeriodicTask) -> Entry | None:
        try:
            return entry_of(row)
        except (ValueError, TypeError) as exc:
            logger.error("beat: periodic task %r cannot be read, skipped: %s", row.name, exc)
            return None

    def list(self) -> list[Entry]:
        entries = (self._entry(row) for row in self._rows().order_by("name"))
        return [entry for entry in entries if entry is not None]

    def get(self, name: str) -> Entry | None:
        row = self._rows().filter(name=name).first()
        return None if row is None else self._entry(row)

    def save(self, entry: Entry) -> None:
        encode_definition(entry)  # the same ValueError as other stores for non-JSON values
        options = dict(entry.options)
        queue = options.pop("queue", None)
        with self.atomic():
            row = self._rows().filter(name=entry.name).first() or PeriodicTask(name=entry.name)
            old = row.schedule_row
            new = schedule_row(entry.schedule, self.using, self.zone)
            row.interval = new if isinstance(new, IntervalSchedule) else None
            row.crontab = new if isinstance(new, CrontabSchedule) else None
            row.clocked = new if isinstance(new, ClockedSchedule) else None
            row.task = entry.task
            row.args = list(entry.args)
            row.kwargs = dict(entry.kwargs)
            row.queue = queue
            row.options = options
            row.enabled = entry.enabled
            row.catch_up = entry.catch_up
            row.last_run_at = to_db(entry.last_run_at)
            row.total_run_count = entry.total_run_count
            row.since = to_db(entry.since)
            row.source = entry.source
            row.save(using=self.using)
            if old is not None and (type(old), old.pk) != (type(new), new.pk):
                _delete_if_unused(old, self.using)

    def remove(self, name: str) -> bool:
        with self.atomic():
            row = self._rows().filter(name=name).first()
            if row is None:
                return False
            old = row.schedule_row
            row.delete(using=self.using)
            if old is not None:
                _delete_if_unused(old, self.using)
            return True

    def record_run(self, name: str, due: datetime, ran_at: datetime, manual: bool = False) -> bool:
        rows = self._rows().filter(name=name)
        changes: dict[str, Any] = {
            "last_run_at": to_db(ran_at),
            "total_run_count": F("total_run_count") + 1,
        }
        if not manual:
            rows = rows.filter(Q(since__isnull=True) | Q(since__lt=to_db(due)))
            changes["since"] = to_db(due)
        return rows.update(**changes) > 0

    def skip_to(self, name: str, until: datetime) -> bool:
        rows = self._rows().filter(Q(since__isnull=True) | Q(since__lt=to_db(until)), name=name)
        return rows.update(since=to_db(until)) > 0

    def version(self) -> int:
        heal(self.using)
        found = ScheduleVersion.objects.using(self.using).filter(pk=1).values_list("value")
        first = found.first()
        return int(first[0]) if first else 0


def _delete_if_unused(row: ScheduleRow, using: str | None) -> None:
    type(row).objects.using(using).filter(pk=row.pk, periodictask__isnull=True).delete()
