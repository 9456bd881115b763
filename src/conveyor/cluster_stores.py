"""Results, the coordinator and the schedule store on Redis Cluster.

Each is its single-Redis store unchanged, on a ``ClusterLink`` whose prefix carries a hash
tag, so every script of the store touches one slot: the coordinator ``{c}``, the schedule
``{beat}``. Results are spread over ``result_shards`` slots (6 by default, a URL option),
each a ``RedisBackend`` of its own: a key goes to the shard its owner's id hashes to (a task
record by its task id, a chord's counters and sets by the chord id), so a reader that knows
only a task's id finds its record, and no script touches two slots (a chord's counter is
one key; its members' results are read with one MGET per shard, which needs no script).
The shards' tags are picked so that they fall in equal parts of the slot space: a cluster
whose primaries own equal ranges, as ``redis-cli --cluster create`` makes them, gets an
equal share of results on each primary when their number divides ``result_shards``.

Task records are listed newest first across the shards from one sorted set in the ``{r}``
slot (key -> the time of its first write, by the writer's clock): each write of task
records adds to it with one more call, after the records are written (a ZADD per record,
where a shard's write runs a script).
"""

from __future__ import annotations

import builtins
import time
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from functools import cache, partial
from typing import Any

from redis.crc import key_slot
from redis.exceptions import ClusterError, RedisClusterException

from .backends.base import Listing, ResultBackend, listed
from .backends.redis import RedisBackend
from .beat.redis import RedisStore
from .coordination.redis import RedisCoordinator
from .exceptions import BrokerError, ImproperlyConfigured
from .keys import CHORD_PREFIX, TASK_PREFIX
from .redis_cluster import ClusterLink
from .redis_connection import UNREACHABLE, number_option

__all__ = [
    "RESULT_SHARDS",
    "ClusterBackend",
    "ClusterCoordinator",
    "ClusterScheduleStore",
    "shard_tags",
]

RESULT_SHARDS = 6
"""Slots results are spread over unless the URL says ``?result_shards=N``: every process
of an app must use the same number (changing it loses the results stored before)."""
_SLOTS = 16384
_LIST_PAGE = 500
_FAILOVER = (*UNREACHABLE, ClusterError, RedisClusterException)
"""What a shard raises while its primary is down and its replica not yet promoted."""
_FAILOVER_PAUSE = 0.25


@cache
def shard_tags(count: int) -> tuple[str, ...]:
    """The hash tags of ``count`` result shards: the n-th is the first ``r<n>.<k>`` whose
    slot lies in the n-th of ``count`` equal parts of the slot space."""
    tags = []
    for n in range(count):
        low, high = n * _SLOTS // count, (n + 1) * _SLOTS // count
        k = 0
        while not low <= key_slot(f"r{n}.{k}".encode()) < high:
            k += 1
        tags.append(f"r{n}.{k}")
    return tuple(tags)


def _owner(key: str) -> bytes:
    """What decides a key's shard: a chord's keys (``keys.chord_key``) go with the chord."""
    if key.startswith(CHORD_PREFIX):
        key = key.partition(".")[0]
    return key.encode()


