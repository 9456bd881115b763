"""The Redis result backend: every key has a TTL, waits block instead of polling.

Values live in strings ``<prefix>v:<key>`` holding ``<fence>:<value>``: the fence of the
last fenced write (empty when there was none), a colon, the value. Keeping the fence in
the same string means a fenced write is one small Lua script (read the fence with
GETRANGE, compare, SET ... PX) and a read is a plain GET or MGET; a worker's batch of 16
outcomes or more is plain ``SET ... NX`` commands, with the script only for keys that
existed (``redis_plain_writes.py``). Sets live in ``<prefix>s:<key>``. Every write sets a
TTL (PX / PEXPIRE), so Redis itself expires them and ``cleanup`` has nothing to do. The
scripts are ``conveyor/redis_scripts/backend_*.lua``.

``wait`` registers the calling thread's own list under the key and reads the key in one
script, then blocks on the list with BLPOP; every write of the key pushes the new value to
the registered lists. Registering and reading in one atomic step leaves no window in which
a write could be missed, and nothing polls.

A task sent on its own from this process skips that step: its message asks for a reply
(``Message.reply``) at the sending thread's address (``Message.reply_to``: the id of that
thread's waiter list), so the worker's write of its outcome also pushes it, as a write
pushes to a registered waiter, to that list, and the first ``get()`` within
``REPLY_WINDOW`` blocks on the list at once. One list per sending thread, not one per
task: a worker's batch of successes for one sender is one RPUSH and one PEXPIRE. A
``get()`` that pops another key's reply keeps it for that key's first wait, so gets in
any order after many sends find their replies. Any other outcome (a failure), and the
reply of a message with no address (the async client's sends, an earlier build's), goes
to the key's own list ``<prefix>r:<key>``, which forgetting the result deletes (a
failure re-sent from the dead letters is forgotten); the first ``get()`` blocks on both
lists at once. A wait for a task another thread sent registers instead. A blocked
``get()`` polls its socket for a moment first (``result_spin``), so a quick task's
result does not have to wake a sleeping client.

A backend made with ``clock=`` (the contract tests' fake clock) cannot use Redis's TTLs,
which follow the real clock: it notes each key's expiry by the fake clock in
``<prefix>expiry`` and deletes what has expired before every operation (and hands no
replies).
"""

from __future__ import annotations

import builtins
import itertools
import math
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import partial
from typing import Any

from redis.exceptions import RedisError

from ..pids import current_pid
from ..redis_connection import UNREACHABLE, RedisLink, Script
from .base import Listing, ResultBackend
from .redis_plain_writes import PlainWrites

__all__ = ["REPLY_WINDOW", "ExpectedReply", "RedisBackend", "pushed_item", "stored_value"]

_PRELUDE = "backend_prelude.lua"
_CHUNK = 5000
REPLY_WINDOW = 10.0
"""Seconds a reply list lives after its push. A ``get()`` later than that after the send
(less a margin) registers itself, as it would for a task sent elsewhere."""
_REPLY_MARGIN = 0.5
_REPLY_BLOCK = 0.25
"""Seconds a ``get()`` waits for a reply before it registers as any wait does: an outcome
written without a reply (a worker's supervisor storing a killed task's) costs it no more."""
_EXPECTED_KEPT = 10000
"""Most sends remembered per backend: a process that sends without waiting forgets the
oldest half (a wait for one of those registers itself)."""


class ExpectedReply:
    """A send whose reply may be waited for: until when, at which address (None: the
    key's own reply list), and the reply if another wait popped it first."""

    __slots__ = ("address", "until", "value")

    def __init__(self, until: float, address: str | None) -> None:
        self.until = until
        self.address = address
        self.value: bytes | None = None


def pushed_item(message: bytes) -> tuple[str, bytes]:
    """The key and value of an item a write pushed to a waiter list ("<#key>:<key><value>",
    see notify() in backend_prelude.lua)."""
    size, _, rest = message.partition(b":")
    length = int(size)
    return rest[:length].decode(), rest[length:]


def stored_value(stored: bytes | None) -> bytes | None:
    """The value part of a stored ``<fence>:<value>`` string."""
    if stored is None:
        return None
    return stored[stored.find(b":") + 1 :]


