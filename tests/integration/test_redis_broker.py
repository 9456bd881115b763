"""Redis-specific behaviour of the broker, backend and coordinator, against private
redis-servers: URLs and credentials, Redis's clock, round trips, blocking without polling,
TTLs, outages, fork safety and the configuration check. The shared contract suites run
on Redis too (tests/unit/test_*_contract.py); these tests cover what they cannot."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

redis = pytest.importorskip("redis")

from conveyor.backends import backend_from_url  # noqa: E402
from conveyor.backends.redis import RedisBackend  # noqa: E402
from conveyor.brokers import Envelope, QueueStats, broker_from_url  # noqa: E402
from conveyor.brokers.base import UNREAD  # noqa: E402
from conveyor.brokers.redis import RedisBroker  # noqa: E402
from conveyor.brokers.redis_async import AsyncRedisBroker  # noqa: E402
from conveyor.coordination import coordinator_from_url  # noqa: E402
from conveyor.coordination.redis import RedisCoordinator  # noqa: E402
from conveyor.exceptions import BrokerError, ImproperlyConfigured  # noqa: E402
from conveyor.keys import REVOKED_GROUP  # noqa: E402
from conveyor.redis_connection import redact_url, split_url  # noqa: E402
from conveyor.testing import FakeClock  # noqa: E402
from redis_server import RedisServer, free_port  # noqa: E402

UNIT_DIR = Path(__file__).resolve().parent.parent / "unit"


def env(id: str, queue: str = "q", priority: int = 0, eta: float | None = None) -> Envelope:
    return Envelope(id, queue, f"body-{id}".encode(), priority, eta)


@pytest.fixture
def broker(redis_url: str, redis_prefix: str) -> Iterator[RedisBroker]:
    instance = RedisBroker(redis_url, prefix=redis_prefix)
    yield instance
    instance.close()


@pytest.fixture
def backend(redis_url: str, redis_prefix: str) -> Iterator[RedisBackend]:
    instance = RedisBackend(redis_url, prefix=redis_prefix)
    yield instance
    instance.close()


def commands_processed(client: Any) -> int:
    return int(client.info("stats")["total_commands_processed"])


# -- URLs -----------------------------------------------------------------------------------


def test_urls_pick_the_redis_implementations(redis_url: str) -> None:
    url = redis_url.replace("/0", "/3") + "?prefix=app1:&publish_retries=2&publish_retry_delay=0.5"
    broker, backend = broker_from_url(url), backend_from_url(url)
    coordinator = coordinator_from_url(url)
    try:
        assert isinstance(broker, RedisBroker) and broker.url == url
        assert isinstance(backend, RedisBackend) and isinstance(coordinator, RedisCoordinator)
        assert broker.prefix == backend.prefix == coordinator.prefix == "app1:"
        assert (broker.publish_retries, broker.publish_retry_delay) == (2, 0.5)
        assert broker._link.db == 3
        broker.publish_one(env("m"))
        client = redis.Redis.from_url(redis_url.replace("/0", "/3"))
        assert client.hexists("app1:b", "m")
        assert not client.exists("conveyor:b")
        client.flushdb()
        client.close()
    finally:
        broker.close()
        backend.close()
        coordinator.close()


def test_url_options_are_split_and_passwords_redacted() -> None:
    url, options = split_url("rediss://u:s3cret@example.com:6380/2?prefix=x:&ssl_cert_reqs=none")
    assert url == "rediss://u:s3cret@example.com:6380/2?ssl_cert_reqs=none"
    assert options == {"prefix": "x:"}
    assert redact_url("redis://u:s3cret@h:1/0") == "redis://u:***@h:1/0"
    assert redact_url("redis://:s3cret@h/0") == "redis://:***@h/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"


def test_rediss_url_means_tls() -> None:
    broker = RedisBroker("rediss://:pw@example.invalid:6390/4?ssl_cert_reqs=none")
    pool = broker._link.pool
    assert pool.connection_class is redis.SSLConnection
    assert pool.connection_kwargs["db"] == 4
    assert pool.connection_kwargs["password"] == "pw"
    broker.close()


def test_bad_options_are_reported() -> None:
    with pytest.raises(ImproperlyConfigured, match="publish_retries"):
        RedisBroker("redis://localhost/0?publish_retries=many")
    with pytest.raises(ImproperlyConfigured, match="reply_spin"):
        RedisBroker("redis://localhost/0?reply_spin=-1")


def test_replies_are_polled_for_and_reply_spin_sets_the_limit(
    redis_url: str, redis_prefix: str
) -> None:
    """In a fresh process (polling needs a thread alone in its process; pytest's may not be)."""
    script = f"""
import threading
from conveyor.brokers import Envelope
from conveyor.brokers.redis import RedisBroker
broker = RedisBroker({redis_url + "?reply_spin=1000000"!r}, prefix={redis_prefix!r})  # 1 s
quiet = RedisBroker({redis_url + "?reply_spin=0"!r}, prefix={redis_prefix!r})
assert (broker._link.reply_spin, quiet._link.reply_spin) == (1.0, 0.0)
assert "reply_spin" not in broker._link.pool.connection_kwargs
assert threading.active_count() == 1
for n in range(20):
    broker.publish_one(Envelope(f"m{{n}}", "q", b"body", 0, None))
replies = broker._link._own.replies
assert replies.count >= 20 and replies.poller is not None  # (+ SCRIPT LOAD)
assert replies.misses == 0.0, replies.misses  # every reply came within the second
taken = quiet.reserve(["q"], 30, 30.0)
assert len(taken) == 20 and all(quiet.ack_many(taken))
assert quiet._link._own.replies.poller is None
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_username_and_password(redis_url: str, raw: Any) -> None:
    raw.execute_command("ACL", "SETUSER", "conveyor-test", "on", ">s3cret", "~*", "&*", "+@all")
    try:
        good = redis_url.replace("redis://", "redis://conveyor-test:s3cret@")
        broker = RedisBroker(good, prefix="acl:")
        broker.publish_one(env("m"))
        assert broker.stats() == {"q": QueueStats(ready=1)}
        broker.purge()
        broker.close()
        bad = RedisBroker(redis_url.replace("redis://", "redis://conveyor-test:wrong@"))
        with pytest.raises(BrokerError) as info:
            bad.stats()
        assert "conveyor-test:***@" in str(info.value) and "wrong" not in str(info.value)
        bad.close()
    finally:
        raw.execute_command("ACL", "DELUSER", "conveyor-test")


# -- Redis's clock ----------------------------------------------------------------------


def test_etas_and_leases_are_judged_by_redis_time(
    broker: RedisBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker whose clock is an hour ahead neither runs a delayed task early nor thinks a
    lease has passed: only Redis's clock counts."""
    now = time.time()
    broker.publish([env("soon", eta=now + 0.4), env("now")])
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3600)
    [held] = broker.reserve(["q"], 10, lease=0.3)
    assert held.id == "now"
    assert broker.stats()["q"] == QueueStats(delayed=1, reserved=1)
    assert broker.recover_expired() == 0
    started = time.monotonic()
    broker.wait(5)  # wakes for the delayed message coming due, by Redis's clock
    assert time.monotonic() - started < 1.5
    deadline = time.monotonic() + 5
    got: list[str] = []
    while not got and time.monotonic() < deadline:
        got = [d.id for d in broker.reserve(["q"], 10, lease=30)]
    assert got == ["soon"]
    assert broker.recover_expired() == 1  # the 0.3 s lease of "now" has passed
    assert broker.ack(held) is False


