"""Schedules: cron field parsing, next-run computation (month ends, leap days, DST in real
zones), plain-English descriptions, and the plain data stores keep them as."""

from __future__ import annotations

import itertools
import math
import pickle
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec
import pytest

from conveyor.beat import (
    ParseException,
    clocked,
    crontab,
    crontab_parser,
    maybe_schedule,
    schedstate,
    schedule,
)
from conveyor.beat.schedules import ScheduleData, to_schedule
from conveyor.beat.store import schedule_from_data
from conveyor.testing import FakeClock, memory_app

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def runs_between(cron: crontab, start: datetime, end: datetime) -> list[datetime]:
    found = []
    current = cron.next_run(start)
    while current is not None and current < end:
        found.append(current)
        current = cron.next_run(current)
    return found


# -- fields -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field", "expected"),
    [
        ({"minute": "*/15"}, "minute", {0, 15, 30, 45}),
        ({"hour": "8-14"}, "hour", set(range(8, 15))),
        ({"minute": "1,13,30-45/5"}, "minute", {1, 13, 30, 35, 40, 45}),
        ({"minute": "5/15"}, "minute", {5, 20, 35, 50}),
        ({"hour": "22-2"}, "hour", {22, 23, 0, 1, 2}),
        ({"minute": 7}, "minute", {7}),
        ({"hour": [0, 12]}, "hour", {0, 12}),
        ({"day_of_week": "mon-fri"}, "day_of_week", {1, 2, 3, 4, 5}),
        ({"day_of_week": "fri-mon"}, "day_of_week", {5, 6, 0, 1}),
        ({"day_of_week": "sunday,Saturday"}, "day_of_week", {0, 6}),
        ({"day_of_week": "sat-sun"}, "day_of_week", {6, 0}),
        ({"day_of_week": "*/2"}, "day_of_week", {0, 2, 4, 6}),
        ({"month_of_year": "jan-mar,Dec"}, "month_of_year", {1, 2, 3, 12}),
        ({"month_of_year": "*/3"}, "month_of_year", {1, 4, 7, 10}),
        ({"day_of_month": "1-7,15"}, "day_of_month", {1, 2, 3, 4, 5, 6, 7, 15}),
    ],
)
def test_fields_take_celerys_syntax(kwargs, field, expected):
    assert getattr(crontab(**kwargs), field).values == expected
    assert getattr(crontab(**kwargs), field) == expected  # read back as a set, as in Celery


def test_from_string_reads_fields_in_cron_order():
    cron = crontab.from_string("15 8-17 1,15 jan mon-fri")

    assert cron.minute.values == {15}
    assert cron.hour.values == set(range(8, 18))
    assert cron.day_of_month.values == {1, 15}
    assert cron.month_of_year.values == {1}
    assert cron.day_of_week.values == {1, 2, 3, 4, 5}
    assert cron.to_cron() == "15 8-17 1,15 jan mon-fri"
    assert crontab.from_string("@hourly") == crontab.from_string("0 * * * *")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"minute": 61}, "minute"),
        ({"minute": "60"}, "minute"),
        ({"hour": 24}, "hour"),
        ({"hour": "foo"}, "hour"),
        ({"day_of_month": 0}, "day_of_month"),
        ({"day_of_month": 32}, "day_of_month"),
        ({"month_of_year": 13}, "month_of_year"),
        ({"month_of_year": "jun-smarch"}, "month_of_year"),
        ({"day_of_week": "funday"}, "day_of_week"),
        ({"day_of_week": 8}, "day_of_week"),
        ({"day_of_week": 7}, "day_of_week"),
        ({"day_of_week": "7"}, "day_of_week"),
        ({"day_of_week": "0-7"}, "day_of_week"),
        ({"minute": "*/0"}, "minute"),
        ({"minute": "*/x"}, "minute"),
        ({"minute": "1-"}, "minute"),
        ({"minute": ""}, "minute"),
        ({"minute": "1,,2"}, "minute"),
        ({"hour": 1.5}, "hour"),
        ({"hour": True}, "hour"),
        ({"day_of_month": 31, "month_of_year": 4}, "day_of_month"),
        ({"day_of_month": "30,31", "month_of_year": "feb"}, "day_of_month"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
    ],
)
def test_invalid_fields_raise_value_error_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"^{field}:"):
        crontab(**kwargs)


