"""One contract for every Broker: add an implementation to BROKERS and it must pass all of it.

Time is a fake clock injected into the broker, so etas, leases and recoveries are tested
without sleeping. Only the ``wait`` tests use real (short) time. The Redis broker judges
time by Redis's own clock (TIME) in production; given ``clock=``, its scripts take that
clock's value instead. Redis runs as a private redis-server (tests/conftest.py); each
test gets a key prefix of its own.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from conveyor.brokers import (
    Broker,
    DeadLetter,
    Delivery,
    Envelope,
    MemoryBroker,
    Peeked,
    QueueStats,
    SQLiteBroker,
    broker_from_url,
)
from conveyor.exceptions import BrokerError, ImproperlyConfigured
from conveyor.testing import FakeClock
from integration.cluster_support import redis_cluster  # noqa: F401  (a fixture)

START = 1_700_000_000.0


def redis_broker(clock: FakeClock, request: pytest.FixtureRequest, scripts: str = "") -> Broker:
    """``scripts``: the URL's ``scripts`` option (default: functions, on Redis 7)."""
    from conveyor.brokers.redis import RedisBroker

    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return RedisBroker(f"{url}?scripts={scripts}" if scripts else url, prefix=prefix, clock=clock)


def cluster_broker(clock: FakeClock, request: pytest.FixtureRequest) -> Broker:
    from conveyor.brokers.redis_cluster import ClusterBroker

    url = request.getfixturevalue("redis_cluster").url
    return ClusterBroker(url, prefix=request.getfixturevalue("redis_prefix"), clock=clock)


