"""The Coordinator interface: state every worker must see alike, kept beside the broker.

Revoked ids, rate-limit buckets, concurrency slots, locks and idempotency keys live here,
so they hold across all workers and survive restarts. Every entry has a time to live, so a
crashed holder never blocks anyone for longer than its TTL.

Groups (members with a value and an expiry each, listed together) hold the worker registry;
lists (appended to, taken whole) are the workers' control mailboxes and their replies.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

__all__ = ["Coordinator"]


class Coordinator(ABC):
    """Subclasses implement the abstract methods; each call is atomic."""

    url: str = ""

    @abstractmethod
    def get_many(self, keys: Sequence[str]) -> list[str | None]:
        """Values of unexpired keys, None for the others, in order."""

    @abstractmethod
    def put_many(self, items: Sequence[tuple[str, str]], ttl: float) -> None:
        """Store values for ``ttl`` seconds, replacing what was there."""

    @abstractmethod
    def put_if_absent(self, key: str, value: str, ttl: float) -> str | None:
        """Store ``value`` unless the key holds a live value: None when stored, else that value."""

    @abstractmethod
    def delete(self, key: str, value: str | None = None) -> bool:
        """Delete a key (only while it holds ``value``, when given); whether it was deleted."""

    @abstractmethod
    def acquire(self, key: str, holder: str, limit: int, ttl: float) -> bool:
        """Take one of ``limit`` slots under ``key`` for ``holder`` for ``ttl`` seconds.

        A holder that already has a slot keeps it (its TTL is refreshed). Expired holders do
        not count. False when all slots are held by others.
        """

    @abstractmethod
    def release(self, key: str, holder: str) -> bool:
        """Give a slot back; False when the holder had none (it expired, or never had one)."""

    @abstractmethod
    def extend(self, holders: Sequence[str], ttl: float) -> None:
        """Push every slot held by these holders ``ttl`` seconds past now (heartbeat)."""

    @abstractmethod
    def take_token(self, key: str, rate: float, capacity: float) -> float:
        """Take a token from a bucket refilled at ``rate`` per second, holding at most ``capacity``.

        0.0 when a token was taken; otherwise the seconds until one will be there.
        """

    @abstractmethod
    def put_members(self, group: str, items: Sequence[tuple[str, str]], ttl: float) -> None:
        """Store members of ``group`` with their values for ``ttl`` seconds, replacing theirs."""

    @abstractmethod
    def members(self, group: str) -> dict[str, str]:
        """The unexpired members of ``group`` and their values."""

    @abstractmethod
    def delete_member(self, group: str, member: str) -> bool:
        """Remove one member; whether it was there (and unexpired)."""

    @abstractmethod
    def push(self, key: str, values: Sequence[str], ttl: float) -> None:
        """Append values to the list under ``key``; each is dropped after ``ttl`` seconds
        unless taken before."""

    @abstractmethod
    def take(self, key: str) -> list[str]:
        """Every unexpired value of the list under ``key``, oldest first, emptying it.

        Atomic: a value pushed meanwhile is either returned here or left for the next take.
        """

    def get(self, key: str) -> str | None:
        return self.get_many([key])[0]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