def test_a_cron_line_needs_five_fields():
    with pytest.raises(ValueError, match="needs 5"):
        crontab.from_string("15 * * *")


def test_day_of_week_7_is_refused_as_in_celery_with_the_fix():
    with pytest.raises(ValueError, match=r"Sunday is 0 \(or 'sun'\)"):
        crontab(hour=7, minute=30, day_of_week=7)
    assert crontab(hour=7, minute=30, day_of_week="sun") == crontab(
        hour=7, minute=30, day_of_week=0
    )


def test_a_date_that_never_occurs_fails_when_the_crontab_is_made():
    # Celery raises RuntimeError("unable to rollover") when it first looks for the next
    # run; here it fails at once, as a ValueError that is also that RuntimeError.
    with pytest.raises(RuntimeError, match="never occurs"):
        crontab(minute=0, hour=0, day_of_month=31, month_of_year=2)
    with pytest.raises(
        ValueError, match=r"^day_of_month: '30,31' never occurs in month_of_year 'feb' \(February\)"
    ):
        crontab(minute=0, hour=0, day_of_month="30,31", month_of_year="feb")


def test_a_day_that_exists_in_one_listed_month_is_accepted():
    assert crontab(0, 0, day_of_month=31, month_of_year="4,5").month_of_year.values == {4, 5}
    assert crontab(0, 0, day_of_month=29, month_of_year=2)  # only in leap years, but real


@pytest.mark.parametrize(
    ("value", "field"),
    [(0, "run_every"), (-5, "run_every"), ("30", "run_every"), (timedelta(0), "run_every")],
)
def test_invalid_intervals_name_the_field(value, field):
    with pytest.raises(ValueError, match=rf"^{field}:"):
        schedule(value)


# -- next runs --------------------------------------------------------------------------


def test_next_run_is_strictly_after():
    cron = crontab(minute="*/15")

    assert cron.next_run(utc(2024, 5, 1, 12, 0)) == utc(2024, 5, 1, 12, 15)
    assert cron.next_run(utc(2024, 5, 1, 12, 14, 59, 999999)) == utc(2024, 5, 1, 12, 15)
    assert cron.next_run(utc(2024, 5, 1, 23, 50)) == utc(2024, 5, 2, 0, 0)


def test_month_ends_skip_months_without_the_day():
    cron = crontab(0, 0, day_of_month=31)

    assert cron.next_runs(utc(2024, 1, 31, 12), 3) == [
        utc(2024, 3, 31),
        utc(2024, 5, 31),
        utc(2024, 7, 31),
    ]


def test_year_end_rolls_over():
    assert crontab(0, 0, day_of_month=1, month_of_year=1).next_run(
        utc(2024, 12, 31, 23, 59, 59)
    ) == utc(2025, 1, 1)


def test_leap_day_runs_only_in_leap_years():
    cron = crontab.from_string("0 0 29 2 *")

    assert cron.next_run(utc(2023, 3, 1)) == utc(2024, 2, 29)
    assert cron.next_run(utc(2024, 2, 29)) == utc(2028, 2, 29)
    assert cron.next_run(utc(2096, 3, 1)) == utc(2104, 2, 29)  # 2100 is no leap year


def test_both_day_fields_must_match_as_in_celery():
    monday_the_29th_of_february = crontab(0, 0, day_of_week="mon", day_of_month=29, month_of_year=2)
    friday_the_13th = crontab(0, 0, day_of_week="fri", day_of_month=13)

    assert monday_the_29th_of_february.next_run(utc(2024, 1, 1)) == utc(2044, 2, 29)
    assert friday_the_13th.next_runs(utc(2024, 1, 1), 2) == [utc(2024, 9, 13), utc(2024, 12, 13)]


def test_runs_are_computed_in_the_zone_of_after():
    cron = crontab(minute=30, hour=8)

    assert cron.next_run(datetime(2024, 7, 1, 0, 0, tzinfo=PARIS)) == datetime(
        2024, 7, 1, 8, 30, tzinfo=PARIS
    )
    assert cron.next_run(utc(2024, 7, 1)).tzinfo is UTC
    with pytest.raises(ValueError, match="timezone-aware"):
        cron.next_run(datetime(2024, 7, 1))