class ClusterBackend(ResultBackend):
    """``ClusterBackend("redis+cluster://10.0.0.1:6379")``: results spread over shards."""

    def __init__(
        self,
        url: str = "redis+cluster://localhost:6379",
        *,
        prefix: str | None = None,
        clock: Callable[[], float] | None = None,
        **redis_options: Any,
    ) -> None:
        home = ClusterLink(url, tag="r", prefix=prefix, **redis_options)
        count = number_option(home.options, "result_shards", RESULT_SHARDS, url)
        if count != int(count) or not 1 <= count <= 1024:
            home.close()
            raise ImproperlyConfigured(
                f"bad result_shards in {home.safe_url!r}: a whole number from 1 to 1024"
            )
        self.url = url
        self.prefix = home.base_prefix
        self._home = home
        self._clock = clock
        self._listed = f"{home.prefix}listed"
        """[zset] every task record's key, score the time of its first write (ms)."""
        self.shards = [
            RedisBackend(url, clock=clock, link=home.sibling(tag)) for tag in shard_tags(int(count))
        ]

    @classmethod
    def from_url(cls, url: str) -> ClusterBackend:
        return cls(url)

    @property
    def replies(self) -> bool:  # type: ignore[override]
        return self._clock is None

    def shard(self, key: str) -> RedisBackend:
        """The shard that keeps ``key``."""
        return self.shards[zlib.crc32(_owner(key)) % len(self.shards)]

    def _by_shard(self, keys: Sequence[str]) -> dict[int, list[int]]:
        """Positions of ``keys``, per shard number."""
        groups: dict[int, list[int]] = {}
        count = len(self.shards)
        for at, key in enumerate(keys):
            groups.setdefault(zlib.crc32(_owner(key)) % count, []).append(at)
        return groups

    def _now_ms(self) -> float:
        return (self._clock() if self._clock is not None else time.time()) * 1000

    def _note(self, keys: Iterable[str], ttl: float) -> None:
        """Add task records written for the first time to the listing, and drop what
        expired from it (by this write's TTL: results share ``result_expires``)."""
        tasks = [k for k in keys if k.startswith(TASK_PREFIX)]
        if not tasks or ttl <= 0:  # a TTL of 0 deletes
            return
        now = self._now_ms()
        args: list[Any] = ["ZADD", self._listed, "NX"]
        for key in tasks:
            args += (repr(now), key)
        link = self._home

        def note() -> None:
            pipe = link.pipeline(False)
            pipe.execute_command(*args)
            pipe.execute_command("ZREMRANGEBYSCORE", self._listed, "-inf", f"({now - ttl * 1000!r}")
            pipe.execute()

        link.call("listing results", note, retries=1)

    # -- the interface ----------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        return self.shard(key).get(key)

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        out: list[bytes | None] = [None] * len(keys)
        for n, places in self._by_shard(keys).items():
            values = self.shards[n].mget([keys[at] for at in places])
            for at, value in zip(places, values, strict=True):
                out[at] = value
        return out

    def set(self, key: str, value: bytes, ttl: float, fence: int | None = None) -> bool:
        written = self.shard(key).set(key, value, ttl, fence)
        self._note([key], ttl)
        return written

    def set_fenced_many(
        self,
        items: Sequence[tuple[str, bytes, int | None]],
        ttl: float,
        replies: Collection[str] = (),
    ) -> list[bool]:
        """One call per shard the items fall in (each atomic, the whole not)."""
        flags = [False] * len(items)
        for n, places in self._by_shard([key for key, _, _ in items]).items():
            part = [items[at] for at in places]
            wanted: Collection[str]
            if isinstance(replies, Mapping):
                wanted = {key: replies[key] for key, _, _ in part if key in replies}
            else:
                wanted = [key for key, _, _ in part if key in replies]
            written = self.shards[n].set_fenced_many(part, ttl, wanted)
            for at, flag in zip(places, written, strict=True):
                flags[at] = flag
        self._note((key for key, _, _ in items), ttl)
        return flags

    def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float) -> None:
        for n, places in self._by_shard([key for key, _ in items]).items():
            self.shards[n].set_many([items[at] for at in places], ttl)
        self._note((key for key, _ in items), ttl)

    def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        deleted = 0
        for n, places in self._by_shard(keys).items():
            deleted += self.shards[n].delete([keys[at] for at in places])
        tasks = [k for k in keys if k.startswith(TASK_PREFIX)]
        if tasks:
            link = self._home
            link.call("listing results", lambda: link.command("ZREM", self._listed, *tasks), 1)
        return deleted

    def incr(self, key: str, amount: int, ttl: float) -> int:
        return self.shard(key).incr(key, amount, ttl)

    def add_to_set(self, key: str, member: str, ttl: float) -> int:
        return self.shard(key).add_to_set(key, member, ttl)

    def set_members(self, key: str) -> builtins.set[str]:
        return self.shard(key).set_members(key)

    def expire(self, key: str, ttl: float) -> bool:
        return self.shard(key).expire(key, ttl)

    def list_json(self, listing: Listing) -> list[tuple[str, bytes]]:
        """Newest first from the listing's sorted set, values read per shard and filtered
        here (``listed``): a page reads what it skips and what it returns."""
        found: list[tuple[str, bytes]] = []
        skip = listing.offset
        link = self._home
        start = 0
        while len(found) < listing.limit:
            end = start + _LIST_PAGE - 1
            names = link.call(
                "listing results",
                partial(link.command, "ZREVRANGE", self._listed, start, end),
                retries=1,
            )
            if not names:
                break
            start += len(names)
            keys = [k for k in (n.decode() for n in names) if k.startswith(listing.prefix)]
            for key, value in zip(keys, self.mget(keys), strict=True):
                if value is None or not listed(value, listing):
                    continue
                if skip:
                    skip -= 1
                    continue
                found.append((key, value))
                if len(found) == listing.limit:
                    break
        return found

    def cleanup(self) -> int:
        return sum(shard.cleanup() for shard in self.shards)

    def wait(
        self, key: str, ready: Callable[[bytes | None], bool], timeout: float | None
    ) -> bytes | None:
        """The shard's wait, which goes on through a failover inside the cluster (the
        shard's primary unreachable until its replica takes over) until ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        shard = self.shard(key)
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return shard.wait(key, ready, left)
            except (BrokerError, RedisClusterException) as exc:
                cause = exc.__cause__ if isinstance(exc, BrokerError) else exc
                if not isinstance(cause, _FAILOVER):
                    raise
                if deadline is not None and time.monotonic() + _FAILOVER_PAUSE > deadline:
                    raise
            time.sleep(_FAILOVER_PAUSE)

    def expect(self, key: str, since: float, address: str | None = None) -> None:
        """Replies go to each key's own list here (``reply_address`` is None): a thread's
        waiter list lives in one shard, a result in any."""
        self.shard(key).expect(key, since)

    def close(self) -> None:
        for shard in self.shards:
            shard.close()
        self._home.close()


class ClusterCoordinator(RedisCoordinator):
    """Revocations, limits, locks and idempotency keys in the ``{c}`` slot."""

    def __init__(
        self,
        url: str = "redis+cluster://localhost:6379",
        *,
        prefix: str | None = None,
        clock: Callable[[], float] | None = None,
        **redis_options: Any,
    ) -> None:
        link = ClusterLink(url, tag="c", prefix=prefix, **redis_options)
        super().__init__(url, clock=clock, link=link)

    @classmethod
    def from_url(cls, url: str) -> ClusterCoordinator:
        return cls(url)


class ClusterScheduleStore(RedisStore):
    """The beat schedule in the ``{beat}`` slot."""

    def __init__(self, url: str, *, prefix: str | None = None, **redis_options: Any) -> None:
        link = ClusterLink(url, tag="beat", prefix=prefix, **redis_options)
        super().__init__(url, link=link)
