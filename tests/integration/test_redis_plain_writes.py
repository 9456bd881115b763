"""Large batches of outcomes written with plain commands keep the script's rules.

A worker stores a batch of 16 or more outcomes with ``SET ... NX`` and plain pushes
(backends/redis_plain_writes.py), and only the keys that existed go through
``backend_set_fenced_many.lua``. What a caller sees must not tell the two apart: values
with their fences and TTLs, replies to each sender, the task index, waiting clients
woken, newer fences kept, and a server that lost its scripts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

redis = pytest.importorskip("redis")

from conveyor.backends.base import Listing  # noqa: E402
from conveyor.backends.redis import RedisBackend, pushed_item  # noqa: E402
from conveyor.keys import TASK_PREFIX  # noqa: E402

BATCH = 40


@pytest.fixture
def backend(redis_url: str, redis_prefix: str) -> Iterator[RedisBackend]:
    b = RedisBackend(redis_url, prefix=redis_prefix)
    yield b
    b.close()


def outcomes(tag: str, count: int = BATCH, fence: int | None = 7) -> list[Any]:
    return [
        (f"{TASK_PREFIX}{tag}-{i}", b'{"status":"SUCCESS","n":%d}' % i, fence) for i in range(count)
    ]


def script_calls(raw: Any) -> int:
    stats = raw.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("fcall", "evalsha"))


def test_a_large_batch_is_stored_with_fences_ttls_replies_and_listed(
    backend: RedisBackend, raw: Any, redis_prefix: str
) -> None:
    items = outcomes("a")
    replies = {key: "sender-1" for key, _, _ in items[:30]} | {items[30][0]: ""}
    scripts = script_calls(raw)
    assert backend.set_fenced_many(items, 600.0, replies) == [True] * BATCH
    assert script_calls(raw) == scripts  # plain commands only
    for key, value, _ in items:
        assert backend.get(key) == value
        assert raw.get(f"{redis_prefix}v:{key}") == b"7:" + value  # the fence kept with it
        assert 590_000 < raw.pttl(f"{redis_prefix}v:{key}") <= 600_000
    pushed = [pushed_item(m) for m in raw.lrange(f"{redis_prefix}wl:sender-1", 0, -1)]
    assert pushed == [(key, value) for key, value, _ in items[:30]]
    assert 0 < raw.pttl(f"{redis_prefix}wl:sender-1") <= 10_000
    assert raw.lrange(f"{redis_prefix}r:{items[30][0]}", 0, -1) == [items[30][1]]
    assert not raw.exists(f"{redis_prefix}r:{items[31][0]}")  # asked no reply
    listed = dict(backend.list_json(Listing(prefix=f"{TASK_PREFIX}a-", limit=100)))
    assert listed == {key: value for key, value, _ in items}


def test_keys_that_exist_in_a_large_batch_keep_newer_fences_and_get_no_reply(
    backend: RedisBackend, raw: Any, redis_prefix: str
) -> None:
    items = outcomes("b")
    newer, older = items[3][0], items[5][0]
    assert backend.set(newer, b"from a newer attempt", 600.0, fence=9)
    assert backend.set(older, b"STARTED", 600.0, fence=5)
    replies = {key: "sender-2" for key, _, _ in items}
    written = backend.set_fenced_many(items, 600.0, replies)
    assert written == [key != newer for key, _, _ in items]
    assert backend.get(newer) == b"from a newer attempt"
    assert backend.get(older) == items[5][1]
    pushed = [pushed_item(m)[0] for m in raw.lrange(f"{redis_prefix}wl:sender-2", 0, -1)]
    assert sorted(pushed) == sorted(key for key, _, _ in items if key != newer)
    listed = dict(backend.list_json(Listing(prefix=f"{TASK_PREFIX}b-", limit=100)))
    assert set(listed) == {key for key, _, _ in items}  # each once, the older two too


def test_a_client_waiting_on_a_key_is_handed_its_value_from_a_large_batch(
    backend: RedisBackend, raw: Any, redis_prefix: str
) -> None:
    items = outcomes("c")
    watched = items[17][0]
    got: list[bytes | None] = []
    waiter = threading.Thread(
        target=lambda: got.append(backend.wait(watched, lambda v: v is not None, 4.0))
    )
    waiter.start()
    deadline = time.monotonic() + 10
    while not raw.exists(f"{redis_prefix}n:{watched}") and time.monotonic() < deadline:
        time.sleep(0.005)
    assert raw.exists(f"{redis_prefix}n:{watched}")
    assert backend.set_fenced_many(items, 600.0) == [True] * BATCH
    # handed over by the write itself (its registration used up), not read again later
    assert not raw.exists(f"{redis_prefix}n:{watched}")
    waiter.join(10)
    assert got == [items[17][1]]


def test_a_large_batch_after_redis_lost_its_scripts_still_compares_fences(
    backend: RedisBackend, raw: Any
) -> None:
    """After a restart Redis has no functions or scripts: the existing keys' share of a
    batch, sent in the same round trip as the plain commands, is refused and sent again
    once the script is loaded."""
    items = outcomes("d")
    assert backend.set(items[0][0], b"newer", 600.0, fence=8)
    raw.function_flush()
    raw.script_flush()
    written = backend.set_fenced_many(items, 600.0, {key: "s" for key, _, _ in items})
    assert written == [False] + [True] * (BATCH - 1)
    assert backend.get(items[0][0]) == b"newer"


def test_a_key_twice_in_a_large_batch_is_written_in_order(backend: RedisBackend) -> None:
    items = outcomes("e")
    key = items[0][0]
    items.append((key, b"SUCCESS", 7))  # its STARTED first, then its outcome
    assert backend.set_fenced_many(items, 600.0) == [True] * (BATCH + 1)
    assert backend.get(key) == b"SUCCESS"


def test_batches_keep_working_while_slow_tasks_records_exist(backend: RedisBackend) -> None:
    """Batches whose keys exist (slow tasks' STARTED records) go by the script for a while;
    every batch is stored whichever way it went."""
    for round_ in range(6):
        items = outcomes(f"f{round_}")
        if round_ % 2 == 0:
            assert backend.set(items[0][0], b"STARTED", 600.0, fence=7)
        assert backend.set_fenced_many(items, 600.0) == [True] * BATCH
        assert [backend.get(key) for key, _, _ in items] == [value for _, value, _ in items]


def test_a_user_that_may_not_run_a_plain_command_gets_its_batches_written_by_script(
    redis_url: str, redis_prefix: str, raw: Any
) -> None:
    """An ACL (or a Redis-compatible server) that refuses one of the plain commands: the
    batch, and every later one, is written by the script alone."""
    raw.acl_setuser(
        "no-time",
        enabled=True,
        passwords=["+pw"],
        keys=["*"],
        channels=["*"],
        commands=["+@all", "-time"],
    )
    try:
        host = redis_url.split("://", 1)[1]
        backend = RedisBackend(f"redis://no-time:pw@{host}", prefix=redis_prefix)
        try:
            for round_ in range(2):
                items = [(f"plain-{round_}-{i}", b"v%d" % i, 3) for i in range(BATCH)]
                assert backend.set_fenced_many(items, 600.0) == [True] * BATCH
                assert [backend.get(key) for key, _, _ in items] == [v for _, v, _ in items]
        finally:
            backend.close()
    finally:
        raw.acl_deluser("no-time")