def test_a_crontab_can_pin_its_own_zone():
    cron = crontab(minute=0, hour=9, timezone="America/New_York")

    assert cron.next_run(utc(2024, 7, 1)) == utc(2024, 7, 1, 13)  # 09:00 EDT
    assert cron.next_run(utc(2024, 12, 2)) == utc(2024, 12, 2, 14)  # 09:00 EST


# -- DST ----------------------------------------------------------------------------------


def test_daily_job_in_the_spring_forward_gap_runs_once_when_the_gap_ends():
    cron = crontab(minute=30, hour=2)  # 02:30 does not exist on 2024-03-31 in Paris

    runs = runs_between(
        cron, datetime(2024, 3, 29, 12, tzinfo=PARIS), datetime(2024, 4, 2, tzinfo=PARIS)
    )

    assert [r.astimezone(UTC) for r in runs] == [
        utc(2024, 3, 30, 1, 30),  # 02:30 CET
        utc(2024, 3, 31, 1, 0),  # 03:00 CEST, the first valid time after the gap
        utc(2024, 4, 1, 0, 30),  # 02:30 CEST
    ]
    assert runs[1].hour == 3 and runs[1].minute == 0


def test_daily_job_in_the_repeated_hour_runs_once_on_fall_back_day():
    cron = crontab(minute=30, hour=2)  # 02:30 happens twice on 2024-10-27 in Paris

    runs = runs_between(
        cron, datetime(2024, 10, 26, 12, tzinfo=PARIS), datetime(2024, 10, 29, tzinfo=PARIS)
    )

    assert [r.astimezone(UTC) for r in runs] == [
        utc(2024, 10, 27, 0, 30),  # 02:30 CEST, the first occurrence
        utc(2024, 10, 28, 1, 30),  # 02:30 CET
    ]


def test_next_run_from_inside_the_repeated_hour_is_not_confused_by_fold():
    cron = crontab(minute=30, hour=2)
    second_pass = datetime(2024, 10, 27, 2, 10, fold=1, tzinfo=PARIS)  # 01:10 UTC

    assert cron.next_run(second_pass).astimezone(UTC) == utc(2024, 10, 28, 1, 30)


@pytest.mark.parametrize(
    ("zone", "day", "expected_runs"),
    [
        (PARIS, datetime(2024, 3, 31), 23),
        (PARIS, datetime(2024, 10, 27), 25),
        (NEW_YORK, datetime(2024, 3, 10), 23),
        (NEW_YORK, datetime(2024, 11, 3), 25),
    ],
)
def test_hourly_job_keeps_real_hour_spacing_across_dst(zone, day, expected_runs):
    cron = crontab(minute=30)
    start = day.replace(tzinfo=zone)
    end = (day + timedelta(days=1)).replace(tzinfo=zone)

    runs = [r.astimezone(UTC) for r in runs_between(cron, start, end)]

    assert len(runs) == expected_runs
    assert {b - a for a, b in itertools.pairwise(runs)} == {timedelta(hours=1)}


def test_new_york_daily_jobs_across_both_changes():
    at_0230 = crontab(minute=30, hour=2)
    at_0130 = crontab(minute=30, hour=1)

    spring = runs_between(
        at_0230,
        datetime(2024, 3, 9, 12, tzinfo=NEW_YORK),
        datetime(2024, 3, 11, 12, tzinfo=NEW_YORK),
    )
    fall = runs_between(
        at_0130,
        datetime(2024, 11, 2, 12, tzinfo=NEW_YORK),
        datetime(2024, 11, 4, 12, tzinfo=NEW_YORK),
    )

    assert [r.astimezone(UTC) for r in spring] == [utc(2024, 3, 10, 7, 0), utc(2024, 3, 11, 6, 30)]
    assert [r.astimezone(UTC) for r in fall] == [utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)]


def test_interval_spacing_is_real_time_across_dst():
    every_hour = schedule(timedelta(hours=1))

    runs = every_hour.next_runs(datetime(2024, 10, 27, 1, 30, tzinfo=PARIS), 3)

    assert [r.astimezone(UTC) for r in runs] == [
        utc(2024, 10, 27, 0),
        utc(2024, 10, 27, 1),
        utc(2024, 10, 27, 2),
    ]


