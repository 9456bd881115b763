"""The scheduler on a fake clock: syncing code entries, run-time edits, catch-up after
downtime, and several schedulers (or restarts) sending each due run exactly once.

No test sleeps: time moves only when a test moves the clock.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.beat import (
    BeatThread,
    Entry,
    MemoryStore,
    Scheduler,
    SQLiteStore,
    clocked,
    crontab,
    due_key,
    run_now,
    schedule,
)
from conveyor.exceptions import BrokerError
from conveyor.message import Message
from conveyor.serialization import decode_message
from conveyor.testing import FakeClock, memory_app

T0 = 1_714_564_800.0  # 2024-05-01 12:00:00 UTC


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


@pytest.fixture
def clock():
    return FakeClock(T0)


@pytest.fixture
def app(clock):
    made = memory_app(clock=clock)
    yield made
    made.close()


@pytest.fixture
def store():
    return MemoryStore()


class Outbox:
    """Every message the app has published, read back from the memory broker."""

    def __init__(self, app) -> None:
        self.app = app
        self.messages: list[Message] = []

    def read(self) -> list[Message]:
        for delivery in self.app.broker.reserve(["default", "reports"], 100_000, 10**9):
            self.messages.append(decode_message(delivery.body))
        return self.messages

    def dues(self, entry: str | None = None) -> list[str]:
        return [
            m.headers["beat_due"]
            for m in self.read()
            if entry is None or m.headers.get("beat_entry") == entry
        ]


@pytest.fixture
def outbox(app):
    return Outbox(app)


def drive(clock, schedulers, until: float) -> None:
    """Tick every scheduler, jumping the clock to the next due time, until ``until``."""
    for _ in range(100_000):
        step = min(s.tick() for s in schedulers)
        if clock.now >= T0 + until:
            return
        clock.now = min(clock.now + step, T0 + until)
    raise AssertionError("the schedulers never settled")


def iso(seconds: float) -> str:
    return at(seconds).isoformat()


# -- syncing entries from code --------------------------------------------------------------


def test_code_entries_are_synced_into_the_store(app, store):
    app.conf.beat_schedule = {
        "tick": {"task": "tasks.tick", "schedule": 10.0, "args": (1,), "options": {"queue": "q"}},
        "report": {"task": "tasks.report", "schedule": crontab(minute=0, hour=3)},
    }

    @app.periodic_task(crontab(minute="*/15"), name="refresh", kwargs={"full": True})
    def refresh(full: bool) -> None: ...

    report = Scheduler(app, store).setup()

    assert sorted(report.added) == ["refresh", "report", "tick"]
    assert {e.name: (e.task, e.source, e.enabled) for e in store.list()} == {
        "refresh": (refresh.name, "code", True),
        "report": ("tasks.report", "code", True),
        "tick": ("tasks.tick", "code", True),
    }
    assert store.get("tick").options == {"queue": "q"}
    assert store.get("refresh").kwargs == {"full": True}
    assert store.get("report").describe() == "At 03:00"


def test_entries_removed_from_code_are_disabled_not_deleted(app, store, clock, outbox):
    app.conf.beat_schedule = {
        "a": {"task": "tasks.a", "schedule": 60},
        "b": {"task": "tasks.b", "schedule": 60},
    }
    first = Scheduler(app, store)
    first.setup()
    drive(clock, [first], 130)
    assert Counter(m.task for m in outbox.read()) == {"tasks.a": 2, "tasks.b": 2}

    del app.conf.beat_schedule["b"]
    second = Scheduler(app, store)
    report = second.setup()
    drive(clock, [second], 300)

    assert report.disabled == ["b"]
    b = store.get("b")
    assert (b.enabled, b.source, b.total_run_count) == (False, "removed", 2)
    assert Counter(m.task for m in outbox.read()) == {"tasks.a": 5, "tasks.b": 2}


def test_a_new_code_schedule_does_not_fire_a_burst_of_missed_runs(app, store, clock, outbox):
    app.conf.beat_schedule = {"a": {"task": "tasks.a", "schedule": 3600, "catch_up": "all"}}
    first = Scheduler(app, store)
    first.setup()
    drive(clock, [first], 3600.5)
    clock.now = T0 + 7200 + 600  # down for a while, then deployed with a new schedule

    app.conf.beat_schedule["a"]["schedule"] = 60
    second = Scheduler(app, store)
    second.setup()
    drive(clock, [second], 7200 + 600 + 125)

    assert outbox.dues("a") == [iso(3600), iso(7200 + 660), iso(7200 + 720)]


# -- run-time edits ---------------------------------------------------------------------------


def test_run_time_edits_are_picked_up_without_a_restart(app, store, clock, outbox):
    app.conf.beat_schedule = {"tick": {"task": "tasks.tick", "schedule": 10}}
    scheduler = Scheduler(app, store)
    scheduler.setup()
    drive(clock, [scheduler], 25)

    store.disable("tick")  # as the CLI or an admin would, through the same store
    store.upsert(Entry(name="extra", task="tasks.extra", schedule=schedule(5)), now=at(25))
    drive(clock, [scheduler], 41)
    store.enable("tick", now=at(41))
    drive(clock, [scheduler], 55)

    assert outbox.dues("tick") == [iso(10), iso(20), iso(50)]
    assert outbox.dues("extra") == [iso(s) for s in (30, 35, 40, 45, 50, 55)]


def test_run_sleeps_until_the_next_due_time_and_wakes_on_store_changes(app, store, clock, outbox):
    clock.now = T0 + 0.25
    app.conf.beat_schedule = {"slow": {"task": "tasks.slow", "schedule": 3600}}
    sleeps: list[float] = []

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)
        if len(sleeps) == 3:
            store.upsert(Entry(name="fast", task="tasks.fast", schedule=schedule(10)), now=at(3))
        if clock.now >= T0 + 35:
            scheduler.stop()

    scheduler = Scheduler(app, store, sleep=fake_sleep, poll_interval=1.0)
    scheduler.run()

    assert outbox.dues("fast") == [iso(10), iso(20), iso(30)]
    assert outbox.dues("slow") == []
    assert max(sleeps) <= 1.0  # polls the store's version at most every poll_interval
    assert sum(sleeps) == pytest.approx(35.0 - 0.25, abs=1.0)


def test_without_changes_a_scheduler_sleeps_straight_to_the_next_run(app, store, clock):
    clock.now = T0 + 0.25
    app.conf.beat_schedule = {"tick": {"task": "tasks.tick", "schedule": 10}}
    sleeps: list[float] = []

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)
        if len(sleeps) == 4:
            scheduler.stop()

    scheduler = Scheduler(app, store, sleep=fake_sleep, poll_interval=3600)
    scheduler.run()

    assert sleeps == [9.75, 10.0, 10.0, 10.0]


# -- catch-up -----------------------------------------------------------------------------------


def down_for_ten_minutes(app, store, clock, catch_up: str, late: float = 5.0) -> Scheduler:
    """An every-minute entry whose scheduler was down from T0 until 10 minutes later."""
    store.upsert(
        Entry(name="e", task="tasks.e", schedule=schedule(60), catch_up=catch_up), now=at(0)
    )
    clock.now = T0 + 600 + late
    return Scheduler(app, store, sync=False)


def test_catch_up_latest_fires_only_the_newest_missed_run(app, store, clock, outbox):
    scheduler = down_for_ten_minutes(app, store, clock, "latest")

    drive(clock, [scheduler], 700)

    assert outbox.dues("e") == [iso(600), iso(660)]
    assert store.get("e").total_run_count == 2


def test_catch_up_all_fires_every_missed_run_in_order(app, store, clock, outbox):
    scheduler = down_for_ten_minutes(app, store, clock, "all")
    scheduler.max_batch = 3  # the backlog goes out over several passes

    drive(clock, [scheduler], 700)

    assert outbox.dues("e") == [iso(60 * n) for n in range(1, 12)]


def test_catch_up_skip_drops_missed_runs(app, store, clock, outbox):
    scheduler = down_for_ten_minutes(app, store, clock, "skip")

    drive(clock, [scheduler], 700)

    assert outbox.dues("e") == [iso(660)]
    assert store.get("e").since == at(660)


def test_a_run_noticed_within_grace_is_on_time_not_missed(app, store, clock, outbox):
    scheduler = down_for_ten_minutes(app, store, clock, "skip", late=0.5)

    drive(clock, [scheduler], 601)

    assert outbox.dues("e") == [iso(600)]


def test_latest_with_an_on_time_run_fires_just_that_one(app, store, clock, outbox):
    scheduler = down_for_ten_minutes(app, store, clock, "latest", late=0.5)

    drive(clock, [scheduler], 601)

    assert outbox.dues("e") == [iso(600)]


# -- beat_cron_starting_deadline (Celery's setting) ---------------------------------------------


def cron_entry_down_until(app, store, clock, down_for: float, catch_up: str = "latest"):
    """A quarter-hourly crontab whose scheduler was down from 12:00 for ``down_for`` s."""
    app.conf.beat_schedule = {
        "quarterly": {
            "task": "tasks.quarterly",
            "schedule": crontab(minute="*/15"),
            "catch_up": catch_up,
        }
    }
    Scheduler(app, store).setup()  # synced at 12:00, then no scheduler ran
    clock.now = T0 + down_for
    return Scheduler(app, store)


def test_a_cron_run_missed_by_more_than_the_deadline_is_skipped(app, store, clock, outbox):
    app.conf.beat_cron_starting_deadline = 120
    scheduler = cron_entry_down_until(app, store, clock, down_for=20 * 60)  # 12:15 is 5 min old

    drive(clock, [scheduler], 31 * 60)

    assert outbox.dues("quarterly") == [iso(30 * 60)]
    assert store.get("quarterly").total_run_count == 1


def test_a_cron_run_missed_by_less_than_the_deadline_is_sent_late(app, store, clock, outbox):
    app.conf.beat_cron_starting_deadline = 600
    scheduler = cron_entry_down_until(app, store, clock, down_for=20 * 60)

    drive(clock, [scheduler], 31 * 60)

    assert outbox.dues("quarterly") == [iso(15 * 60), iso(30 * 60)]


def test_the_deadline_bounds_how_far_back_catch_up_all_reaches(app, store, clock, outbox):
    app.conf.beat_cron_starting_deadline = timedelta(minutes=16)
    scheduler = cron_entry_down_until(app, store, clock, down_for=50 * 60, catch_up="all")

    drive(clock, [scheduler], 61 * 60)

    # 12:15 and 12:30 are older than 16 minutes at 12:50; 12:45 is not.
    assert outbox.dues("quarterly") == [iso(45 * 60), iso(60 * 60)]


def test_the_deadline_leaves_intervals_alone_as_in_celery(app, store, clock, outbox):
    app.conf.beat_cron_starting_deadline = 30
    scheduler = down_for_ten_minutes(app, store, clock, "latest")

    drive(clock, [scheduler], 700)

    assert outbox.dues("e") == [iso(600), iso(660)]


# -- several schedulers, restarts -------------------------------------------------------------


def test_two_schedulers_on_one_store_send_each_due_run_once(app, store, clock, outbox):
    app.conf.beat_schedule = {
        "fast": {"task": "tasks.fast", "schedule": 1},
        "cron": {"task": "tasks.cron", "schedule": crontab()},
    }
    one, two = Scheduler(app, store), Scheduler(app, store)
    one.setup()
    two.setup()
    rng = random.Random(7)

    for _ in range(2000):
        pair = [one, two]
        rng.shuffle(pair)
        waits = [s.tick() for s in pair]
        clock.advance(min(min(waits), rng.choice([0.3, 0.7, 1.0])))
        if clock.now >= T0 + 600:
            break

    fast = outbox.dues("fast")
    assert len(fast) == len(set(fast)) >= 590
    assert fast == [iso(s) for s in range(1, len(fast) + 1)]
    cron = outbox.dues("cron")
    assert cron == [iso(60 * n) for n in range(1, len(cron) + 1)] and len(cron) >= 9
    assert store.get("fast").total_run_count == len(fast)


def test_schedulers_with_lagging_views_are_kept_apart_by_the_coordinator(app, clock, outbox):
    """Separate stores (as if one scheduler's view lagged): the claims alone dedupe."""
    app.conf.beat_schedule = {"tick": {"task": "tasks.tick", "schedule": 10}}
    one, two = Scheduler(app, MemoryStore()), Scheduler(app, MemoryStore())
    one.setup()
    two.setup()

    drive(clock, [one, two], 600)

    dues = outbox.dues("tick")
    assert dues == [iso(10 * n) for n in range(1, 61)]


def test_a_restarted_scheduler_neither_repeats_nor_skips(app, store, clock, outbox):
    app.conf.beat_schedule = {"tick": {"task": "tasks.tick", "schedule": 60}}
    first = Scheduler(app, store)
    first.setup()
    drive(clock, [first], 300)

    second = Scheduler(app, store)  # the first one died; a new process starts at once
    second.setup()
    drive(clock, [second], 600)

    assert outbox.dues("tick") == [iso(60 * n) for n in range(1, 11)]


def test_a_crash_between_sending_and_recording_does_not_double_fire(
    app, store, clock, outbox, monkeypatch
):
    app.conf.beat_schedule = {"tick": {"task": "tasks.tick", "schedule": 60}}
    first = Scheduler(app, store)
    first.setup()
    drive(clock, [first], 119)

    def crash(*args, **kwargs):
        raise SystemExit("killed right after sending")

    monkeypatch.setattr(store, "record_run", crash)
    clock.now = T0 + 120
    with pytest.raises(SystemExit):
        first.tick()
    monkeypatch.undo()
    clock.now = T0 + 150  # restarted 30 s later: the 120 s run looks missed

    second = Scheduler(app, store)
    second.setup()
    drive(clock, [second], 300)

    assert outbox.dues("tick") == [iso(60 * n) for n in range(1, 6)]


def test_a_failed_send_releases_its_claim_and_is_retried(app, store, clock, outbox, monkeypatch):
    app.conf.beat_schedule = {"tick": {"task": "tasks.tick", "schedule": 60}}
    scheduler = Scheduler(app, store, retry_delay=1.0)
    scheduler.setup()
    publish = app.broker.publish
    failures = iter([True])

    def flaky(envelopes):
        if next(failures, False):
            raise BrokerError("broker away")
        publish(envelopes)

    monkeypatch.setattr(app.broker, "publish", flaky)
    clock.now = T0 + 60
    assert scheduler.tick() == 1.0
    clock.now = T0 + 60.5  # still within grace
    scheduler.tick()

    assert outbox.dues("tick") == [iso(60)]


# -- what is sent --------------------------------------------------------------------------------


def test_each_run_carries_its_deterministic_key(app, store, clock, outbox):
    app.conf.beat_schedule = {
        "report": {
            "task": "tasks.report",
            "schedule": 60,
            "args": [1],
            "kwargs": {"full": True},
            "options": {"queue": "reports", "headers": {"team": "ops"}},
        }
    }
    scheduler = Scheduler(app, store)
    scheduler.setup()
    drive(clock, [scheduler], 60)

    (message,) = outbox.read()
    assert message.idempotency_key == due_key("report", at(60)) == f"report:{iso(60)}"
    assert (message.args, message.kwargs, message.queue) == ([1], {"full": True}, "reports")
    assert message.headers == {"team": "ops", "beat_entry": "report", "beat_due": iso(60)}


def test_a_run_that_cannot_be_sent_is_skipped_not_retried_forever(app, store, clock, outbox):
    @app.task(name="tasks.needs_one")
    def needs_one(x: int) -> None: ...

    store.upsert(Entry(name="broken", task="tasks.needs_one", schedule=schedule(60)), now=at(0))
    store.upsert(
        Entry(name="fine", task="tasks.needs_one", schedule=schedule(60), args=(1,)), now=at(0)
    )
    scheduler = Scheduler(app, store, sync=False)

    drive(clock, [scheduler], 130)

    assert outbox.dues("broken") == []
    assert outbox.dues("fine") == [iso(60), iso(120)]
    assert store.get("broken").since == at(120)


def test_claims_outlive_the_schedules_period(app, store, clock):
    weekly = crontab(minute=0, hour=9, day_of_week="wed")  # T0 is a Wednesday, 12:00
    store.upsert(Entry(name="weekly", task="tasks.weekly", schedule=weekly), now=at(-3 * 3600 - 1))
    scheduler = Scheduler(app, store, sync=False)
    clock.now = T0 - 3 * 3600
    scheduler.tick()

    clock.advance(10 * 86400)  # past the app's one-day idempotency window

    assert app.coordinator.get(f"beat:{due_key('weekly', at(-3 * 3600))}") == f"sent:{scheduler.id}"


def test_a_one_off_fires_once_and_is_then_disabled(app, store, clock, outbox):
    store.upsert(Entry(name="once", task="tasks.once", schedule=clocked(at(30))), now=at(0))
    scheduler = Scheduler(app, store, sync=False)

    drive(clock, [scheduler], 120)

    assert outbox.dues("once") == [iso(30)]
    assert store.get("once").enabled is False


@pytest.mark.parametrize(("catch_up", "fired"), [("latest", 1), ("skip", 0)])
def test_a_one_off_created_after_its_time_follows_catch_up(
    app, store, clock, outbox, catch_up, fired
):
    past = Entry(name="late", task="tasks.late", schedule=clocked(at(-3600)), catch_up=catch_up)
    store.upsert(past, now=at(0))

    drive(clock, [Scheduler(app, store, sync=False)], 10)

    assert len(outbox.dues("late")) == fired
    assert store.get("late").enabled is False


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (
            "2024-03-30T12:00:00",
            "2024-04-01T12:00:00",
            ["2024-03-31T01:00:00+00:00", "2024-04-01T00:30:00+00:00"],
        ),
        (
            "2024-10-26T12:00:00",
            "2024-10-28T12:00:00",
            ["2024-10-27T00:30:00+00:00", "2024-10-28T01:30:00+00:00"],
        ),
    ],
)
def test_schedules_follow_the_apps_timezone_across_dst(clock, store, start, end, expected):
    clock.now = datetime.fromisoformat(start).replace(tzinfo=UTC).timestamp()
    app = memory_app(clock=clock, timezone="Europe/Paris")
    app.conf.beat_schedule = {
        "night": {"task": "tasks.night", "schedule": crontab(minute=30, hour=2)}
    }
    scheduler = Scheduler(app, store)
    scheduler.setup()
    stop = datetime.fromisoformat(end).replace(tzinfo=UTC).timestamp()

    drive(clock, [scheduler], stop - T0)

    assert Outbox(app).dues("night") == expected


