"""The Redis broker: many workers on many machines sharing queues in one Redis database.

Every state change is one Lua script, so it is atomic on the server; the key layout and
each script's keys and arguments are documented in ``conveyor/redis_scripts/broker_*.lua``.
In short: a live message is a field of one hash ``<prefix>b`` (id -> priority and body),
plus, once delivered, a field of one hash ``<prefix>t`` (id -> lease token while reserved,
delivery count, priority, ready score, queue). A queue's ready messages of priority 0, the
default, are a list ``p0:`` in the order sent (a send is one RPUSH); the others (priorities
1-9, and priority 0 messages given back by a nack or an expired lease) are a sorted set
``q:`` by priority then sequence, taken before the list. ``d:`` (delayed, by eta) and
``l:`` (reserved, by lease deadline) are sorted sets. Reserving takes ids and writes the
token and the lease deadline in the same script, so a taken message is never only in a
worker's memory; ack, nack, extend and dead_letter compare the caller's token with the
stored one first (fencing). Reserve, ack and the result backend's batched write handle a
batch with one variadic command per kind of key where they can, so a worker's quick tasks
cost Redis a few commands each.

Time is Redis's own (``TIME`` inside the scripts): etas and leases are judged on one clock
whatever the clocks of producers and workers say. A broker made with ``clock=`` (the
contract tests' fake clock) passes that clock's time to the scripts instead.

Sleeping workers block on a per-queue "wake" list (``BLPOP``) that publishing, nacking and
recovering push one token to, so ``wait`` returns the moment there is work and costs
nothing while idle. Redis checks blocking timeouts at its ``hz`` (10 per second by
default), so a ``wait`` that times out, or that wakes for a delayed message coming due,
may end up to 100 ms late; ``hz 100`` makes that 10 ms.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from redis.exceptions import RedisError

from ..keys import REVOKED_GROUP, revoked_key
from ..pids import current_pid
from ..redis_connection import UNREACHABLE, RedisLink, Script, number_option
from .base import (
    Broker,
    DeadLetter,
    Delivery,
    Envelope,
    Peeked,
    QueueStats,
    StoredEvent,
)
from .redis_config import config_warnings
from .redis_events import RedisEvents
from .redis_reply import ReserveReply, decode_handed, verdicts

__all__ = ["RedisBroker", "ReserveReply"]

_PRELUDE = ("expiring.lua", "broker_prelude.lua")
_PUBLISH_CHUNK = 5000
"""Messages per script call; a larger batch is several calls in one MULTI round trip."""
_RECOVER_LIMIT = 1000
_REGISTRATION = 1.0
"""Seconds a sleeping worker's registration lasts. A consumer renews it at every reserve,
which an idle one runs every half of it (``_still_asleep``); a short life bounds how long
publishers may keep handing messages to a worker that was killed asleep (each such message
waits for its lease)."""


class RedisBroker(Broker):
    """``RedisBroker("redis://localhost:6379/0")``; see ``conveyor.redis_connection`` for URLs.

    ``publish_retries`` and ``publish_retry_delay`` set how long a send keeps trying while
    Redis is unreachable (the delay doubles, at most 5 s apart) before BrokerError.
    Worker-side calls (reserve, ack, ...) raise BrokerError at once (after one quick retry
    where repeating is harmless), so the worker loop can back off and reconnect.
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str | None = None,
        clock: Callable[[], float] | None = None,
        publish_retries: int | None = None,
        publish_retry_delay: float | None = None,
        link: RedisLink | None = None,
        **redis_options: Any,
    ) -> None:
        self._link = link or RedisLink(url, prefix=prefix, **redis_options)
        self.url = url
        self.prefix = self._link.prefix
        self._clock = clock
        options = self._link.options
        self.publish_retries = (
            int(number_option(options, "publish_retries", 5, url))
            if publish_retries is None
            else publish_retries
        )
        self.publish_retry_delay = (
            number_option(options, "publish_retry_delay", 0.2, url)
            if publish_retry_delay is None
            else publish_retry_delay
        )
        script = self._script
        self._publish = script("broker_publish.lua")
        self._reserve = script("broker_reserve.lua")
        self._ack = script("broker_ack.lua")
        self._ack_many = script("broker_ack_many.lua")
        self._nack = script("broker_nack.lua")
        self._extend = script("broker_extend.lua")
        self._dead_letter = script("broker_dead_letter.lua")
        self._recover = script("broker_recover.lua")
        self._purge = script("broker_purge.lua")
        self._stats = script("broker_stats.lua")
        self._next_due = script("broker_next_due.lua")
        self._dead_letters = script("broker_dead_letters.lua")
        self._requeue_dead = script("broker_requeue_dead.lua")
        self._purge_dead = script("broker_purge_dead.lua")
        self._rotation = itertools.count()
        self._local = threading.local()
        self._revocations = ""
        """The Redis key prefix of the coordinator's revocations, once reserve reads them."""
        self._revocations_listed = ""
        """The Redis key of the coordinator's group listing them (``Control.revoke``)."""
        self._events = RedisEvents(self._link, clock)

    @classmethod
    def from_url(cls, url: str) -> RedisBroker:
        return cls(url)

    def configure_publish_retries(self, retries: int, delay: float) -> None:
        """Apply the app's settings, unless the URL's query set these options itself."""
        if "publish_retries" not in self._link.options:
            self.publish_retries = int(retries)
        if "publish_retry_delay" not in self._link.options:
            self.publish_retry_delay = float(delay)

    def _script(self, name: str) -> Script:
        return self._link.script(_PRELUDE, name)

    def _now(self) -> str:
        """The time the scripts use: "" (Redis's TIME) unless a clock was injected."""
        return "" if self._clock is None else repr(float(self._clock()))

    # -- producing ----------------------------------------------------------------------

    def publish_head(self) -> tuple[str, str]:
        """The publish script's first arguments: the prefix, and the time ("?": Redis's
        TIME, read only when the script needs it; or the injected clock's)."""
        return self.prefix, self._now() or "?"

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        if not envelopes:
            return
        head = self.publish_head()
        count = len(envelopes)
        what = f"publishing {count} message(s), tried {self.publish_retries + 1} times"
        if count <= _PUBLISH_CHUNK:
            args = (*head, *publish_arguments(envelopes))
            self._link.call(
                what,
                lambda: self._publish(args),
                retries=self.publish_retries,
                delay=self.publish_retry_delay,
            )
            return
        chunks = [
            (*head, *publish_arguments(envelopes[i : i + _PUBLISH_CHUNK]))
            for i in range(0, count, _PUBLISH_CHUNK)
        ]
        self._link.call(
            what,
            lambda: self._publish_chunks(chunks),
            retries=self.publish_retries,
            delay=self.publish_retry_delay,
        )

    def _publish_chunks(self, chunks: list[tuple[Any, ...]]) -> None:
        """All chunks in one MULTI/EXEC: one round trip, and all or none are stored."""
        self._publish.pipelined(chunks, transaction=True)

    # -- consuming ----------------------------------------------------------------------

    def reserve(self, queues: Sequence[str], count: int, lease: float) -> list[Delivery]:
        if count <= 0 or not queues:
            return []
        return self.ack_and_reserve((), queues, count, lease)[1]

    def ack_and_reserve(
        self, acks: Sequence[Delivery], queues: Sequence[str], count: int, lease: float
    ) -> tuple[list[bool], list[Delivery]]:
        if not queues or count <= 0:
            return self.ack_many(acks), []
        local = self._local
        handed: list[Delivery] = []
        if self._sleeper():
            handed, local.handed = local.handed, []
            if handed and not acks:
                return [], handed  # a publisher leased them to this thread while it slept
            if not acks and self._still_asleep(queues):
                return [], []
        start = next(self._rotation) % len(queues)
        ordered = [*queues[start:], *queues[:start]]
        acked, taken = self._reserve_call(acks, ordered, count, lease, register=True)
        return acked, handed + taken

    def _still_asleep(self, queues: Sequence[str]) -> bool:
        """Whether this thread's last ``wait`` ran out with nothing arriving, under a
        registration young enough to keep: then nothing is ready for it, and the reserve
        is skipped. Every way a message becomes ready for a registered sleeper pushes to its
        inbox or to a wake list (publish, nack, recover, requeue, a reserve that leaves
        messages), which the next ``wait`` pops at once, and a delayed message coming due
        ends the wait early. An idle consumer then costs Redis a BLPOP per wait and a
        reserve every half registration (to renew it), not a reserve per wait."""
        local = self._local
        quiet, local.quiet = local.__dict__.get("quiet", False), False
        return bool(
            quiet
            and local.registration
            and time.monotonic() - local.registered_at < _REGISTRATION / 2
            and set(queues) == set(local.queues)
        )

    def _sleeper(self) -> bool:
        """Whether this thread waits for work (calls ``wait``), so may be handed messages."""
        return self._local.__dict__.get("pid") == current_pid()

    def _reserve_call(
        self,
        acks: Sequence[Delivery],
        ordered: list[str],
        count: int,
        lease: float,
        register: bool,
    ) -> tuple[list[bool], list[Delivery]]:
        """One reserve script; ``register``: a thread that waits may sign up for handoffs
        when nothing was taken."""
        local = self._local
        token = secrets.token_hex(8)
        mine = self._sleeper()  # the thread's inbox and registration (not a forked parent's)
        drop: str = (local.registration or "") if mine else ""
        inbox = local.inbox if mine else ""
        registration = secrets.token_hex(8) if mine and register and count > 0 else ""
        args: list[Any] = [self.prefix, self._now(), count, repr(float(lease)), token]
        args += (self._revocations, self._revocations_listed, drop, inbox, registration)
        args += (repr(_REGISTRATION), len(ordered))
        args += ordered
        args += ack_runs(acks)
        what = "acknowledging and reserving messages" if acks else "reserving messages"
        raw = self._link.call(what, lambda: self._reserve(args), retries=0 if acks else 1)
        reply = ReserveReply.decode(raw, ordered, token, checked=bool(self._revocations))
        if mine:
            local.registration = registration if reply.registered else None
            local.registered_at = time.monotonic()
        self._remember(ordered, reply.eta, reply.now)
        return reply.acked, reply.handed + reply.taken

    def stop_waiting(self) -> list[Delivery]:
        if not self._sleeper():
            return []
        local = self._local
        handed: list[Delivery] = local.handed
        local.handed = []
        if local.registration and local.queues:
            handed += self._reserve_call((), local.queues, 0, 0.0, register=False)[1]
        local.pid = None
        return handed

    def read_revocations_from(self, coordinator: object) -> bool:
        from ..coordination.redis import RedisCoordinator

        if (
            isinstance(coordinator, RedisCoordinator)
            and coordinator.clock is None
            and self._clock is None
            and coordinator.link.same_database(self._link)
        ):
            self._revocations = coordinator.redis_key(revoked_key(""))
            self._revocations_listed = coordinator.redis_group_key(REVOKED_GROUP)
            return True
        return False

    def _remember(self, queues: list[str], eta: bytes, now: bytes) -> None:
        """What this thread's next ``wait`` needs: its queues and when the next eta is due."""
        local = self._local
        local.queues = queues
        local.eta = float(eta) if eta else None
        local.server_now = float(now)
        local.stamp = time.monotonic()

    def _due_in(self) -> float | None:
        """Seconds until the earliest delayed message of this thread's queues is due."""
        local = self._local
        if local.eta is None:
            return None
        if self._clock is not None:
            return float(local.eta - self._clock())
        return float(local.eta - local.server_now - (time.monotonic() - local.stamp))

    def wait(self, timeout: float) -> None:
        """Block on the wake lists of the queues this thread last reserved from (BLPOP),
        and on its inbox when that reserve registered it as sleeping (see
        ``broker_publish.lua``: a publisher may then hand it a message directly, which the
        next ``reserve`` returns without another round trip).

        Returns when a token or a handed message arrives, when the earliest delayed message
        comes due, or after ``timeout``.
        """
        deadline = time.monotonic() + timeout
        local = self._local
        local.quiet = False
        if local.__dict__.get("pid") != current_pid():
            local.pid = current_pid()
            local.inbox = secrets.token_hex(12)
            local.registration = None
            local.handed = []
        if getattr(local, "queues", None) is None:
            reply = self._link.call(
                "reading delayed messages", lambda: self._next_due((self.prefix, self._now()))
            )
            self._remember([q.decode() for q in reply[2:]], reply[0], reply[1])
        queues: list[str] = local.queues
        inbox = f"{self.prefix}in:{local.inbox}"
        keys = [f"{self.prefix}w:{queue}" for queue in queues]
        if local.registration:
            keys.insert(0, inbox)
        command = self._link.command
        while True:
            left = deadline - time.monotonic()
            due = self._due_in()
            if due is not None:
                left = min(left, due)
            if left <= 0:
                local.quiet = due is None or due > 0  # ran out, and no eta came due
                return
            block = min(left, self._link.block_limit)
            if not keys:
                time.sleep(block)
                continue
            try:
                woken = command("BLPOP", *keys, f"{max(block, 0.001):.3f}", blocking=True)
            except (RedisError, *UNREACHABLE) as exc:
                raise self._link.error("waiting for messages", exc) from exc
            if woken:
                if woken[0].decode() == inbox:
                    local.handed.append(decode_handed(woken[1]))
                    local.registration = None  # used: nothing else comes to the inbox
                return

    def extend(self, deliveries: Sequence[Delivery], lease: float) -> list[bool]:
        if not deliveries:
            return []
        args: list[Any] = [self.prefix, self._now(), repr(float(lease))]
        for d in deliveries:
            args += (d.id, d.token)
        reply = self._link.call("extending leases", lambda: self._extend(args), retries=1)
        return [bool(flag) for flag in reply]

    def ack(self, delivery: Delivery) -> bool:
        args = (self.prefix, "", delivery.id, delivery.token)
        return bool(self._link.call("acknowledging a message", lambda: self._ack(args), retries=1))

    def ack_many(self, deliveries: Sequence[Delivery]) -> list[bool]:
        if not deliveries:
            return []
        args: list[Any] = [self.prefix, "", *ack_runs(deliveries)]
        reply = self._link.call("acknowledging messages", lambda: self._ack_many(args), retries=1)
        return verdicts(reply)

    def contains(self, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        bodies = f"{self.prefix}b"
        link = self._link
        if len(ids) == 1:
            found = link.call(
                "looking up messages", lambda: link.command("HEXISTS", bodies, ids[0]), 1
            )
            return set(ids) if found else set()

        def lookup() -> list[Any]:
            pipe = link.pipeline(transaction=False)
            for i in ids:
                pipe.execute_command("HEXISTS", bodies, i)
            result: list[Any] = pipe.execute()
            return result

        flags = self._link.call("looking up messages", lookup, retries=1)
        return {i for i, flag in zip(ids, flags, strict=True) if flag}

    def nack(self, delivery: Delivery, delay: float | None = None) -> bool:
        wait = "" if delay is None or delay <= 0 else repr(float(delay))
        args = (self.prefix, self._now(), delivery.id, delivery.token, wait)
        return bool(self._link.call("giving a message back", lambda: self._nack(args), retries=1))

    def nack_many(self, deliveries: Sequence[Delivery]) -> list[bool]:
        if len(deliveries) < 2:
            return [self.nack(d) for d in deliveries]
        now = self._now()
        calls = [(self.prefix, now, d.id, d.token, "") for d in deliveries]
        reply = self._link.call(
            "giving messages back",
            lambda: self._nack.pipelined(calls, transaction=False),
            retries=1,
        )
        return [bool(flag) for flag in reply]

    def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        args = (self.prefix, self._now(), delivery.id, delivery.token, reason)
        return bool(
            self._link.call("dead-lettering a message", lambda: self._dead_letter(args), retries=1)
        )

    def recover_expired(self) -> int:
        total = 0
        while True:
            args = (self.prefix, self._now(), _RECOVER_LIMIT)
            count, more = self._link.call(
                "recovering expired leases", partial(self._recover, args), retries=1
            )
            total += int(count)
            if not more:
                return total

    # -- administration -----------------------------------------------------------------

    def purge(self, queue: str | None = None) -> int:
        args = (self.prefix, "", queue or "")
        purged: int = self._link.call("purging queues", lambda: self._purge(args))
        return purged

    def stats(self) -> dict[str, QueueStats]:
        reply = self._link.call(
            "reading queue stats", lambda: self._stats((self.prefix, "")), retries=1
        )
        counts = {
            reply[i].decode(): QueueStats(reply[i + 1], reply[i + 2], reply[i + 3])
            for i in range(0, len(reply), 4)
        }
        return dict(sorted(counts.items()))

    def peek(self, messages: Sequence[tuple[str, str]]) -> list[Peeked]:
        """Not atomic (a read to show): one round trip, the bodies and, for the delayed,
        their etas."""
        if not messages:
            return []
        prefix, link = self.prefix, self._link

        def read() -> list[Any]:
            pipe = link.pipeline(transaction=False)
            pipe.execute_command("HMGET", f"{prefix}b", *(msg_id for _, msg_id in messages))
            for queue, msg_id in messages:
                pipe.execute_command("ZSCORE", f"{prefix}d:{queue}", msg_id)
            reply: list[Any] = pipe.execute()
            return reply

        values, *etas = link.call("reading messages", read, retries=1)
        return [
            Peeked(msg_id, queue, value[1:], int(value[:1]), None if eta is None else float(eta))
            for (queue, msg_id), value, eta in zip(messages, values, etas, strict=True)
            if value is not None
        ]

    def delayed(self, queues: Sequence[str], limit: int = 1000) -> list[Peeked]:
        """The first ``limit`` of each queue's delayed set, merged by eta, then their bodies
        (two round trips, not atomic: a message that came due between them is left out)."""
        if not queues or limit <= 0:
            return []
        prefix, link = self.prefix, self._link

        def first() -> list[Any]:
            pipe = link.pipeline(transaction=False)
            for queue in queues:
                pipe.zrange(f"{prefix}d:{queue}", 0, limit - 1, withscores=True)
            reply: list[Any] = pipe.execute()
            return reply

        due: list[tuple[float, str, str]] = []
        replies = link.call("reading delayed messages", first, retries=1)
        for queue, pairs in zip(queues, replies, strict=True):
            due += [(float(eta), queue, msg_id.decode()) for msg_id, eta in pairs]
        due = sorted(due)[:limit]
        found = {
            (p.queue, p.id): p for p in self.peek([(queue, msg_id) for _, queue, msg_id in due])
        }
        return [
            found[queue, msg_id]._replace(eta=eta)
            for eta, queue, msg_id in due
            if (queue, msg_id) in found
        ]

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        if limit <= 0:
            return []
        args = (self.prefix, "", limit)
        reply = self._link.call("reading dead letters", lambda: self._dead_letters(args), retries=1)
        return [
            DeadLetter(
                reply[i].decode(),
                reply[i + 1].decode(),
                reply[i + 2],
                int(reply[i + 3]),
                reply[i + 4].decode(),
                float(reply[i + 5]),
                int(reply[i + 6]),
            )
            for i in range(0, len(reply), 7)
        ]

    def requeue_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        """A dead letter whose id is live again is dropped, not counted: the live copy wins."""
        if ids is not None and not ids:
            return 0
        args = (self.prefix, "", "all") if ids is None else (self.prefix, "", "ids", *ids)
        return int(self._link.call("requeueing dead letters", lambda: self._requeue_dead(args)))

    def purge_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        if ids is not None and not ids:
            return 0
        args = (self.prefix, "", "all") if ids is None else (self.prefix, "", "ids", *ids)
        return int(self._link.call("purging dead letters", lambda: self._purge_dead(args)))

    # -- operations ---------------------------------------------------------------------

    def check_config(self) -> list[str]:
        """Warnings about the server's settings, for the worker to print at start
        (``redis_config.py``)."""
        return config_warnings(self._link)

    # -- the event stream (redis_events.py) -----------------------------------------------

    def add_events(
        self, events: Sequence[bytes], max_length: int, count: int | None = None
    ) -> None:
        self._events.add(events, max_length, count)

    def read_events(
        self,
        after: str | None = None,
        since: float | None = None,
        limit: int = 1000,
        match: bytes | None = None,
    ) -> list[StoredEvent]:
        return self._events.read(after, since, limit, match)

    def close(self) -> None:
        self._link.close()


_DIGITS = [b"%d" % n for n in range(10)]


def publish_arguments(envelopes: Sequence[Envelope]) -> list[Any]:
    """The publish script's arguments: runs of messages that share queue, priority and eta
    (``broker_publish.lua``), so a batch to one queue costs two arguments a message. Each
    body goes with its priority digit in front, as the script stores it: joined here, not
    in Lua, where a new string costs Redis a copy, a hash and its collection."""
    args: list[Any] = []
    shared: tuple[str, int, float | None] | None = None
    at = 0
    for e in envelopes:
        if (e.queue, e.priority, e.eta) != shared:
            shared = (e.queue, e.priority, e.eta)
            at = len(args)
            eta = "" if e.eta is None else repr(float(e.eta))
            priority = min(9, max(0, int(e.priority)))  # as the script clamps it
            digit = _DIGITS[priority]
            args += (0, e.queue, priority, eta)
        args[at] += 1
        args += (e.id, digit + e.body)
    return args


def ack_runs(acks: Sequence[Delivery]) -> list[Any]:
    """Acks as ``ack_all()`` in broker_prelude.lua takes them: runs of one reservation's
    deliveries of one queue, each ``token, queue, n, *ids`` (a batch's acks are mostly one
    run: an argument a message, not two)."""
    args: list[Any] = []
    at = -1
    token = queue = None
    for d in acks:
        if d.token != token or d.queue != queue:
            token, queue, at = d.token, d.queue, len(args)
            args += (token, queue, 0)
        args.append(d.id)
        args[at + 2] += 1
    return args
