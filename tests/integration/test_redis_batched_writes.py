"""The Redis scripts that handle a batch in one pass keep each item's own rules.

``broker_reserve.lua`` and ``broker_ack_many.lua`` ack a batch with one variadic delete per
key kind (and a reservation keeps its queue's lease set a skiplist), and
``backend_set_fenced_many.lua`` writes each value with ``SET ... NX`` first (reading a
fence only for a key that exists) and looks for waiters with one ``EXISTS`` for the
batch; these tests pin what a caller sees in the cases where a batch differs from the
same items one by one: an id or a key given twice, a mix of fresh and existing keys, and
acks of several queues at once.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

redis = pytest.importorskip("redis")

from conveyor.backends.redis import RedisBackend  # noqa: E402
from conveyor.brokers import Envelope  # noqa: E402
from conveyor.brokers.redis import RedisBroker  # noqa: E402
from conveyor.testing import FakeClock  # noqa: E402


@pytest.fixture
def broker(redis_url: str, redis_prefix: str) -> Iterator[RedisBroker]:
    b = RedisBroker(redis_url, prefix=redis_prefix)
    yield b
    b.close()


@pytest.fixture
def backend(redis_url: str, redis_prefix: str) -> Iterator[RedisBackend]:
    b = RedisBackend(redis_url, prefix=redis_prefix)
    yield b
    b.close()


def test_an_id_acked_twice_in_one_batch_counts_once(broker: RedisBroker) -> None:
    broker.publish([Envelope(f"m{i}", "q", b"x", 0, None) for i in range(3)])
    taken = broker.reserve(["q"], 3, 30.0)
    first = taken[0]
    assert broker.ack_many([first, taken[1], first]) == [True, True, False]
    assert broker.contains([d.id for d in taken]) == {taken[2].id}


def test_acks_of_several_queues_free_each_queue_and_refuse_stale_tokens(
    broker: RedisBroker,
) -> None:
    broker.publish([Envelope("a1", "a", b"x", 0, None), Envelope("b1", "b", b"x", 0, None)])
    a = broker.reserve(["a"], 1, 30.0)[0]
    b = broker.reserve(["b"], 1, 30.0)[0]
    stale = dataclasses.replace(a, token="not-the-token")
    acked, taken = broker.ack_and_reserve([stale, b, a], ["a", "b"], 4, 30.0)
    assert (acked, taken) == ([False, True, True], [])
    stats = broker.stats()
    assert all(s.reserved == 0 for s in stats.values())


def test_a_lease_set_stays_a_skiplist_and_its_keeper_is_never_counted_nor_due(
    redis_url: str, redis_prefix: str, raw: Any
) -> None:
    """A small sorted set is a listpack, which Redis scans on every insert and delete;
    the keeper member makes a queue's lease set a skiplist at its first batch."""
    clock = FakeClock()
    broker = RedisBroker(redis_url, prefix=redis_prefix, clock=clock)
    try:
        broker.publish([Envelope(f"m{i}", "q", b"x", 0, None) for i in range(3)])
        taken = broker.reserve(["q"], 3, 10.0)
        assert raw.object("encoding", f"{redis_prefix}l:q") == b"skiplist"
        assert broker.stats()["q"].reserved == 3
        assert broker.ack_many(taken) == [True] * 3
        assert "q" not in broker.stats()  # nothing ready, delayed or reserved
        clock.advance(1e9)
        assert broker.recover_expired() == 0
        broker.publish([Envelope("again", "q", b"x", 0, None)])
        assert [d.id for d in broker.reserve(["q"], 3, 10.0)] == ["again"]
        assert raw.object("encoding", f"{redis_prefix}l:q") == b"skiplist"
    finally:
        broker.close()


def test_a_redelivery_counts_up_when_taken_beside_fresh_messages(
    redis_url: str, redis_prefix: str
) -> None:
    clock = FakeClock()
    broker = RedisBroker(redis_url, prefix=redis_prefix, clock=clock)
    try:
        broker.publish([Envelope(f"m{i}", "q", b"x", 0, None) for i in range(4)])
        first = broker.reserve(["q"], 2, 10.0)
        assert [d.delivery_count for d in first] == [1, 1]
        clock.advance(11.0)
        assert broker.recover_expired() == 2
        # two messages delivered before (their state exists) next to two that never were
        again = broker.reserve(["q"], 4, 10.0)
        assert {d.id: d.delivery_count for d in again} == {"m0": 2, "m1": 2, "m2": 1, "m3": 1}
        assert not broker.ack(first[0])  # the old lease's token was dropped
        assert broker.ack_many(again) == [True] * 4
    finally:
        broker.close()


