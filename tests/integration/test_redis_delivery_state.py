"""A delivered message's state (lease token, delivery count, priority, ready score, queue)
is a field of one hash, ``<prefix>t``, not a key per message (``broker_prelude.lua``).

These tests pin what that layout promises beyond the broker contract: a batch leaves no
key per message behind it, and a lease that an earlier build's worker took (its state in
a hash ``<prefix>m:<id>``) still comes back when it expires, counting its delivery.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

redis = pytest.importorskip("redis")

from conveyor.brokers import Envelope  # noqa: E402
from conveyor.brokers.redis import RedisBroker  # noqa: E402
from conveyor.testing import FakeClock  # noqa: E402


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def broker(redis_url: str, redis_prefix: str, clock: FakeClock) -> Iterator[RedisBroker]:
    b = RedisBroker(redis_url, prefix=redis_prefix, clock=clock)
    yield b
    b.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[Any]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


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
