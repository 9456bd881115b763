"""The in-memory Coordinator: one process, for tests and the memory:// broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from .base import Coordinator

__all__ = ["MemoryCoordinator"]


class MemoryCoordinator(Coordinator):
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.url = "memory://"
        self._values: dict[str, tuple[str, float]] = {}
        self._slots: dict[str, dict[str, float]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}
        self._groups: dict[str, dict[str, tuple[str, float]]] = {}
        self._lists: dict[str, list[tuple[str, float]]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str, now: float) -> str | None:
        item = self._values.get(key)
        if item is None or item[1] <= now:
            self._values.pop(key, None)
            return None
        return item[0]

    def get_many(self, keys: Sequence[str]) -> list[str | None]:
        with self._lock:
            now = self.clock()
            return [self._live(key, now) for key in keys]

    def put_many(self, items: Sequence[tuple[str, str]], ttl: float) -> None:
        with self._lock:
            expires = self.clock() + ttl
            for key, value in items:
                self._values[key] = (value, expires)

    def put_if_absent(self, key: str, value: str, ttl: float) -> str | None:
        with self._lock:
            now = self.clock()
            existing = self._live(key, now)
            if existing is not None:
                return existing
            self._values[key] = (value, now + ttl)
            return None

    def delete(self, key: str, value: str | None = None) -> bool:
        with self._lock:
            existing = self._live(key, self.clock())
            if existing is None or (value is not None and existing != value):
                return False
            del self._values[key]
            return True

    def acquire(self, key: str, holder: str, limit: int, ttl: float) -> bool:
        with self._lock:
            now = self.clock()
            slots = self._slots.setdefault(key, {})
            for other in [h for h, until in slots.items() if until <= now]:
                del slots[other]
            if holder not in slots and len(slots) >= limit:
                return False
            slots[holder] = now + ttl
            return True

    def release(self, key: str, holder: str) -> bool:
        with self._lock:
            until = self._slots.get(key, {}).pop(holder, None)
            return until is not None and until > self.clock()

    def extend(self, holders: Sequence[str], ttl: float) -> None:
        wanted = set(holders)
        with self._lock:
            until = self.clock() + ttl
            for slots in self._slots.values():
                for holder in wanted.intersection(slots):
                    slots[holder] = until

    def take_token(self, key: str, rate: float, capacity: float) -> float:
        with self._lock:
            now = self.clock()
            tokens, updated = self._buckets.get(key, (capacity, now))
            tokens = min(capacity, tokens + max(0.0, now - updated) * rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate

    def put_members(self, group: str, items: Sequence[tuple[str, str]], ttl: float) -> None:
        with self._lock:
            expires = self.clock() + ttl
            found = self._groups.setdefault(group, {})
            for member, value in items:
                found[member] = (value, expires)

    def members(self, group: str) -> dict[str, str]:
        with self._lock:
            now = self.clock()
            found = self._groups.get(group, {})
            for member in [m for m, (_, until) in found.items() if until <= now]:
                del found[member]
            return {member: value for member, (value, _) in found.items()}

    def delete_member(self, group: str, member: str) -> bool:
        with self._lock:
            item = self._groups.get(group, {}).pop(member, None)
            return item is not None and item[1] > self.clock()

    def push(self, key: str, values: Sequence[str], ttl: float) -> None:
        with self._lock:
            expires = self.clock() + ttl
            self._lists.setdefault(key, []).extend((value, expires) for value in values)

    def take(self, key: str) -> list[str]:
        with self._lock:
            now = self.clock()
            return [value for value, until in self._lists.pop(key, []) if until > now]