def test_an_async_send_keeps_to_the_clock_its_broker_was_given(
    redis_url: str, redis_prefix: str
) -> None:
    """The async client's sends judge an eta by the same clock as the broker's own: an
    injected one when given (tests, simulations), else Redis's, read only when needed."""
    clock = FakeClock(1_700_000_000.0)
    broker = RedisBroker(redis_url, prefix=redis_prefix, clock=clock)
    sender = AsyncRedisBroker(broker)
    asyncio.run(sender.publish([env("later", eta=clock() + 10), env("now")]))
    assert [d.id for d in broker.reserve(["q"], 10, lease=30)] == ["now"]
    assert broker.stats()["q"] == QueueStats(delayed=1, reserved=1)
    clock.advance(11)
    assert [d.id for d in broker.reserve(["q"], 10, lease=30)] == ["later"]
    broker.close()


def test_a_million_delayed_tasks_live_in_redis_not_in_the_worker(broker: RedisBroker) -> None:
    far = time.time() + 3600
    broker.publish([env(f"d{i}", eta=far) for i in range(50_000)])
    broker.publish([env(f"r{i}") for i in range(100)])
    started = time.perf_counter()
    got = [d for _ in range(100) for d in broker.reserve(["q"], 1, lease=30)]
    assert len(got) == 100
    assert time.perf_counter() - started < 1.0
    assert broker.stats()["q"] == QueueStats(delayed=50_000, reserved=100)
    assert broker.purge() == 50_000


