"""The Redis result backend for coroutines: reads and waits that never block the event loop.

The asyncio twin of ``RedisBackend`` (whose docstring describes the keys): the same values,
the same reply lists and the same waiter-list registration, so a result waited for here
arrives exactly as it would for a ``get()`` in a thread. A task this process sent with a
reply (``RedisBackend.expect``, noted by sync and async sends alike) is first waited for
on its reply list, for at most ``_REPLY_BLOCK`` (one connection, briefly). Any other wait
registers the event loop's one shared waiter list for its key and reads the key in the
same step (``backend_watch_shared.lua``); one reader task per loop blocks on that list
with BLPOP and hands each pushed value to the waits for its key. So a thousand
coroutines waiting for results hold one connection between them, not a thousand.

Only production backends have a twin: one made with ``clock=`` (the contract tests' fake
clock) sweeps expired keys before each operation, which this module does not do.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from functools import partial

from redis.exceptions import RedisError

from ..redis_async_link import AsyncRedisLink
from ..redis_connection import UNREACHABLE
from .redis import RedisBackend, pushed_item, stored_value

__all__ = ["AsyncRedisBackend"]

_REPLY_BLOCK = 0.25
"""As ``RedisBackend``'s: how long a wait takes a reply before it registers."""
_MARGIN = 1.0
"""Seconds a blocking read may take beyond its command's own timeout."""


class _SharedList:
    """One event loop's waiter list: the waits on it by key, and the task reading it."""

    __slots__ = ("name", "reader", "waits")

    def __init__(self, name: str) -> None:
        self.name = name
        self.waits: dict[str, set[asyncio.Future[bytes]]] = {}
        self.reader: asyncio.Task[None] | None = None


class AsyncRedisBackend:
    """Reads and waits on the keys of ``backend``, for coroutines."""

    def __init__(self, backend: RedisBackend) -> None:
        self.backend = backend
        self.link = AsyncRedisLink(backend.link)
        self.prefix = backend.prefix
        self._values = f"{self.prefix}v:"
        self._watch = self.link.script("backend_prelude.lua", "backend_watch_shared.lua")
        self._lists: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SharedList] = (
            weakref.WeakKeyDictionary()
        )
        """Per event loop: the waiter list its registered waits share."""
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
        return await self._registered(key, ready, deadline)

    def _shared(self) -> _SharedList:
        """The running loop's shared waiter list (a forked child makes its own)."""
        if self._pid != os.getpid():
            self._pid, self._lists = os.getpid(), weakref.WeakKeyDictionary()
        loop = asyncio.get_running_loop()
        shared = self._lists.get(loop)
        if shared is None:
            shared = self._lists[loop] = _SharedList(f"{self.prefix}wl:{uuid.uuid4().hex}")
        return shared

    async def _registered(
        self, key: str, ready: Callable[[bytes | None], bool], deadline: float | None
    ) -> bytes | None:
        """Register the loop's shared list for the key and read it (one script); then wait
        for the reader to hand over a value pushed for the key; register again after a
        value that is not ready or when the registration is about to lapse."""
        shared = self._shared()
        limit = self.link.block_limit
        while True:
            left = limit if deadline is None else deadline - time.monotonic()
            block = max(0.001, min(left, limit))
            pushed: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            shared.waits.setdefault(key, set()).add(pushed)  # before the registration
            try:
                self._start_reader(shared)
                args = (self.prefix, "", key, shared.name, math.ceil((block + 5) * 1000))
                value = stored_value(
                    await self.link.call("waiting for a result", partial(self._watch, args), 1)
                )
                if ready(value):
                    return value
                try:
                    async with asyncio.timeout(block):
                        value = await pushed
                except TimeoutError:
                    if deadline is not None and deadline - time.monotonic() <= 0:
                        return value
                    continue  # read again (and renew the registration before it expires)
                if ready(value):
                    return value
                # the write used up the registration: register again
            finally:
                if pushed.done() and not pushed.cancelled():
                    pushed.exception()  # seen: an error it holds was raised or is moot
                waits = shared.waits.get(key)
                if waits is not None:
                    waits.discard(pushed)
                    if not waits:
                        del shared.waits[key]

    def _start_reader(self, shared: _SharedList) -> None:
        if shared.reader is None or shared.reader.done():
            shared.reader = asyncio.get_running_loop().create_task(self._read(shared))

    async def _read(self, shared: _SharedList) -> None:
        """Block on the shared list while any wait uses it; hand each pushed value to the
        waits for its key (pushes for keys nobody waits for now are late: dropped)."""
        limit = self.link.block_limit
        while shared.waits:
            try:
                woken = await self._blpop(shared.name, limit)
            except Exception as exc:  # Redis unreachable: every wait fails with it
                for waits in shared.waits.values():
                    for pushed in waits:
                        if not pushed.done():
                            pushed.set_exception(exc)
                return
            if woken is None:
                continue
            key, value = pushed_item(woken[1])
            for pushed in shared.waits.get(key, ()):
                if not pushed.done():
                    pushed.set_result(value)

    async def _blpop(self, name: str, seconds: float) -> list[bytes] | None:
        link = self.link
        try:
            woken: list[bytes] | None = await link.command(
                "BLPOP", name, f"{seconds:.3f}", timeout=seconds + _MARGIN
            )
        except (RedisError, *UNREACHABLE) as exc:
            raise link.link.error("waiting for a result", exc) from exc
        return woken