BROKERS: dict[str, Callable[[FakeClock, Path, pytest.FixtureRequest], Broker]] = {
    "memory": lambda clock, tmp, request: MemoryBroker(clock=clock),
    "sqlite": lambda clock, tmp, request: SQLiteBroker(tmp / "broker.db", clock=clock),
    "redis": lambda clock, tmp, request: redis_broker(clock, request),
    "redis-eval": lambda clock, tmp, request: redis_broker(clock, request, "eval"),
    "redis-cluster": lambda clock, tmp, request: cluster_broker(clock, request),
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture(params=sorted(BROKERS))
def broker(request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path) -> Iterator[Broker]:
    instance = BROKERS[request.param](clock, tmp_path, request)
    yield instance
    instance.close()


def env(id: str, queue: str = "q", priority: int = 0, eta: float | None = None) -> Envelope:
    return Envelope(id=id, queue=queue, body=f"body-{id}".encode(), priority=priority, eta=eta)


def ids(deliveries: Sequence[Delivery]) -> list[str]:
    return [d.id for d in deliveries]


def test_publish_reserve_ack(broker: Broker) -> None:
    broker.publish_one(Envelope("m1", "q", b"\x00payload\xff", priority=3))
    [d] = broker.reserve(["q"], 10, lease=30)
    assert d == Delivery("m1", "q", b"\x00payload\xff", 3, d.token, delivery_count=1)
    assert d.token and not d.redelivered
    assert broker.reserve(["q"], 10, lease=30) == []
    assert broker.stats() == {"q": QueueStats(reserved=1)}
    assert broker.ack(d) is True
    assert broker.ack(d) is False
    assert broker.stats() == {}


def test_ack_and_reserve_acks_first_then_reserves(broker: Broker, clock: FakeClock) -> None:
    broker.publish([env("a"), env("b"), env("c")])
    first = broker.reserve(["q"], 2, lease=30)
    done, second = broker.ack_and_reserve(first, ["q"], 10, lease=30)
    assert done == [True, True]
    assert ids(second) == ["c"]
    assert broker.stats() == {"q": QueueStats(reserved=1)}
    clock.advance(31)
    broker.recover_expired()
    [again] = broker.reserve(["q"], 10, lease=30)
    stale, nothing = broker.ack_and_reserve([second[0]], ["q"], 10, lease=30)
    assert stale == [False] and nothing == []
    assert broker.ack_and_reserve([again], ["q"], 0, lease=30) == ([True], [])
    assert broker.stats() == {}


def test_a_batch_of_acks_gets_a_verdict_each(broker: Broker, clock: FakeClock) -> None:
    """A worker's batch of acks, as it sends them with its next reservation: every ack
    current, an id twice (acked once: the later one reads False), and a stale token among
    current ones. What was acked is gone; what was not stays reserved."""
    broker.publish([env(f"m{i}") for i in range(40)])
    batch = broker.reserve(["q"], 20, lease=30)
    done, _ = broker.ack_and_reserve(batch[:10], ["q"], 0, lease=30)
    assert done == [True] * 10
    done, _ = broker.ack_and_reserve([batch[10], batch[11], batch[10]], ["q"], 0, lease=30)
    assert done == [True, True, False]
    assert broker.ack_many([batch[12], batch[12]]) == [True, False]
    clock.advance(31)
    broker.recover_expired()  # batch[13:] go back: their tokens are stale from now on
    again = broker.reserve(["q"], 40, lease=30)
    assert sorted(ids(again)) == sorted(f"m{i}" for i in [*range(13, 20), *range(20, 40)])
    done, _ = broker.ack_and_reserve([*batch[13:16], *again[:3]], ["q"], 0, lease=30)
    assert done == [False] * 3 + [True] * 3
    assert broker.ack_many([again[3], batch[16], again[4]]) == [True, False, True]
    assert broker.stats() == {"q": QueueStats(reserved=len(again) - 5)}


def test_batch_publish_of_ten_thousand(broker: Broker) -> None:
    broker.publish([env(f"m{i}") for i in range(10_000)])
    assert broker.stats() == {"q": QueueStats(ready=10_000)}
    got = broker.reserve(["q"], 10_000, lease=30)
    assert ids(got) == [f"m{i}" for i in range(10_000)]


def test_empty_publish_is_a_no_op(broker: Broker) -> None:
    broker.publish([])
    assert broker.stats() == {}


def test_duplicate_id_is_ignored(broker: Broker, clock: FakeClock) -> None:
    broker.publish([Envelope("dup", "q", b"first"), Envelope("dup", "q", b"second")])
    broker.publish_one(Envelope("dup", "other", b"third"))
    if type(broker).__name__ == "ClusterBroker":
        # On Redis Cluster an id is unique within its queue, whose keys are one slot: the
        # same id sent to another queue is a second message there (docs/brokers.md).
        assert broker.stats()["other"] == QueueStats(ready=1)
        assert broker.purge("other") == 1
    assert broker.stats() == {"q": QueueStats(ready=1)}
    [d] = broker.reserve(["q", "other"], 10, lease=30)
    assert d.body == b"first"
    broker.publish_one(Envelope("dup", "q", b"while reserved"))
    assert broker.stats() == {"q": QueueStats(reserved=1)}

    broker.publish_one(env("later", eta=clock() + 60))
    broker.publish_one(env("later"))
    assert broker.stats()["q"] == QueueStats(delayed=1, reserved=1)


def test_higher_priority_first_then_fifo(broker: Broker) -> None:
    order = [("a", 0), ("b", 9), ("c", 5), ("d", 9), ("e", 0), ("f", 5)]
    broker.publish([env(i, priority=p) for i, p in order])
    one_by_one = [broker.reserve(["q"], 1, lease=30)[0].id for _ in order]
    assert one_by_one == ["b", "d", "c", "f", "a", "e"]


def test_messages_sent_one_by_one_keep_their_priorities(broker: Broker) -> None:
    """A delay() sends one message a call (Redis: the publish script's one-message path)."""
    order = [("a", 0), ("b", 9), ("c", 5), ("d", 9), ("e", 0), ("f", 5), ("g", 1)]
    for i, p in order:
        broker.publish_one(env(i, priority=p))
    got = [broker.reserve(["q"], 1, lease=30)[0] for _ in order]
    expected = sorted(order, key=lambda m: -m[1])  # by priority, then in the order sent
    assert [(d.id, d.priority) for d in got] == expected


def test_priority_order_within_one_batch(broker: Broker) -> None:
    broker.publish([env(str(i), priority=i % 10) for i in range(30)])
    got = broker.reserve(["q"], 30, lease=30)
    assert [(d.priority, int(d.id)) for d in got] == sorted(
        ((i % 10, i) for i in range(30)), key=lambda t: (-t[0], t[1])
    )


def test_only_the_queues_asked_for_are_delivered(broker: Broker) -> None:
    broker.publish([env("a1", "a"), env("b1", "b"), env("c1", "c"), env("a2", "a")])
    got = broker.reserve(["a", "b"], 10, lease=30)
    assert sorted(ids(got)) == ["a1", "a2", "b1"]
    assert {d.queue for d in got} == {"a", "b"}
    assert broker.reserve(["a", "b"], 10, lease=30) == []
    assert broker.stats()["c"] == QueueStats(ready=1)
    assert ids(broker.reserve(["c"], 10, lease=30)) == ["c1"]


def test_a_busy_queue_does_not_starve_the_others(broker: Broker) -> None:
    broker.publish([env(f"a{i}", "a") for i in range(10)] + [env("b0", "b")])
    first_two = [broker.reserve(["a", "b"], 1, lease=30)[0].queue for _ in range(2)]
    assert sorted(first_two) == ["a", "b"]


def test_future_eta_waits_in_the_delayed_store(broker: Broker, clock: FakeClock) -> None:
    broker.publish([env("later", eta=clock() + 60), env("past", eta=clock() - 5)])
    assert ids(broker.reserve(["q"], 10, lease=30)) == ["past"]
    assert broker.stats()["q"] == QueueStats(delayed=1, reserved=1)
    clock.advance(59.5)
    assert broker.reserve(["q"], 10, lease=30) == []
    clock.advance(1)
    [d] = broker.reserve(["q"], 10, lease=30)
    assert (d.id, d.body, d.delivery_count) == ("later", b"body-later", 1)


def test_due_messages_keep_eta_order(broker: Broker, clock: FakeClock) -> None:
    now = clock()
    broker.publish(
        [env("third", eta=now + 30), env("first", eta=now + 10), env("second", eta=now + 20)]
    )
    clock.advance(31)
    assert ids(broker.reserve(["q"], 10, lease=30)) == ["first", "second", "third"]


def test_expired_lease_is_recovered_with_a_new_token(broker: Broker, clock: FakeClock) -> None:
    broker.publish_one(env("m"))
    [first] = broker.reserve(["q"], 1, lease=30)
    clock.advance(29)
    assert broker.recover_expired() == 0
    assert broker.reserve(["q"], 1, lease=30) == []
    clock.advance(2)
    assert broker.recover_expired() == 1
    assert broker.recover_expired() == 0
    [second] = broker.reserve(["q"], 1, lease=30)
    assert second.id == "m" and second.body == first.body
    assert second.delivery_count == 2 and second.redelivered
    assert second.token != first.token


def test_stale_token_is_refused_everywhere(broker: Broker, clock: FakeClock) -> None:
    broker.publish_one(env("m"))
    [stale] = broker.reserve(["q"], 1, lease=10)
    clock.advance(11)
    broker.recover_expired()
    [owner] = broker.reserve(["q"], 1, lease=10)

    assert broker.ack(stale) is False
    assert broker.nack(stale) is False
    assert broker.nack(stale, delay=5) is False
    assert broker.dead_letter(stale, "stale") is False
    assert broker.extend([stale, owner], lease=10) == [False, True]
    assert broker.stats() == {"q": QueueStats(reserved=1)}
    assert broker.dead_letters() == []

    assert broker.ack(owner) is True
    assert broker.stats() == {}


def test_token_is_refused_once_recovered_even_before_redelivery(
    broker: Broker, clock: FakeClock
) -> None:
    broker.publish_one(env("m"))
    [d] = broker.reserve(["q"], 1, lease=10)
    clock.advance(11)
    assert broker.recover_expired() == 1
    assert broker.ack(d) is False
    assert broker.stats() == {"q": QueueStats(ready=1)}


def test_extend_keeps_a_message_from_being_recovered(broker: Broker, clock: FakeClock) -> None:
    broker.publish_one(env("m"))
    [d] = broker.reserve(["q"], 1, lease=10)
    clock.advance(8)
    assert broker.extend([d], lease=10) == [True]
    clock.advance(5)
    assert broker.recover_expired() == 0
    assert broker.ack(d) is True


def test_extended_lease_still_expires(broker: Broker, clock: FakeClock) -> None:
    broker.publish_one(env("m"))
    [d] = broker.reserve(["q"], 1, lease=10)
    assert broker.extend([d], lease=20) == [True]
    clock.advance(21)
    assert broker.recover_expired() == 1


def test_nack_requeues_now(broker: Broker) -> None:
    broker.publish([env("m"), env("n")])
    [d] = broker.reserve(["q"], 1, lease=30)
    assert broker.nack(d) is True
    assert broker.nack(d) is False
    assert broker.stats() == {"q": QueueStats(ready=2)}
    again = broker.reserve(["q"], 2, lease=30)
    assert ids(again) == ["m", "n"]
    assert again[0].delivery_count == 1 and again[0].token != d.token
    assert broker.ack(d) is False
    assert broker.ack(again[0]) is True


def test_nack_many_gives_a_batch_back_in_place_uncounted(broker: Broker) -> None:
    broker.publish([env("m"), env("n", priority=5), env("o"), env("p")])
    held = broker.reserve(["q"], 3, lease=30)
    assert ids(held) == ["n", "m", "o"]
    stale = held[0]
    assert broker.ack(stale) is True
    assert broker.nack_many(held) == [False, True, True]
    assert broker.stats() == {"q": QueueStats(ready=3)}
    again = broker.reserve(["q"], 3, lease=30)
    assert ids(again) == ["m", "o", "p"]
    assert [d.delivery_count for d in again] == [1, 1, 1]


def test_nack_with_delay_goes_to_the_delayed_store(broker: Broker, clock: FakeClock) -> None:
    broker.publish_one(env("m"))
    [d] = broker.reserve(["q"], 1, lease=30)
    assert broker.nack(d, delay=30) is True
    assert broker.stats() == {"q": QueueStats(delayed=1)}
    clock.advance(29)
    assert broker.reserve(["q"], 1, lease=30) == []
    clock.advance(1)
    [again] = broker.reserve(["q"], 1, lease=30)
    assert (again.id, again.delivery_count) == ("m", 1)


def test_dead_letters(broker: Broker, clock: FakeClock) -> None:
    broker.publish([env("m", priority=7), env("n", "other")])
    [d] = broker.reserve(["q"], 1, lease=30)
    assert broker.dead_letter(d, "boom") is True
    assert broker.dead_letter(d, "again") is False
    failed_at = clock()
    clock.advance(1)
    [e] = broker.reserve(["other"], 1, lease=30)
    broker.dead_letter(e, "bang")
    assert broker.stats() == {}
    assert broker.dead_letters() == [
        DeadLetter("m", "q", b"body-m", 7, "boom", failed_at),
        DeadLetter("n", "other", b"body-n", 0, "bang", failed_at + 1),
    ]
    assert [x.id for x in broker.dead_letters(limit=1)] == ["m"]

    assert broker.requeue_dead_letters(["m", "missing"]) == 1
    assert [x.id for x in broker.dead_letters()] == ["n"]
    [back] = broker.reserve(["q"], 1, lease=30)
    assert (back.id, back.body, back.priority, back.delivery_count) == ("m", b"body-m", 7, 1)
    broker.dead_letter(back, "boom twice")

    assert broker.requeue_dead_letters() == 2
    assert broker.dead_letters() == []
    assert broker.stats() == {"other": QueueStats(ready=1), "q": QueueStats(ready=1)}

    for d in broker.reserve(["q", "other"], 2, lease=30):
        broker.dead_letter(d, "final")
    assert broker.purge_dead_letters(["n"]) == 1
    assert [x.id for x in broker.dead_letters()] == ["m"]
    assert broker.purge_dead_letters() == 1
    assert broker.dead_letters() == []
    assert broker.stats() == {}


def test_a_resent_dead_letter_is_a_new_attempt(broker: Broker, clock: FakeClock) -> None:
    broker.publish([env("m")])
    broker.reserve(["q"], 1, lease=30)
    clock.advance(31)
    broker.recover_expired()
    [second] = broker.reserve(["q"], 1, lease=30)
    assert (second.delivery_count, second.resends) == (2, 0)
    broker.dead_letter(second, "gave up")
    assert [x.resends for x in broker.dead_letters()] == [0]

    # Re-sent: its delivery count starts again, its re-send count goes up.
    assert broker.requeue_dead_letters(["m"]) == 1
    [first] = broker.reserve(["q"], 1, lease=30)
    assert (first.delivery_count, first.resends) == (1, 1)
    # A re-send is kept through nacks, delays and lease expiry.
    broker.nack(first, delay=5)
    clock.advance(6)
    [again] = broker.reserve(["q"], 1, lease=30)
    assert (again.delivery_count, again.resends) == (1, 1)
    clock.advance(31)
    broker.recover_expired()
    [later] = broker.reserve(["q"], 1, lease=30)
    assert (later.delivery_count, later.resends) == (2, 1)
    # The token still fences: the holder of the first delivery of the re-send is refused.
    assert broker.ack(again) is False
    broker.dead_letter(later, "gave up again")
    assert [x.resends for x in broker.dead_letters()] == [1]

    assert broker.requeue_dead_letters() == 1
    [third] = broker.reserve(["q"], 1, lease=30)
    assert (third.delivery_count, third.resends) == (1, 2)
    assert broker.ack(third) is True
    # The id sent afresh is a message of its own: no re-sends.
    broker.publish([env("m")])
    [fresh] = broker.reserve(["q"], 1, lease=30)
    assert (fresh.delivery_count, fresh.resends) == (1, 0)


def test_purge_one_queue_or_all(broker: Broker, clock: FakeClock) -> None:
    later = clock() + 60
    broker.publish([env("a1", "a"), env("a2", "a", eta=later), env("a3", "a")])
    broker.publish([env("b1", "b"), env("b2", "b", eta=later)])
    [reserved] = broker.reserve(["a"], 1, lease=30)
    assert broker.purge("a") == 2
    assert broker.stats() == {"a": QueueStats(reserved=1), "b": QueueStats(ready=1, delayed=1)}
    assert broker.purge("nothing-here") == 0
    assert broker.purge() == 2
    assert broker.stats() == {"a": QueueStats(reserved=1)}
    assert broker.ack(reserved) is True
    clock.advance(61)
    assert broker.reserve(["a", "b"], 10, lease=30) == []


def test_stats_per_queue(broker: Broker, clock: FakeClock) -> None:
    assert broker.stats() == {}
    broker.publish([env(f"a{i}", "a") for i in range(5)])
    broker.publish([env(f"b{i}", "b", eta=clock() + 10) for i in range(3)])
    broker.publish_one(env("c0", "c"))
    broker.reserve(["a"], 2, lease=30)
    stats = broker.stats()
    assert stats == {
        "a": QueueStats(ready=3, reserved=2),
        "b": QueueStats(delayed=3),
        "c": QueueStats(ready=1),
    }
    assert stats["a"].total == 5


def test_delayed_and_peek_show_messages_without_taking_them(
    broker: Broker, clock: FakeClock
) -> None:
    now = clock()
    broker.publish([env("late", eta=now + 30, priority=4), env("soon", eta=now + 10)])
    broker.publish([env("other", "o", eta=now + 20), env("ready")])
    broker.publish_one(env("alone", "o", eta=now + 40))
    assert broker.delayed(["q", "o", "nothing"]) == [
        Peeked("soon", "q", b"body-soon", 0, now + 10),
        Peeked("other", "o", b"body-other", 0, now + 20),
        Peeked("late", "q", b"body-late", 4, now + 30),
        Peeked("alone", "o", b"body-alone", 0, now + 40),
    ]
    assert [p.id for p in broker.delayed(["q", "o"], limit=2)] == ["soon", "other"]
    assert [p.id for p in broker.delayed(["o"])] == ["other", "alone"]
    assert broker.delayed([]) == [] and broker.delayed(["q"], limit=0) == []

    [held] = broker.reserve(["q"], 1, lease=30)
    assert broker.peek([("q", "ready"), ("q", "gone"), ("q", "late")]) == [
        Peeked("ready", "q", b"body-ready", 0),
        Peeked("late", "q", b"body-late", 4, now + 30),
    ]
    assert broker.peek([]) == []
    assert broker.stats() == {"o": QueueStats(delayed=2), "q": QueueStats(delayed=2, reserved=1)}
    assert broker.ack(held)
    assert broker.peek([("q", "ready")]) == []
    clock.advance(15)
    assert [d.id for d in broker.reserve(["q"], 10, lease=30)] == ["soon"]
    assert [p.id for p in broker.delayed(["q"])] == ["late"]


def test_wait_times_out_when_nothing_happens(broker: Broker) -> None:
    assert broker.reserve(["q"], 1, lease=30) == []
    started = time.monotonic()
    broker.wait(0.05)
    assert 0.04 <= time.monotonic() - started < 1


def test_wait_wakes_on_publish_from_another_thread(broker: Broker) -> None:
    assert broker.reserve(["q"], 1, lease=30) == []
    timer = threading.Timer(0.05, broker.publish_one, (env("m"),))
    timer.start()
    started = time.monotonic()
    broker.wait(10)
    elapsed = time.monotonic() - started
    timer.join()
    assert elapsed < 2
    assert ids(broker.reserve(["q"], 1, lease=30)) == ["m"]


def test_wait_returns_at_once_for_a_publish_since_the_last_reserve(broker: Broker) -> None:
    assert broker.reserve(["q"], 1, lease=30) == []
    publisher = threading.Thread(target=broker.publish_one, args=(env("m"),))
    publisher.start()
    publisher.join()
    started = time.monotonic()
    broker.wait(10)
    assert time.monotonic() - started < 2


def test_wait_returns_when_a_delayed_message_is_due(broker: Broker, clock: FakeClock) -> None:
    broker.publish_one(env("m", eta=clock() + 10))
    assert broker.reserve(["q"], 1, lease=30) == []
    clock.advance(10)
    started = time.monotonic()
    broker.wait(10)
    assert time.monotonic() - started < 2
    assert ids(broker.reserve(["q"], 1, lease=30)) == ["m"]


# --- URLs ---------------------------------------------------------------------------------


def test_broker_from_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = broker_from_url("memory://"), broker_from_url("memory://")
    assert isinstance(first, MemoryBroker) and first is not second
    assert first.url == "memory://"
    monkeypatch.chdir(tmp_path)
    relative = broker_from_url("sqlite:///sub.db")
    assert isinstance(relative, SQLiteBroker) and relative.url == "sqlite:///sub.db"
    assert (tmp_path / "sub.db").exists()
    default = broker_from_url("sqlite://")
    assert (tmp_path / "conveyor.db").exists()
    absolute = broker_from_url(f"sqlite:///{tmp_path}/abs.db?timeout=5")
    assert absolute.path == f"{tmp_path}/abs.db"  # type: ignore[attr-defined]
    for b in (relative, default, absolute):
        b.close()


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("amqp://localhost", "known schemes: memory://, sqlite://"),
        ("nonsense", "known schemes"),
        ("sqlite://host/x.db", "no host"),
        ("sqlite:///x.db?bogus=1", "bogus"),
        ("sqlite:///x.db?timeout=soon", "timeout"),
        ("sqlite:///x.db?synchronous=off", "bad synchronous='off'"),
        ("sqlite:///x.db?synchronous=off", "valid choices: normal, full"),
        ("sqlite:///:memory:", "memory://"),
    ],
)
def test_bad_broker_urls(url: str, hint: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=re.escape(hint)) as info:
        broker_from_url(url)
    assert url in str(info.value)


