"""``conveyor beat --scheduler ...`` as Celery projects pass it: django_celery_beat's
DatabaseScheduler (or its alias ``django``, or the Conveyor store's path) selects the
schedules in Django's database."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from conveyor import Conveyor
from conveyor.cli import main
from conveyor.contrib.django.models import PeriodicTask

APP = Conveyor("scheduler-option", broker="memory://", set_as_current=False)


@APP.task(name="scheduler_option.nightly_report")
def nightly_report() -> None:
    return None


def add_entry(*beat_options: str) -> None:
    result = CliRunner().invoke(
        main,
        [
            "-A",
            "contrib_django.test_beat_scheduler_option:APP",
            "beat",
            *beat_options,
            "add",
            "nightly",
            "--task",
            "scheduler_option.nightly_report",
            "--every",
            "60",
        ],
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "scheduler",
    [
        "django_celery_beat.schedulers:DatabaseScheduler",
        "django_celery_beat.schedulers.DatabaseScheduler",
        "django",
        "conveyor.contrib.django.store:DjangoStore",
    ],
)
def test_the_scheduler_option_selects_the_django_store(scheduler: str) -> None:
    add_entry("--scheduler", scheduler)
    assert PeriodicTask.objects.filter(name="nightly").exists()


def test_without_it_the_schedule_stays_beside_the_broker() -> None:
    add_entry()
    assert not PeriodicTask.objects.filter(name="nightly").exists()