# -- round trips and blocking ---------------------------------------------------------------


def test_ten_thousand_are_published_in_a_handful_of_round_trips(
    broker: RedisBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker.stats()  # connect first (this thread's connection, and a pooled one for
    broker._link.client.ping()  # pipelines): only count the publishing
    sent: list[tuple[Any, ...]] = []
    connection_class = broker._link.pool.connection_class
    original = connection_class.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(command)
        original(self, command, check_health)

    monkeypatch.setattr(connection_class, "send_packed_command", counting)
    broker.publish([env(f"m{i}") for i in range(10_000)])
    assert 1 <= len(sent) <= 3
    sent.clear()
    broker.publish([env(f"n{i}") for i in range(12_000)])  # above one script call's chunk
    assert 1 <= len(sent) <= 3
    monkeypatch.undo()
    assert broker.stats() == {"q": QueueStats(ready=22_000)}


def test_wait_blocks_without_polling(broker: RedisBroker, raw: Any) -> None:
    assert broker.reserve(["a", "b"], 1, lease=30) == []
    before = commands_processed(raw)
    started = time.monotonic()
    broker.wait(0.6)
    assert time.monotonic() - started >= 0.5
    assert commands_processed(raw) - before <= 3  # one BLPOP (and INFO itself): no polling


def test_a_publish_wakes_one_sleeping_worker_per_message(redis_url: str, redis_prefix: str) -> None:
    """Two workers sleep on the queue; one message wakes one of them, and a batch of
    messages wakes the other too (the first leaves a token while work remains)."""
    brokers = [RedisBroker(redis_url, prefix=redis_prefix) for _ in range(3)]
    woken: list[float] = []

    def sleeper(b: RedisBroker) -> None:
        assert b.reserve(["q"], 1, lease=30) == []
        started = time.monotonic()
        b.wait(3)
        woken.append(time.monotonic() - started)
        b.reserve(["q"], 1, lease=30)

    threads = [threading.Thread(target=sleeper, args=(b,)) for b in brokers[:2]]
    for t in threads:
        t.start()
    time.sleep(0.2)
    brokers[2].publish([env("a"), env("b")])
    for t in threads:
        t.join()
    assert len(woken) == 2 and max(woken) < 1.5
    assert brokers[2].stats() == {"q": QueueStats(reserved=2)}
    for b in brokers:
        b.close()


def test_backend_wait_blocks_without_polling_and_wakes_on_write(
    backend: RedisBackend, raw: Any
) -> None:
    backend.set("k", b"PENDING", ttl=60)
    timer = threading.Timer(0.5, backend.set, ("k", b"SUCCESS", 60))
    before = commands_processed(raw)
    started = time.monotonic()
    timer.start()
    value = backend.wait("k", lambda v: v == b"SUCCESS", timeout=5)
    elapsed = time.monotonic() - started
    timer.join()
    assert value == b"SUCCESS"
    assert 0.4 <= elapsed < 1.5
    # one watch script, one BLPOP, the writer's connection setup and script: no polling
    # (Redis counts the commands run inside scripts too)
    assert commands_processed(raw) - before <= 30


def test_many_waiters_on_one_key_all_wake(backend: RedisBackend, redis_url: str) -> None:
    others = [RedisBackend(redis_url, prefix=backend.prefix) for _ in range(3)]
    got: list[bytes | None] = []
    threads = [
        threading.Thread(target=lambda b=b: got.append(b.wait("k", bool, timeout=5)))
        for b in others
    ]
    for t in threads:
        t.start()
    time.sleep(0.2)
    backend.set("k", b"done", ttl=60)
    for t in threads:
        t.join()
    assert got == [b"done"] * 3
    for b in others:
        b.close()


def test_every_key_has_a_ttl(
    broker: RedisBroker, backend: RedisBackend, raw: Any, redis_url: str
) -> None:
    backend.set("a", b"1", ttl=60, fence=3)
    backend.set_many([("b", b"2"), ("c", b"3")], ttl=60)
    backend.incr("n", 2, ttl=60)
    backend.add_to_set("s", "m", ttl=60)
    backend.expire("a", 120)
    waiter = threading.Thread(target=backend.wait, args=("w", bool, 0.3))
    waiter.start()
    time.sleep(0.1)
    backend.set("w", b"x", ttl=60)
    waiter.join()
    keys = [k for k in raw.scan_iter(match=f"{backend.prefix}*")]
    assert keys
    for key in keys:
        assert raw.pttl(key) > 0, key
    coordinator = RedisCoordinator(redis_url, prefix=backend.prefix)
    coordinator.put_many([("x", "1")], ttl=5)
    coordinator.acquire("lock", "me", 1, ttl=5)
    coordinator.take_token("rate", 1.0, 5.0)
    for key in raw.scan_iter(match=f"{backend.prefix}c:*"):
        assert raw.pttl(key) > 0, key
    coordinator.close()


def test_stale_fence_refused_after_a_newer_attempt(backend: RedisBackend, raw: Any) -> None:
    assert backend.set("t", b"second run", ttl=60, fence=2)
    assert not backend.set("t", b"late first run", ttl=60, fence=1)
    assert backend.get("t") == b"second run"
    assert raw.get(f"{backend.prefix}v:t") == b"2:second run"


# -- the coordinator ------------------------------------------------------------------------


def test_reserve_reads_revocations_when_the_coordinator_shares_the_database(
    broker: RedisBroker, redis_url: str, redis_prefix: str, raw: Any
) -> None:
    coordinator = RedisCoordinator(redis_url, prefix=redis_prefix)
    elsewhere = RedisCoordinator(redis_url.rsplit("/", 1)[0] + "/9", prefix=redis_prefix)
    assert not broker.read_revocations_from(elsewhere)
    assert not broker.read_revocations_from(object())
    broker.publish([env("plain"), env("gone"), env("gone~2")])
    [unread] = broker.reserve(["q"], 1, lease=30)
    assert unread.revocation is UNREAD
    assert broker.read_revocations_from(coordinator)
    # as Control.revoke writes them: listed, then each under its key
    coordinator.put_members(REVOKED_GROUP, [("gone", "revoked by a test")], 60)
    coordinator.put_many([("revoked:gone", "revoked by a test")], 60)
    scripts = script_calls(raw)
    got = {d.id: d.revocation for d in broker.reserve(["q"], 10, lease=30)}
    assert script_calls(raw) == scripts + 1
    assert got == {"gone": "revoked by a test", "gone~2": "revoked by a test"}
    assert unread.id == "plain"
    broker.publish([env("later")])
    coordinator.put_members(REVOKED_GROUP, [("later", "expires")], 0.05)
    coordinator.put_many([("revoked:later", "expires")], 0.05)
    time.sleep(0.1)
    [later] = broker.reserve(["q"], 10, lease=30)
    assert later.revocation is None
    coordinator.close()
    elsewhere.close()


def test_while_nothing_is_revoked_a_reservation_reads_no_revocation(
    broker: RedisBroker, redis_url: str, redis_prefix: str, raw: Any
) -> None:
    """The revocations are read only while the coordinator lists one: a batch of 100 then
    costs Redis no lookup of a key per message."""
    coordinator = RedisCoordinator(redis_url, prefix=redis_prefix)
    assert broker.read_revocations_from(coordinator)
    broker.publish([env(f"m{i}") for i in range(100)])
    reads = command_calls(raw, "mget")
    got = broker.reserve(["q"], 100, lease=30)
    assert command_calls(raw, "mget") == reads
    assert len(got) == 100 and all(d.revocation is None for d in got)
    coordinator.close()


def command_calls(raw: Any, command: str) -> int:
    return int(raw.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def script_calls(raw: Any) -> int:
    """Script calls so far: EVALSHA, or FCALL where scripts run as functions."""
    stats = raw.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "fcall"))


