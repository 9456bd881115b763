"""``app.lock(name)``: a distributed lock in the coordinator, released only by its holder."""

from __future__ import annotations

import time
import uuid
from types import TracebackType
from typing import TYPE_CHECKING

from .keys import lock_key

if TYPE_CHECKING:
    from .coordination.base import Coordinator

__all__ = ["Lock"]


class Lock:
    """Held by one token at a time; expires after ``timeout`` so a crashed holder never blocks.

    ``with app.lock("report", timeout=600) as acquired:`` does not wait: it gives whether
    the lock was taken (the ``task_lock`` pattern of cache-based locks, ``cache.add``), so
    a second run can skip its work. Waiting is opt-in: with ``blocking=True`` (or a
    ``blocking_timeout``) it waits, up to ``blocking_timeout``, and the block runs only
    once the lock is held.
    """

    def __init__(
        self,
        coordinator: Coordinator,
        name: str,
        timeout: float = 60.0,
        blocking: bool | None = None,
        blocking_timeout: float | None = None,
        poll: float = 0.05,
    ) -> None:
        self.coordinator = coordinator
        self.name = name
        self.key = lock_key(name)
        self.timeout = timeout
        self.blocking = blocking_timeout is not None if blocking is None else blocking
        self.blocking_timeout = blocking_timeout
        self.poll = poll
        self.token = uuid.uuid4().hex
        self.held = False

    def acquire(self, blocking: bool | None = None, blocking_timeout: float | None = None) -> bool:
        if blocking is None:
            blocking = self.blocking or blocking_timeout is not None
        limit = self.blocking_timeout if blocking_timeout is None else blocking_timeout
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            if self.coordinator.acquire(self.key, self.token, 1, self.timeout):
                self.held = True
                return True
            if not blocking or (deadline is not None and time.monotonic() >= deadline):
                return False
            time.sleep(self.poll)

    def release(self) -> bool:
        """Release it if this holder still has it; False when it had expired."""
        if not self.held:
            return False
        self.held = False
        return self.coordinator.release(self.key, self.token)

    def extend(self, timeout: float | None = None) -> None:
        self.coordinator.extend([self.token], timeout or self.timeout)

    def __enter__(self) -> bool:
        acquired = self.acquire()
        if self.blocking and not acquired:
            from .exceptions import TimeoutError

            raise TimeoutError(f"lock {self.name!r} not acquired within {self.blocking_timeout}s")
        return acquired

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
