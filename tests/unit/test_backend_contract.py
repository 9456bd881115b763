"""One contract for every ResultBackend: add an implementation to BACKENDS and it must pass.

TTLs run on a fake clock injected into the backend; only the ``wait`` tests use real time.
Redis expires keys by its own clock; the Redis backend given ``clock=`` also notes each
key's expiry by that clock and deletes what it says has expired before every operation.
Redis runs as a private redis-server (tests/conftest.py); each test gets its own prefix.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conveyor.backends import MemoryBackend, ResultBackend, SQLiteBackend, backend_from_url
from conveyor.brokers import Envelope, SQLiteBroker
from conveyor.exceptions import ImproperlyConfigured
from conveyor.records import LEVEL_RECEIVED, LEVEL_STARTED, fence
from conveyor.testing import FakeClock
from integration.cluster_support import redis_cluster  # noqa: F401  (a fixture)

START = 1_700_000_000.0


def redis_backend(
    clock: FakeClock, request: pytest.FixtureRequest, scripts: str = ""
) -> ResultBackend:
    """``scripts``: the URL's ``scripts`` option (default: functions, on Redis 7)."""
    from conveyor.backends.redis import RedisBackend

    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return RedisBackend(f"{url}?scripts={scripts}" if scripts else url, prefix=prefix, clock=clock)


def cluster_backend(clock: FakeClock, request: pytest.FixtureRequest) -> ResultBackend:
    from conveyor.cluster_stores import ClusterBackend

    url = request.getfixturevalue("redis_cluster").url
    return ClusterBackend(url, prefix=request.getfixturevalue("redis_prefix"), clock=clock)


