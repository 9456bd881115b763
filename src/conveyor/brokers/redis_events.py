"""The Redis broker's event stream: one Redis stream, ``<prefix>events``, of event packets.

Each ``add_events`` call is one stream entry (an ``EventPacket``, the batch a worker
process wrote), so a busy worker adds an entry every fraction of a second, not three per
task; ``events_add.lua`` trims whole packets while the newer ones still hold
``max_length`` events. Entry ids are Redis's (milliseconds of its clock, then a sequence),
so ``since`` is judged on the server's clock, as leases and etas are. A cursor is
``<entry id>:<index in the packet>``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from conveyor.brokers.base import EventPacket, StoredEvent
from conveyor.event_runs import count_events
from conveyor.redis_connection import RedisLink

__all__ = ["RedisEvents"]

_PACKETS = 64
"""Packets read per call."""


class RedisEvents:
    def __init__(self, link: RedisLink, clock: Callable[[], float] | None) -> None:
        self._link = link
        self._clock = clock
        self._add = link.script((), "events_add.lua")
        self._read = link.script((), "events_read.lua")

    def add(self, events: Sequence[bytes], max_length: int, count: int | None = None) -> None:
        if not events:
            return
        now = "" if self._clock is None else str(int(self._clock() * 1000))
        packet = EventPacket.pack(events)
        count = count_events(events) if count is None else count
        args: list[Any] = [self._link.prefix, max(int(max_length), 1), now, count, packet]
        self._link.call("writing events", lambda: self._add(args))

    def read(
        self, after: str | None, since: float | None, limit: int, match: bytes | None
    ) -> list[StoredEvent]:
        if limit <= 0:
            return []
        skip = 0
        if after is not None:
            start, skip = EventPacket.cursor(after)
        elif since is not None:
            start = str(max(int(since * 1000), 0))
        else:
            start = "-"
        first = start
        found: list[StoredEvent] = []
        while len(found) < limit:
            args = (self._link.prefix, start, _PACKETS)
            reply = self._link.call("reading events", partial(self._read, args), retries=1)
            for i in range(0, len(reply), 2):
                number = reply[i].decode()
                found += EventPacket.events(
                    number, reply[i + 1], skip if number == first else 0, match
                )
            if len(reply) < 2 * _PACKETS:
                break
            start = "(" + reply[-2].decode()
        return found[:limit]
