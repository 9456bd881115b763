"""The Redis result backend for coroutines: reads and waits that never block the event loop.

The asyncio twin of ``RedisBackend`` (whose docstring describes the keys): the same values,
the same reply lists and the same ``backend_watch.lua`` registration, so a result waited
for here arrives exactly as it would for a ``get()`` in a thread. A task this process sent
with a reply (``RedisBackend.expect``, noted by sync and async sends alike) is first waited
for on its reply list; otherwise the wait registers a waiter list of its own and blocks on
it with BLPOP. Each waiting coroutine holds one connection while it blocks.

Only production backends have a twin: one made with ``clock=`` (the contract tests' fake
clock) sweeps expired keys before each operation, which this module does not do.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Callable, Sequence
from functools import partial

from redis.exceptions import RedisError

from ..redis_async_link import AsyncRedisLink
from ..redis_connection import UNREACHABLE
from .redis import RedisBackend, stored_value

__all__ = ["AsyncRedisBackend"]

_REPLY_BLOCK = 0.25
"""As ``RedisBackend``'s: how long a wait takes a reply before it registers."""
_MARGIN = 1.0
"""Seconds a blocking read may take beyond its command's own timeout."""


class AsyncRedisBackend:
    """Reads and waits on the keys of ``backend``, for coroutines."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self.link = AsyncRedisLink(backend.link)
        self.prefix = backend.prefix
        self._values = f"{self.prefix}v:"
        self._watch = self.link.script("backend_prelude.lua", "backend_watch.lua")
        self._lists: list[str] = []
        """Waiter lists no wait is using now (each wait uses one of its own)."""
        self._pid = os.getpid()

    async def get(self, key: str) -> bytes | None:
        name = self._values + key
        link = self.link
        stored = await link.call("reading a result", lambda: link.command("GET", name), 1)
        return stored_value(stored)

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        names = [self._values + key for key in keys]
        link = self.link
        stored = await link.call("reading results", lambda: link.command("MGET", *names), 1)
        return [stored_value(v) for v in stored]

    async def wait(
        self, key: str, ready: Callable[[bytes | None], bool], timeout: float | None
    ) -> bytes | None:
        """Block until ``ready(value)`` holds or the timeout passes; the last value read."""
        deadline = None if timeout is None else time.monotonic() + timeout
        until = self.backend.take_expected(key)
        if until is not None:
            until = min(until, time.monotonic() + _REPLY_BLOCK)
            if deadline is not None:
                until = min(until, deadline)
            reply = f"{self.prefix}r:{key}"
            while (left := until - time.monotonic()) > 0.001:
                woken = await self._blpop(reply, left)
                if woken is not None and ready(woken[1]):
                    replied: bytes = woken[1]
                    return replied
        if self._pid != os.getpid():  # a forked child never shares its parent's lists
            self._pid, self._lists = os.getpid(), []
        waiter = self._lists.pop() if self._lists else f"{self.prefix}wl:{uuid.uuid4().hex}"
        try:
            return await self._registered(key, waiter, ready, deadline)
        finally:
            self._lists.append(waiter)

    async def _registered(
        self,
        key: str,
        waiter: str,
        ready: Callable[[bytes | None], bool],
        deadline: float | None,
    ) -> bytes | None:
        encoded = key.encode()
        tag = b"%d:%s" % (len(encoded), encoded)
        limit = self.link.block_limit
        while True:
            left = limit if deadline is None else deadline - time.monotonic()
            block = max(0.001, min(left, limit))
            args = (self.prefix, "", key, waiter, math.ceil((block + 5) * 1000))
            value = stored_value(
                await self.link.call("waiting for a result", partial(self._watch, args), 1)
            )
            if ready(value):
                return value
            while True:
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return value
                    block = max(0.001, min(left, limit))
                woken = await self._blpop(waiter, block)
                if woken is None:
                    break  # read again (and renew the registration before it expires)
                message: bytes = woken[1]
                if message.startswith(tag):
                    value = message[len(tag) :]
                    if ready(value):
                        return value
                    break  # the write used up the registration: register again
                # else: a late push for a key an earlier wait on this list waited for

    async def _blpop(self, name: str, seconds: float) -> list[bytes] | None:
        link = self.link
        try:
            woken: list[bytes] | None = await link.command(
                "BLPOP", name, f"{seconds:.3f}", timeout=seconds + _MARGIN
            )
        except (RedisError, *UNREACHABLE) as exc:
            raise link.link.error("waiting for a result", exc) from exc
        return woken
