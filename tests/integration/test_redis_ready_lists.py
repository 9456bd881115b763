"""The Redis broker's layout beyond the broker contract (``broker_prelude.lua``).

Ready messages of priority 0 (the default) live in a list, the rest in a sorted set:
``take_ready`` takes the sorted set first (every priority above 0, then priority 0 ids
given back: nacked, or their lease expired, so older than the list's) and then the list.
These tests pin the order a worker sees in the mixes the two structures allow, and that a
queue left by a version before the list (every ready id in the sorted set) is still
served, oldest first, ahead of what is sent after the upgrade.

A delivered message's state (lease token, delivery count, priority, ready score, queue)
is a field of one hash, ``<prefix>t``: a batch leaves no key per message behind it, and a
lease that an earlier build's worker took (its state in a hash ``<prefix>m:<id>``) still
comes back when it expires, counting its delivery.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

redis = pytest.importorskip("redis")

from conveyor.brokers import Envelope  # noqa: E402
from conveyor.brokers.redis import RedisBroker  # noqa: E402
from conveyor.testing import FakeClock  # noqa: E402

SHIFT = 2**49
"""The ready score's priority step (broker_prelude.lua)."""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def broker(redis_url: str, redis_prefix: str, clock: FakeClock) -> Iterator[RedisBroker]:
    b = RedisBroker(redis_url, prefix=redis_prefix, clock=clock)
    yield b
    b.close()


def send(broker: RedisBroker, *ids: str, priority: int = 0, eta: float | None = None) -> None:
    broker.publish([Envelope(i, "q", f"body-{i}".encode(), priority, eta) for i in ids])


def order(broker: RedisBroker, count: int = 100) -> list[str]:
    return [d.id for d in broker.reserve(["q"], count, 30.0)]


def test_given_back_messages_go_before_newer_ones_of_their_priority(broker: RedisBroker) -> None:
    send(broker, "a", "b", "c", "d", priority=5)
    taken = broker.reserve(["q"], 3, 30.0)
    assert [d.id for d in taken] == ["a", "b", "c"]
    # given back out of order, they keep the order they were sent in, ahead of "d"
    assert broker.nack(taken[2]) and broker.nack(taken[0])
    assert order(broker, 2) == ["a", "c"]
    assert broker.nack(taken[1])
    assert order(broker) == ["b", "d"]


def test_a_higher_priority_comes_first_whatever_structure_holds_it(broker: RedisBroker) -> None:
    send(broker, "low1", "low2", priority=1)
    low = broker.reserve(["q"], 1, 30.0)[0]
    assert broker.nack(low)  # given back: in the sorted set now
    send(broker, "high", priority=9)
    send(broker, "mid", priority=5)
    send(broker, "low3", priority=1)
    assert order(broker) == ["high", "mid", "low1", "low2", "low3"]


def test_expired_leases_come_back_in_the_order_they_were_sent(
    broker: RedisBroker, clock: FakeClock
) -> None:
    send(broker, *[f"m{i}" for i in range(6)], priority=3)
    assert order(broker, 4) == ["m0", "m1", "m2", "m3"]
    clock.advance(31.0)
    assert broker.recover_expired() == 4
    send(broker, "late", priority=3)
    assert order(broker) == ["m0", "m1", "m2", "m3", "m4", "m5", "late"]


def test_a_delayed_message_that_comes_due_queues_behind_the_ready_ones(
    broker: RedisBroker, clock: FakeClock
) -> None:
    send(broker, "later", eta=clock() + 10)
    send(broker, "now1", "now2")
    clock.advance(11.0)
    send(broker, "sent-before-the-move")
    # a reserve moves it, behind everything ready then, and takes it in the same call
    assert order(broker, 4) == ["now1", "now2", "sent-before-the-move", "later"]
    send(broker, "after-the-move")
    assert order(broker) == ["after-the-move"]
    assert broker.stats()["q"].ready == 0


def test_stats_and_purge_count_the_lists_and_the_set(broker: RedisBroker) -> None:
    send(broker, "a", "b", priority=2)
    send(broker, "c", priority=7)
    taken = broker.reserve(["q"], 1, 30.0)[0]
    assert taken.id == "c"
    assert broker.nack(taken)
    stats = broker.stats()["q"]
    assert (stats.ready, stats.delayed, stats.reserved) == (3, 0, 0)
    assert broker.purge("q") == 3
    assert broker.stats() == {}
    assert broker.contains(["a", "b", "c"]) == set()


def test_a_queue_from_before_the_lists_is_served_oldest_first(
    broker: RedisBroker, raw: Any, redis_prefix: str
) -> None:
    # what a version before the lists left: bodies in P.."b", ready ids in the sorted set
    old = {"old-high": (8, 2), "old-1": (4, 1), "old-2": (4, 3)}
    for id_, (priority, seq) in old.items():
        raw.hset(f"{redis_prefix}b", id_, f"{priority}body")
        raw.zadd(f"{redis_prefix}q:q", {id_: (9 - priority) * SHIFT + seq})
    raw.sadd(f"{redis_prefix}queues", "q")
    raw.set(f"{redis_prefix}seq", 3)
    send(broker, "new-4", priority=4)
    send(broker, "new-9", priority=9)
    assert broker.stats()["q"].ready == 5
    taken = broker.reserve(["q"], 10, 30.0)
    assert [d.id for d in taken] == ["new-9", "old-high", "old-1", "old-2", "new-4"]
    assert taken[1].body == b"body" and taken[1].priority == 8
    assert broker.ack_many(taken) == [True] * 5
    assert broker.stats() == {}


def test_a_batch_is_leased_and_acked_without_a_key_per_message(
    broker: RedisBroker, raw: Any, redis_prefix: str
) -> None:
    broker.publish([Envelope(f"m{i}", "q", b"body", 0, None) for i in range(300)])
    before = {k for k in raw.scan_iter(match=f"{redis_prefix}*", count=1000)}
    taken = broker.reserve(["q"], 300, 30.0)
    assert len(taken) == 300 and all(d.delivery_count == 1 for d in taken)
    during = {k for k in raw.scan_iter(match=f"{redis_prefix}*", count=1000)}
    assert during - before <= {f"{redis_prefix}{name}".encode() for name in ("t", "l:q", "seq")}
    assert all(broker.ack_many(taken))
    assert broker.stats() == {}
    assert raw.hlen(f"{redis_prefix}t") <= 1  # at most the field that keeps it a hash table


def test_a_lease_taken_by_an_earlier_build_comes_back_when_it_expires(
    broker: RedisBroker, raw: Any, redis_prefix: str, clock: FakeClock
) -> None:
    # what an earlier build left while its worker held "old" (delivered twice) and died
    raw.hset(f"{redis_prefix}b", "old", b"0" + b"old body")
    raw.hset(f"{redis_prefix}m:old", mapping={"q": "q", "p": 0, "n": 2, "s": 5, "t": "gone"})
    raw.zadd(f"{redis_prefix}l:q", {"old": clock() + 10})
    raw.sadd(f"{redis_prefix}queues", "q")
    assert broker.reserve(["q"], 10, 30.0) == []
    clock.advance(11)
    assert broker.recover_expired() == 1
    [again] = broker.reserve(["q"], 10, 30.0)
    assert (again.id, again.body, again.delivery_count) == ("old", b"old body", 3)
    assert not raw.exists(f"{redis_prefix}m:old")
    assert broker.ack(again)
    assert broker.stats() == {}
