"""The Broker interface: the narrow contract every transport implements.

A broker stores opaque message bodies with a few routing fields. It knows nothing of tasks.
Delivery is at-least-once:

* ``reserve`` hands out messages under a *lease*: a deadline and a fresh token. Until the
  lease passes nobody else receives the message; once it passes, ``recover_expired`` puts
  it back in its queue and the next reservation gets a new token.
* ``ack``, ``nack``, ``extend`` and ``dead_letter`` name a delivery by message id *and*
  token. A stale token (the lease passed and someone else took the message) is refused:
  the call returns False and changes nothing. This is the fencing that stops a frozen
  worker from acking, or re-queueing, work another worker now owns.
* A future ``eta`` goes to the broker's delayed store, never into a worker's memory;
  ``reserve`` first moves due messages from there to their queues.
* Within a queue, higher ``priority`` (0-9) is delivered first, then oldest first.
"""

from __future__ import annotations

import enum
import itertools
import threading
import time
import zlib
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ..event_runs import expand_run, is_run

__all__ = [
    "UNREAD",
    "Broker",
    "DeadLetter",
    "Delivery",
    "Envelope",
    "EventPacket",
    "Peeked",
    "QueueStats",
    "StoredEvent",
    "Unread",
]


class Unread(enum.Enum):
    """A value the broker did not read."""

    UNREAD = "unread"


UNREAD = Unread.UNREAD


class Envelope(NamedTuple):
    """A message on its way into the broker (a named tuple: every send builds one, and a
    frozen dataclass costs three times as much to make)."""

    id: str
    queue: str
    body: bytes
    priority: int = 0
    eta: float | None = None
    """Unix time before which the message must not be delivered; None or past: now."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """A reserved message, owned by its reserver until the lease passes."""

    id: str
    queue: str
    body: bytes
    priority: int
    token: str
    """Lease token; every reservation of a message gets a new one."""
    delivery_count: int
    """1 on the first delivery, 2 on the first redelivery, and so on; back to 1 when the
    message is re-sent from the dead letters."""
    revocation: str | Unread | None = UNREAD
    """The task's revocation, read in the same call as the reservation where the broker
    can (see ``read_revocations_from``); ``UNREAD`` otherwise."""
    resends: int = 0
    """How many times the message was re-sent from the dead letters. Each re-send is a new
    attempt: its deliveries outrank every delivery before it (``records.fence``)."""

    @property
    def redelivered(self) -> bool:
        return self.delivery_count > 1


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that could not be processed, kept with the reason."""

    id: str
    queue: str
    body: bytes
    priority: int
    reason: str
    failed_at: float
    resends: int = 0
    """How many times it had been re-sent from the dead letters before this failure."""


class Peeked(NamedTuple):
    """A copy of a live message, read to show it (``peek``, ``delayed``): the broker keeps it."""

    id: str
    queue: str
    body: bytes
    priority: int
    eta: float | None = None
    """When it comes due, while it waits in the delayed store; None otherwise."""


@dataclass(frozen=True, slots=True)
class QueueStats:
    ready: int = 0
    delayed: int = 0
    reserved: int = 0

    @property
    def total(self) -> int:
        return self.ready + self.delayed + self.reserved


class StoredEvent(NamedTuple):
    """An event as the broker keeps it: its place in the stream and its encoded form."""

    id: str
    """The cursor: ``read_events(after=id)`` reads what came after it."""
    data: bytes


