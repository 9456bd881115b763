"""Calls from many coroutines, grouped: one round trip for the calls made meanwhile.

A web server on one event loop sends and waits for many requests at once. ``GroupedCalls``
lets the first call of a loop go at once; the calls other coroutines make while it is on
its way wait, and then go together in one call to the store (one Redis round trip, one
SQLite transaction), again and again while more arrive. A lone caller pays nothing more;
a busy server pays one round trip per group instead of one per call, and holds one
connection for it instead of one per caller. Each caller gets its own result, or the
error of the call its group went in. ``GroupedSends`` is it for publishing.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from .brokers.base import Envelope

__all__ = ["GroupedCalls", "GroupedSends"]

A = TypeVar("A")
R = TypeVar("R")


class _Line(Generic[A, R]):
    """One event loop's calls: whether one is on its way, and those waiting behind it."""

    __slots__ = ("busy", "waiting")

    def __init__(self) -> None:
        self.busy = False
        self.waiting: list[tuple[A, asyncio.Future[R]]] = []


class GroupedCalls(Generic[A, R]):
    """``await calls.call(arg)``: ``call_one`` for a call made while none is on its way,
    else ``call_many`` once per group with the arguments of the calls made meanwhile,
    giving one result per argument, in order."""

    def __init__(
        self,
        call_one: Callable[[A], Awaitable[R]],
        call_many: Callable[[list[A]], Awaitable[Sequence[R]]],
    ) -> None:
        self.call_one = call_one
        self.call_many = call_many
        self._lines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Line[A, R]] = (
            weakref.WeakKeyDictionary()
        )
        self._flushing: set[asyncio.Task[None]] = set()

    async def call(self, arg: A) -> R:
        loop = asyncio.get_running_loop()
        line = self._lines.get(loop)
        if line is None:
            line = self._lines[loop] = _Line()
        if line.busy:
            done: asyncio.Future[R] = loop.create_future()
            line.waiting.append((arg, done))
            return await done
        line.busy = True
        try:
            return await self.call_one(arg)
        finally:
            if line.waiting:  # sent together by a task of their own, so this caller returns
                flushing = loop.create_task(self._flush(line))
                self._flushing.add(flushing)
                flushing.add_done_callback(self._flushing.discard)
            else:
                line.busy = False

    async def _flush(self, line: _Line[A, R]) -> None:
        """Call for what waits, in groups, until nothing does."""
        try:
            while line.waiting:
                taken = line.waiting[:]
                line.waiting.clear()
                try:
                    results = await self.call_many([arg for arg, _ in taken])
                except Exception as exc:
                    for _, done in taken:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                except BaseException as exc:  # cancelled: the loop is closing
                    for _, done in [*taken, *line.waiting]:
                        if not done.done():
                            done.set_exception(exc)
                    raise
                for (_, done), result in zip(taken, results, strict=True):
                    if not done.done():
                        done.set_result(result)
        finally:
            line.busy = False


class GroupedSends:
    """``await sends.publish(envelopes)``: ``publish_now`` called once per group."""

    def __init__(self, publish_now: Callable[[Sequence[Envelope]], Awaitable[None]]) -> None:
        self.publish_now = publish_now
        self._calls: GroupedCalls[Sequence[Envelope], None] = GroupedCalls(
            publish_now, self._publish_many
        )
        self.publish = self._calls.call
        """``await publish(envelopes)``: sent alone, or with those of the sends meanwhile."""

    async def _publish_many(self, groups: list[Sequence[Envelope]]) -> list[None]:
        await self.publish_now([envelope for group in groups for envelope in group])
        return [None] * len(groups)
