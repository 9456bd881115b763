"""``LoopSpin``: after a command is sent, a coroutine polls for its reply by running the
loop without letting it sleep, and stops when the reply's bytes are in or its limit
passes; one per loop at a time, and rarely while most polls run out.

A poll is driven by hand here (``coroutine.send(None)``): a poll that does not spin
returns at its first step, one that spins yields to the loop. Each test holds a real
connection to the session's redis-server with a ``BLPOP`` waiting on an empty list, so
no reply comes until the test pushes one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from conveyor.redis_async_link import AsyncRedisLink, LoopSpin
from conveyor.redis_connection import RedisLink

redis_asyncio = pytest.importorskip("redis.asyncio")


def returns_at_once(poll: Coroutine[Any, Any, None]) -> bool:
    """Whether ``poll`` ends at its first step (it did not spin)."""
    try:
        poll.send(None)
    except StopIteration:
        return True
    poll.close()
    return False


def with_waiting_blpop(
    redis_url: str, redis_prefix: str, test: Callable[[Any, Any], Awaitable[None]]
) -> None:
    """Run ``test(connection, pusher)`` with a BLPOP of 5 s sent on ``connection``."""

    async def main() -> None:
        pool = redis_asyncio.ConnectionPool.from_url(redis_url)
        connection = pool.make_connection()
        await connection.connect()
        pusher = redis_asyncio.Redis.from_url(redis_url)
        await connection.send_command("BLPOP", f"{redis_prefix}list", 5)
        try:
            await test(connection, pusher)
        finally:
            await pusher.rpush(f"{redis_prefix}list", b"end")  # release the BLPOP
            await pusher.aclose()
            await connection.disconnect()
            await pool.disconnect()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_a_poll_runs_other_coroutines_and_ends_when_the_reply_comes(
    redis_url: str, redis_prefix: str
) -> None:
    """The poll would run for a minute; the pusher, another coroutine on the same loop,
    runs meanwhile, and the poll ends as soon as the reply it pushed is readable."""
    seen: list[Any] = []

    async def test(connection: Any, pusher: Any) -> None:
        spin = LoopSpin(60.0)

        async def push_soon() -> None:
            for _ in range(5):
                await asyncio.sleep(0.005)
            await pusher.rpush(f"{redis_prefix}list", b"hello")

        pushing = asyncio.create_task(push_soon())
        await asyncio.wait_for(spin.poll(connection), 10)
        seen.append(await connection.read_response())
        await pushing
        seen.append(spin.misses)

    with_waiting_blpop(redis_url, redis_prefix, test)
    assert seen == [[f"{redis_prefix}list".encode(), b"hello"], 0.0]


def test_a_poll_that_runs_out_counts_a_miss_and_the_reply_is_still_read(
    redis_url: str, redis_prefix: str
) -> None:
    seen: list[Any] = []

    async def test(connection: Any, pusher: Any) -> None:
        spin = LoopSpin(0.01)
        await spin.poll(connection)
        seen.append(spin.misses)
        await pusher.rpush(f"{redis_prefix}list", b"late")
        seen.append(await connection.read_response())

    with_waiting_blpop(redis_url, redis_prefix, test)
    assert seen == [1 / 8, [f"{redis_prefix}list".encode(), b"late"]]


def test_while_most_polls_run_out_only_every_16th_wait_polls(
    redis_url: str, redis_prefix: str
) -> None:
    spun: list[bool] = []

    async def test(connection: Any, pusher: Any) -> None:
        spin = LoopSpin(0.001)
        while spin.misses <= 0.5:
            await spin.poll(connection)
        for _ in range(32):
            spun.append(not returns_at_once(spin.poll(connection)))

    with_waiting_blpop(redis_url, redis_prefix, test)
    assert spun.count(True) == 2, spun
    assert spun.index(True) + 16 == len(spun) - 1 - spun[::-1].index(True)


def test_one_coroutine_of_a_loop_polls_at_a_time(redis_url: str, redis_prefix: str) -> None:
    seen: list[bool] = []

    async def test(connection: Any, pusher: Any) -> None:
        first, second = LoopSpin(60.0), LoopSpin(60.0)
        polling = first.poll(connection)
        seen.append(returns_at_once(second.poll(connection)))  # nobody polls yet: it spins
        polling.send(None)  # the first is now polling
        seen.append(returns_at_once(second.poll(connection)))
        polling.close()
        seen.append(returns_at_once(second.poll(connection)))

    with_waiting_blpop(redis_url, redis_prefix, test)
    assert seen == [False, True, False]


def test_a_limit_of_zero_never_polls(redis_url: str, redis_prefix: str) -> None:
    seen: list[bool] = []

    async def test(connection: Any, pusher: Any) -> None:
        seen.append(returns_at_once(LoopSpin(0).poll(connection)))

    with_waiting_blpop(redis_url, redis_prefix, test)
    assert seen == [True]


def test_the_url_sets_the_limits_and_zero_turns_them_off(redis_url: str) -> None:
    tuned = AsyncRedisLink(RedisLink(f"{redis_url}?reply_spin=250&result_spin=2000"))
    off = AsyncRedisLink(RedisLink(f"{redis_url}?reply_spin=0&result_spin=0"))
    default = AsyncRedisLink(RedisLink(redis_url))
    assert (tuned.replies.limit, tuned.results.limit) == (0.00025, 0.002)
    assert (off.replies.limit, off.results.limit) == (0, 0)
    assert (default.replies.limit, default.results.limit) == (0.0005, 0.001)
