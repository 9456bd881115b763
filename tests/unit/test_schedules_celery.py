"""Schedules as Celery code handles them: copied through ``__reduce__``'s two parts, and
read in the zone ``app.timezone`` names (a Django or Flask project sets it at start-up)."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from conveyor.beat import clocked, crontab, schedule, solar
from conveyor.testing import FakeClock, memory_app

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
def app():
    made = memory_app(clock=FakeClock(datetime(2017, 10, 29, 6, 0, tzinfo=UTC).timestamp()))
    yield made
    made.close()


@pytest.mark.parametrize(
    "made",
    [
        lambda: schedule(timedelta(minutes=10)),
        lambda: schedule(30, anchor=datetime(2024, 1, 1, 0, 0, 5, tzinfo=UTC)),
        lambda: crontab(minute="*/15", hour="8-17", day_of_week="mon-fri"),
        lambda: crontab(minute=0, hour=9, timezone="Europe/Paris"),
        lambda: clocked(datetime(2030, 5, 1, 12, 0, tzinfo=UTC)),
        lambda: solar("sunrise", 60, 30),
    ],
)
def test_reduce_gives_a_function_and_arguments_that_make_it_again(made):
    original = made()
    fun, args = original.__reduce__()

    again = fun(*args)
    assert again == original and type(again) is type(original)
    assert pickle.loads(pickle.dumps(original)) == original


def test_nowfun_goes_along_when_a_schedule_is_copied():
    noon = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    hourly = crontab(minute=0, nowfun=lambda: noon)
    fun, args = hourly.__reduce__()

    assert fun(*args).remaining_estimate(noon - timedelta(minutes=30)) == timedelta(0)


def test_app_timezone_is_the_setting_as_a_zone_and_assigning_it_changes_it(app):
    assert app.timezone == ZoneInfo("UTC")
    app.timezone = "Europe/Paris"

    assert app.conf.timezone == "Europe/Paris"
    assert app.timezone == PARIS


def test_a_crontab_reads_its_hours_in_the_zone_app_timezone_names(app):
    app.timezone = "Europe/Paris"
    nine = crontab(minute=0, hour=9, app=app)
    # the day summer time ends in Paris: last run the day before at 09:00 (UTC+2), the
    # app's clock at 07:00 (UTC+1): the next run is 09:00 in Paris, two hours away
    last_run = datetime(2017, 10, 28, 9, 0, tzinfo=PARIS)

    assert nine.remaining_estimate(last_run) == timedelta(hours=2)