def test_redis_url_without_redis_support(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "conveyor.brokers.redis", None)
    with pytest.raises(
        ImproperlyConfigured, match=re.escape("pip install 'conveyor-tasks[redis]'")
    ):
        broker_from_url("redis://localhost:6379/0")


# --- SQLite only ---------------------------------------------------------------------------


def test_two_sqlite_instances_never_reserve_the_same_message(tmp_path: Path) -> None:
    """Two brokers on one file stand in for two processes, each publishing and consuming."""
    path = tmp_path / "shared.db"
    SQLiteBroker(path).close()
    taken: list[list[str]] = [[], []]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def take(broker: Broker, slot: int) -> bool:
        batch = broker.reserve(["q"], 7, lease=300)
        for d in batch:
            assert broker.ack(d)
            taken[slot].append(d.id)
        return bool(batch)

    def hammer(slot: int) -> None:
        try:
            with SQLiteBroker(path) as broker:
                start.wait()
                for i in range(0, 2000, 10):
                    broker.publish([env(f"{slot}-{n}") for n in range(i, i + 10)])
                    take(broker, slot)
                while take(broker, slot):
                    pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(slot,)) for slot in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    everything = taken[0] + taken[1]
    assert len(everything) == 4000
    assert set(everything) == {f"{slot}-{n}" for slot in range(2) for n in range(2000)}
    assert taken[0] and taken[1]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_sqlite_broker_works_in_a_forked_child(tmp_path: Path) -> None:
    broker = SQLiteBroker(tmp_path / "fork.db")
    broker.publish([env("from-parent")])
    parent_connection = broker._db.connection()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            fresh = broker._db.connection() is not parent_connection
            [d] = broker.reserve(["q"], 1, lease=30)
            broker.publish_one(env("from-child"))
            code = 0 if fresh and d.id == "from-parent" and broker.ack(d) else 2
            broker.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert ids(broker.reserve(["q"], 10, lease=30)) == ["from-child"]
    assert broker._db.connection() is parent_connection
    broker.close()