# -- intervals and one-offs ---------------------------------------------------------------


def test_intervals_run_on_a_grid_every_process_agrees_on():
    every_30s = schedule(30)

    assert every_30s.next_run(utc(2024, 5, 1, 12, 0, 10)) == utc(2024, 5, 1, 12, 0, 30)
    assert every_30s.next_run(utc(2024, 5, 1, 12, 0, 30)) == utc(2024, 5, 1, 12, 1, 0)
    assert schedule(timedelta(minutes=5)) == schedule(300)


def test_an_anchor_shifts_the_grid():
    weekly = schedule(timedelta(days=7), anchor=utc(2024, 1, 1, 9))  # Mondays 09:00 UTC

    assert weekly.next_run(utc(2024, 5, 1)) == utc(2024, 5, 6, 9)


def test_clocked_runs_once():
    once = clocked(utc(2030, 1, 1, 9))

    assert once.next_run(utc(2029, 12, 31)) == utc(2030, 1, 1, 9)
    assert once.next_run(utc(2030, 1, 1, 9)) is None
    assert once.origin(utc(2031, 1, 1)) is None


def test_a_naive_clocked_time_is_read_in_the_zone_of_after():
    once = clocked(datetime(2030, 1, 1, 9, 0))

    assert once.next_run(datetime(2029, 1, 1, tzinfo=PARIS)).astimezone(UTC) == utc(2030, 1, 1, 8)


def test_is_due_answers_like_celery():
    quarterly = crontab(minute="*/15")

    assert quarterly.is_due(utc(2024, 5, 1, 12, 0), utc(2024, 5, 1, 12, 10)) == (False, 300.0)
    assert quarterly.is_due(utc(2024, 5, 1, 12, 0), utc(2024, 5, 1, 12, 16)) == (True, 840.0)
    assert quarterly.is_due(None, utc(2024, 5, 1, 12, 10)) == (False, 300.0)
    once = clocked(utc(2024, 5, 1, 12))
    assert once.is_due(None, utc(2024, 5, 1, 11)) == (False, 3600.0)
    assert once.is_due(None, utc(2024, 5, 1, 13)) == (True, math.inf)


# -- Celery's schedule API ------------------------------------------------------------------


@pytest.fixture
def app():
    made = memory_app(clock=FakeClock(utc(2010, 5, 10, 10, 30).timestamp()))
    yield made
    made.close()


def test_crontab_parser_expands_one_field_as_celery_does():
    assert crontab_parser(60).parse("*/15") == {0, 15, 30, 45}
    assert crontab_parser(24).parse("*/4") == {0, 4, 8, 12, 16, 20}
    assert crontab_parser(7).parse("*") == set(range(7))
    assert crontab_parser(7).parse("mon-fri") == {1, 2, 3, 4, 5}
    assert crontab_parser(31, 1).parse("*/3") == {1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31}
    assert crontab_parser(12, 1).parse("2-12/2") == {2, 4, 6, 8, 10, 12}
    assert crontab_parser(12).parse("11-1") == {11, 0, 1}
    assert crontab_parser(min_=1).parse("55-5/3") == {55, 58, 1, 4}


@pytest.mark.parametrize("pattern", ["", "1,,2", "*/", "-20"])
def test_crontab_parser_raises_parse_exception_for_malformed_patterns(pattern):
    with pytest.raises(ParseException):
        crontab_parser(60).parse(pattern)
    with pytest.raises(crontab_parser.ParseException):  # where Celery also offers it
        crontab_parser(60).parse(pattern)


def test_crontab_parser_out_of_range_is_a_value_error_naming_the_range():
    with pytest.raises(ValueError, match=r"out of range \(1-12\)"):
        crontab_parser(12, 1).parse("0")
    with pytest.raises(ValueError, match=r"out of range \(0-59\)"):
        crontab_parser(60).parse("61-0")