def test_run_now_sends_once_without_touching_the_schedule(app, store, clock, outbox):
    app.conf.beat_schedule = {"tick": {"task": "tasks.tick", "schedule": 60}}
    scheduler = Scheduler(app, store)
    scheduler.setup()
    clock.now = T0 + 30

    result = run_now(app, "tick", store)
    drive(clock, [scheduler], 60)

    messages = outbox.read()
    assert [m.idempotency_key for m in messages] == [f"tick:run-now:{iso(30)}", f"tick:{iso(60)}"]
    assert messages[0].id == result.id
    assert store.get("tick").total_run_count == 2
    with pytest.raises(KeyError):
        run_now(app, "nope", store)


def test_a_sqlite_store_in_the_broker_file_drives_the_same_scheduler(tmp_path, clock, app, outbox):
    store = SQLiteStore(tmp_path / "c.db")
    app.conf.beat_schedule = {"tick": {"task": "tasks.tick", "schedule": 10}}
    one, two = Scheduler(app, store), Scheduler(app, SQLiteStore(tmp_path / "c.db"))
    one.setup()
    two.setup()

    drive(clock, [one, two], 100)

    assert outbox.dues("tick") == [iso(10 * n) for n in range(1, 11)]
    assert store.get("tick").total_run_count == 10
    store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_fork_waits_for_the_beat_threads_pass_and_leaves_no_lock_held(app, store):
    app.conf.beat_schedule = {"slow": {"task": "tasks.slow", "schedule": 3600}}
    beat = BeatThread(app, store)
    beat.start()
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            os._exit(0 if beat.scheduler.lock.acquire(timeout=1) else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert beat.scheduler.lock.acquire(timeout=1)
        beat.scheduler.lock.release()
    finally:
        beat.stop()
    assert beat.scheduler.stopped


def test_a_scheduler_that_dies_mid_send_does_not_lose_the_run(app, store, clock, outbox):
    app.conf.beat_schedule = {"tick": {"task": "tasks.tick", "schedule": 60}}
    survivor = Scheduler(app, store, retry_delay=1.0)
    survivor.setup()
    drive(clock, [survivor], 59)
    # Another scheduler claimed the run due at 60 s, then died before sending it.
    app.coordinator.put_if_absent(f"beat:{due_key('tick', at(60))}", "sending:ghost", 30.0)
    drive(clock, [survivor], 75)
    assert outbox.dues("tick") == []  # it might still be sending: wait for the claim
    drive(clock, [survivor], 100)
    assert outbox.dues("tick") == [iso(60)]  # the claim expired: the survivor sent the run
    drive(clock, [survivor], 250)
    assert outbox.dues("tick") == [iso(60 * n) for n in range(1, 5)]


def test_a_run_sent_by_another_scheduler_is_not_sent_again(app, store, clock, outbox):
    app.conf.beat_schedule = {"tick": {"task": "tasks.tick", "schedule": 60}}
    one, two = Scheduler(app, store), Scheduler(app, store)
    one.setup()
    two.setup()
    drive(clock, [one, two], 600)
    dues = outbox.dues("tick")
    assert dues == [iso(60 * n) for n in range(1, 11)]
    assert max(Counter(dues).values()) == 1
