"""One contract for every Coordinator: the cluster-wide state behind limits, locks and revocation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.coordination import Coordinator, MemoryCoordinator, SQLiteCoordinator
from conveyor.testing import FakeClock
from integration.cluster_support import redis_cluster  # noqa: F401  (a fixture)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_000_000.0)


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-eval", "redis-cluster"])
def coordinator(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[Coordinator]:
    coord: Coordinator
    if request.param == "memory":
        coord = MemoryCoordinator(clock=clock)
    elif request.param == "sqlite":
        coord = SQLiteCoordinator(tmp_path / "coord.db", clock=clock)
    elif request.param == "redis-cluster":
        from conveyor.cluster_stores import ClusterCoordinator

        url = request.getfixturevalue("redis_cluster").url
        coord = ClusterCoordinator(url, prefix=request.getfixturevalue("redis_prefix"), clock=clock)
    else:
        from conveyor.coordination.redis import RedisCoordinator

        url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
        if request.param == "redis-eval":  # scripts by EVALSHA, as on Redis 6
            url += "?scripts=eval"
        coord = RedisCoordinator(url, prefix=prefix, clock=clock)
    yield coord
    coord.close()


def test_values_expire(coordinator: Coordinator, clock: FakeClock) -> None:
    coordinator.put_many([("a", "1"), ("b", "2")], ttl=10)
    assert coordinator.get_many(["a", "b", "c"]) == ["1", "2", None]
    clock.advance(10)
    assert coordinator.get_many(["a", "b"]) == [None, None]


def test_put_if_absent_returns_the_first_value(coordinator: Coordinator, clock: FakeClock) -> None:
    assert coordinator.put_if_absent("k", "first", ttl=5) is None
    assert coordinator.put_if_absent("k", "second", ttl=5) == "first"
    clock.advance(5)
    assert coordinator.put_if_absent("k", "third", ttl=5) is None
    assert coordinator.get("k") == "third"


def test_delete_only_with_the_right_value(coordinator: Coordinator) -> None:
    coordinator.put_many([("k", "mine")], ttl=5)
    assert coordinator.delete("k", "theirs") is False
    assert coordinator.get("k") == "mine"
    assert coordinator.delete("k", "mine") is True
    assert coordinator.delete("k") is False


def test_slots_limit_holders(coordinator: Coordinator, clock: FakeClock) -> None:
    assert coordinator.acquire("s", "a", limit=2, ttl=10)
    assert coordinator.acquire("s", "b", limit=2, ttl=10)
    assert not coordinator.acquire("s", "c", limit=2, ttl=10)
    assert coordinator.acquire("s", "a", limit=2, ttl=10)  # a holder keeps its slot
    assert coordinator.release("s", "a")
    assert not coordinator.release("s", "a")
    assert coordinator.acquire("s", "c", limit=2, ttl=10)


def test_slots_of_dead_holders_expire_unless_extended(
    coordinator: Coordinator, clock: FakeClock
) -> None:
    assert coordinator.acquire("lock", "crashed", limit=1, ttl=10)
    assert coordinator.acquire("other", "alive", limit=1, ttl=10)
    clock.advance(8)
    coordinator.extend(["alive"], ttl=10)
    clock.advance(3)
    assert coordinator.acquire("lock", "next", limit=1, ttl=10)  # the crashed holder expired
    assert not coordinator.acquire("other", "next", limit=1, ttl=10)  # the extended one did not
    assert not coordinator.release("lock", "crashed")


def test_token_bucket(coordinator: Coordinator, clock: FakeClock) -> None:
    assert coordinator.take_token("r", rate=2.0, capacity=1.0) == 0.0
    wait = coordinator.take_token("r", rate=2.0, capacity=1.0)
    assert wait == pytest.approx(0.5)
    clock.advance(0.25)
    assert coordinator.take_token("r", rate=2.0, capacity=1.0) == pytest.approx(0.25)
    clock.advance(0.25)
    assert coordinator.take_token("r", rate=2.0, capacity=1.0) == 0.0
    clock.advance(100)  # the bucket never holds more than its capacity
    assert coordinator.take_token("r", rate=2.0, capacity=1.0) == 0.0
    assert coordinator.take_token("r", rate=2.0, capacity=1.0) > 0


def test_sqlite_state_is_shared_between_instances(tmp_path: Path, clock: FakeClock) -> None:
    one = SQLiteCoordinator(tmp_path / "c.db", clock=clock)
    two = SQLiteCoordinator(tmp_path / "c.db", clock=clock)
    assert one.acquire("lock", "one", 1, 10)
    assert not two.acquire("lock", "two", 1, 10)
    assert one.take_token("r", 1.0, 1.0) == 0.0
    assert two.take_token("r", 1.0, 1.0) > 0


def test_group_members_expire_unless_refreshed(coordinator: Coordinator, clock: FakeClock) -> None:
    coordinator.put_members("workers", [("w1", "one"), ("w2", "two")], ttl=10)
    assert coordinator.members("workers") == {"w1": "one", "w2": "two"}
    assert coordinator.members("other") == {}
    clock.advance(8)
    coordinator.put_members("workers", [("w1", "one again")], ttl=10)
    clock.advance(3)
    assert coordinator.members("workers") == {"w1": "one again"}  # w2 lapsed
    assert coordinator.delete_member("workers", "w1") is True
    assert coordinator.delete_member("workers", "w1") is False
    assert coordinator.delete_member("workers", "w2") is False  # expired already
    assert coordinator.members("workers") == {}


def test_take_returns_pushed_values_once_in_order(
    coordinator: Coordinator, clock: FakeClock
) -> None:
    assert coordinator.take("box") == []
    coordinator.push("box", ["a", "b"], ttl=10)
    coordinator.push("box", ["c"], ttl=10)
    coordinator.push("elsewhere", ["x"], ttl=10)
    assert coordinator.take("box") == ["a", "b", "c"]
    assert coordinator.take("box") == []
    assert coordinator.take("elsewhere") == ["x"]


def test_pushed_values_expire(coordinator: Coordinator, clock: FakeClock) -> None:
    coordinator.push("box", ["old"], ttl=5)
    clock.advance(4)
    coordinator.push("box", ["new"], ttl=5)
    clock.advance(2)
    assert coordinator.take("box") == ["new"]
