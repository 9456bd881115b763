"""Periodic tasks and (optionally) task results in the project's database.

Schedules are rows of their own, as in django-celery-beat, so the admin can pick one for
several tasks; ``DjangoStore`` turns rows into ``conveyor.beat`` entries. Every write to
these tables bumps ``ScheduleVersion`` (model signals for ``save``/``delete``, the
querysets for ``update``), which is what running schedulers poll to notice an edit made in
the admin or anywhere else, without a restart.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from ...beat.entries import Entry
from ...beat.schedules import Schedule, clocked, crontab, schedule
from ...beat.store import first_version

__all__ = [
    "ClockedSchedule",
    "CrontabSchedule",
    "IntervalSchedule",
    "PeriodicTask",
    "ResultValue",
    "ScheduleVersion",
    "TaskResult",
    "bump_version",
    "entry_of",
    "from_db",
]


def bump_version(using: str | None = None) -> None:
    """Tell running schedulers that periodic tasks changed (a missing row starts from
    ``first_version()``)."""
    versions = ScheduleVersion.objects.using(using)
    if not versions.filter(pk=1).update(value=F("value") + 1):
        versions.get_or_create(pk=1, defaults={"value": first_version()})


class ChangeTrackingQuerySet(models.QuerySet[Any]):
    """``update()`` and ``bulk_create()`` send no model signals: bump the version here."""

    def update(self, **kwargs: Any) -> int:
        rows = super().update(**kwargs)
        if rows:
            bump_version(self.db)
        return rows

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> list[Any]:
        made = super().bulk_create(objs, *args, **kwargs)
        if made:
            bump_version(self.db)
        return made


ChangeTrackingManager = models.Manager.from_queryset(ChangeTrackingQuerySet)


class ScheduleVersion(models.Model):
    """One row whose value moves on every change to the periodic task tables."""

    id: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(
        primary_key=True, default=1
    )
    value: models.BigIntegerField[int, int] = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "schedule version"


class IntervalSchedule(models.Model):
    DAYS, HOURS, MINUTES, SECONDS, MICROSECONDS = (
        "days",
        "hours",
        "minutes",
        "seconds",
        "microseconds",
    )
    PERIODS = [(p, p.capitalize()) for p in (DAYS, HOURS, MINUTES, SECONDS, MICROSECONDS)]

    every: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(
        help_text="How many periods between runs."
    )
    period: models.CharField[str, str] = models.CharField(
        max_length=24, choices=PERIODS, default=SECONDS
    )
    anchor: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Where the grid of runs starts; empty: 1970-01-01 UTC, the same grid in "
        "every scheduler.",
    )

    objects = ChangeTrackingManager()

    class Meta:
        verbose_name = "interval"
        ordering = ["period", "every"]

    @classmethod
    def fields_for(cls, run_every: timedelta) -> dict[str, Any]:
        """``every`` and ``period`` for a timedelta, in the largest whole unit."""
        micros = run_every // timedelta(microseconds=1)
        for period, size in (
            (cls.DAYS, 86_400_000_000),
            (cls.HOURS, 3_600_000_000),
            (cls.MINUTES, 60_000_000),
            (cls.SECONDS, 1_000_000),
        ):
            if micros % size == 0:
                return {"every": micros // size, "period": period}
        return {"every": micros, "period": cls.MICROSECONDS}

    def clean(self) -> None:
        if not self.every:
            raise ValidationError({"every": "An interval must be at least 1."})

    @property
    def schedule(self) -> Schedule:
        return schedule(timedelta(**{self.period: self.every}), _aware(self.anchor))

    def __str__(self) -> str:
        return self.schedule.describe() if self.every else f"every 0 {self.period}"


class CrontabSchedule(models.Model):
    minute: models.CharField[str, str] = models.CharField(max_length=240, default="*")
    hour: models.CharField[str, str] = models.CharField(max_length=96, default="*")
    day_of_week: models.CharField[str, str] = models.CharField(
        max_length=64, default="*", help_text="0-6 (Sunday is 0)"
    )
    day_of_month: models.CharField[str, str] = models.CharField(max_length=124, default="*")
    month_of_year: models.CharField[str, str] = models.CharField(max_length=64, default="*")
    timezone: models.CharField[str, str] = models.CharField(
        max_length=63, blank=True, help_text="Empty: the app's timezone setting."
    )

    objects = ChangeTrackingManager()

    class Meta:
        verbose_name = "crontab"
        ordering = ["month_of_year", "day_of_month", "day_of_week", "hour", "minute"]

    def clean(self) -> None:
        try:
            self.schedule  # noqa: B018 - parsing is the check
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    @property
    def schedule(self) -> Schedule:
        return crontab(
            self.minute,
            self.hour,
            self.day_of_week,
            self.day_of_month,
            self.month_of_year,
            timezone=self.timezone or None,
        )

    def __str__(self) -> str:
        try:
            return self.schedule.describe()
        except ValueError as exc:
            return f"invalid crontab: {exc}"


class ClockedSchedule(models.Model):
    clocked_time: models.DateTimeField[datetime, datetime] = models.DateTimeField(
        help_text="The one time this runs."
    )

    objects = ChangeTrackingManager()

    class Meta:
        verbose_name = "clocked time"
        ordering = ["clocked_time"]

    @property
    def schedule(self) -> Schedule:
        return clocked(_aware(self.clocked_time) or self.clocked_time)

    def __str__(self) -> str:
        return self.schedule.describe()


class PeriodicTask(models.Model):
    """A task sent on a schedule: exactly one of interval, crontab or clocked is set."""

    CATCH_UP = [
        ("latest", "Send the newest missed run"),
        ("all", "Send every missed run"),
        ("skip", "Send none of the missed runs"),
    ]
    SOURCES = [
        ("runtime", "Added here or by a command"),
        ("code", "Declared in code"),
        ("removed", "Removed from code"),
    ]

    name: models.CharField[str, str] = models.CharField(max_length=200, unique=True)
    task: models.CharField[str, str] = models.CharField(
        max_length=200, help_text="The name of the task to send."
    )
    interval: models.ForeignKey[IntervalSchedule | None, IntervalSchedule | None] = (
        models.ForeignKey(IntervalSchedule, on_delete=models.CASCADE, null=True, blank=True)
    )
    crontab: models.ForeignKey[CrontabSchedule | None, CrontabSchedule | None] = models.ForeignKey(
        CrontabSchedule, on_delete=models.CASCADE, null=True, blank=True
    )
    clocked: models.ForeignKey[ClockedSchedule | None, ClockedSchedule | None] = models.ForeignKey(
        ClockedSchedule, on_delete=models.CASCADE, null=True, blank=True
    )
    args: models.JSONField[Any, Any] = models.JSONField(
        default=list, blank=True, help_text='A JSON list: [1, "two"]'
    )
    kwargs: models.JSONField[Any, Any] = models.JSONField(
        default=dict, blank=True, help_text='A JSON object: {"a": 1}'
    )
    queue: models.CharField[str | None, str | None] = models.CharField(
        max_length=200, null=True, blank=True
    )
    options: models.JSONField[Any, Any] = models.JSONField(
        default=dict,
        blank=True,
        help_text='Other send options as JSON: {"priority": 5, "expires": 3600}',
    )
    enabled: models.BooleanField[bool, bool] = models.BooleanField(default=True)
    catch_up: models.CharField[str, str] = models.CharField(
        max_length=16, choices=CATCH_UP, default="latest"
    )
    last_run_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        null=True, blank=True
    )
    total_run_count: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(default=0)
    since: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        null=True, blank=True, help_text="Runs due after this moment are still to be sent."
    )
    source: models.CharField[str, str] = models.CharField(
        max_length=16, choices=SOURCES, default="runtime"
    )
    description: models.TextField[str, str] = models.TextField(blank=True)
    date_changed: models.DateTimeField[datetime, datetime] = models.DateTimeField(auto_now=True)

    objects = ChangeTrackingManager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(interval__isnull=False, crontab__isnull=True, clocked__isnull=True)
                    | models.Q(interval__isnull=True, crontab__isnull=False, clocked__isnull=True)
                    | models.Q(interval__isnull=True, crontab__isnull=True, clocked__isnull=False)
                ),
                name="conveyor_periodictask_one_schedule",
            )
        ]

    interval_id: int | None
    crontab_id: int | None
    clocked_id: int | None

    @property
    def schedule_row(self) -> IntervalSchedule | CrontabSchedule | ClockedSchedule | None:
        return self.interval or self.crontab or self.clocked

    def clean(self) -> None:
        chosen = [f for f in ("interval", "crontab", "clocked") if getattr(self, f"{f}_id")]
        if len(chosen) != 1:
            raise ValidationError("Choose exactly one schedule: an interval, a crontab or a time.")
        if not isinstance(self.args, list):
            raise ValidationError({"args": "Arguments must be a JSON list."})
        if not isinstance(self.kwargs, dict):
            raise ValidationError({"kwargs": "Keyword arguments must be a JSON object."})
        if not isinstance(self.options, dict):
            raise ValidationError({"options": "Options must be a JSON object."})
        try:
            entry_of(self)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def __str__(self) -> str:
        row = self.schedule_row
        return f"{self.name}: {row}" if row is not None else self.name


class TaskResult(models.Model):
    """A task's latest state, written by ``DjangoResultBackend`` (``value`` is what Conveyor
    reads; the other columns are copies for people and queries)."""

    task_id: models.CharField[str, str] = models.CharField(max_length=255, unique=True)
    task_name: models.CharField[str, str] = models.CharField(
        max_length=255, blank=True, db_index=True
    )
    state: models.CharField[str, str] = models.CharField(max_length=50, blank=True, db_index=True)
    args: models.JSONField[Any, Any] = models.JSONField(null=True, blank=True)
    kwargs: models.JSONField[Any, Any] = models.JSONField(null=True, blank=True)
    result: models.JSONField[Any, Any] = models.JSONField(null=True, blank=True)
    traceback: models.TextField[str, str] = models.TextField(blank=True)
    worker: models.CharField[str, str] = models.CharField(max_length=255, blank=True)
    retries: models.PositiveIntegerField[int, int] = models.PositiveIntegerField(default=0)
    date_created: models.DateTimeField[datetime, datetime] = models.DateTimeField(db_index=True)
    date_started: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        null=True, blank=True
    )
    date_done: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        null=True, blank=True, db_index=True
    )
    runtime: models.FloatField[float | None, float | None] = models.FloatField(
        null=True, blank=True, help_text="Seconds from start to end."
    )
    value: models.BinaryField[bytes, bytes] = models.BinaryField()
    fence: models.BigIntegerField[int | None, int | None] = models.BigIntegerField(null=True)
    expires_at: models.FloatField[float, float] = models.FloatField(db_index=True)

    class Meta:
        ordering = ["-date_created"]

    def __str__(self) -> str:
        return f"{self.task_name or 'task'}[{self.task_id}] {self.state}"


class ResultValue(models.Model):
    """Everything else the result backend keeps: group records, counters, sets."""

    key: models.CharField[str, str] = models.CharField(max_length=255, unique=True)
    value: models.BinaryField[bytes, bytes] = models.BinaryField()
    fence: models.BigIntegerField[int | None, int | None] = models.BigIntegerField(null=True)
    expires_at: models.FloatField[float, float] = models.FloatField(db_index=True)

    def __str__(self) -> str:
        return self.key


def _aware(value: datetime | None) -> datetime | None:
    """Rows read with USE_TZ = False hold naive UTC times."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@receiver(post_save, sender=IntervalSchedule)