def test_crontabs_are_equal_when_their_fields_expand_alike():
    assert crontab(minute="*/15") == crontab(minute="0,15,30,45")
    assert hash(crontab(minute="*/15")) == hash(crontab(minute="0,15,30,45"))
    assert len({crontab(minute="*/15"), crontab(minute=[0, 15, 30, 45])}) == 1
    assert crontab(day_of_week="1, 2") == crontab(day_of_week="mon-tue")
    assert crontab(day_of_month="1, 16, 31") == crontab(day_of_month="*/15")
    assert crontab(minute=1) != crontab(minute=2)
    assert crontab(0, 9, timezone="Asia/Tokyo") != crontab(0, 9)
    assert crontab(month_of_year=1) != schedule(10)


def test_is_due_with_one_argument_reads_nowfun_as_celery_does(app):
    # Celery's tests pin the time with nowfun and pass naive datetimes, read as UTC.
    hourly = crontab(minute=30, nowfun=lambda: datetime(2010, 5, 10, 10, 30), app=app)
    daily = crontab(hour=7, minute=30, nowfun=lambda: datetime(2010, 5, 10, 10, 30), app=app)

    assert hourly.is_due(datetime(2010, 5, 10, 6, 30)) == schedstate(is_due=True, next=3600.0)
    due, next_check = daily.is_due(datetime(2010, 5, 10, 7, 30))
    assert (due, next_check) == (False, 21 * 3600.0)
    assert daily.is_due(datetime(2010, 5, 9, 7, 30)).is_due


def test_is_due_without_nowfun_reads_the_apps_clock(app):
    quarterly = crontab(minute="*/15", app=app)  # the app's clock says 10:30 UTC

    assert quarterly.is_due(utc(2010, 5, 10, 10, 15)) == (True, 900.0)
    assert quarterly.is_due(utc(2010, 5, 10, 10, 30)) == (False, 900.0)
    assert schedule(timedelta(minutes=10), app=app).is_due(utc(2010, 5, 10, 10, 25)).is_due


def test_is_due_reads_times_in_the_apps_timezone(app):
    app.conf.timezone = "Europe/Paris"
    breakfast = crontab(hour=7, minute=30, app=app)  # 07:30 in Paris is 05:30 UTC in May

    assert breakfast.is_due(utc(2010, 5, 9, 5, 30)) == (True, 19 * 3600.0)
    assert breakfast.remaining_estimate(utc(2010, 5, 10, 5, 30)) == timedelta(hours=19)


def test_remaining_estimate_is_a_timedelta_to_the_next_run(app):
    def next_occurrence(schedule, now):  # naive times, read as UTC, as Celery's tests use
        schedule.nowfun = lambda: now
        return now + schedule.remaining_estimate(now)

    every_minute = crontab(app=app)
    saturdays = crontab(minute=30, hour=14, day_of_week="sat", app=app)
    assert next_occurrence(every_minute, datetime(2010, 9, 11, 14, 30, 15)) == datetime(
        2010, 9, 11, 14, 31
    )
    assert next_occurrence(saturdays, datetime(2010, 9, 11, 14, 30, 15)) == datetime(
        2010, 9, 18, 14, 30
    )
    overdue = crontab(minute=0, app=app).remaining_estimate(utc(2010, 5, 10, 9, 30))
    assert overdue == timedelta(minutes=-30)
    assert clocked(utc(2010, 1, 1), app=app).remaining_estimate(utc(2010, 1, 1)) == timedelta.max


def test_cron_starting_deadline_makes_an_old_missed_run_not_due(app):
    # Could have run at 07:30 on 12/5 but did not; 10:30 is three hours later.
    daily = crontab(hour=7, minute=30, nowfun=lambda: datetime(2022, 12, 5, 10, 30), app=app)
    last_run = datetime(2022, 12, 4, 10, 30)

    assert daily.is_due(last_run) == (True, 21 * 3600.0)
    app.conf.beat_cron_starting_deadline = 3600
    assert daily.is_due(last_run) == (False, 21 * 3600.0)
    app.conf.beat_cron_starting_deadline = 4 * 3600
    assert daily.is_due(last_run).is_due


def test_schedules_keep_nowfun_and_find_an_app_after_pickling(app):
    quarterly = crontab(minute="*/15", app=app)
    every_ten = schedule(10, app=app)

    assert pickle.loads(pickle.dumps(quarterly)) == quarterly
    assert pickle.loads(pickle.dumps(every_ten)) == every_ten
    assert pickle.loads(pickle.dumps(quarterly)).is_due(utc(2010, 5, 10, 10, 15)).is_due