def test_sqlite_locked_past_the_timeout_raises_broker_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    broker = SQLiteBroker(path, timeout=0.05)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(BrokerError, match=r"locked\.db"):
            broker.publish([env("a"), env("b")])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    broker.publish([env("a"), env("b")])
    assert broker.stats() == {"q": QueueStats(ready=2)}
    broker.close()


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    SQLiteBroker(path).close()
    with sqlite3.connect(path) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute(f"PRAGMA user_version={version + 1}")
    with pytest.raises(BrokerError, match="newer"):
        SQLiteBroker(path)


def pragma_synchronous(store: Any) -> int:
    """The ``PRAGMA synchronous`` of a SQLite store's connection: 1 NORMAL, 2 FULL."""
    level: int = store._db.connection().execute("PRAGMA synchronous").fetchone()[0]
    return level


@pytest.mark.parametrize(
    ("query", "level"),
    [
        ("", 1),
        ("?synchronous=normal", 1),
        ("?synchronous=full", 2),
        ("?timeout=5&synchronous=FULL", 2),
    ],
)
def test_sqlite_synchronous_from_the_url(tmp_path: Path, query: str, level: int) -> None:
    broker = broker_from_url(f"sqlite:///{tmp_path}/durable.db{query}")
    assert pragma_synchronous(broker) == level
    broker.close()


