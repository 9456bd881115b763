"""The Redis result backend for coroutines: reads and waits that never block the event loop.

The asyncio twin of ``RedisBackend`` (whose docstring describes the keys): the same values
and the same waiter-list registration, so a result waited for here arrives exactly as it
would for a ``get()`` in a thread. Each event loop has one waiter list in Redis, read by
one BLPOP at a time: a wait alone on the loop reads it itself; while several wait, a
reader task does, and hands each pushed value to the waits for its key.

A task sent from a loop asks for a reply at that loop's list (``reply_address``: an
address that begins with ``EVERY_OUTCOME``, so the worker hands over failures there
too), and the first wait for it, within ``_REPLY_BLOCK``, takes it from there. A reply
that may have come before its wait began (the reader kept it, or it waited in the list
while nobody read it) is checked against the stored result unless it is a success: a
failure forgotten since, as a re-send from the dead letters forgets it, is not returned.
Any other wait (a task sent elsewhere, a reply that did not come within
``_REPLY_BLOCK``) registers the loop's list for its key and reads the key in the same
step (``backend_watch_shared.lua``). Reads and registrations made while one is on its way
go together (``GroupedCalls``). So a thousand coroutines waiting for results hold one
blocked connection between them, not a thousand, and open a few, not a thousand.

Only production backends have a twin: one made with ``clock=`` (the contract tests' fake
clock) sweeps expired keys before each operation, which this module does not do.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

from redis.exceptions import RedisError

from ..grouped_sends import GroupedCalls
from ..message import EVERY_OUTCOME
from ..pids import current_pid
from ..redis_async_link import AsyncRedisLink
from ..redis_connection import UNREACHABLE
from .redis import RedisBackend, pushed_item, stored_value

__all__ = ["AsyncRedisBackend"]

_REPLY_BLOCK = 0.25
"""As ``RedisBackend``'s: how long a wait takes a reply before it registers."""
_MARGIN = 1.0
"""Seconds a blocking read may take beyond its command's own timeout."""


def _give_up(pushed: asyncio.Future[bytes | None]) -> None:
    if not pushed.done():
        pushed.set_result(None)


class _Want(NamedTuple):
    """What a first wait looks for on its loop's list (``AsyncRedisBackend.wait``)."""

    key: str
    ready: Callable[[bytes | None], bool]
    until: float
    settled: Callable[[bytes], bool] | None