def sleep_registered(broker: RedisBroker) -> None:
    """What a worker does before sleeping: wait once, then an empty reserve registers it."""
    broker.wait(0.01)
    assert broker.reserve(["q"], 4, lease=30) == []


def test_a_publish_hands_the_message_to_a_sleeping_worker(
    broker: RedisBroker, redis_url: str, redis_prefix: str, raw: Any
) -> None:
    producer = RedisBroker(redis_url, prefix=redis_prefix)
    sleep_registered(broker)
    producer.publish([env("first"), env("second")])
    started = time.monotonic()
    broker.wait(5)
    assert time.monotonic() - started < 1
    scripts = script_calls(raw)
    [handed] = broker.reserve(["q"], 4, lease=30)
    assert script_calls(raw) == scripts  # it came with the wake-up: no round trip
    assert (handed.id, handed.body, handed.delivery_count) == ("first", b"body-first", 1)
    assert broker.stats() == {"q": QueueStats(ready=1, reserved=1)}
    assert [d.id for d in broker.reserve(["q"], 4, lease=30)] == ["second"]
    assert broker.ack(handed)
    producer.close()


def test_a_handed_message_carries_its_revocation_and_its_lease(
    broker: RedisBroker, redis_url: str, redis_prefix: str, raw: Any
) -> None:
    """A sleeping worker that reads revocations is handed each message with its task's
    revocation (a copy re-sent from the dead letters, "<task>~<n>", with its task's), under
    a lease that expires as a reserved one's does."""
    coordinator = RedisCoordinator(redis_url, prefix=redis_prefix)
    assert broker.read_revocations_from(coordinator)
    coordinator.put_members(REVOKED_GROUP, [("gone", "revoked: by a~test")], 60)
    coordinator.put_many([("revoked:gone", "revoked: by a~test")], 60)
    producer = RedisBroker(redis_url, prefix=redis_prefix)
    got = {}
    for name in ("gone~2", "kept~x", "kept"):
        sleep_registered(broker)
        producer.publish([env(name)])
        broker.wait(5)
        scripts = script_calls(raw)
        [handed] = broker.reserve(["q"], 4, lease=30)
        assert script_calls(raw) == scripts  # handed over, not reserved
        got[handed.id] = (handed.revocation, handed.body, handed.queue, handed.priority)
        deadline = raw.zscore(f"{redis_prefix}l:q", name)
        assert deadline is not None and 0 < deadline - time.time() <= 30.5
        assert broker.ack(handed)
    assert got == {
        "gone~2": ("revoked: by a~test", b"body-gone~2", "q", 0),
        "kept~x": (None, b"body-kept~x", "q", 0),
        "kept": (None, b"body-kept", "q", 0),
    }
    producer.close()
    coordinator.close()


