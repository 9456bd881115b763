"""Sends from many coroutines, grouped: one publish call for the sends made meanwhile.

A web server on one event loop sends for many requests at once. ``GroupedSends`` lets the
first send of a loop go at once; the sends other coroutines make while it is on its way
wait, and then go together in one call to the store (one Redis script call, one SQLite
transaction), again and again while more arrive. A lone sender pays nothing more; a busy
server pays one round trip per group instead of one per message. Each caller waits for
the call its messages went in and gets that call's error, if it fails.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Sequence

from .brokers.base import Envelope

__all__ = ["GroupedSends"]


class _Line:
    """One event loop's sends: whether one is on its way, and those waiting behind it."""

    __slots__ = ("busy", "waiting")

    def __init__(self) -> None:
        self.busy = False
        self.waiting: list[tuple[Sequence[Envelope], asyncio.Future[None]]] = []


class GroupedSends:
    """``await sends.publish(envelopes)``: ``publish_now`` called once per group."""

    def __init__(self, publish_now: Callable[[Sequence[Envelope]], Awaitable[None]]) -> None:
        self.publish_now = publish_now
        self._lines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Line] = (
            weakref.WeakKeyDictionary()
        )
        self._flushing: set[asyncio.Task[None]] = set()

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        if not envelopes:
            return
        loop = asyncio.get_running_loop()
        line = self._lines.get(loop)
        if line is None:
            line = self._lines[loop] = _Line()
        if line.busy:
            done = loop.create_future()
            line.waiting.append((envelopes, done))
            await done
            return
        line.busy = True
        try:
            await self.publish_now(envelopes)
        finally:
            if line.waiting:  # sent together by a task of their own, so this caller returns
                flushing = loop.create_task(self._flush(line))
                self._flushing.add(flushing)
                flushing.add_done_callback(self._flushing.discard)
            else:
                line.busy = False

    async def _flush(self, line: _Line) -> None:
        """Send what waits, in groups, until nothing does."""
        try:
            while line.waiting:
                taken = line.waiting[:]
                line.waiting.clear()
                try:
                    await self.publish_now([e for batch, _ in taken for e in batch])
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
                for _, done in taken:
                    if not done.done():
                        done.set_result(None)
        finally:
            line.busy = False
