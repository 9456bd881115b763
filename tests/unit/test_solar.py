"""Solar schedules (Celery's ``solar``): event times for a fixed place and date, checked
against published almanac times and against ephem asked directly; the scheduler sending a
sunrise run on a fake clock; and the errors for bad input or a missing ephem."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import ephem
import msgspec
import pytest

from conveyor.beat import MemoryStore, Scheduler, SQLiteStore, solar
from conveyor.beat.schedules import ScheduleData
from conveyor.beat.store import schedule_from_data
from conveyor.message import Message
from conveyor.serialization import decode_message
from conveyor.testing import FakeClock, memory_app

LONDON = (51.5074, -0.1278)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def ephem_sunrise(lat: float, lon: float, after: datetime) -> datetime:
    """Sunrise asked of ephem directly: the Sun's upper edge 34 arc-minutes below the
    horizon (refraction), no atmosphere model, sea level."""
    observer = ephem.Observer()
    observer.lat, observer.lon, observer.elev = str(lat), str(lon), 0
    observer.pressure, observer.horizon = 0, "-0:34"
    observer.date = ephem.Date(after.astimezone(UTC).replace(tzinfo=None))
    return observer.next_rising(ephem.Sun()).datetime().replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("event", "day", "published"),
    [
        # London's almanac (timeanddate.com): 04:43 and 21:21 BST at midsummer 2024,
        # 08:04 and 15:53 GMT at midwinter.
        ("sunrise", utc(2024, 6, 21), utc(2024, 6, 21, 3, 43)),
        ("sunset", utc(2024, 6, 21), utc(2024, 6, 21, 20, 21)),
        ("sunrise", utc(2024, 12, 21), utc(2024, 12, 21, 8, 4)),
        ("sunset", utc(2024, 12, 21), utc(2024, 12, 21, 15, 53)),
    ],
)
def test_sunrise_and_sunset_in_london_match_the_almanac(event, day, published):
    when = solar(event, *LONDON).next_run(day)

    assert abs(when - published) <= timedelta(seconds=60)


def test_sunrise_is_what_ephem_computes_to_the_second():
    after = utc(2024, 6, 21)

    found = solar("sunrise", *LONDON).next_run(after)

    assert found.microsecond == 0
    assert abs(found - ephem_sunrise(*LONDON, after)) <= timedelta(seconds=0.5)


def test_events_of_one_day_come_in_the_order_of_the_sky():
    order = [
        "dawn_astronomical",
        "dawn_nautical",
        "dawn_civil",
        "sunrise",
        "solar_noon",
        "sunset",
        "dusk_civil",
        "dusk_nautical",
        "dusk_astronomical",
    ]
    day = utc(2024, 3, 1)  # every event happens in London in March

    times = [solar(event, *LONDON).next_run(day) for event in order]

    assert times == sorted(times)
    assert all(t.date() == day.date() for t in times)
    assert abs(times[4] - utc(2024, 3, 1, 12, 12, 43)) < timedelta(minutes=1)  # solar noon


def test_the_due_time_does_not_depend_on_when_it_is_asked():
    sunset = solar("sunset", 48.8566, 2.3522)
    asks = [utc(2024, 9, 1, hour, minute) for hour in range(0, 17) for minute in (0, 17, 41)]

    assert len({sunset.next_run(ask) for ask in asks}) == 1


def test_next_run_is_strictly_after_and_steps_day_by_day():
    sunrise = solar("sunrise", *LONDON)
    first = sunrise.next_run(utc(2024, 6, 21))

    assert sunrise.next_run(first) > first
    assert sunrise.next_run(first).date() == utc(2024, 6, 22).date()
    assert sunrise.next_run(first - timedelta(seconds=1)) == first


def test_days_without_the_event_are_skipped():
    # In London the sun stays above -18 degrees from late May to late July.
    dusk = solar("dusk_astronomical", *LONDON)

    assert dusk.next_run(utc(2024, 6, 1)).date() == utc(2024, 7, 21).date()


def test_a_solar_schedule_reads_well_and_round_trips_through_plain_data():
    dusk = solar("dusk_civil", -33.8688, 151.2093)

    back = schedule_from_data(
        msgspec.json.decode(msgspec.json.encode(dusk.to_data()), type=ScheduleData)
    )

    assert dusk.describe() == "At civil dusk at 33.8688°S 151.2093°E"
    assert back == dusk and back.next_run(utc(2024, 1, 1)) == dusk.next_run(utc(2024, 1, 1))
    assert solar("sunrise", 60, 30) != solar("sunset", 60, 30)


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("noon", 60, 30), "event"),
        (("sunrise", -120, 60), "lat"),
        (("sunrise", 95, 60), "lat"),
        (("sunrise", 60, -200), "lon"),
        (("sunrise", "60", 30), "lat"),
    ],
)
def test_bad_arguments_name_the_argument(args, field):
    with pytest.raises(ValueError, match=rf"^{field}:"):
        solar(*args)


def test_without_ephem_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ephem", None)  # as if it were not installed

    with pytest.raises(ImportError, match=r"pip install 'conveyor-tasks\[solar\]'"):
        solar("sunrise", *LONDON)


def test_celerys_api_on_a_solar_schedule():
    app = memory_app(clock=FakeClock(utc(2024, 6, 21, 3, 0).timestamp()))
    sunrise = solar("sunrise", *LONDON, app=app)

    assert sunrise.is_due(utc(2024, 6, 20, 4, 0)).is_due is False
    wait = sunrise.remaining_estimate(utc(2024, 6, 20, 4, 0))
    assert timedelta(minutes=43) < wait < timedelta(minutes=44)
    app.close()


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_the_scheduler_sends_a_run_at_sunrise(tmp_path, store_kind):
    clock = FakeClock(utc(2024, 6, 20, 12, 0).timestamp())
    app = memory_app(clock=clock)
    app.conf.beat_schedule = {
        "open-the-shutters": {"task": "home.open_shutters", "schedule": solar("sunrise", *LONDON)}
    }
    store = MemoryStore() if store_kind == "memory" else SQLiteStore(tmp_path / "b.db")
    scheduler = Scheduler(app, store)
    scheduler.setup()

    clock.advance(scheduler.tick())  # sleeps straight to sunrise
    scheduler.tick()
    sent: list[Message] = [decode_message(d.body) for d in app.broker.reserve(["default"], 10, 60)]

    sunrise = solar("sunrise", *LONDON).next_run(utc(2024, 6, 21))
    assert datetime.fromtimestamp(clock.now, UTC) == sunrise
    assert [m.headers["beat_due"] for m in sent] == [sunrise.isoformat()]
    assert [m.task for m in sent] == ["home.open_shutters"]
    app.close()
