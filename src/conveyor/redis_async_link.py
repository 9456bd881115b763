"""Redis for coroutines: the asyncio twin of ``RedisLink``, for the async client.

Built from a sync ``RedisLink`` (the broker's or the backend's), so it reaches the same
database with the same URL options, prefix and error messages. Connections are redis-py's
asyncio ones, kept in a free list per event loop (a connection belongs to the loop that
opened it; a forked process starts with none): a command takes a free connection, sends,
reads the reply and gives it back. That skips redis-py's client and pool layers, which
cost about a third of a quick command here, as ``RedisLink.command`` does for threads.

A connection whose reply was not read (an error, or the awaiting coroutine cancelled in
the middle) is dropped, never reused. Waiting coroutines each hold a connection while
they block (BLPOP), as a waiting thread does.

A quick command's reply, and a result a lone wait expects soon, are first polled for by
running the loop without letting it sleep (``LoopSpin``), as a thread polls its socket
(``ReplyWait``): the URL's ``reply_spin`` and ``result_spin`` set how long.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from redis.asyncio.connection import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from .pids import current_pid
from .redis_connection import (
    UNREACHABLE,
    PollHistory,
    RedisLink,
    Script,
    packed,
    refuses_functions,
    split_url,
)
from .redis_sentinel import SENTINEL_SCHEMES, async_sentinel_pool

__all__ = ["AsyncRedisLink", "AsyncScript", "LoopSpin"]

T = TypeVar("T")

_TIMEOUTS = ("socket_connect_timeout", "socket_timeout", "socket_keepalive")
_KEPT = 64
"""Most idle connections kept per event loop; more are closed when given back."""

_SPINNING = threading.local()
"""``on``: a coroutine of this thread's loop is polling for a reply (one at a time)."""


class LoopSpin(PollHistory):
    """``ReplyWait`` for coroutines: after a command is sent, the loop runs on without
    sleeping (``asyncio.sleep(0)``: other coroutines and callbacks run between polls, and
    each turn reads the sockets without blocking) until the reply's bytes are in, or
    ``limit`` seconds pass; then the wait awaits the reply as usual.

    On a virtual machine a loop that sleeps in its selector lets its virtual CPU halt,
    and waking it costs tens of microseconds a reply (bench/README.md, "An async client
    that does not sleep for a quick reply"). One coroutine per loop polls at a time.
    """

    __slots__ = ()

    async def poll(self, connection: Any) -> None:
        """Run the loop until ``connection`` has reply bytes or the limit passes."""
        if not self.due():
            return
        buffered = getattr(getattr(connection, "_reader", None), "_buffer", None)
        if buffered is None or getattr(_SPINNING, "on", False):
            return
        _SPINNING.on = True
        try:
            clock = time.perf_counter
            deadline = clock() + self.limit
            while not buffered:
                await asyncio.sleep(0)
                if clock() > deadline:
                    self.polled(ran_out=True)
                    return
            self.polled(ran_out=False)
        finally:
            _SPINNING.on = False