def test_an_idle_worker_reserves_again_only_when_something_arrives(
    broker: RedisBroker, redis_url: str, redis_prefix: str, raw: Any
) -> None:
    """A wait that runs out with nothing arriving means nothing is ready: the next reserve
    costs Redis no script (an idle worker pays a BLPOP per wait). A message sent meanwhile
    goes to the kept registration and comes with the next wait, at once."""
    producer = RedisBroker(redis_url, prefix=redis_prefix)
    registered = time.monotonic()
    sleep_registered(broker)
    broker.wait(0.01)
    scripts = script_calls(raw)
    assert broker.reserve(["q"], 4, lease=30) == []
    young = time.monotonic() - registered < 0.5  # past half its life it is renewed
    assert script_calls(raw) == scripts or not young
    producer.publish([env("sent")])
    started = time.monotonic()
    broker.wait(5)
    assert time.monotonic() - started < 1
    assert [d.id for d in broker.reserve(["q"], 4, lease=30)] == ["sent"]
    producer.close()


def test_a_registration_is_used_once_and_not_for_delayed_messages(
    broker: RedisBroker, redis_url: str, redis_prefix: str
) -> None:
    producer = RedisBroker(redis_url, prefix=redis_prefix)
    sleep_registered(broker)
    producer.publish([env("later", eta=time.time() + 3600)])
    producer.publish([env("now")])
    producer.publish([env("after")])
    assert broker.stats() == {"q": QueueStats(ready=1, delayed=1, reserved=1)}
    assert [d.id for d in broker.stop_waiting()] == ["now"]
    assert broker.stop_waiting() == []
    producer.close()


