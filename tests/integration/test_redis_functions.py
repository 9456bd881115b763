"""Lua scripts run as Redis 7 functions (FCALL), loaded when the server lacks them.

Each script is a function library of its own (``Script`` in conveyor.redis_connection):
loaded on first use, and again when the server has lost it (a restart without
persistence, or ``FUNCTION FLUSH``); ``?scripts=eval`` keeps EVALSHA, as on Redis 6.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

redis = pytest.importorskip("redis")

from conveyor.brokers import Envelope  # noqa: E402
from conveyor.brokers.redis import RedisBroker  # noqa: E402
from conveyor.exceptions import ImproperlyConfigured  # noqa: E402
from conveyor.redis_async_link import AsyncRedisLink  # noqa: E402
from conveyor.redis_connection import RedisLink  # noqa: E402


def calls(raw: Any, command: str) -> int:
    return int(raw.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def conveyor_libraries(raw: Any) -> set[str]:
    return {
        lib[b"library_name"].decode()
        for lib in raw.execute_command("FUNCTION", "LIST", "LIBRARYNAME", "conveyor_*")
    }


def test_scripts_run_as_functions_and_are_loaded_again_when_the_server_lost_them(
    redis_url: str, redis_prefix: str, raw: Any
) -> None:
    broker = RedisBroker(redis_url, prefix=redis_prefix)
    try:
        fcalls, evals = calls(raw, "fcall"), calls(raw, "evalsha")
        broker.publish([Envelope("a", "q", b"body a", 0, None)])
        [taken] = broker.reserve(["q"], 10, 30.0)
        assert calls(raw, "fcall") >= fcalls + 2 and calls(raw, "evalsha") == evals
        assert len(conveyor_libraries(raw)) >= 2  # one library per script used
        raw.execute_command("FUNCTION", "FLUSH")  # as a restart without persistence
        assert broker.ack(taken)
        broker.publish([Envelope("b", "q", b"body b", 0, None)])
        assert [d.body for d in broker.reserve(["q"], 10, 30.0)] == [b"body b"]
    finally:
        broker.close()


def test_scripts_eval_keeps_evalsha_and_a_bad_value_is_refused(
    redis_url: str, redis_prefix: str, raw: Any
) -> None:
    broker = RedisBroker(f"{redis_url}?scripts=eval", prefix=redis_prefix)
    try:
        fcalls, evals = calls(raw, "fcall"), calls(raw, "evalsha")
        broker.publish([Envelope("a", "q", b"body", 0, None)])
        assert [d.id for d in broker.reserve(["q"], 10, 30.0)] == ["a"]
        assert calls(raw, "fcall") == fcalls and calls(raw, "evalsha") >= evals + 2
    finally:
        broker.close()
    with pytest.raises(ImproperlyConfigured, match="scripts='fast': use auto, eval or functions"):
        RedisBroker(f"{redis_url}?scripts=fast", prefix=redis_prefix)


def test_the_async_client_calls_the_same_functions_and_loads_them_too(
    redis_url: str, redis_prefix: str, raw: Any
) -> None:
    broker = RedisBroker(redis_url, prefix=redis_prefix)
    sync = RedisLink(redis_url, prefix=redis_prefix)
    stats = AsyncRedisLink(sync).script(("expiring.lua", "broker_prelude.lua"), "broker_stats.lua")

    async def main() -> list[Any]:
        raw.execute_command("FUNCTION", "FLUSH")
        first = await stats([redis_prefix, ""])
        pair = await stats.pipelined([[redis_prefix, ""], [redis_prefix, ""]])
        return [first, *pair]

    try:
        broker.publish([Envelope("a", "q", b"body", 0, None)])
        fcalls = calls(raw, "fcall")
        assert asyncio.run(main()) == [[b"q", 1, 0, 0]] * 3
        assert calls(raw, "fcall") >= fcalls + 3
        assert stats.same.function in conveyor_libraries(raw)
    finally:
        sync.close()
        broker.close()


def test_a_user_whose_acl_denies_functions_gets_its_scripts_by_evalsha(
    redis_url: str, redis_prefix: str, raw: Any
) -> None:
    user = f"nofunctions{redis_prefix.strip(':').replace('-', '')}"
    raw.execute_command("ACL", "SETUSER", user, "on", ">secret", "~*", "&*", "+@all", "-fcall")
    host = redis_url.split("//", 1)[1]
    broker = RedisBroker(f"redis://{user}:secret@{host}", prefix=redis_prefix)
    try:
        evals = calls(raw, "evalsha")
        broker.publish([Envelope("a", "q", b"body", 0, None)])
        [taken] = broker.reserve(["q"], 10, 30.0)
        assert broker.ack(taken)
        assert calls(raw, "evalsha") >= evals + 3
    finally:
        broker.close()
        raw.execute_command("ACL", "DELUSER", user)