class _SharedList:
    """One event loop's waiter list: the waits on it by key, and the task reading it."""

    __slots__ = ("address", "name", "reader", "runs", "solo", "waits")

    def __init__(self, prefix: str) -> None:
        self.address = f"{EVERY_OUTCOME}{uuid.uuid4().hex}"
        self.name = f"{prefix}wl:{self.address}"
        self.waits: dict[str, set[asyncio.Future[bytes | None]]] = {}
        self.reader: asyncio.Task[None] | None = None
        self.runs = 0
        """Readers started so far: a wait that sees a new one may get a reply that waited
        in the list from before it began."""
        self.solo = False
        """A lone wait reads the list itself (``_loop_reply``), for the others too."""

    def reading(self) -> bool:
        return self.solo or (self.reader is not None and not self.reader.done())


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
        self._pid = current_pid()
        self._reads: GroupedCalls[str, bytes | None] = GroupedCalls(self._get, self.mget)
        self._registrations: GroupedCalls[tuple[Any, ...], Any] = GroupedCalls(
            self._register, self._register_many
        )

    async def get(self, key: str) -> bytes | None:
        """One key's value; reads made meanwhile on the loop go together in one MGET."""
        return await self._reads.call(key)

    async def _get(self, key: str) -> bytes | None:
        name = self._values + key
        link = self.link
        stored = await link.call("reading a result", lambda: link.command("GET", name), 1)
        return stored_value(stored)

    async def _register(self, args: tuple[Any, ...]) -> Any:
        return await self.link.call("waiting for a result", partial(self._watch, args), 1)

    async def _register_many(self, calls: list[tuple[Any, ...]]) -> list[Any]:
        """Registrations made meanwhile on the loop, in one round trip."""
        return await self.link.call("waiting for results", partial(self._watch.many, calls), 1)

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        names = [self._values + key for key in keys]
        link = self.link
        stored = await link.call("reading results", lambda: link.command("MGET", *names), 1)
        return [stored_value(v) for v in stored]

    def reply_address(self) -> str:
        """Where the running loop's sends ask for their replies: its shared list."""
        return self._shared().address

    async def wait(
        self,
        key: str,
        ready: Callable[[bytes | None], bool],
        timeout: float | None,
        settled: Callable[[bytes], bool] | None = None,
    ) -> bytes | None:
        """Block until ``ready(value)`` holds or the timeout passes; the last value read.
        ``settled(value)``: a value that stands once stored (a success), which a reply
        taken before the wait began may give without a check against the store."""
        deadline = None if timeout is None else time.monotonic() + timeout
        shared = self._shared()
        expected = self.backend.take_expected(key)
        if expected is not None:
            until = min(expected.until, time.monotonic() + _REPLY_BLOCK)
            if deadline is not None:
                until = min(until, deadline)
            if expected.address is None:
                found = await self._own_reply(key, ready, until)
            elif expected.address != shared.address:
                found = None  # sent by a thread or another loop: their lists are not read here
            elif expected.value is not None:  # taken by the reader before this wait began
                found = await self._still_stored(key, expected.value, ready, settled)
            else:
                found = await self._loop_reply(shared, _Want(key, ready, until, settled))
            if found is not None:
                return found
        return await self._registered(shared, key, ready, deadline)

    async def _own_reply(
        self, key: str, ready: Callable[[bytes | None], bool], until: float
    ) -> bytes | None:
        """A reply pushed to the key's own list (a send that named no address)."""
        reply = f"{self.prefix}r:{key}"
        while (left := until - time.monotonic()) > 0.001:
            woken = await self._blpop(reply, left, spin=True)
            if woken is not None and ready(woken[1]):
                replied: bytes = woken[1]
                return replied
        return None

    async def _loop_reply(self, shared: _SharedList, want: _Want) -> bytes | None:
        """A reply pushed to this loop's list before ``until``. A wait alone on the loop
        reads the list itself, as the reader would (no task to start, no hand-over: a
        coroutine that sends and waits again and again pays nothing for the shared list),
        handing the values of others' keys to them; a reader takes over for the waits
        still there when it ends. Else the reader hands the reply over. A reply that may
        have come before the wait began (the list was not read, or a reader started
        since) is checked against the store unless ``settled``."""
        if shared.reading():
            return await self._handed_reply(shared, want)
        key, ready, until, settled = want
        shared.solo = True
        shared.runs += 1
        try:
            while (left := until - time.monotonic()) > 0.001:
                woken = await self._blpop(shared.name, left, spin=True)
                if woken is None:
                    continue
                pushed_key, value = pushed_item(woken[1])
                if pushed_key != key:
                    self._hand_over(shared, pushed_key, value)
                elif settled is not None and settled(value) and ready(value):
                    return value
                elif ready(value):
                    return await self._still_stored(key, value, ready, None)
            return None
        finally:
            shared.solo = False
            if shared.waits:
                self._start_reader(shared)

    async def _handed_reply(self, shared: _SharedList, want: _Want) -> bytes | None:
        """``_loop_reply``'s reply as the loop's reader hands it over."""
        key, ready, until, settled = want
        loop = asyncio.get_running_loop()
        run = shared.runs
        while (left := until - time.monotonic()) > 0.001:
            pushed: asyncio.Future[bytes | None] = loop.create_future()
            shared.waits.setdefault(key, set()).add(pushed)
            late = loop.call_later(left, _give_up, pushed)  # lighter than asyncio.timeout
            try:
                self._start_reader(shared)
                value = await pushed
                if value is None:  # nothing came in time (_give_up)
                    return None
                if shared.runs != run:  # a new reader: the reply may predate this wait
                    return await self._still_stored(key, value, ready, settled)
                if ready(value):
                    return value
            finally:
                late.cancel()
                self._unwait(shared, key, pushed)
        return None

    def _hand_over(self, shared: _SharedList, key: str, value: bytes) -> bool:
        """A pushed value to the waits for its key, or kept for a wait to come; whether
        any wait took it."""
        waiting = shared.waits.get(key)
        if not waiting:
            self.backend.keep_reply(key, value)
            return False
        for pushed in waiting:
            if not pushed.done():
                pushed.set_result(value)
        return True

    async def _still_stored(
        self,
        key: str,
        value: bytes,
        ready: Callable[[bytes | None], bool],
        settled: Callable[[bytes], bool] | None,
    ) -> bytes | None:
        """A reply that may predate its wait, if it is settled or the store still holds it
        (a failure forgotten since, as a re-send from the dead letters forgets it, is not
        returned); None: the wait registers instead."""
        if settled is not None and settled(value):
            return value if ready(value) else None
        stored = await self.get(key)
        return stored if stored == value and ready(stored) else None

    def _shared(self) -> _SharedList:
        """The running loop's shared waiter list (a forked child makes its own)."""
        if self._pid != current_pid():
            self._pid, self._lists = current_pid(), weakref.WeakKeyDictionary()
        loop = asyncio.get_running_loop()
        shared = self._lists.get(loop)
        if shared is None:
            shared = self._lists[loop] = _SharedList(self.prefix)
        return shared

    async def _registered(
        self,
        shared: _SharedList,
        key: str,
        ready: Callable[[bytes | None], bool],
        deadline: float | None,
    ) -> bytes | None:
        """Register the loop's shared list for the key and read it (one script); then wait
        for the reader to hand over a value pushed for the key; register again after a
        value that is not ready or when the registration is about to lapse."""
        limit = self.link.block_limit
        while True:
            left = limit if deadline is None else deadline - time.monotonic()
            block = max(0.001, min(left, limit))
            pushed: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
            shared.waits.setdefault(key, set()).add(pushed)  # before the registration
            try:
                self._start_reader(shared)
                args = (self.prefix, "", key, shared.name, math.ceil((block + 5) * 1000))
                value = stored_value(await self._registrations.call(args))
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
                self._unwait(shared, key, pushed)

    @staticmethod
    def _unwait(shared: _SharedList, key: str, pushed: asyncio.Future[bytes | None]) -> None:
        if pushed.done() and not pushed.cancelled():
            pushed.exception()  # seen: an error it holds was raised or is moot
        waits = shared.waits.get(key)
        if waits is not None:
            waits.discard(pushed)
            if not waits:
                del shared.waits[key]

    def _start_reader(self, shared: _SharedList) -> None:
        if not shared.reading():
            shared.runs += 1
            shared.reader = asyncio.get_running_loop().create_task(self._read(shared))

    async def _read(self, shared: _SharedList) -> None:
        """Block on the shared list while any wait uses it; hand each pushed value to the
        waits for its key, or keep it for a wait to come (``RedisBackend.keep_reply``: a
        reply to a send of this loop); other pushes are late, dropped. It stops when the
        last wait ends (reading on would cost the next send's round trip its time)."""
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
            if not self._hand_over(shared, key, value):
                continue
            if len(shared.waits) == 1:
                return  # the last wait has its value (if it waits on, it starts a reader)
            await asyncio.sleep(0)  # the waits it woke go first (their next sends, say)

    async def _blpop(self, name: str, seconds: float, spin: bool = False) -> list[bytes] | None:
        """``spin``: a lone wait for a reply expected soon polls for it first (``LoopSpin``)."""
        link = self.link
        try:
            woken: list[bytes] | None = await link.command(
                "BLPOP", name, f"{seconds:.3f}", timeout=seconds + _MARGIN, spin=spin
            )
        except (RedisError, *UNREACHABLE) as exc:
            raise link.link.error("waiting for a result", exc) from exc
        return woken