@receiver(post_save, sender=CrontabSchedule)
@receiver(post_save, sender=ClockedSchedule)
@receiver(post_save, sender=PeriodicTask)
@receiver(post_delete, sender=IntervalSchedule)
@receiver(post_delete, sender=CrontabSchedule)
@receiver(post_delete, sender=ClockedSchedule)
@receiver(post_delete, sender=PeriodicTask)
def _schedule_changed(sender: type[models.Model], using: str, **kwargs: Any) -> None:
    bump_version(using)


def from_db(value: datetime | None) -> datetime | None:
    """A time read from the database, aware (naive ones are UTC: USE_TZ is off)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def entry_of(row: PeriodicTask) -> Entry:
    """The beat entry a row stands for; ValueError when the row is not a valid entry."""
    found = row.schedule_row
    if found is None:
        raise ValueError(f"periodic task {row.name!r} has no schedule")
    options = dict(row.options or {})
    if row.queue:
        options["queue"] = row.queue
    return Entry(
        name=row.name,
        task=row.task,
        schedule=found.schedule,
        args=row.args if row.args is not None else (),
        kwargs=row.kwargs or {},
        options=options,
        enabled=row.enabled,
        catch_up=row.catch_up,
        last_run_at=from_db(row.last_run_at),
        total_run_count=row.total_run_count,
        since=from_db(row.since),
        source=row.source,
    )