BACKENDS: dict[str, Callable[[FakeClock, Path, pytest.FixtureRequest], ResultBackend]] = {
    "memory": lambda clock, tmp, request: MemoryBackend(clock=clock),
    "sqlite": lambda clock, tmp, request: SQLiteBackend(tmp / "results.db", clock=clock),
    "redis": lambda clock, tmp, request: redis_backend(clock, request),
    "redis-eval": lambda clock, tmp, request: redis_backend(clock, request, "eval"),
    "redis-cluster": lambda clock, tmp, request: cluster_backend(clock, request),
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture(params=sorted(BACKENDS))
def backend(
    request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path
) -> Iterator[ResultBackend]:
    instance = BACKENDS[request.param](clock, tmp_path, request)
    yield instance
    instance.close()


def test_get_set_and_mget(backend: ResultBackend) -> None:
    assert backend.get("k") is None
    assert backend.set("k", b"\x00value\xff", ttl=60) is True
    assert backend.get("k") == b"\x00value\xff"
    assert backend.set("k", b"replaced", ttl=60) is True
    assert backend.get("k") == b"replaced"
    backend.set("other", b"2", ttl=60)
    assert backend.mget(["other", "missing", "k"]) == [b"2", None, b"replaced"]
    assert backend.mget([]) == []


def test_mget_of_many_keys_keeps_order(backend: ResultBackend) -> None:
    backend.set_many([(f"k{i}", str(i).encode()) for i in range(0, 2000, 2)], ttl=60)
    keys = [f"k{i}" for i in reversed(range(2000))]
    assert backend.mget(keys) == [
        str(i).encode() if i % 2 == 0 else None for i in reversed(range(2000))
    ]


def test_values_expire_with_their_ttl(backend: ResultBackend, clock: FakeClock) -> None:
    backend.set("short", b"s", ttl=10)
    backend.set("long", b"l", ttl=100)
    clock.advance(9)
    assert backend.mget(["short", "long"]) == [b"s", b"l"]
    clock.advance(2)
    assert backend.get("short") is None
    assert backend.mget(["short", "long"]) == [None, b"l"]
    backend.cleanup()
    assert backend.get("short") is None
    assert backend.get("long") == b"l"


def test_fence_refuses_lower_and_accepts_equal_or_higher(backend: ResultBackend) -> None:
    assert backend.set("task", b"attempt-2", ttl=60, fence=2) is True
    assert backend.set("task", b"attempt-1", ttl=60, fence=1) is False
    assert backend.get("task") == b"attempt-2"
    assert backend.set("task", b"attempt-2-again", ttl=60, fence=2) is True
    assert backend.get("task") == b"attempt-2-again"
    assert backend.set("task", b"attempt-3", ttl=60, fence=3) is True
    assert backend.set("task", b"stale", ttl=60, fence=2) is False
    assert backend.get("task") == b"attempt-3"


def test_attempt_fences_order_writes(backend: ResultBackend) -> None:
    """The fences a worker writes with (``records.fence``), oldest attempt first: a
    redelivery outranks the delivery before it, a re-send from the dead letters every
    delivery before it (though its count starts again at 1), a retry every re-send."""
    attempts = [
        fence(0, 1, LEVEL_RECEIVED),
        fence(0, 1),
        fence(0, 3, LEVEL_STARTED),
        fence(0, 3),
        fence(0, 1, LEVEL_RECEIVED, resends=1),
        fence(0, 2, resends=1),
        fence(0, 1, resends=2),
        fence(1, 1, LEVEL_STARTED),
        fence(1, 1, resends=9_999),
        fence(2_000_000, 99_999, resends=9_999),
    ]
    for i, attempt in enumerate(attempts):
        assert backend.set("task", f"attempt-{i}".encode(), ttl=60, fence=attempt) is True
        if i:
            assert backend.set("task", b"stale", ttl=60, fence=attempts[i - 1]) is False
        assert backend.get("task") == f"attempt-{i}".encode()


def test_unfenced_set_always_writes_and_keeps_the_fence(backend: ResultBackend) -> None:
    backend.set("task", b"fenced", ttl=60, fence=5)
    assert backend.set("task", b"unfenced", ttl=60) is True
    assert backend.get("task") == b"unfenced"
    assert backend.set("task", b"stale", ttl=60, fence=4) is False
    assert backend.get("task") == b"unfenced"
    assert backend.set("fresh", b"first", ttl=60, fence=0) is True


def test_refused_write_keeps_the_old_ttl(backend: ResultBackend, clock: FakeClock) -> None:
    backend.set("task", b"v", ttl=10, fence=3)
    clock.advance(5)
    assert backend.set("task", b"stale", ttl=100, fence=1) is False
    clock.advance(6)
    assert backend.get("task") is None


def test_an_expired_fence_guards_nothing(backend: ResultBackend, clock: FakeClock) -> None:
    backend.set("task", b"old", ttl=10, fence=9)
    clock.advance(11)
    assert backend.set("task", b"new", ttl=10, fence=1) is True
    assert backend.get("task") == b"new"


def test_set_many(backend: ResultBackend, clock: FakeClock) -> None:
    backend.set_many([("a", b"1"), ("b", b"2")], ttl=10)
    backend.set_many([], ttl=10)
    assert backend.mget(["a", "b"]) == [b"1", b"2"]
    clock.advance(10)
    assert backend.mget(["a", "b"]) == [None, None]


def test_delete_counts_keys_that_existed(backend: ResultBackend, clock: FakeClock) -> None:
    backend.set_many([("a", b"1"), ("b", b"2")], ttl=60)
    backend.set("gone", b"x", ttl=1)
    backend.add_to_set("s", "m", ttl=60)
    clock.advance(2)
    assert backend.delete(["a", "missing", "gone", "s"]) == 2
    assert backend.mget(["a", "b"]) == [None, b"2"]
    assert backend.set_members("s") == set()
    assert backend.delete([]) == 0


def test_incr(backend: ResultBackend, clock: FakeClock) -> None:
    assert backend.incr("n", 1, ttl=10) == 1
    assert backend.incr("n", 5, ttl=10) == 6
    assert backend.incr("n", -2, ttl=10) == 4
    assert backend.get("n") == b"4"
    clock.advance(9)
    assert backend.incr("n", 1, ttl=10) == 5
    clock.advance(9)
    assert backend.get("n") == b"5"
    clock.advance(2)
    assert backend.incr("n", 1, ttl=10) == 1


def test_add_to_set_counts_distinct_members(backend: ResultBackend, clock: FakeClock) -> None:
    assert backend.add_to_set("s", "a", ttl=10) == 1
    assert backend.add_to_set("s", "b", ttl=10) == 2
    assert backend.add_to_set("s", "a", ttl=10) == 2
    assert backend.set_members("s") == {"a", "b"}
    assert backend.set_members("missing") == set()
    clock.advance(9)
    assert backend.add_to_set("s", "c", ttl=10) == 3
    clock.advance(9)
    assert backend.set_members("s") == {"a", "b", "c"}
    clock.advance(2)
    assert backend.set_members("s") == set()
    assert backend.add_to_set("s", "z", ttl=10) == 1
    assert backend.set_members("s") == {"z"}


def test_expire(backend: ResultBackend, clock: FakeClock) -> None:
    backend.set("k", b"v", ttl=10)
    backend.add_to_set("s", "m", ttl=10)
    assert backend.expire("missing", 100) is False
    clock.advance(5)
    assert backend.expire("k", 100) is True
    assert backend.expire("s", 100) is True
    clock.advance(50)
    assert backend.get("k") == b"v"
    assert backend.set_members("s") == {"m"}
    assert backend.expire("k", 1) is True
    clock.advance(1)
    assert backend.get("k") is None
    assert backend.expire("k", 100) is False


def test_cleanup_removes_only_expired(backend: ResultBackend, clock: FakeClock) -> None:
    backend.set("old", b"1", ttl=1)
    backend.add_to_set("old-set", "m", ttl=1)
    backend.set("new", b"2", ttl=100)
    clock.advance(2)
    assert backend.cleanup() >= 0
    clock.advance(-2)  # back in time: rows that were only hidden would reappear
    assert backend.get("old") is None
    assert backend.set_members("old-set") == set()
    assert backend.get("new") == b"2"


def test_wait_returns_as_soon_as_the_value_is_ready(backend: ResultBackend) -> None:
    backend.set("task", b"PENDING", ttl=60)

    def write() -> None:
        time.sleep(0.05)
        backend.set("task", b"STARTED", ttl=60)
        time.sleep(0.05)
        backend.set("task", b"SUCCESS", ttl=60)

    writer = threading.Thread(target=write)
    writer.start()
    started = time.monotonic()
    value = backend.wait("task", lambda v: v == b"SUCCESS", timeout=10)
    elapsed = time.monotonic() - started
    writer.join()
    assert value == b"SUCCESS"
    assert elapsed < 2


def test_wait_returns_at_once_when_already_ready(backend: ResultBackend) -> None:
    backend.set("task", b"SUCCESS", ttl=60)
    started = time.monotonic()
    assert backend.wait("task", lambda v: v is not None, timeout=None) == b"SUCCESS"
    assert time.monotonic() - started < 1


def test_wait_times_out_with_the_last_value(backend: ResultBackend) -> None:
    backend.set("task", b"PENDING", ttl=60)
    started = time.monotonic()
    assert backend.wait("task", lambda v: v == b"SUCCESS", timeout=0.05) == b"PENDING"
    assert 0.04 <= time.monotonic() - started < 1
    assert backend.wait("absent", lambda v: v is not None, timeout=0.01) is None


# --- URLs and SQLite ----------------------------------------------------------------------


def test_backend_from_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = backend_from_url("memory://"), backend_from_url("memory://")
    assert isinstance(first, MemoryBackend) and first is not second
    assert first.url == "memory://"
    monkeypatch.chdir(tmp_path)
    default = backend_from_url("sqlite://")
    assert isinstance(default, SQLiteBackend) and default.url == "sqlite://"
    assert (tmp_path / "conveyor.db").exists()
    absolute = backend_from_url(f"sqlite:///{tmp_path}/abs.db")
    assert absolute.path == f"{tmp_path}/abs.db"  # type: ignore[attr-defined]
    default.close()
    absolute.close()


@pytest.mark.parametrize(("query", "level"), [("", 1), ("?synchronous=full", 2)])
def test_sqlite_backend_synchronous_from_the_url(tmp_path: Path, query: str, level: int) -> None:
    backend = backend_from_url(f"sqlite:///{tmp_path}/results.db{query}")
    connection = backend._db.connection()  # type: ignore[attr-defined]
    assert connection.execute("PRAGMA synchronous").fetchone()[0] == level
    backend.close()


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("amqp://x", "known schemes"),
        ("sqlite://host/x.db", "no host"),
        ("x", "known schemes"),
        ("sqlite:///x.db?synchronous=sometimes", "valid choices: normal, full"),
    ],
)
def test_bad_backend_urls(url: str, hint: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=re.escape(hint)) as info:
        backend_from_url(url)
    assert url in str(info.value)


def test_redis_url_without_redis_support(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "conveyor.backends.redis", None)
    with pytest.raises(ImproperlyConfigured, match=re.escape("conveyor-tasks[redis]")):
        backend_from_url("redis://localhost:6379/1")


def test_sqlite_broker_and_backend_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "conveyor.db"
    broker, backend = SQLiteBroker(path), SQLiteBackend(path)
    broker.publish_one(Envelope("m", "q", b"body"))
    backend.set("m", b"PENDING", ttl=60)
    again_broker, again_backend = SQLiteBroker(path), SQLiteBackend(path)
    assert [d.id for d in again_broker.reserve(["q"], 1, lease=30)] == ["m"]
    assert again_backend.get("m") == b"PENDING"
    for closable in (broker, backend, again_broker, again_backend):
        closable.close()
