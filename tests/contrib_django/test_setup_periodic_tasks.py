"""Replacing the whole schedule from a definition in code, in one transaction, safe to run
on every deploy (``replace_periodic_tasks``, ``conveyor_setup_periodic_tasks``)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from contrib_django.testapp.tasks import tick
from conveyor.beat import Entry, crontab, schedule
from conveyor.contrib.django import get_app
from conveyor.contrib.django.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from conveyor.contrib.django.schedule import replace_periodic_tasks
from conveyor.contrib.django.store import DjangoStore

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

DEFINITION: dict[str, Any] = {
    "nightly": {"task": tick, "schedule": crontab(minute=30, hour=2), "args": ["night"]},
    "heartbeat": {"task": "testapp.tick", "schedule": timedelta(seconds=30)},
}


def definition() -> list[dict[str, Any]]:
    """The styleguide's shape: a list of dicts with a name and a cron dict."""
    return [
        {
            "name": "nightly",
            "task": tick,
            "cron": {"minute": "30", "hour": "2"},
            "args": ["night"],
            "enabled": True,
        }
    ]


def test_the_schedule_becomes_exactly_the_definition() -> None:
    store = DjangoStore(get_app())
    store.upsert(Entry("added in the admin", "x", schedule(60)), now=T0)
    store.upsert(Entry("nightly", "old.task", schedule(3600)), now=T0)
    store.record_run("nightly", T0 + timedelta(hours=1), T0 + timedelta(hours=1))
    store.sync({"from code": Entry("from code", "y", schedule(5))}, now=T0)

    report = replace_periodic_tasks(DEFINITION, now=T0 + timedelta(days=1))

    assert (report.added, report.changed, report.removed) == (
        ["heartbeat"],
        ["nightly"],
        ["added in the admin"],
    )
    names = sorted(PeriodicTask.objects.values_list("name", flat=True))
    assert names == ["from code", "heartbeat", "nightly"]  # the schedulers' own entry stays
    nightly = store.get("nightly")
    assert nightly is not None
    assert (nightly.task, nightly.args, nightly.total_run_count) == ("testapp.tick", ("night",), 1)
    assert nightly.since == T0 + timedelta(days=1)  # rescheduled: runs count from now
    assert IntervalSchedule.objects.filter(every=3600).count() == 0  # unused rows deleted

    again = replace_periodic_tasks(DEFINITION, now=T0 + timedelta(days=2))
    assert again.unchanged == ["nightly", "heartbeat"] and not again.changed


def test_it_is_one_transaction() -> None:
    replace_periodic_tasks(DEFINITION)
    before = sorted(PeriodicTask.objects.values_list("name", "task"))
    broken = {
        "nightly": {"task": "renamed", "schedule": crontab(minute=0)},
        "bad": {"task": "t", "schedule": crontab(minute=0), "kwargs": {"when": object()}},
    }

    with pytest.raises(ValueError, match="JSON"):
        replace_periodic_tasks(broken)

    assert sorted(PeriodicTask.objects.values_list("name", "task")) == before


def test_the_builtin_command_loads_the_definition_by_path() -> None:
    out = io.StringIO()
    call_command(
        "conveyor_setup_periodic_tasks",
        "contrib_django.test_setup_periodic_tasks:definition",
        stdout=out,
    )
    assert out.getvalue().strip() == "added: nightly"
    assert CrontabSchedule.objects.get().hour == "2"

    call_command(
        "conveyor_setup_periodic_tasks",
        "contrib_django.test_setup_periodic_tasks:DEFINITION",
        "--dry-run",
        stdout=out,
    )
    assert "added: heartbeat" in out.getvalue()
    assert list(PeriodicTask.objects.values_list("name", flat=True)) == ["nightly"]

    with pytest.raises(CommandError, match="cannot load"):
        call_command("conveyor_setup_periodic_tasks", "nowhere:nothing")