def test_acks_of_interleaved_reservations_go_in_runs_and_keep_their_order(
    broker: RedisBroker, raw: Any, redis_prefix: str
) -> None:
    """Acks travel as runs of one reservation's deliveries of one queue (token, queue,
    count, ids); deliveries of two reservations and two queues interleaved, a stale token
    and an id of another queue's lease in the middle each get their own answer, in order."""
    broker.publish([Envelope(f"a{i}", "a", b"x", 0, None) for i in range(3)])
    broker.publish([Envelope(f"b{i}", "b", b"x", 0, None) for i in range(2)])
    first = broker.reserve(["a"], 2, 30.0)
    second = broker.reserve(["a", "b"], 3, 30.0)
    assert sorted(d.id for d in first + second) == ["a0", "a1", "a2", "b0", "b1"]
    b0 = next(d for d in second if d.id == "b0")
    stale = dataclasses.replace(first[1], token=second[0].token)
    wrong_queue = dataclasses.replace(b0, queue="a")
    acks = [first[0], wrong_queue, stale, first[1], *second]
    assert broker.ack_many(acks) == [True, False, False, True] + [True] * len(second)
    assert broker.contains(["a0", "a1", "a2", "b0", "b1"]) == set()
    for queue in ("a", "b"):  # only the keeper member is left in each lease set
        assert raw.zcard(f"{redis_prefix}l:{queue}") == 1


def test_a_key_written_twice_in_one_batch_keeps_the_fence_and_the_newest_reply(
    backend: RedisBackend, raw: Any, redis_prefix: str
) -> None:
    items = [("k", b"STARTED", 3), ("k", b"SUCCESS", None), ("other", b"SUCCESS", 1)]
    assert backend.set_fenced_many(items, 60.0, replies={"k"}) == [True, True, True]
    assert backend.get("k") == b"SUCCESS"
    assert raw.lrange(f"{redis_prefix}r:k", 0, -1) == [b"SUCCESS"]
    # the fence 3 written first in the batch still refuses an older writer
    assert backend.set_fenced_many([("k", b"OLD", 2), ("x", b"y", None)], 60.0) == [False, True]
    assert backend.get("k") == b"SUCCESS"


def test_a_batch_mixing_fresh_and_existing_keys_reads_the_existing_fences(
    backend: RedisBackend,
) -> None:
    assert backend.set("old", b"v1", 60.0, fence=5)
    written = backend.set_fenced_many([("new", b"n", 1), ("old", b"v0", 4)], 60.0)
    assert written == [True, False]
    assert backend.get("old") == b"v1"
    assert backend.get("new") == b"n"


def test_a_fresh_key_written_in_a_batch_reaches_its_waiter_and_replaces_an_old_reply(
    backend: RedisBackend, raw: Any, redis_prefix: str
) -> None:
    waiter, got = waiting_for(backend, raw, f"{redis_prefix}n:w", "w")
    # a reply nobody took (a failure before a re-send from the dead letters) is replaced
    assert backend.set_fenced_many([("k", b"FAILURE", 1)], 60.0, replies={"k"}) == [True]
    assert backend.set_fenced_many([("w", b"done", 1), ("k", b"OK", 2)], 60.0, {"k"}) == [
        True,
        True,
    ]
    waiter.join(5)
    assert got == [b"done"]
    assert raw.lrange(f"{redis_prefix}r:k", 0, -1) == [b"OK"]


def test_replies_to_one_address_are_one_list_kept_to_the_newest(
    backend: RedisBackend, raw: Any, redis_prefix: str
) -> None:
    items = [(f"t{i}", b"v%d" % i, 1) for i in range(10_005)]
    replies = {key: "sender" for key, _, _ in items} | {"t0": ""}  # t0: its own list
    assert backend.set_fenced_many(items, 60.0, replies) == [True] * len(items)
    addressed = f"{redis_prefix}wl:sender"
    assert raw.llen(addressed) == 10_000  # a sender that never waits holds this many at most
    assert raw.lindex(addressed, -1) == b"6:t10004v10004"
    assert raw.lindex(addressed, 0) == b"2:t5v5"
    assert 0 < raw.pttl(addressed) <= 10_000
    assert raw.lrange(f"{redis_prefix}r:t0", 0, -1) == [b"v0"]
    assert not raw.exists(f"{redis_prefix}r:t1")