class AsyncRedisLink:
    """Connections to the database of ``link``, for coroutines on any event loop."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self.prefix = link.prefix
        self.block_limit = link.block_limit
        redis_url, _ = split_url(link.url)
        given = link.pool.connection_kwargs  # the timeouts the URL or the defaults set
        timeouts = {name: given[name] for name in _TIMEOUTS if name in given}
        self.read_timeout: float | None = timeouts.pop("socket_timeout", None)
        """Seconds a reply may take, given to each read. The connections themselves have
        no socket timeout: with one, redis-py wraps every write in ``asyncio.wait_for``,
        a task and a loop iteration more per command."""
        options = {**timeouts, "socket_timeout": None, "retry": Retry(NoBackoff(), 0)}
        if urlsplit(redis_url).scheme in SENTINEL_SCHEMES:
            self._pool: Any = async_sentinel_pool(redis_url, options)
        else:
            self._pool = ConnectionPool.from_url(redis_url, **options)
        self._idle: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, list[Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._pid = current_pid()
        self.replies = LoopSpin(link.reply_spin)
        self.results = LoopSpin(link.result_spin)
        """Polling for quick replies, and for results waited for (``command(spin=True)``)."""

    def _free(self) -> list[Any]:
        """The idle connections of the running loop (none after a fork)."""
        if self._pid != current_pid():
            self._pid = current_pid()
            self._idle = weakref.WeakKeyDictionary()
        loop = asyncio.get_running_loop()
        free = self._idle.get(loop)
        if free is None:
            free = self._idle[loop] = []
        return free

    def _new(self) -> Any:
        pool = self._pool
        return pool.connection_class(**pool.connection_kwargs)

    async def command(self, *args: Any, timeout: float | None = None, spin: bool = False) -> Any:
        """One command and its raw reply. ``timeout``: seconds to wait for the reply of a
        command that blocks on purpose (its own timeout plus a margin), whose reply is not
        polled for unless ``spin`` (a result expected soon); else the socket timeout, and
        a quick reply is polled for (``LoopSpin``)."""
        free = self._free()
        connection = free.pop() if free else self._new()
        try:
            if not connection.is_connected:  # a Sentinel-managed one finds the master here
                await connection.connect()
            command = packed(args)
            if command is None:
                await connection.send_command(*args)
            else:
                await connection.send_packed_command(command)
            if timeout is None:
                await self.replies.poll(connection)
            elif spin:
                await self.results.poll(connection)
            reply = await connection.read_response(timeout=timeout or self.read_timeout)
        except BaseException:
            await _drop(connection)
            raise
        if len(free) < _KEPT:
            free.append(connection)
        else:
            await _drop(connection)
        return reply

    async def command_many(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Several commands in one round trip; their replies in order (an error reply is
        returned in its place, not raised, as a pipeline's would be)."""
        free = self._free()
        connection = free.pop() if free else self._new()
        try:
            if not connection.is_connected:
                await connection.connect()
            await connection.send_packed_command(connection.pack_commands(commands))
            replies = []
            for _ in commands:
                try:
                    replies.append(await connection.read_response(timeout=self.read_timeout))
                except RedisError as exc:
                    if isinstance(exc, UNREACHABLE):
                        raise
                    replies.append(exc)
        except BaseException:
            await _drop(connection)
            raise
        free.append(connection)
        return replies

    async def call(
        self,
        what: str,
        fn: Callable[[], Awaitable[T]],
        retries: int = 0,
        delay: float = 0.05,
        max_delay: float = 5.0,
    ) -> T:
        """``RedisLink.call`` for coroutines: retry while Redis is unreachable, then
        BrokerError naming the URL (only idempotent operations may be retried)."""
        attempt = 0
        while True:
            try:
                return await fn()
            except UNREACHABLE as exc:
                if attempt >= retries:
                    raise self.link.error(what, exc) from exc
            except RedisError as exc:
                raise self.link.error(what, exc) from exc
            await asyncio.sleep(min(delay * 2**attempt, max_delay))
            attempt += 1

    def script(self, prelude: str | tuple[str, ...], name: str) -> AsyncScript:
        return AsyncScript(self, prelude, name)


async def _drop(connection: Any) -> None:
    with contextlib.suppress(Exception):  # a connection being dropped may be broken already
        await connection.disconnect(nowait=True)


class AsyncScript:
    """One Lua script, run as the sync ``Script`` of that name runs it (FCALL of the same
    library, or EVALSHA of the same text), so either loads it for both."""

    def __init__(self, link: AsyncRedisLink, prelude: str | tuple[str, ...], name: str) -> None:
        self.link = link
        self.same = Script(link.link, prelude, name)

    async def _call(self, args: Sequence[Any]) -> tuple[Any, ...]:
        """The command to send; the first call asks the server whether it has functions
        (``RedisLink.functions``), without blocking the loop."""
        sync = self.link.link
        if not sync.knows_functions():
            try:
                info = await self.link.command("INFO", "server")
            except ResponseError:  # INFO refused (an ACL): scripts as before
                info = b""
            sync.server_is(info)
        return self.same.invocation(args)

    async def __call__(self, args: Sequence[Any]) -> Any:
        command = self.link.command
        try:
            return await command(*await self._call(args))
        except RedisError as exc:
            if not self.same.missing(exc):
                raise
            await self.load()
            return await command(*await self._call(args))

    async def pipelined(self, calls: Sequence[Sequence[Any]]) -> list[Any]:
        """Several calls in one MULTI/EXEC (all or none), loading the script first."""
        await self._call(())
        await self.load()
        replies = await self.link.command_many(
            [("MULTI",), *(self.same.invocation(args) for args in calls), ("EXEC",)]
        )
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        result: list[Any] = replies[-1]
        return result

    async def many(self, calls: Sequence[Sequence[Any]]) -> list[Any]:
        """Several calls in one round trip, each its own (no transaction); those refused
        because Redis lacks the script are sent again, alone, once it is loaded. The
        first error among the replies is raised."""
        await self._call(())
        replies = await self.link.command_many([self.same.invocation(args) for args in calls])
        refused = [at for at, reply in enumerate(replies) if self.same.refused(reply)]
        if refused:
            await self.load()
            again = await self.link.command_many(
                [self.same.invocation(calls[at]) for at in refused]
            )
            for at, reply in zip(refused, again, strict=True):
                replies[at] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def load(self) -> None:
        """``Script.load``, without blocking the loop."""
        same = self.same
        if same.link.functions():  # known by now: every call asks first
            try:
                await self.link.command("FUNCTION", "LOAD", "REPLACE", same.library)
                return
            except ResponseError as exc:
                if not refuses_functions(exc):
                    raise
                same.link.no_functions()
        await self.link.command("SCRIPT", "LOAD", same.text)