def test_a_handed_message_comes_back_when_its_worker_dies_asleep(
    broker: RedisBroker, redis_url: str, redis_prefix: str
) -> None:
    producer = RedisBroker(redis_url, prefix=redis_prefix)
    broker.wait(0.01)
    assert broker.reserve(["q"], 4, lease=0.2) == []  # registered, with a 0.2 s lease
    producer.publish([env("orphan")])
    broker.close()  # it never wakes up
    time.sleep(0.3)
    assert producer.recover_expired() == 1
    [again] = producer.reserve(["q"], 4, lease=30)
    assert (again.id, again.delivery_count) == ("orphan", 2)
    producer.close()


def test_coordinator_instances_share_state(redis_url: str, redis_prefix: str) -> None:
    one = RedisCoordinator(redis_url, prefix=redis_prefix)
    two = RedisCoordinator(redis_url, prefix=redis_prefix)
    assert one.acquire("lock", "one", 1, 10)
    assert not two.acquire("lock", "two", 1, 10)
    assert one.take_token("r", 1.0, 1.0) == 0.0
    assert two.take_token("r", 1.0, 1.0) > 0
    one.close()
    two.close()


# -- concurrency and fork -------------------------------------------------------------------


def test_two_connections_never_reserve_the_same_message(redis_url: str, redis_prefix: str) -> None:
    taken: list[list[str]] = [[], []]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def hammer(slot: int) -> None:
        try:
            with RedisBroker(redis_url, prefix=redis_prefix) as broker:
                start.wait()
                for i in range(0, 1000, 10):
                    broker.publish([env(f"{slot}-{n}") for n in range(i, i + 10)])
                    for d in broker.reserve(["q"], 7, lease=300):
                        assert broker.ack(d)
                        taken[slot].append(d.id)
                while batch := broker.reserve(["q"], 7, lease=300):
                    for d in batch:
                        assert broker.ack(d)
                        taken[slot].append(d.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(slot,)) for slot in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    everything = taken[0] + taken[1]
    assert sorted(everything) == sorted(f"{s}-{n}" for s in range(2) for n in range(1000))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_opens_its_own_connections(broker: RedisBroker) -> None:
    broker.publish([env(f"p{i}") for i in range(200)])
    assert broker.stats()["q"].ready == 200
    parent_connection = broker._link._connection()[0]
    assert parent_connection.pid == os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            done = 0
            while batch := broker.reserve(["q"], 5, lease=30):
                done += sum(broker.ack(d) for d in batch)
            mine = broker._link._connection()[0]
            fresh = mine is not parent_connection and mine.pid == os.getpid()
            code = 0 if done and fresh else 2
        finally:
            os._exit(code)
    parent_done = 0
    while batch := broker.reserve(["q"], 5, lease=30):
        parent_done += sum(broker.ack(d) for d in batch)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert broker.stats() == {}
    assert broker._link._connection()[0] is parent_connection