def test_a_batch_looks_for_waiters_only_while_a_client_is_registered(
    backend: RedisBackend, raw: Any, redis_prefix: str
) -> None:
    """Registering for a key (a get() from another thread or process) leaves a flag that
    lives as long as the registration; without it a batch of writes checks no key for
    waiters, and with it the registered client is still handed its value."""

    def exists_calls() -> int:
        stats = raw.info("commandstats").get("cmdstat_exists", {})
        return int(stats.get("calls", 0))

    before = exists_calls()
    items = [(f"quiet{i}", b"v", 1) for i in range(50)]
    assert backend.set_fenced_many(items, 60.0, replies={"quiet0"}) == [True] * 50
    assert exists_calls() == before + 1  # the flag alone
    got: list[bytes | None] = []
    waiter = threading.Thread(
        target=lambda: got.append(backend.wait("watched", lambda v: v is not None, 10.0))
    )
    waiter.start()
    deadline = time.monotonic() + 10
    while not raw.exists(f"{redis_prefix}n:watched") and time.monotonic() < deadline:
        time.sleep(0.005)
    assert 0 < raw.pttl(f"{redis_prefix}waiting") <= 60_000
    before = exists_calls()
    assert backend.set_fenced_many([("watched", b"here", 1), ("other", b"x", 1)], 60.0)
    waiter.join(10)
    assert got == [b"here"]
    assert exists_calls() == before + 2  # the flag, then the items' n: keys


def test_one_item_keeps_every_rule_of_a_batch(
    backend: RedisBackend, raw: Any, redis_prefix: str
) -> None:
    """A lone outcome with a reply (a round trip's) takes a straight path through the
    script: the same fences, replies, waiters and task index as an item of a batch."""
    key = "conveyor-task-lone"
    assert backend.set_fenced_many([(key, b"SUCCESS", 2)], 60.0, {key: "sender"}) == [True]
    assert raw.lrange(f"{redis_prefix}wl:sender", 0, -1) == [
        b"%d:%sSUCCESS" % (len(key), key.encode())
    ]
    assert 0 < raw.pttl(f"{redis_prefix}wl:sender") <= 10_000
    assert 59_000 < raw.pttl(f"{redis_prefix}v:{key}") <= 60_000
    listed = [name for ix in raw.scan_iter(f"{redis_prefix}ix:*") for name in raw.lrange(ix, 0, -1)]
    assert listed == [key.encode()]
    # an older writer (a frozen worker's late outcome) is refused, and replies nothing
    assert backend.set_fenced_many([(key, b"LATE", 1)], 60.0, {key: "1"}) == [False]
    assert backend.get(key) == b"SUCCESS"
    assert not raw.exists(f"{redis_prefix}r:{key}")
    # a newer one overwrites it, replacing a reply nobody took on the key's own list
    assert backend.set_fenced_many([("k", b"FAILURE", 1)], 60.0, replies={"k"}) == [True]
    assert backend.set_fenced_many([("k", b"OK", 2)], 60.0, replies={"k"}) == [True]
    assert raw.lrange(f"{redis_prefix}r:k", 0, -1) == [b"OK"]
    assert backend.set_fenced_many([(key, b"AGAIN", 3)], 60.0, {key: "sender"}) == [True]
    assert backend.get(key) == b"AGAIN"
    listed = [name for ix in raw.scan_iter(f"{redis_prefix}ix:*") for name in raw.lrange(ix, 0, -1)]
    assert listed == [key.encode()]  # listed once, at its first write
    # a client blocked in wait() is handed the value by a lone write
    waiter, got = waiting_for(backend, raw, f"{redis_prefix}n:w", "w")
    assert backend.set_fenced_many([("w", b"done", 1)], 60.0, {"w"}) == [True]
    assert not raw.exists(f"{redis_prefix}n:w")  # the write pushed to its waiters
    waiter.join(5)
    assert got == [b"done"]
    # a zero TTL deletes the key, as in a batch
    assert backend.set_fenced_many([("w", b"gone", 2)], 0.0, {"w"}) == [True]
    assert backend.get("w") is None


def waiting_for(
    backend: RedisBackend, raw: Any, registration: str, key: str
) -> tuple[threading.Thread, list[bytes | None]]:
    """A thread blocked in ``backend.wait(key)``, once its registration exists; what it got."""
    got: list[bytes | None] = []
    waiter = threading.Thread(target=lambda: got.append(backend.wait(key, bool, 10.0)))
    waiter.start()
    deadline = time.monotonic() + 5
    while not raw.exists(registration) and time.monotonic() < deadline:
        time.sleep(0.005)
    return waiter, got
