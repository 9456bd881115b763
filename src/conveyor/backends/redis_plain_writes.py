"""A batch of new outcomes stored with plain commands instead of a script.

``backend_set_fenced_many.lua`` costs Redis about 29k instructions an outcome in batches
of 128, most of them the Lua interpreter's (bench/README.md, "Where a worker's Redis
instructions go"); as plain commands the same effects cost about 8k. The
script's rules come down to one plain command for a key that does not exist yet, which
is what a quick task's outcome is: ``SET ... PX ... NX`` creates it with its fence, or
leaves an existing key alone. So a large batch goes in two round trips:

1. each value ``SET ... NX``, then whether any client waits (``P.."waiting"``, read after
   the sets: a client that registers later reads the value when it registers), and
   Redis's time;
2. for the values created: their replies, their task index entries (as
   ``indexed_flush()``), and the waiting clients' notices (``backend_notify_many.lua``);
   the values whose key existed go through the script, which compares their fences.

A value can be read before its reply is pushed, which changes nothing for a reader. A
worker that dies between the two round trips leaves the values stored but neither
listed by ``list_json`` nor pushed: a ``get()`` then reads the value once it stops
waiting for a reply (a quarter second) or renews its registration. ``PlainWrites`` skips
batches for a while after one whose keys existed (slow tasks' STARTED records), which
the script writes in one round trip.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from redis.exceptions import NoPermissionError, RedisError, ResponseError

from ..keys import TASK_PREFIX
from ..redis_connection import RedisLink, Script

__all__ = ["PLAIN_FROM", "PlainWrites"]

PLAIN_FROM = 16
"""Outcomes a batch needs for plain commands: they take two round trips, the script one,
which a lone task's reply must not wait for."""
KEPT = 10000
"""Replies a sender's list holds at most (as ``KEPT`` in backend_prelude.lua)."""
_BACKOFF_MAX = 64

logger = logging.getLogger(__name__)

Item = tuple[str, bytes, int | None]


class PlainWrites:
    """Writes batches of outcomes with plain commands (see the module). After a batch
    with keys that existed, it skips the next 1, 2, 4 ... 64 batches, so a workload of slow
    tasks pays the second round trip rarely."""

    def __init__(
        self,
        link: RedisLink,
        notify: Script,
        fenced: Script,
        fenced_args: Callable[[int, Mapping[str, str], Sequence[Item]], list[Any]],
        reply_ms: int,
    ) -> None:
        """``fenced``: ``backend_set_fenced_many.lua``, with ``fenced_args(ms, addresses,
        items)`` its arguments (the backend's); ``reply_ms``: how long a reply list lives
        after its push."""
        self.link = link
        self.prefix = link.prefix
        self._notify = notify
        self._fenced = fenced
        self._fenced_args = fenced_args
        self._reply_ms = reply_ms
        self._skip = 0
        self._backoff = 0
        self.disabled = False

    def worth_trying(self, count: int) -> bool:
        if count < PLAIN_FROM or self.disabled:
            return False
        if self._skip > 0:
            self._skip -= 1
            return False
        return True

    def write(
        self, items: Sequence[Item], ms: int, addresses: Mapping[str, str]
    ) -> list[bool] | None:
        """Store ``items`` (key, value, fence) for ``ms`` milliseconds and push the replies
        (key -> address, "" for the key's own list) by the script's rules; whether each
        was written. None for a batch the script must take whole (a key twice, no TTL),
        and from then on when Redis refuses a plain command (an ACL without it, a server
        that lacks it)."""
        keys = [key for key, _, _ in items]
        if len(set(keys)) != len(keys) or ms <= 0:
            return None
        try:
            created, waiting, now = self._create(items, ms)
            new = [item for item, made in zip(items, created, strict=True) if made]
            old = [item for item, made in zip(items, created, strict=True) if not made]
            then = _replies(self.prefix, new, self._reply_ms, addresses)
            then += _index(self.prefix, [key for key, _, _ in new], ms, now)
            calls: list[tuple[Script, list[Any]]] = []
            if waiting and new:
                calls.append((self._notify, _pairs(self.prefix, new)))
            if old:
                calls.append((self._fenced, self._fenced_args(ms, addresses, old)))
            results = self._complete(then, calls)
        except ResponseError as exc:
            if not isinstance(exc, NoPermissionError) and "unknown command" not in str(exc):
                raise  # as the script's own error would be
            self.disabled = True
            logger.info("result writes go by script only: Redis refused plain ones (%s)", exc)
            return None
        if not old:
            self._backoff = 0
            return created
        self._backoff = min(self._backoff * 2 or 1, _BACKOFF_MAX)
        self._skip = self._backoff
        flags = iter(results[-1])
        return [made or bool(next(flags)) for made in created]

    def _create(self, items: Sequence[Item], ms: int) -> tuple[list[bool], bool, list[bytes]]:
        """The first round trip: each value ``SET ... NX``; which were created, whether a
        client waits, and Redis's time."""
        p = self.prefix
        sets: list[tuple[Any, ...]] = []
        for key, value, fence in items:
            head = b":" if fence is None else b"%d:" % int(fence)
            sets.append(("SET", f"{p}v:{key}", head + value, "PX", ms, "NX"))
        replies = _checked(self.link.commands([*sets, ("EXISTS", f"{p}waiting"), ("TIME",)]))
        return (
            [reply is not None for reply in replies[: len(items)]],
            bool(replies[-2]),
            replies[-1],
        )

    def _complete(
        self, then: list[tuple[Any, ...]], calls: list[tuple[Script, list[Any]]]
    ) -> list[Any]:
        """The second round trip: the plain commands, then the script calls, each of which
        runs again alone (loading its script) if Redis lacked it; the calls' replies."""
        done = []
        if then or calls:
            done = self.link.commands([*then, *(script.invocation(a) for script, a in calls)])
        results = []
        for (script, args), reply in zip(calls, done[len(then) :], strict=True):
            results.append(script(args) if script.refused(reply) else reply)  # Redis restarted
        _checked([*done[: len(then)], *results])
        self.link.confirm()
        return results


