"""The ScheduleStore contract, run against every store (a Django store can reuse it):
rows, idempotent run records, a change counter, and the sync rules for code entries."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.beat import Entry, MemoryStore, SQLiteStore, crontab, schedule, store_from_url
from conveyor.beat.redis import RedisStore
from conveyor.beat.store import ScheduleStore
from conveyor.exceptions import ImproperlyConfigured
from integration.cluster_support import redis_cluster  # noqa: F401  (a fixture)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-cluster"])
def store(request, tmp_path):
    made: ScheduleStore
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "sqlite":
        made = SQLiteStore(tmp_path / "c.db")
    elif request.param == "redis-cluster":
        from conveyor.cluster_stores import ClusterScheduleStore

        url = request.getfixturevalue("redis_cluster").url
        made = ClusterScheduleStore(url, prefix=request.getfixturevalue("redis_prefix"))
    else:
        from conveyor.beat.redis import RedisStore

        url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
        made = RedisStore(url, prefix=prefix)
    yield made
    made.close()


def entry(name: str = "tick", **fields) -> Entry:
    fields.setdefault("task", "tasks.tick")
    fields.setdefault("schedule", schedule(60))
    return Entry(name=name, **fields)


def test_saved_entries_come_back_whole(store):
    store.save(
        entry(
            "report",
            schedule=crontab(minute=0, hour="8-17", day_of_week="mon-fri"),
            args=(1, "two"),
            kwargs={"three": [3]},
            options={"queue": "reports", "expires": 30},
            enabled=False,
            catch_up="all",
            last_run_at=T0,
            total_run_count=4,
            since=T0 + timedelta(microseconds=1),
            source="code",
        )
    )

    got = store.get("report")

    assert got == entry(
        "report",
        schedule=crontab(minute=0, hour="8-17", day_of_week="mon-fri"),
        args=(1, "two"),
        kwargs={"three": [3]},
        options={"queue": "reports", "expires": 30},
        enabled=False,
        catch_up="all",
        last_run_at=T0,
        total_run_count=4,
        since=T0 + timedelta(microseconds=1),
        source="code",
    )
    assert [e.name for e in store.list()] == ["report"]
    assert store.get("missing") is None


def test_a_store_emptied_behind_its_back_never_shows_a_version_seen_before(store):
    """FLUSHDB, or the tables emptied by hand: as many writes as before must not bring the
    version back to the number a running scheduler saw last, or it keeps the old entries."""
    if not isinstance(store, SQLiteStore | RedisStore):
        pytest.skip("emptied by hand in its own tests (Django's) or only by its process")
    store.save(entry("old", since=T0))
    seen = store.version()
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as db:
            db.execute("DELETE FROM conveyor_beat_entries")
            db.execute("DELETE FROM conveyor_beat_meta")
    else:
        store._link.client.delete(store._entries, store._version)
    assert store.list() == []

    store.save(entry("new", since=T0))
    assert store.version() != seen
    assert [e.name for e in store.list()] == ["new"]


def test_every_write_moves_the_version(store):
    seen = [store.version()]
    store.save(entry(since=T0))
    seen.append(store.version())
    store.record_run("tick", T0 + timedelta(minutes=1), T0 + timedelta(minutes=1))
    seen.append(store.version())
    store.skip_to("tick", T0 + timedelta(minutes=5))
    seen.append(store.version())
    store.disable("tick")
    seen.append(store.version())
    store.remove("tick")
    seen.append(store.version())

    assert len(set(seen)) == len(seen)


def test_a_run_recorded_twice_counts_once(store):
    store.save(entry(since=T0))
    due = T0 + timedelta(minutes=1)

    assert store.record_run("tick", due, due + timedelta(seconds=1)) is True
    version = store.version()
    assert store.record_run("tick", due, due + timedelta(seconds=2)) is False
    assert store.record_run("tick", T0, due) is False  # older than since

    got = store.get("tick")
    assert (got.total_run_count, got.since, got.last_run_at) == (1, due, due + timedelta(seconds=1))
    assert store.version() == version


def test_a_manual_run_counts_without_moving_since(store):
    store.save(entry(since=T0))

    assert store.record_run("tick", T0 + timedelta(hours=1), T0 + timedelta(hours=1), manual=True)

    got = store.get("tick")
    assert (got.total_run_count, got.since, got.last_run_at) == (1, T0, T0 + timedelta(hours=1))


def test_skip_to_only_moves_forward(store):
    store.save(entry(since=T0))

    assert store.skip_to("tick", T0 + timedelta(minutes=3)) is True
    assert store.skip_to("tick", T0 + timedelta(minutes=2)) is False
    assert store.get("tick").since == T0 + timedelta(minutes=3)
    assert store.get("tick").total_run_count == 0


def test_remove(store):
    store.save(entry())

    assert store.remove("tick") is True
    assert store.remove("tick") is False
    assert store.list() == []


def test_upsert_keeps_history_and_restarts_the_count_on_a_new_schedule(store):
    created = store.upsert(entry(), now=T0)
    assert created.since == T0
    store.record_run("tick", T0 + timedelta(minutes=1), T0 + timedelta(minutes=1))

    same = store.upsert(entry(args=(1,)), now=T0 + timedelta(minutes=5))
    assert (same.args, same.total_run_count, same.since) == ((1,), 1, T0 + timedelta(minutes=1))

    moved = store.upsert(entry(schedule=schedule(30)), now=T0 + timedelta(minutes=6))
    assert moved.since == T0 + timedelta(minutes=6)  # nothing "missed" under the new schedule
    assert moved.total_run_count == 1


def test_enabling_counts_from_now(store):
    store.upsert(entry(), now=T0)
    store.disable("tick")
    store.enable("tick", now=T0 + timedelta(hours=2))

    assert store.get("tick").since == T0 + timedelta(hours=2)
    with pytest.raises(KeyError):
        store.disable("nope")


def test_sync_adds_updates_and_disables_but_never_deletes(store):
    report = store.sync({"a": entry("a"), "b": entry("b")}, now=T0)
    assert (report.added, report.updated, report.disabled) == (["a", "b"], [], [])
    store.record_run("b", T0 + timedelta(minutes=1), T0 + timedelta(minutes=1))

    report = store.sync({"a": entry("a", args=(2,))}, now=T0 + timedelta(minutes=2))

    assert (report.added, report.updated, report.disabled) == ([], ["a"], ["b"])
    b = store.get("b")
    assert (b.enabled, b.source, b.total_run_count) == (False, "removed", 1)
    assert store.get("a").args == (2,)

    report = store.sync({"a": entry("a", args=(2,)), "b": entry("b")}, now=T0 + timedelta(hours=1))
    b = store.get("b")
    assert report.updated == ["b"]
    assert (b.enabled, b.source, b.since) == (True, "code", T0 + timedelta(hours=1))


def test_sync_is_a_no_op_when_nothing_changed(store):
    store.sync({"a": entry("a")}, now=T0)
    version = store.version()

    report = store.sync({"a": entry("a")}, now=T0 + timedelta(minutes=1))

    assert (report.added, report.updated, report.disabled) == ([], [], [])
    assert store.version() == version


def test_a_run_time_disable_survives_a_sync_and_code_can_force_one(store):
    store.sync({"a": entry("a"), "b": entry("b")}, now=T0)
    store.disable("a")

    store.sync({"a": entry("a"), "b": entry("b", enabled=False)}, now=T0)

    assert store.get("a").enabled is False
    assert store.get("b").enabled is False


def test_entries_added_at_run_time_are_left_alone_by_sync(store):
    store.upsert(entry("adhoc"), now=T0)

    report = store.sync({}, now=T0)

    assert report.disabled == []
    assert store.get("adhoc").enabled is True


def test_sqlite_store_is_shared_through_the_file(tmp_path):
    one, two = SQLiteStore(tmp_path / "c.db"), SQLiteStore(tmp_path / "c.db")
    before = two.version()

    one.upsert(entry(), now=T0)

    assert two.version() != before
    assert two.get("tick") is not None
    one.close()
    two.close()


def test_store_from_url(tmp_path, redis_url):
    from conveyor.beat.redis import RedisStore

    assert isinstance(store_from_url("memory://"), MemoryStore)
    sqlite = store_from_url(f"sqlite:///{tmp_path / 'c.db'}")
    assert isinstance(sqlite, SQLiteStore)
    sqlite.close()
    redis_store = store_from_url(redis_url)
    assert isinstance(redis_store, RedisStore)
    redis_store.close()
    with pytest.raises(ImproperlyConfigured):
        store_from_url("ftp://nope")