def test_maybe_schedule_makes_schedules_from_numbers_and_timedeltas(app):
    quarterly = crontab(minute="*/15")

    assert maybe_schedule(None) is None
    assert maybe_schedule(30) == schedule(30)
    assert maybe_schedule(timedelta(minutes=5), relative=True, app=app).app is app
    assert maybe_schedule(quarterly, app=app) is quarterly
    assert quarterly.app is app


def test_nowfun_must_be_callable():
    with pytest.raises(ValueError, match="^nowfun:"):
        crontab(minute=0, nowfun=datetime(2010, 1, 1))


# -- descriptions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (crontab.from_string("15 * * * *"), "At minute 15 past every hour"),
        (crontab(minute=30, hour=8, day_of_week="mon-fri"), "At 08:30 on Monday through Friday"),
        (crontab(), "Every minute"),
        (crontab(minute="*/15"), "Every 15 minutes"),
        (crontab(minute="*/7"), "At every 7th minute"),
        (crontab(minute=0, hour=0), "At 00:00"),
        (crontab(minute=0, hour="9,17"), "At 09:00 and 17:00"),
        (crontab(minute=0, hour="*/2"), "At minute 0 past every 2nd hour"),
        (crontab(minute=0, hour="9-17"), "At minute 0 past every hour from 9 through 17"),
        (crontab(minute="0,20,40", hour="9,13"), "Every 20 minutes past hours 9 and 13"),
        (crontab(minute="0,25,40", hour="9,13"), "At minutes 0, 25 and 40 past hours 9 and 13"),
        (crontab(hour=8), "Every minute past hour 8"),
        (crontab(minute=0, hour=0, day_of_month=1), "At 00:00 on day 1 of the month"),
        (crontab(minute=0, hour=0, day_of_month="1,15"), "At 00:00 on days 1 and 15 of the month"),
        (crontab.from_string("0 0 29 2 *"), "At 00:00 on day 29 of the month in February"),
        (crontab(0, 0, day_of_week="sat,sun"), "At 00:00 on Sunday and Saturday"),
        (
            crontab(0, 0, day_of_week="fri", day_of_month=13),
            "At 00:00 on day 13 of the month if it is Friday",
        ),
        (crontab(0, 6, month_of_year="jan-mar"), "At 06:00 in January through March"),
        (schedule(30), "Every 30 seconds"),
        (schedule(1), "Every second"),
        (schedule(timedelta(minutes=90)), "Every 90 minutes"),
        (schedule(timedelta(hours=2)), "Every 2 hours"),
        (schedule(timedelta(days=1)), "Every day"),
        (schedule(0.5), "Every 0.5 seconds"),
        (clocked(datetime(2030, 1, 1, 9, 0)), "Once, at 2030-01-01 09:00"),
        (clocked(utc(2030, 1, 1, 9, 0)), "Once, at 2030-01-01 09:00 UTC"),
    ],
)
def test_descriptions_are_plain_english(value, text):
    assert value.describe() == text
    assert str(value) == text


# -- plain data -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        crontab(minute="*/15", hour="8-17", day_of_week="mon-fri", month_of_year="jan,jul"),
        crontab(0, 9, timezone="Asia/Tokyo"),
        schedule(30),
        schedule(timedelta(days=7), anchor=utc(2024, 1, 1, 9)),
        clocked(datetime(2030, 1, 1, 9)),
        clocked(datetime(2030, 1, 1, 9, tzinfo=PARIS)),
    ],
)
def test_schedules_round_trip_through_plain_json(value):
    text = msgspec.json.encode(value.to_data())
    back = schedule_from_data(msgspec.json.decode(text, type=ScheduleData))

    assert back == value
    assert back.describe() == value.describe()
    assert back.next_run(utc(2024, 5, 1)) == value.next_run(utc(2024, 5, 1))


def test_beat_schedule_values_become_schedules():
    assert to_schedule(30) == schedule(30)
    assert to_schedule(timedelta(minutes=1)) == schedule(60)
    assert to_schedule("*/5 * * * *") == crontab(minute="*/5")
    assert to_schedule(utc(2030, 1, 1)) == clocked(utc(2030, 1, 1))
    with pytest.raises(ValueError, match="^schedule:"):
        to_schedule(object())
