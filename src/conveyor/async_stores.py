"""The stores seen from a coroutine: what the async client needs of a broker and a backend.

``async_broker(broker)`` and ``async_backend(backend)`` give each store's asyncio face,
made once per store object. Redis has native ones (``brokers/redis_async.py``,
``backends/redis_async.py``: redis-py's asyncio client, the same keys and scripts). Every
other store (SQLite, memory, a third party's) is called in a worker thread
(``asyncio.to_thread``), so its blocking calls never run on the event loop; a wait there
polls, reading in a thread and sleeping with ``asyncio.sleep``, so a thousand waiting
coroutines do not hold a thousand threads.

The Redis modules are imported only when a Redis store is used, so an install without
redis-py imports this module all the same.
"""

from __future__ import annotations

import asyncio
import importlib
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .backends.base import ResultBackend
from .brokers.base import Broker, Envelope
from .grouped_sends import GroupedSends

__all__ = ["AsyncBackend", "AsyncBroker", "async_backend", "async_broker"]


class AsyncBroker(Protocol):
    async def publish(self, envelopes: Sequence[Envelope]) -> None: ...

    async def contains(self, ids: Sequence[str]) -> set[str]: ...


class AsyncBackend(Protocol):
    def reply_address(self) -> bool | str: ...

    async def get(self, key: str) -> bytes | None: ...

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]: ...

    async def wait(
        self,
        key: str,
        ready: Callable[[bytes | None], bool],
        timeout: float | None,
        settled: Callable[[bytes], bool] | None = None,
    ) -> bytes | None: ...


class ThreadedBroker:
    """Any broker, each call made in a worker thread."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._sends = GroupedSends(self._publish_now)

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Publish; sends made meanwhile on the same loop go together (``GroupedSends``):
        on SQLite, one transaction for the group."""
        if envelopes:
            await self._sends.publish(envelopes)

    async def _publish_now(self, envelopes: Sequence[Envelope]) -> None:
        await asyncio.to_thread(self.broker.publish, envelopes)

    async def contains(self, ids: Sequence[str]) -> set[str]:
        return await asyncio.to_thread(self.broker.contains, ids)


class ThreadedBackend:
    """Any result backend, each read made in a worker thread; waits poll."""

    first_interval = 0.001
    """Seconds between a wait's first reads; the interval grows by half up to ``interval``."""
    interval = 0.025

    def __init__(self, backend: ResultBackend) -> None:
        self.backend = backend

    def reply_address(self) -> bool:
        """Replies (where the backend hands them) go to each key's own list."""
        return True

    async def get(self, key: str) -> bytes | None:
        return await asyncio.to_thread(self.backend.get, key)

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        return await asyncio.to_thread(self.backend.mget, keys)

    async def wait(
        self,
        key: str,
        ready: Callable[[bytes | None], bool],
        timeout: float | None,
        settled: Callable[[bytes], bool] | None = None,
    ) -> bytes | None:
        """Read until ready; ``settled`` is moot (every value here is read from the store)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = self.first_interval
        while True:
            value = await self.get(key)
            if ready(value):
                return value
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return value
                pause = min(pause, left)
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, self.interval)


_NATIVE = {
    "conveyor.brokers.redis:RedisBroker": "conveyor.brokers.redis_async:AsyncRedisBroker",
    "conveyor.backends.redis:RedisBackend": "conveyor.backends.redis_async:AsyncRedisBackend",
    "conveyor.cluster_stores:ClusterBackend": "",
}
"""Store class -> its native asyncio face (a subclass gets its base's; "": none, its calls
go to a thread: the Redis Cluster backend's link is not the async face's)."""

_faces: weakref.WeakKeyDictionary[object, Any] = weakref.WeakKeyDictionary()


def _native(store: object) -> Any:
    """The native face of ``store``'s class, made for it, or None."""
    for cls in type(store).__mro__:
        target = _NATIVE.get(f"{cls.__module__}:{cls.__qualname__}")
        if target is not None:
            if not target:
                return None
            if isinstance(store, ResultBackend) and not store.replies:
                return None  # a fake clock: only the sync backend sweeps what it expired
            module, _, name = target.partition(":")
            return getattr(importlib.import_module(module), name)(store)
    return None


def async_broker(broker: Broker) -> AsyncBroker:
    """The asyncio face of ``broker``: native for Redis, else its calls in a thread."""
    face: AsyncBroker | None = _faces.get(broker)
    if face is None:
        face = _native(broker) or ThreadedBroker(broker)
        _faces[broker] = face
    return face


def async_backend(backend: ResultBackend) -> AsyncBackend:
    """The asyncio face of ``backend``: native for Redis, else its reads in a thread."""
    face: AsyncBackend | None = _faces.get(backend)
    if face is None:
        face = _native(backend) or ThreadedBackend(backend)
        _faces[backend] = face
    return face
