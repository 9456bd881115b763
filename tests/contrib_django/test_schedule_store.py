"""The database schedule store: beat's store contract (tests/unit/test_beat_store.py, run
here against DjangoStore), schedule rows shared and cleaned up, and edits made through the
ORM and the admin reaching a running scheduler (the worker's ``--beat``) without restart."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from contrib_django.testapp.models import Tick
from conveyor.beat import Entry, clocked, crontab, schedule
from conveyor.contrib.django import get_app
from conveyor.contrib.django.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
)
from conveyor.contrib.django.store import DjangoStore

from .conftest import Worker, adopt_contract, flush, wait_until

_contract = adopt_contract("test_beat_store.py", "store", globals(), "beat_store_contract")


@pytest.fixture
def store() -> DjangoStore:
    return DjangoStore(get_app())


T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_every_kind_of_schedule_maps_to_its_own_rows(store: DjangoStore) -> None:
    store.save(Entry("a", "t", crontab(minute="*/5", timezone="Europe/Paris"), since=T0))
    store.save(Entry("b", "t", schedule(timedelta(hours=2)), since=T0))
    store.save(Entry("c", "t", schedule(0.25), since=T0))
    store.save(Entry("d", "t", clocked(T0), since=None))
    store.save(Entry("e", "t", crontab(minute="*/5", timezone="Europe/Paris"), since=T0))

    cron = CrontabSchedule.objects.get()  # a and e share one row
    assert (cron.minute, cron.timezone) == ("*/5", "Europe/Paris")
    assert sorted(IntervalSchedule.objects.values_list("every", "period")) == [
        (2, "hours"),
        (250000, "microseconds"),
    ]
    assert ClockedSchedule.objects.get().clocked_time == T0
    assert [e.schedule for e in store.list()] == [
        crontab(minute="*/5", timezone="Europe/Paris"),
        schedule(timedelta(hours=2)),
        schedule(0.25),
        clocked(T0),
        crontab(minute="*/5", timezone="Europe/Paris"),
    ]

    store.save(Entry("a", "t", schedule(60), since=T0))
    assert CrontabSchedule.objects.count() == 1  # still used by e
    store.remove("e")
    assert CrontabSchedule.objects.count() == 0  # no longer used by anyone


def test_a_row_the_store_cannot_read_is_skipped_not_fatal(store: DjangoStore) -> None:
    store.save(Entry("good", "t", schedule(60), since=T0))
    bad = CrontabSchedule.objects.create(minute="99")
    PeriodicTask.objects.create(name="bad", task="t", crontab=bad)

    assert [e.name for e in store.list()] == ["good"]
    assert store.get("bad") is None


def test_edits_after_a_flush_move_the_version_past_any_value_seen_before(
    store: DjangoStore,
) -> None:
    """``manage.py flush`` empties the version table too; the same number of edits after it
    must not land on the value a running scheduler saw before, or it keeps the old entries."""
    store.save(Entry("before", "t", schedule(60), since=T0))
    seen_before = store.version()

    flush()
    assert store.list() == []
    store.save(Entry("after", "t", schedule(60), since=T0))

    assert store.version() != seen_before
    assert [e.name for e in store.list()] == ["after"]


def test_admin_and_orm_edits_reach_the_running_scheduler(worker: Worker) -> None:
    """The worker's beat thread polls the version: no restart between the edits."""
    every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    task = PeriodicTask.objects.create(
        name="ticker", task="testapp.tick", interval=every_second, kwargs={"label": "beat"}
    )
    wait_until(lambda: Tick.objects.filter(label="beat").exists(), what="a run from the ORM edit")

    admin = User.objects.create_superuser("admin", "admin@example.com", "pw")
    client = Client()
    client.force_login(admin)
    changelist = reverse("admin:conveyor_periodictask_changelist")
    response = client.post(changelist, {"action": "disable", "_selected_action": [task.pk]})
    assert response.status_code == 302
    time.sleep(2)  # the scheduler polls once a second; a run may be in flight
    stopped_at = Tick.objects.count()
    time.sleep(1.5)
    assert Tick.objects.count() == stopped_at, "a disabled task kept running"

    change = reverse("admin:conveyor_periodictask_change", args=[task.pk])
    form = {
        "name": "ticker",
        "task": "testapp.tick",
        "enabled": "on",
        "interval": every_second.pk,
        "catch_up": "latest",
        "args": "[]",
        "kwargs": '{"label": "admin"}',
        "options": "{}",
    }
    response = client.post(change, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    wait_until(
        lambda: Tick.objects.filter(label="admin").exists(), what="a run after the admin edit"
    )

    def counted() -> bool:  # the scheduler counts a run after sending it, so maybe after it ran
        task.refresh_from_db()
        return task.total_run_count >= 2 and task.last_run_at is not None

    wait_until(counted, what="both runs counted")


def test_admin_run_now_sends_once_and_counts_it(worker: Worker) -> None:
    hourly = CrontabSchedule.objects.create(minute="0")
    task = PeriodicTask.objects.create(
        name="hourly", task="testapp.tick", crontab=hourly, kwargs={"label": "now"}
    )
    admin = User.objects.create_superuser("admin", "admin@example.com", "pw")
    client = Client()
    client.force_login(admin)

    response = client.post(
        reverse("admin:conveyor_periodictask_changelist"),
        {"action": "run_now", "_selected_action": [task.pk]},
        follow=True,
    )

    assert "hourly: sent as" in response.content.decode().lower()
    wait_until(lambda: Tick.objects.filter(label="now").exists(), what="the run-now run")
    task.refresh_from_db()
    assert task.total_run_count == 1


def test_admin_pages_render(worker: Worker) -> None:
    CrontabSchedule.objects.create(minute="30", hour="8", day_of_week="mon-fri")
    admin = User.objects.create_superuser("admin", "admin@example.com", "pw")
    client = Client()
    client.force_login(admin)
    for model in ("periodictask", "crontabschedule", "intervalschedule", "clockedschedule"):
        for page in ("changelist", "add"):
            response = client.get(reverse(f"admin:conveyor_{model}_{page}"))
            assert response.status_code == 200, (model, page)
    page = client.get(reverse("admin:conveyor_crontabschedule_changelist")).content.decode()
    assert "At 08:30 on Monday through Friday" in page
