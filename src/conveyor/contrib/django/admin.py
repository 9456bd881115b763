"""Admin pages: periodic tasks (with run-now, enable and disable), their schedules, and
task results (read-only).

Saving a task with a new schedule, or enabling one, counts its runs from now, as
``conveyor beat add`` and ``enable`` do: nothing "missed" before the edit fires. Every
change bumps the schedule version, so running schedulers pick it up within a second.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from ...beat.scheduler import run_now
from ...beat.schedules import get_zone
from .conf import get_app
from .models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    TaskResult,
    from_db,
)
from .store import DjangoStore, to_db

__all__ = ["PeriodicTaskAdmin", "TaskResultAdmin"]

if TYPE_CHECKING:  # ModelAdmin is generic only to type checkers
    PeriodicTaskAdminBase = admin.ModelAdmin[PeriodicTask]
    TaskResultAdminBase = admin.ModelAdmin[TaskResult]
    ScheduleAdminBase = admin.ModelAdmin[Any]
else:
    PeriodicTaskAdminBase = TaskResultAdminBase = ScheduleAdminBase = admin.ModelAdmin


def _schedule_key(task: PeriodicTask) -> tuple[int | None, int | None, int | None]:
    return (task.interval_id, task.crontab_id, task.clocked_id)


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(PeriodicTaskAdminBase):
    list_display = [
        "name",
        "task",
        "schedule",
        "enabled",
        "last_run_at",
        "total_run_count",
        "next_run",
    ]
    list_filter = ["enabled", "source", "task"]
    search_fields = ["name", "task", "description"]
    list_select_related = ["interval", "crontab", "clocked"]
    readonly_fields = ["last_run_at", "total_run_count", "since", "source", "date_changed"]
    actions = ["run_now", "enable", "disable"]
    fieldsets = [
        (None, {"fields": ["name", "task", "enabled", "description"]}),
        ("Schedule (choose one)", {"fields": ["interval", "crontab", "clocked", "catch_up"]}),
        ("Arguments and options", {"fields": ["args", "kwargs", "queue", "options"]}),
        (
            "Runs",
            {"fields": ["last_run_at", "total_run_count", "since", "source", "date_changed"]},
        ),
    ]

    @admin.display(description="schedule")
    def schedule(self, task: PeriodicTask) -> str:
        return str(task.schedule_row or "-")

    @admin.display(description="next run")
    def next_run(self, task: PeriodicTask) -> str:
        """As the scheduler sees it: in the app's timezone, after the runs already counted."""
        row = task.schedule_row
        if not task.enabled or row is None:
            return "-"
        now = timezone.now()
        after = max(from_db(task.since) or now, from_db(now) or now)
        try:
            zone = get_zone(get_app().conf.timezone)
            found = row.schedule.next_run(after.astimezone(zone))
        except ValueError:
            return "-"
        return "-" if found is None else f"{found:%Y-%m-%d %H:%M %Z}"

    def save_model(self, request: HttpRequest, obj: PeriodicTask, form: Any, change: bool) -> None:
        before = PeriodicTask.objects.filter(pk=obj.pk).first() if change else None
        rescheduled = before is None or _schedule_key(before) != _schedule_key(obj)
        if rescheduled or (obj.enabled and not before.enabled):  # type: ignore[union-attr]
            row = obj.schedule_row
            origin = row.schedule.origin(timezone.now()) if row is not None else None
            obj.since = to_db(origin)
        super().save_model(request, obj, form, change)

    @admin.action(description="Run the selected periodic tasks now")
    def run_now(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        app, store = get_app(), DjangoStore(get_app())
        for task in queryset:
            try:
                result = run_now(app, task.name, store)
            except Exception as exc:
                self.message_user(request, f"{task.name}: not sent: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{task.name}: sent as {result.id}", messages.SUCCESS)

    @admin.action(description="Enable the selected periodic tasks")
    def enable(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        count = queryset.filter(enabled=False).update(enabled=True, since=timezone.now())
        self.message_user(request, f"{count} periodic task(s) enabled", messages.SUCCESS)

    @admin.action(description="Disable the selected periodic tasks")
    def disable(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        count = queryset.filter(enabled=True).update(enabled=False)
        self.message_user(request, f"{count} periodic task(s) disabled", messages.SUCCESS)


class ScheduleAdmin(ScheduleAdminBase):
    """Editing a schedule reschedules every task using it: their runs count from now."""

    list_display = ["__str__", "tasks"]

    @admin.display(description="periodic tasks")
    def tasks(self, row: Any) -> int:
        return int(row.periodictask_set.count())

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and form.changed_data:
            origin = obj.schedule.origin(timezone.now())
            obj.periodictask_set.update(since=to_db(origin))


admin.site.register(IntervalSchedule, ScheduleAdmin)
admin.site.register(CrontabSchedule, ScheduleAdmin)
admin.site.register(ClockedSchedule, ScheduleAdmin)


_RESULT_FIELDS = (
    "task_id",
    "task_name",
    "state",
    "args",
    "kwargs",
    "result",
    "traceback",
    "worker",
    "retries",
    "date_created",
    "date_started",
    "date_done",
    "runtime",
)


@admin.register(TaskResult)
class TaskResultAdmin(TaskResultAdminBase):
    """Task runs stored by ``DjangoResultBackend``; read-only."""

    list_display = ["task_id", "task_name", "colored_state", "date_created", "date_done", "runtime"]
    list_filter = ["state", "task_name", "worker"]
    search_fields = ["task_id", "task_name"]
    date_hierarchy = "date_created"
    fields = _RESULT_FIELDS
    readonly_fields = _RESULT_FIELDS

    @admin.display(description="state", ordering="state")
    def colored_state(self, row: TaskResult) -> str:
        color = {"SUCCESS": "green", "FAILURE": "red", "RETRY": "orange"}.get(row.state, "inherit")
        return format_html('<span style="color: {}">{}</span>', color, row.state)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