def test_sqlite_synchronous_reaches_every_store_of_an_app(tmp_path: Path) -> None:
    """Results, coordination and schedules default to the broker's URL, option included."""
    from conveyor import Conveyor
    from conveyor.beat.store import store_from_url

    url = f"sqlite:///{tmp_path}/durable.db?synchronous=full"
    app = Conveyor("durable", broker=url, set_as_current=False)
    schedules = store_from_url(url)
    assert [pragma_synchronous(s) for s in (app.broker, app.backend, app.coordinator)] == [2] * 3
    assert pragma_synchronous(schedules) == 2
    schedules.close()
    app.close()


def test_sqlite_synchronous_refuses_an_unknown_mode(tmp_path: Path) -> None:
    with pytest.raises(
        ImproperlyConfigured, match=re.escape("'extra'; valid choices: normal, full")
    ):
        SQLiteBroker(tmp_path / "x.db", synchronous="extra")


def test_sqlite_upgrades_a_version_1_file_in_place(tmp_path: Path) -> None:
    """A file written before re-sends were counted keeps its messages and dead letters."""
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE conveyor_messages (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
                queue TEXT NOT NULL, priority INTEGER NOT NULL, body BLOB NOT NULL, token TEXT,
                lease_until REAL, delivery_count INTEGER NOT NULL);
            CREATE TABLE conveyor_delayed (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
                queue TEXT NOT NULL, priority INTEGER NOT NULL, body BLOB NOT NULL,
                delivery_count INTEGER NOT NULL, eta REAL NOT NULL);
            CREATE TABLE conveyor_dead_letters (id TEXT PRIMARY KEY, queue TEXT NOT NULL,
                priority INTEGER NOT NULL, body BLOB NOT NULL, reason TEXT NOT NULL,
                failed_at REAL NOT NULL);
            INSERT INTO conveyor_messages (id, queue, priority, body, delivery_count)
                VALUES ('ready', 'q', 0, x'01', 0);
            INSERT INTO conveyor_dead_letters VALUES ('dead', 'q', 0, x'02', 'boom', 1.0);
            PRAGMA user_version = 1;
            """
        )
    conn.close()
    broker = SQLiteBroker(path)
    assert broker.dead_letters() == [DeadLetter("dead", "q", b"\x02", 0, "boom", 1.0)]
    assert broker.requeue_dead_letters() == 1
    got = broker.reserve(["q"], 2, lease=30)
    assert [(d.id, d.delivery_count, d.resends) for d in got] == [("ready", 1, 0), ("dead", 1, 1)]
    broker.close()
    SQLiteBroker(path).close()  # opened again: at version 2 already, nothing to upgrade


def test_sqlite_delayed_rows_do_not_slow_the_ready_path(tmp_path: Path) -> None:
    clock = FakeClock(START)
    broker = SQLiteBroker(tmp_path / "delayed.db", clock=clock)
    far = clock() + 3600
    broker.publish([env(f"d{i}", eta=far) for i in range(50_000)])
    broker.publish([env(f"r{i}") for i in range(100)])
    started = time.perf_counter()
    got = [d for _ in range(100) for d in broker.reserve(["q"], 1, lease=30)]
    assert len(got) == 100
    assert time.perf_counter() - started < 1.0
    broker.close()
