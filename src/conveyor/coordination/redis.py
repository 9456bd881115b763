"""The Redis Coordinator: revocations, rate-limit buckets, slots, locks and idempotency keys
in the same Redis as the broker, so every worker on every machine sees them alike.

Each call is one Lua script (``conveyor/redis_scripts/coord_*.lua``, which documents the
keys). Expiry is judged by the scripts on Redis's clock (TIME); a coordinator made with
``clock=`` passes that clock's time instead (tests). Every key also carries a Redis TTL,
so nothing outlives its use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..redis_connection import RedisLink, Script
from .base import Coordinator

__all__ = ["RedisCoordinator"]

_PRELUDE = ("expiring.lua", "coord_prelude.lua")


class RedisCoordinator(Coordinator):
    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str | None = None,
        clock: Callable[[], float] | None = None,
        link: RedisLink | None = None,
        **redis_options: Any,
    ) -> None:
        self._link = link or RedisLink(url, prefix=prefix, **redis_options)
        self.url = url
        self.prefix = self._link.prefix
        self.clock = clock
        self._get_many = self._script("coord_get_many.lua")
        self._put_many = self._script("coord_put_many.lua")
        self._put_if_absent = self._script("coord_put_if_absent.lua")
        self._delete = self._script("coord_delete.lua")
        self._acquire = self._script("coord_acquire.lua")
        self._release = self._script("coord_release.lua")
        self._extend = self._script("coord_extend.lua")
        self._take_token = self._script("coord_take_token.lua")
        self._put_members = self._script("coord_put_members.lua")
        self._members = self._script("coord_members.lua")
        self._delete_member = self._script("coord_delete_member.lua")
        self._push = self._script("coord_push.lua")
        self._take = self._script("coord_take.lua")

    @classmethod
    def from_url(cls, url: str) -> RedisCoordinator:
        return cls(url)

    def _script(self, name: str) -> Script:
        return self._link.script(_PRELUDE, name)

    def _head(self) -> tuple[str, str]:
        return self.prefix, "" if self.clock is None else repr(float(self.clock()))

    @property
    def link(self) -> RedisLink:
        return self._link

    def redis_key(self, key: str) -> str:
        """The Redis key behind a coordinator key (for scripts that read it with others)."""
        return f"{self.prefix}c:k:{key}"

    def redis_group_key(self, group: str) -> str:
        """The Redis key of a group's hash (``put_members``), for the same scripts."""
        return f"{self.prefix}c:m:{group}"

    def get_many(self, keys: Sequence[str]) -> list[str | None]:
        if not keys:
            return []
        args = (*self._head(), *keys)
        values = self._link.call("reading coordination keys", lambda: self._get_many(args), 1)
        return [None if v is None else v.decode() for v in values]

    def put_many(self, items: Sequence[tuple[str, str]], ttl: float) -> None:
        if not items:
            return
        args: list[Any] = [*self._head(), repr(float(ttl))]
        for key, value in items:
            args += (key, value)
        self._link.call("storing coordination keys", lambda: self._put_many(args), retries=1)

    def put_if_absent(self, key: str, value: str, ttl: float) -> str | None:
        args = (*self._head(), key, value, repr(float(ttl)))
        found = self._link.call("storing a coordination key", lambda: self._put_if_absent(args))
        return None if found is None else str(found.decode())

    def delete(self, key: str, value: str | None = None) -> bool:
        args = (*self._head(), key, "0" if value is None else "1", value or "")
        return bool(self._link.call("deleting a coordination key", lambda: self._delete(args)))

    def acquire(self, key: str, holder: str, limit: int, ttl: float) -> bool:
        args = (*self._head(), key, holder, int(limit), repr(float(ttl)))
        return bool(self._link.call("taking a slot", lambda: self._acquire(args), retries=1))

    def release(self, key: str, holder: str) -> bool:
        args = (*self._head(), key, holder)
        return bool(self._link.call("releasing a slot", lambda: self._release(args)))

    def extend(self, holders: Sequence[str], ttl: float) -> None:
        if not holders:
            return
        args = (*self._head(), repr(float(ttl)), *holders)
        self._link.call("extending slots", lambda: self._extend(args), retries=1)

    def take_token(self, key: str, rate: float, capacity: float) -> float:
        args = (*self._head(), key, repr(float(rate)), repr(float(capacity)))
        return float(self._link.call("taking a rate-limit token", lambda: self._take_token(args)))

    def put_members(self, group: str, items: Sequence[tuple[str, str]], ttl: float) -> None:
        if not items:
            return
        args: list[Any] = [*self._head(), group, repr(float(ttl))]
        for member, value in items:
            args += (member, value)
        self._link.call("storing group members", lambda: self._put_members(args), retries=1)

    def members(self, group: str) -> dict[str, str]:
        args = (*self._head(), group)
        flat = self._link.call("reading group members", lambda: self._members(args), retries=1)
        return {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}

    def delete_member(self, group: str, member: str) -> bool:
        args = (*self._head(), group, member)
        return bool(self._link.call("deleting a group member", lambda: self._delete_member(args)))

    def push(self, key: str, values: Sequence[str], ttl: float) -> None:
        if not values:
            return
        args = (*self._head(), key, repr(float(ttl)), *values)
        self._link.call("appending to a list", lambda: self._push(args))

    def take(self, key: str) -> list[str]:
        args = (*self._head(), key)
        return [v.decode() for v in self._link.call("taking a list", lambda: self._take(args))]

    def close(self) -> None:
        self._link.close()
