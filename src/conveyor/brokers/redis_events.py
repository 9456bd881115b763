"""The Redis broker's event stream: one capped Redis stream, ``<prefix>events``.

Appending is one script call a batch (``events_add.lua``: XADD with ``MAXLEN ~``, which
trims whole stream nodes, so keeping the stream bounded costs almost nothing). Entry ids
are Redis's (milliseconds of its clock, then a sequence), so ``since`` is judged on the
server's clock, as leases and etas are, and a reader's cursor is the last id it read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from conveyor.brokers.base import StoredEvent
from conveyor.redis_connection import RedisLink

__all__ = ["RedisEvents"]


class RedisEvents:
    def __init__(self, link: RedisLink, clock: Callable[[], float] | None) -> None:
        self._link = link
        self._clock = clock
        self._add = link.script((), "events_add.lua")
        self._read = link.script((), "events_read.lua")

    def add(self, events: Sequence[bytes], max_length: int) -> None:
        if not events:
            return
        now = "" if self._clock is None else str(int(self._clock() * 1000))
        args: list[Any] = [self._link.prefix, max(int(max_length), 1), now, *events]
        self._link.call("writing events", lambda: self._add(args), retries=1)

    def read(
        self, after: str | None, since: float | None, limit: int, match: bytes | None
    ) -> list[StoredEvent]:
        if limit <= 0:
            return []
        if after is not None:
            start = f"({after}"
        elif since is not None:
            start = str(max(int(since * 1000), 0))
        else:
            start = "-"
        args = (self._link.prefix, start, int(limit), match or b"")
        reply = self._link.call("reading events", lambda: self._read(args), retries=1)
        return [StoredEvent(reply[i].decode(), reply[i + 1]) for i in range(0, len(reply), 2)]
