"""Commands reach Redis as redis-py would send them: ``RedisLink.command`` and the async
link pack their arguments with hiredis directly (``redis_connection.packed``), and fall
back to redis-py's packer for what hiredis does not take."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.exceptions import DataError

from conveyor.redis_async_link import AsyncRedisLink
from conveyor.redis_connection import RedisLink, packed

VALUES: list[Any] = ["text", "é ünïcode", b"\x00\xffbytes", 42, -7, 10**20, 1.5, 1e-05, 0.1 + 0.2]


@pytest.fixture
def links(redis_url: str, redis_prefix: str) -> Iterator[tuple[RedisLink, Any]]:
    """Our link, and redis-py's client to the same database."""
    ours, theirs = RedisLink(redis_url, prefix=redis_prefix), redis.Redis.from_url(redis_url)
    yield ours, theirs
    ours.close()
    theirs.close()


def test_the_packed_bytes_are_redis_pys() -> None:
    reference = redis.Connection()
    for value in [*VALUES, memoryview(b"view")]:
        ours = packed(("SET", "k", value))
        assert ours is not None
        theirs = reference.pack_command("SET", "k", value)
        assert b"".join(ours) == b"".join(bytes(part) for part in theirs)


def test_every_argument_type_is_stored_as_redis_py_stores_it(
    links: tuple[RedisLink, Any], redis_prefix: str
) -> None:
    link, raw = links
    for n, value in enumerate(VALUES):
        key = f"{redis_prefix}wire:{n}"
        assert link.command("SET", key, value) == b"OK"
        raw.set(f"{key}:ref", value)
        assert raw.get(key) == raw.get(f"{key}:ref")
    raw.delete(
        *[f"{redis_prefix}wire:{n}{ref}" for n in range(len(VALUES)) for ref in ("", ":ref")]
    )


def test_a_bool_argument_gets_redis_pys_error(
    links: tuple[RedisLink, Any], redis_prefix: str
) -> None:
    link, _ = links
    assert packed(("SET", "k", True)) is None
    with pytest.raises(DataError, match="bool"):
        link.command("SET", f"{redis_prefix}wire:bool", True)
    assert link.command("PING") == b"PONG"  # the connection is still usable


def test_the_async_link_sends_the_same(links: tuple[RedisLink, Any], redis_prefix: str) -> None:
    link, raw = links

    async def run() -> list[Any]:
        alink = AsyncRedisLink(link)
        replies = []
        for n, value in enumerate(VALUES):
            replies.append(await alink.command("SET", f"{redis_prefix}awire:{n}", value))
        with pytest.raises(DataError, match="bool"):
            await alink.command("SET", f"{redis_prefix}awire:bool", True)
        return replies

    assert asyncio.run(run()) == [b"OK"] * len(VALUES)
    for n, value in enumerate(VALUES):
        raw.set(f"{redis_prefix}ref", value)
        assert raw.get(f"{redis_prefix}awire:{n}") == raw.get(f"{redis_prefix}ref")
    raw.delete(f"{redis_prefix}ref", *[f"{redis_prefix}awire:{n}" for n in range(len(VALUES))])