# -- outages ----------------------------------------------------------------------------


def test_unreachable_redis_raises_broker_error_naming_the_url() -> None:
    url = f"redis://:pw@127.0.0.1:{free_port()}/0"
    broker = RedisBroker(url, publish_retries=2, publish_retry_delay=0.05)
    for call in (
        lambda: broker.reserve(["q"], 1, lease=30),
        lambda: broker.stats(),
        lambda: broker.wait(0.1),
    ):
        with pytest.raises(BrokerError, match=r"127\.0\.0\.1:\d+/0 is unreachable") as info:
            call()
        assert "pw" not in str(info.value)
    started = time.monotonic()
    with pytest.raises(BrokerError, match="publishing 1 message.*tried 3 times"):
        broker.publish_one(env("m"))
    assert 0.1 <= time.monotonic() - started < 2
    backend = RedisBackend(url)
    with pytest.raises(BrokerError, match="unreachable"):
        backend.get("k")
    broker.close()
    backend.close()


def test_publish_retries_until_redis_is_back(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    broker = RedisBroker(server.url, publish_retries=20, publish_retry_delay=0.05)
    starter = threading.Timer(0.3, server.start)
    starter.start()
    try:
        broker.publish_one(env("m"))
        starter.join()
        assert broker.stats() == {"q": QueueStats(ready=1)}
    finally:
        starter.join()
        broker.close()
        server.stop()


def test_the_same_broker_carries_on_after_redis_restarts(private_redis: RedisServer) -> None:
    broker = RedisBroker(private_redis.url)
    backend = RedisBackend(private_redis.url)
    broker.publish([env("a"), env("b")])
    [first] = broker.reserve(["q"], 1, lease=30)
    backend.set("r", b"kept", ttl=60, fence=1)
    private_redis.kill()
    with pytest.raises(BrokerError, match="unreachable"):
        broker.ack(first)
    private_redis.start()
    # appendonly + appendfsync always: everything acknowledged before the kill is back
    assert broker.ack(first) is True
    assert [d.id for d in broker.reserve(["q"], 5, lease=30)] == ["b"]
    assert backend.get("r") == b"kept"
    assert not backend.set("r", b"stale", ttl=60, fence=0)
    broker.close()
    backend.close()


# -- the configuration check ------------------------------------------------------------


def test_check_config_warns_about_eviction_and_no_persistence(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    broker = RedisBroker(private_redis.url)
    assert broker.check_config() == []  # appendonly yes, noeviction
    client = redis.Redis.from_url(private_redis.url)
    client.config_set("maxmemory-policy", "allkeys-lru")
    client.config_set("appendonly", "no")
    warnings = broker.check_config()
    assert len(warnings) == 2
    assert "maxmemory-policy allkeys-lru" in warnings[0] and "noeviction" in warnings[0]
    assert "persists nothing" in warnings[1]
    client.close()
    broker.close()
    down = RedisBroker(f"redis://127.0.0.1:{free_port()}/0")
    [warning] = down.check_config()
    assert "could not reach Redis" in warning
    down.close()