def _ms(ttl: float) -> int:
    """A TTL in whole milliseconds; a positive TTL never rounds down to "no time at all"."""
    return max(1, math.ceil(ttl * 1000)) if ttl > 0 else 0


class RedisBackend(ResultBackend):
    """``RedisBackend("redis://localhost:6379/0")``; see ``conveyor.redis_connection``."""

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
        self._values = f"{self.prefix}v:"
        self._sets = f"{self.prefix}s:"
        self._clock = clock
        script = self._script
        self._set = script("backend_set.lua")
        self._set_many = script("backend_set_many.lua")
        self._set_fenced_many = script("backend_set_fenced_many.lua")
        self._incr = script("backend_incr.lua")
        self._add_to_set = script("backend_add_to_set.lua")
        self._expire = script("backend_expire.lua")
        self._delete = script("backend_delete.lua")
        self._watch = script("backend_watch.lua")
        self._sweep = script("backend_sweep.lua")
        self._list = script("backend_list.lua")
        self._plain = (
            PlainWrites(
                self._link,
                script("backend_notify_many.lua"),
                self._set_fenced_many,
                self._fenced_args,
                _ms(REPLY_WINDOW),
            )
            if self._plain_allowed()
            else None
        )
        """Large batches of new outcomes without the script (redis_plain_writes.py)."""
        self._local = threading.local()
        self._expected: dict[str, ExpectedReply] = {}
        """key -> until when, and where, a reply may be waited for (``expect``)."""
        self._expected_lock = threading.Lock()

    def _plain_allowed(self) -> bool:
        """Plain commands keep the script's rules on one server (or a Sentinel's master)
        by Redis's own clock; a fake clock's expiries and a cluster's routing need it."""
        return self._clock is None and type(self._link) is RedisLink

    @property
    def link(self) -> RedisLink:
        return self._link

    @property
    def replies(self) -> bool:  # type: ignore[override]
        return self._clock is None

    @classmethod
    def from_url(cls, url: str) -> RedisBackend:
        return cls(url)

    def _script(self, name: str) -> Script:
        return self._link.script(_PRELUDE, name)

    def _head(self) -> tuple[str, str]:
        """The prefix and the fake clock's time in ms ("" without one); in fake-clock mode
        first deletes what that clock says has expired, as Redis would by its own."""
        if self._clock is None:
            return self.prefix, ""
        head = (self.prefix, repr(float(self._clock()) * 1000))
        self._link.call("expiring keys", lambda: self._sweep(head), retries=1)
        return head

    def list_json(self, listing: Listing) -> list[tuple[str, bytes]]:
        """Task records only (``keys.TASK_PREFIX``): ``backend_prelude.lua`` lists each in
        the minute of its first write; ``backend_list.lua`` walks them newest first and
        filters them in Redis, at most a few thousand a call."""
        head = self._head()
        least = listing.at_least or ("", 0.0)
        tail: list[Any] = [least[0], repr(float(least[1]))]
        for field, value in listing.equals:
            tail += (field, value)
        found: dict[str, bytes] = {}
        minute, position, skipped = "", 0, 0
        while len(found) < listing.limit:
            args = (*head, listing.offset, listing.limit - len(found), minute, position, skipped)
            reply = self._link.call("listing results", partial(self._list, (*args, *tail)), 1)
            minute, position, skipped = reply[0].decode(), int(reply[1]), int(reply[2])
            for key, value in zip(reply[3::2], reply[4::2], strict=True):
                name = key.decode()
                if name.startswith(listing.prefix):
                    found.setdefault(name, value)  # a record pushed during the walk: once
            if not minute:
                break
        return list(found.items())

    def get(self, key: str) -> bytes | None:
        self._head()
        name = self._values + key
        return stored_value(self._link.call("reading a result", lambda: self._get(name), retries=1))

    def _get(self, name: str) -> bytes | None:
        value: bytes | None = self._link.command("GET", name)
        return value

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        self._head()
        names = [self._values + key for key in keys]
        link = self._link
        stored = link.call("reading results", lambda: link.command("MGET", *names), retries=1)
        return [stored_value(v) for v in stored]

    def set(self, key: str, value: bytes, ttl: float, fence: int | None = None) -> bool:
        args = (*self._head(), key, value, _ms(ttl), "" if fence is None else int(fence))
        return bool(self._link.call("storing a result", lambda: self._set(args), retries=1))

    def set_fenced_many(
        self,
        items: Sequence[tuple[str, bytes, int | None]],
        ttl: float,
        replies: Collection[str] = (),
    ) -> list[bool]:
        if len(items) < 2 and not replies:
            return [self.set(key, value, ttl, fence) for key, value, fence in items]
        addresses = replies if isinstance(replies, Mapping) else dict.fromkeys(replies, "")
        ms = _ms(ttl)
        plain = self._plain
        if plain is not None and plain.worth_trying(len(items)):
            done = self._link.call(
                "storing results", lambda: plain.write(items, ms, addresses), retries=1
            )
            if done is not None:
                return done
        args = self._fenced_args(ms, addresses, items, self._head())
        written = self._link.call("storing results", lambda: self._set_fenced_many(args), 1)
        return [bool(r) for r in written]

    def _fenced_args(
        self,
        ms: int,
        addresses: Mapping[str, str],
        items: Sequence[tuple[str, bytes, int | None]],
        head: tuple[str, str] | None = None,
    ) -> list[Any]:
        """``backend_set_fenced_many.lua``'s arguments."""
        args: list[Any] = [*(head or (self.prefix, "")), ms, _ms(REPLY_WINDOW)]
        # per key: "" no reply, "1" to the key's own reply list, else the sender's address
        for key, value, fence in items:
            address = addresses.get(key)
            reply = "" if address is None else address or "1"
            args += (key, value, "" if fence is None else int(fence), reply)
        return args

    def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float) -> None:
        if not items:
            return
        head = (*self._head(), _ms(ttl))
        chunks = []
        for i in range(0, len(items), _CHUNK):
            args: list[Any] = [*head]
            for key, value in items[i : i + _CHUNK]:
                args += (key, value)
            chunks.append(args)
        if len(chunks) == 1:
            self._link.call("storing results", lambda: self._set_many(chunks[0]), retries=1)
            return

        self._link.call(
            "storing results",
            lambda: self._set_many.pipelined(chunks, transaction=False),
            retries=1,
        )

    def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        args = (*self._head(), *keys)
        return int(self._link.call("deleting results", lambda: self._delete(args), retries=1))

    def incr(self, key: str, amount: int, ttl: float) -> int:
        args = (*self._head(), key, int(amount), _ms(ttl))
        return int(self._link.call("incrementing a counter", lambda: self._incr(args)))

    def add_to_set(self, key: str, member: str, ttl: float) -> int:
        args = (*self._head(), key, member, _ms(ttl))
        return int(self._link.call("adding to a set", lambda: self._add_to_set(args), retries=1))

    def set_members(self, key: str) -> builtins.set[str]:
        self._head()
        name = self._sets + key
        link = self._link
        members = link.call("reading a set", lambda: link.command("SMEMBERS", name), retries=1)
        return {m.decode() for m in members}

    def expire(self, key: str, ttl: float) -> bool:
        args = (*self._head(), key, _ms(ttl))
        return bool(self._link.call("setting a TTL", lambda: self._expire(args), retries=1))

    def cleanup(self) -> int:
        """Redis expires keys itself; only a fake clock's expiries are swept here."""
        if self._clock is None:
            return 0
        head = (self.prefix, repr(float(self._clock()) * 1000))
        return int(self._link.call("expiring keys", lambda: self._sweep(head), retries=1))

    def _waiter_list(self) -> str:
        """This thread's own list that writes push to (a fresh one in a forked child)."""
        local = self._local
        if getattr(local, "pid", None) != current_pid():
            local.pid = current_pid()
            local.address = uuid.uuid4().hex
            local.list = f"{self.prefix}wl:{local.address}"
        name: str = local.list
        return name

    def reply_address(self) -> str | None:
        """The id of this thread's waiter list: replies to what it sends go there."""
        local = self._local
        if getattr(local, "pid", None) != current_pid():
            self._waiter_list()
        address: str = local.address
        return address

    def expect(self, key: str, since: float, address: str | None = None) -> None:
        with self._expected_lock:
            expected = self._expected
            expected.pop(key, None)
            expected[key] = ExpectedReply(since + REPLY_WINDOW - _REPLY_MARGIN, address)
            if len(expected) > _EXPECTED_KEPT:  # the oldest first: a forgotten one registers
                for old in list(itertools.islice(expected, len(expected) - _EXPECTED_KEPT // 2)):
                    del expected[old]

    def take_expected(self, key: str) -> ExpectedReply | None:
        """What ``expect`` noted for ``key`` (until when, at which address, a reply kept
        for it), or None; either way the key is no longer expected."""
        with self._expected_lock:
            return self._expected.pop(key, None)

    def _take_reply(
        self, key: str, waiter: str, tag: bytes, ready: Callable[[bytes | None], bool], until: float
    ) -> bytes | None:
        """The ready reply for the tagged key, from this thread's list (a success) or from
        the key's own list (anything else, see ``worker.outbox.reply_address``), whichever
        has one first, up to ``until``; replies for other keys are kept (``keep_reply``)."""
        command = self._link.command
        own = f"{self.prefix}r:{key}"
        mine = own.encode()
        while (left := until - time.monotonic()) > 0.001:
            try:
                woken = command("BLPOP", waiter, own, f"{left:.3f}", blocking=True, spin=True)
            except (RedisError, *UNREACHABLE) as exc:
                raise self._link.error("waiting for a result", exc) from exc
            if woken is None:
                continue
            source, item = woken
            if source == mine:
                value: bytes = item
            elif item.startswith(tag):
                value = item[len(tag) :]
            else:
                self.keep_reply(*pushed_item(item))
                continue
            if ready(value):
                return value
        return None

    def keep_reply(self, key: str, value: bytes) -> None:
        """A reply popped from a waiter list (a thread's, an event loop's) for a key no wait
        takes now: kept for that key's first wait if it is still expected (the newest
        kept), else dropped."""
        with self._expected_lock:
            entry = self._expected.get(key)
            if entry is not None:
                entry.value = value

    def wait(
        self, key: str, ready: Callable[[bytes | None], bool], timeout: float | None
    ) -> bytes | None:
        """Register for the key and read it in one script, then block on this thread's
        list until a write pushes a value (re-registering after each wake). The first wait
        for a task this process sent takes the reply its outcome's write pushes, if that
        comes within ``_REPLY_BLOCK``; it registers as above only after that."""
        deadline = None if timeout is None else time.monotonic() + timeout
        encoded = key.encode()
        tag = b"%d:%s" % (len(encoded), encoded)
        command = self._link.command
        block_limit = self._link.block_limit
        with self._expected_lock:
            entry = self._expected.pop(key, None)
        if entry is not None and entry.value is not None and ready(entry.value):
            if entry.address == self.reply_address():  # a success an earlier wait popped
                return entry.value
            entry = None  # an event loop's reply (maybe a failure since forgotten): read
        waiter = self._waiter_list()
        if entry is not None and entry.address in (None, self.reply_address()):
            until = min(entry.until, time.monotonic() + _REPLY_BLOCK)
            if deadline is not None:
                until = min(until, deadline)
            found = self._take_reply(key, waiter, tag, ready, until)
            if found is not None:
                return found
        while True:
            left = block_limit if deadline is None else deadline - time.monotonic()
            block = max(0.001, min(left, block_limit))
            args = (*self._head(), key, waiter, math.ceil((block + 5) * 1000))
            value = stored_value(
                self._link.call("waiting for a result", partial(self._watch, args), 1)
            )
            if ready(value):
                return value
            while True:
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return value
                    block = max(0.001, min(left, block_limit))
                try:
                    woken = command("BLPOP", waiter, f"{block:.3f}", blocking=True, spin=True)
                except (RedisError, *UNREACHABLE) as exc:
                    raise self._link.error("waiting for a result", exc) from exc
                if woken is None:
                    break  # read again (and renew the registration before it expires)
                message: bytes = woken[1]
                if message.startswith(tag):
                    value = message[len(tag) :]
                    if ready(value):
                        return value
                    break  # the write used up the registration: register again
                # a reply, or a late push for a key waited on before
                self.keep_reply(*pushed_item(message))

    def close(self) -> None:
        self._link.close()