def _checked(replies: list[Any]) -> list[Any]:
    """The replies, once none is an error (the first is raised, as a script's would be)."""
    for reply in replies:
        if isinstance(reply, RedisError):
            raise reply
    return replies


def _replies(
    p: str, items: Sequence[Item], reply_ms: int, to: Mapping[str, str]
) -> list[tuple[Any, ...]]:
    """The pushes of the replies: to the key's own list (the newest alone), or one push
    per sender's list of its "<#key>:<key><value>" items."""
    out: list[tuple[Any, ...]] = []
    by_address: dict[str, list[bytes]] = {}
    for key, value, _ in items:
        address = to.get(key)
        if address is None:
            continue
        if address == "":
            own = f"{p}r:{key}"
            out += [("RPUSH", own, value), ("LTRIM", own, -1, -1), ("PEXPIRE", own, reply_ms)]
        else:
            name = key.encode()
            by_address.setdefault(address, []).append(b"%d:%s%s" % (len(name), name, value))
    for address, pushed in by_address.items():
        waiters = f"{p}wl:{address}"
        out.append(("RPUSH", waiters, *pushed))
        out.append(("LTRIM", waiters, -KEPT, -1))
        out.append(("PEXPIRE", waiters, reply_ms))
    return out


def _index(p: str, keys: list[str], ms: int, now: list[bytes]) -> list[tuple[Any, ...]]:
    """The task records among ``keys`` (first written now) listed in this minute, as
    ``indexed_flush()`` in backend_prelude.lua does."""
    tasks = [key for key in keys if key.startswith(TASK_PREFIX)]
    if not tasks:
        return []
    minute = (int(now[0]) * 1000 + int(now[1]) // 1000) // 60000
    index = f"{p}ix:{minute}"
    oldest = minute - math.ceil(ms / 60000) - 1
    return [
        ("LPUSH", index, *tasks),
        ("PEXPIRE", index, ms + 60000),
        ("ZADD", f"{p}ixm", minute, minute),
        ("ZREMRANGEBYSCORE", f"{p}ixm", "-inf", f"({oldest}"),
    ]


def _pairs(p: str, items: Sequence[Item]) -> list[Any]:
    out: list[Any] = [p, ""]
    for key, value, _ in items:
        out += (key, value)
    return out
