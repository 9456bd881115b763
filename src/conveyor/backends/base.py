"""The ResultBackend interface: a small key-value store with TTLs that results live in.

Every key written has a time to live. Values are opaque bytes; the layer above
(``conveyor.result``) encodes task state into them. A write may carry a *fence*: an
integer that grows with each attempt at a task. A write whose fence is lower than the
one stored is refused, so a worker that froze past its lease cannot overwrite the state
written by the worker that took over.
"""

from __future__ import annotations

import builtins
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from typing import NamedTuple

__all__ = ["Listing", "ResultBackend", "listed"]


class Listing(NamedTuple):
    """What ``ResultBackend.list_json`` returns a page of: values stored under a key
    prefix that are JSON objects, filtered by their top-level fields."""

    prefix: str
    equals: tuple[tuple[str, str], ...] = ()
    """(field, text): the field must hold exactly this string."""
    at_least: tuple[str, float] | None = None
    """(field, number): the field must hold a number at least this."""
    limit: int = 50
    offset: int = 0


def listed(value: bytes, listing: Listing) -> bool:
    """Whether a value matches a listing's filters (for stores that filter in Python)."""
    if not (listing.equals or listing.at_least):
        return True
    import json

    try:
        data = json.loads(value)
    except ValueError:
        return False
    if not isinstance(data, dict):
        return False
    if any(data.get(field) != text for field, text in listing.equals):
        return False
    if listing.at_least is not None:
        number = data.get(listing.at_least[0])
        if not isinstance(number, int | float) or number < listing.at_least[1]:
            return False
    return True


class ResultBackend(ABC):
    """Subclasses implement the abstract methods; ``wait`` may be overridden to block natively."""

    url: str = ""
    poll_interval: float = 0.002
    """Seconds between reads in the default ``wait``."""
    replies: bool = False
    """Whether a write can also hand its value to the sender waiting for it (the
    ``replies`` of ``set_fenced_many``), so that sender's ``wait`` registers nothing."""

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The value, or None when absent or expired."""

    @abstractmethod
    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """Many values in one round trip, in the order of ``keys``."""

    @abstractmethod
    def set(self, key: str, value: bytes, ttl: float, fence: int | None = None) -> bool:
        """Store ``value`` for ``ttl`` seconds.

        With a fence, refuse (return False, change nothing) when the stored fence is
        higher; otherwise store it with the value. Without one, always write.
        """

    def set_fenced_many(
        self,
        items: Sequence[tuple[str, bytes, int | None]],
        ttl: float,
        replies: Collection[str] = (),
    ) -> list[bool]:
        """Several ``set`` calls with their fences, in one round trip where the store can.

        A worker stores a finished task's state together with the next task's STARTED.
        ``replies``: keys whose value, when written, is also handed to the sender that
        may wait for it (see ``expect``), or a mapping of those keys to the sender's reply
        address ("": the key's own; see ``reply_address``); ignored by backends without
        ``replies``.
        """
        return [self.set(key, value, ttl, fence) for key, value, fence in items]

    @abstractmethod
    def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float) -> None:
        """Store many unfenced values in one round trip."""

    @abstractmethod
    def delete(self, keys: Sequence[str]) -> int:
        """Delete keys; the count that existed."""

    @abstractmethod
    def incr(self, key: str, amount: int, ttl: float) -> int:
        """Add ``amount`` to an integer counter (absent: 0) and refresh its TTL; the new value."""

    @abstractmethod
    def add_to_set(self, key: str, member: str, ttl: float) -> int:
        """Add a member to a set and refresh its TTL; the set's size afterwards."""

    @abstractmethod
    def set_members(self, key: str) -> builtins.set[str]:
        """The members of a set (empty when absent)."""

    @abstractmethod
    def expire(self, key: str, ttl: float) -> bool:
        """Reset a key's TTL; False when absent."""

    def list_json(self, listing: Listing) -> list[tuple[str, bytes]]:
        """``(key, value)`` of live keys under ``listing.prefix`` whose values match its
        filters, newest first (by when the key was written), ``limit`` of them after
        ``offset``. The store filters and pages, so one page of 100,000 task records reads
        what that page needs, not every record."""
        raise NotImplementedError(f"{type(self).__name__} cannot list what it stores")

    def cleanup(self) -> int:
        """Delete expired entries where the store does not do it itself; the count deleted."""
        return 0

    def wait(
        self, key: str, ready: Callable[[bytes | None], bool], timeout: float | None
    ) -> bytes | None:
        """Block until ``ready(value)`` holds or the timeout passes; the last value read."""
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = self.poll_interval
        while True:
            value = self.get(key)
            if ready(value):
                return value
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return value
                interval = min(interval, left)
            time.sleep(interval)
            interval = min(interval * 1.5, 0.05)

    def reply_address(self) -> str | None:
        """Where a write hands the replies of what the calling thread sends, if not to
        each key's own reply list (``Message.reply_to``): None here."""
        return None

    def expect(  # noqa: B027 - optional hook
        self, key: str, since: float, address: str | None = None
    ) -> None:
        """This process sent, at ``since`` (monotonic time), a task whose outcome is written
        to ``key`` with a reply (to ``address``, see ``reply_address``): the first ``wait``
        for it may take the reply instead of registering (backends with ``replies``)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def ensure_chords_allowed(self) -> None:  # noqa: B027 - Celery's guard, always passes
        """Celery's check before sending a chord (its RPC backend cannot run them): every
        Conveyor backend runs chords, so this never raises."""