class Broker(ABC):
    """Stores and hands out messages. Subclasses implement the abstract methods."""

    url: str = ""
    one_writer = False
    """Whether a write from one thread of a process waits for another's to end (SQLite's
    one writer at a time): a worker then makes its writes on the consumer's own thread."""

    @abstractmethod
    def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Store messages, all or none. A message whose id is live already is ignored."""

    @abstractmethod
    def reserve(self, queues: Sequence[str], count: int, lease: float) -> list[Delivery]:
        """Take up to ``count`` ready messages from ``queues`` under a lease of ``lease`` seconds.

        Due delayed messages become ready first. Returns at once (possibly empty); use
        ``wait`` to block until there may be work.
        """

    @abstractmethod
    def extend(self, deliveries: Sequence[Delivery], lease: float) -> list[bool]:
        """Push each lease ``lease`` seconds past now; False where the token is stale."""

    @abstractmethod
    def ack(self, delivery: Delivery) -> bool:
        """Remove a finished message. False (and nothing removed) where the token is stale."""

    @abstractmethod
    def contains(self, ids: Sequence[str]) -> set[str]:
        """The ids among ``ids`` whose messages are live: ready, delayed or reserved.

        This is how a sent task that waits (PENDING) is told apart from an id never sent,
        without a write per send.
        """

    def ack_many(self, deliveries: Sequence[Delivery]) -> list[bool]:
        """Ack several deliveries, in one round trip where the broker can."""
        return [self.ack(delivery) for delivery in deliveries]

    def ack_and_reserve(
        self, acks: Sequence[Delivery], queues: Sequence[str], count: int, lease: float
    ) -> tuple[list[bool], list[Delivery]]:
        """``ack_many(acks)`` then ``reserve(...)``, in one round trip where the broker can:
        a worker going from one batch to the next pays for one call, not two."""
        return self.ack_many(acks), self.reserve(queues, count, lease)

    def stop_waiting(self) -> list[Delivery]:
        """This thread will not ``wait`` or ``reserve`` again: return what was handed to it
        while it slept (to run or hand back), so nothing waits for a lease to pass. Only
        brokers that hand messages to sleeping workers return any."""
        return []

    def read_revocations_from(self, coordinator: object) -> bool:
        """Whether ``reserve`` can read this coordinator's revocations in the same call
        (filling ``Delivery.revocation``), saving a round trip per batch; it can when
        both live in one database. Off by default."""
        return False

    @abstractmethod
    def nack(self, delivery: Delivery, delay: float | None = None) -> bool:
        """Give a message back: to its queue now, or to the delayed store for ``delay`` s.

        A nack does not count as a delivery: the next reservation has the same
        ``delivery_count`` as this one. Only a lease that passes (the holder died) counts, so
        postponing work (warm shutdown, rate limits, busy locks) never looks like a poison
        message that kills its worker.
        """

    def nack_many(self, deliveries: Sequence[Delivery]) -> list[bool]:
        """``nack`` each back to its queue now, in one round trip where the broker can: how
        a consumer gives back a batch it cannot start soon."""
        return [self.nack(delivery) for delivery in deliveries]

    @abstractmethod
    def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        """Move a reserved message to the dead-letter store with the reason."""

    @abstractmethod
    def recover_expired(self) -> int:
        """Return messages whose lease passed to their queues; the count recovered."""

    @abstractmethod
    def purge(self, queue: str | None = None) -> int:
        """Delete ready and delayed messages (of one queue, or all); the count deleted."""

    @abstractmethod
    def stats(self) -> dict[str, QueueStats]:
        """Counts per queue name, for every queue that holds anything."""

    @abstractmethod
    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The oldest dead letters first."""

    @abstractmethod
    def peek(self, messages: Sequence[tuple[str, str]]) -> list[Peeked]:
        """Copies of these live messages, named by (queue, id), in that order; those not
        live are left out. For inspection (what a worker holds), never a worker's path."""

    @abstractmethod
    def delayed(self, queues: Sequence[str], limit: int = 1000) -> list[Peeked]:
        """The delayed messages of these queues (an eta, a countdown, a retry's delay or a
        postponement), the soonest due first, at most ``limit``."""

    @abstractmethod
    def requeue_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        """Send dead letters (these ids, or all) back to their queues; the count sent.

        A re-sent message is a new attempt: its ``Delivery.resends`` is one more than
        before, and its ``delivery_count`` starts again at 1 (so ``task_max_deliveries``
        gives it a full set of deliveries).
        """

    @abstractmethod
    def purge_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        """Delete dead letters (these ids, or all); the count deleted."""

    def publish_one(self, envelope: Envelope) -> None:
        self.publish((envelope,))

    def wait(self, timeout: float) -> None:
        """Block until new messages may be ready, or ``timeout`` seconds pass.

        The default sleeps; brokers that can be woken (data_version, blocking pops) should.
        """
        time.sleep(timeout)

    def configure_publish_retries(self, retries: int, delay: float) -> None:  # noqa: B027
        """Take the app's ``broker_publish_retries`` and ``broker_publish_retry_delay``: how
        long a send keeps trying while the server is unreachable. Only brokers on a server
        retry; an embedded one ignores them."""

    def check_config(self) -> list[str]:
        """Warnings about the server's settings, for the worker to print at start; none by
        default."""
        return []

    # -- the event stream (conveyor.events) ---------------------------------------------
    #
    # A bounded, append-only log of encoded events. The default keeps it in this object's
    # memory, which is right for the memory broker; brokers shared by processes override
    # both methods to keep it where every process sees it.

    def add_events(
        self, events: Sequence[bytes], max_length: int, count: int | None = None
    ) -> None:
        """Append encoded events in order, in one round trip; keep about the newest
        ``max_length`` (at least that many, a little more where trimming is approximate).
        Each item is one encoded event or more, joined by newlines (JSON never holds a raw
        one); a run line (``event_runs.py``) is three events. ``count``: how many events
        the items hold, when the writer knows (else they are counted)."""
        with _default_streams_lock:
            stream: _MemoryEvents | None = self.__dict__.get("_event_stream")
            if stream is None:
                stream = self.__dict__["_event_stream"] = _MemoryEvents()
            stream.add(events, max_length, self._event_time())

    def _event_time(self) -> float:
        """The time the default stream stamps on events (for ``since``)."""
        return time.time()

    def read_events(
        self,
        after: str | None = None,
        since: float | None = None,
        limit: int = 1000,
        match: bytes | None = None,
    ) -> list[StoredEvent]:
        """Up to ``limit`` events, oldest first: those after the cursor ``after`` (an
        ``id`` read before), else those added at ``since`` (Unix time) or later, else from
        the oldest kept. ``match``: only events whose encoded form contains these bytes,
        searched by the store, so one task's events are found without reading them all."""
        with _default_streams_lock:
            stream: _MemoryEvents | None = self.__dict__.get("_event_stream")
            if stream is None:
                return []
            return stream.read(after, since, limit, match)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections. The broker must not be used afterwards."""

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_default_streams_lock = threading.Lock()

_PACK_FROM = 400
"""Packets of at least this many bytes are compressed."""


class EventPacket:
    """Events written in one ``add_events`` call, stored as one entry: a brokers shared by
    processes keeps a packet per call, not a row per event, since a row per event costs a
    busy worker more than the events themselves (``docs/operations.md``). An encoded
    event is JSON, which never holds a raw newline, so the packet is the events joined by
    newlines, compressed (zlib, fast level) once it is big enough to gain from it.

    Compressing is most of the instructions a worker spends on a packet but little of its
    time (zlib runs several instructions a cycle): about 0.5 us a quick task. Plain packets
    cost the store more: Redis spent 3.6 ms instead of 0.7 adding 3,000 tasks' events to a
    full stream (it copies the packets it reads to trim), SQLite more pages to write."""

    @staticmethod
    def pack(events: Sequence[bytes]) -> bytes:
        raw = b"\n".join(events)
        if len(raw) < _PACK_FROM:
            return b"j" + raw
        return b"z" + zlib.compress(raw, 1)

    @staticmethod
    def unpack(packet: bytes) -> list[bytes]:
        raw = zlib.decompress(packet[1:]) if packet[:1] == b"z" else packet[1:]
        return raw.split(b"\n")

    @staticmethod
    def events(number: str, packet: bytes, skip: int, match: bytes | None) -> Iterator[StoredEvent]:
        """The packet's events after the first ``skip``, as stored events whose ids are
        ``<packet number>:<index>``; only those containing ``match`` when given."""
        index = 0
        for line in EventPacket.unpack(packet):
            for data in expand_run(line) if is_run(line) else (line,):
                if index >= skip and (match is None or match in data):
                    yield StoredEvent(f"{number}:{index}", data)
                index += 1

    @staticmethod
    def cursor(after: str) -> tuple[str, int]:
        """The packet number of a cursor, and how many of its events were read."""
        number, _, index = after.rpartition(":")
        return number, int(index) + 1


class _MemoryEvents:
    """The default event stream: a deque of (number, added at, data)."""

    def __init__(self) -> None:
        self.entries: deque[tuple[int, float, bytes]] = deque()
        self.numbers = itertools.count(1)

    def add(self, events: Sequence[bytes], max_length: int, now: float) -> None:
        for line in b"\n".join(events).split(b"\n") if events else ():
            for data in expand_run(line) if is_run(line) else (line,):
                self.entries.append((next(self.numbers), now, data))
        while len(self.entries) > max(max_length, 1):
            self.entries.popleft()

    def read(
        self, after: str | None, since: float | None, limit: int, match: bytes | None
    ) -> list[StoredEvent]:
        found: list[StoredEvent] = []
        start = int(after) if after is not None else None
        for number, added, data in self.entries:
            if start is not None and number <= start:
                continue
            if start is None and since is not None and added < since:
                continue
            if match is not None and match not in data:
                continue
            found.append(StoredEvent(str(number), data))
            if len(found) >= limit:
                break
        return found
