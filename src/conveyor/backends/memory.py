"""An in-process result backend with the same TTL and fencing rules as the durable ones."""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from conveyor.backends.base import Listing, ResultBackend, listed

__all__ = ["MemoryBackend"]


class _Entry(NamedTuple):
    value: bytes
    fence: int | None
    expires_at: float


class MemoryBackend(ResultBackend):
    """Thread-safe; ``wait`` wakes the moment a value is written."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._values: dict[str, _Entry] = {}
        self._sets: dict[str, tuple[set[str], float]] = {}

    def _entry(self, key: str, now: float) -> _Entry | None:
        entry = self._values.get(key)
        if entry is not None and entry.expires_at <= now:
            del self._values[key]
            return None
        return entry

    def _members(self, key: str, now: float) -> set[str] | None:
        found = self._sets.get(key)
        if found is not None and found[1] <= now:
            del self._sets[key]
            return None
        return None if found is None else found[0]

    def list_json(self, listing: Listing) -> list[tuple[str, bytes]]:
        """Newest first by first write: the dict keeps the order keys were added in."""
        with self._cond:
            now = self._clock()
            live = [
                (key, entry.value)
                for key, entry in self._values.items()
                if key.startswith(listing.prefix) and entry.expires_at > now
            ]
        found = [(key, value) for key, value in reversed(live) if listed(value, listing)]
        return found[listing.offset : listing.offset + listing.limit]

    def get(self, key: str) -> bytes | None:
        with self._cond:
            entry = self._entry(key, self._clock())
            return None if entry is None else entry.value

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        with self._cond:
            now = self._clock()
            return [None if (e := self._entry(key, now)) is None else e.value for key in keys]

    def set(self, key: str, value: bytes, ttl: float, fence: int | None = None) -> bool:
        with self._cond:
            now = self._clock()
            old = self._entry(key, now)
            if (
                fence is not None
                and old is not None
                and old.fence is not None
                and old.fence > fence
            ):
                return False
            if old is not None and fence is None:
                fence = old.fence
            self._values[key] = _Entry(value, fence, now + ttl)
            self._cond.notify_all()
            return True

    def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float) -> None:
        with self._cond:
            now = self._clock()
            for key, value in items:
                old = self._entry(key, now)
                self._values[key] = _Entry(value, None if old is None else old.fence, now + ttl)
            self._cond.notify_all()

    def delete(self, keys: Sequence[str]) -> int:
        with self._cond:
            now = self._clock()
            count = 0
            for key in keys:
                had_value = self._entry(key, now) is not None
                had_set = self._members(key, now) is not None
                self._values.pop(key, None)
                self._sets.pop(key, None)
                count += had_value or had_set
            if count:
                self._cond.notify_all()
            return count

    def incr(self, key: str, amount: int, ttl: float) -> int:
        with self._cond:
            now = self._clock()
            old = self._entry(key, now)
            total = amount + (0 if old is None else int(old.value))
            fence = None if old is None else old.fence
            self._values[key] = _Entry(str(total).encode(), fence, now + ttl)
            self._cond.notify_all()
            return total

    def add_to_set(self, key: str, member: str, ttl: float) -> int:
        with self._cond:
            now = self._clock()
            members = self._members(key, now) or set()
            members.add(member)
            self._sets[key] = (members, now + ttl)
            return len(members)

    def set_members(self, key: str) -> builtins.set[str]:
        with self._cond:
            return set(self._members(key, self._clock()) or ())

    def expire(self, key: str, ttl: float) -> bool:
        with self._cond:
            now = self._clock()
            entry = self._entry(key, now)
            members = self._members(key, now)
            if entry is not None:
                self._values[key] = entry._replace(expires_at=now + ttl)
            if members is not None:
                self._sets[key] = (members, now + ttl)
            return entry is not None or members is not None

    def cleanup(self) -> int:
        with self._cond:
            now = self._clock()
            values = [k for k, e in self._values.items() if e.expires_at <= now]
            sets = [k for k, (_, expires_at) in self._sets.items() if expires_at <= now]
            for key in values:
                del self._values[key]
            for key in sets:
                del self._sets[key]
            return len(values) + len(sets)

    def wait(
        self, key: str, ready: Callable[[bytes | None], bool], timeout: float | None
    ) -> bytes | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                entry = self._entry(key, self._clock())
                value = None if entry is None else entry.value
                if ready(value):
                    return value
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return value
                self._cond.wait(left)
