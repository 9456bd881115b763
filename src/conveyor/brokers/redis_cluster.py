"""The Redis broker on Redis Cluster: one ``RedisBroker`` per queue, each in a slot of its own.

A queue's keys carry the hash tag ``{q:<queue>}`` (``conveyor:{q:emails}:p0:emails``, ...),
so every script of one queue runs on the node that owns that slot, and different queues
land on different shards. The per-queue brokers are the single-Redis broker unchanged (same
scripts, same layout under the tagged prefix): fencing, leases, delays, dead letters and the
sleeping-worker handoff work within each queue exactly as on one Redis.

What spans queues is done here, one call per queue: a send to several queues is one script
call per queue (each atomic, the whole not), a worker consuming several queues reserves from
each queue's shard in turn until its batch is full, and acks go to each delivery's queue.
The names of the queues ever sent to are a set in the ``{q}`` slot, which administration
(stats, purge, dead letters, lease recovery) walks. The event stream lives there too.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ..redis_cluster import ClusterLink
from .base import Broker, DeadLetter, Delivery, Envelope, Peeked, QueueStats, StoredEvent
from .redis import RedisBroker

__all__ = ["ClusterBroker"]

T = TypeVar("T")

_SLICE = 0.05
"""Seconds a worker waiting on several queues blocks on each queue's shard in turn."""


class ClusterBroker(Broker):
    """``ClusterBroker("redis+cluster://10.0.0.1:6379")``; options as ``RedisBroker``'s."""

    def __init__(
        self,
        url: str = "redis+cluster://localhost:6379",
        *,
        prefix: str | None = None,
        clock: Callable[[], float] | None = None,
        publish_retries: int | None = None,
        publish_retry_delay: float | None = None,
        **redis_options: Any,
    ) -> None:
        self.url = url
        self._home_link = ClusterLink(url, tag="q", prefix=prefix, **redis_options)
        self.prefix = self._home_link.base_prefix
        self._clock = clock
        self._retries = (publish_retries, publish_retry_delay)
        self._home = self._broker(self._home_link)
        self._queues_key = f"{self._home_link.prefix}queues"
        self._brokers: dict[str, RedisBroker] = {}
        self._known: set[str] = set()
        self._lock = threading.Lock()
        self._rotation = itertools.count()
        self._local = threading.local()
        """``queues``: what this thread last reserved from, which its ``wait`` blocks on."""

    @classmethod
    def from_url(cls, url: str) -> ClusterBroker:
        return cls(url)

    def _broker(self, link: ClusterLink) -> RedisBroker:
        retries, delay = self._retries
        return RedisBroker(
            self.url,
            clock=self._clock,
            publish_retries=retries,
            publish_retry_delay=delay,
            link=link,
        )

    def queue_broker(self, queue: str) -> RedisBroker:
        """The broker of one queue's slot (made once per queue and process)."""
        broker = self._brokers.get(queue)
        if broker is None:
            with self._lock:
                broker = self._brokers.get(queue)
                if broker is None:
                    broker = self._broker(self._home_link.sibling(f"q:{queue}"))
                    home = self._home
                    broker.publish_retries = home.publish_retries
                    broker.publish_retry_delay = home.publish_retry_delay
                    self._brokers[queue] = broker
        return broker

    def configure_publish_retries(self, retries: int, delay: float) -> None:
        self._home.configure_publish_retries(retries, delay)
        for broker in list(self._brokers.values()):
            broker.configure_publish_retries(retries, delay)

    def _all_queues(self) -> list[str]:
        link = self._home_link
        names = link.call(
            "listing queues", lambda: link.command("SMEMBERS", self._queues_key), retries=1
        )
        return sorted({n.decode() for n in names} | self._known)

    def _register(self, queues: set[str]) -> None:
        new = queues - self._known
        if not new:
            return
        link = self._home_link
        link.call(
            "registering queues",
            lambda: link.command("SADD", self._queues_key, *sorted(new)),
            retries=self._home.publish_retries,
            delay=self._home.publish_retry_delay,
        )
        self._known |= new

    @staticmethod
    def _by_queue(deliveries: Sequence[Delivery]) -> dict[str, list[int]]:
        """Positions of the deliveries, per queue."""
        groups: dict[str, list[int]] = {}
        for at, d in enumerate(deliveries):
            groups.setdefault(d.queue, []).append(at)
        return groups

    def _per_queue(
        self, deliveries: Sequence[Delivery], run: Callable[[RedisBroker, list[Delivery]], list[T]]
    ) -> list[T]:
        """``run`` on each queue's share of ``deliveries``; the replies in their order."""
        out: list[Any] = [None] * len(deliveries)
        for queue, places in self._by_queue(deliveries).items():
            replies = run(self.queue_broker(queue), [deliveries[i] for i in places])
            for at, reply in zip(places, replies, strict=True):
                out[at] = reply
        return out

    # -- producing ----------------------------------------------------------------------

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        """One script call per queue: atomic per queue, not across queues."""
        if not envelopes:
            return
        groups: dict[str, list[Envelope]] = {}
        for e in envelopes:
            groups.setdefault(e.queue, []).append(e)
        self._register(set(groups))
        for queue, batch in groups.items():
            self.queue_broker(queue).publish(batch)

    # -- consuming ----------------------------------------------------------------------

    def reserve(self, queues: Sequence[str], count: int, lease: float) -> list[Delivery]:
        return self.ack_and_reserve((), queues, count, lease)[1]

    def ack_and_reserve(
        self, acks: Sequence[Delivery], queues: Sequence[str], count: int, lease: float
    ) -> tuple[list[bool], list[Delivery]]:
        """Acks and a reserve in one script for the first queue's shard (when the acks are
        of that queue), then each further queue's shard until ``count`` are taken."""
        if not queues or count <= 0:
            return self.ack_many(acks), []
        self._local.queues = list(queues)
        start = next(self._rotation) % len(queues)
        ordered = [*queues[start:], *queues[:start]]
        first = ordered[0]
        same = [d for d in acks if d.queue == first]
        others = [d for d in acks if d.queue != first]
        acked_others = self.ack_many(others)
        acked_first, taken = self.queue_broker(first).ack_and_reserve(same, [first], count, lease)
        flags = dict(zip((id(d) for d in others), acked_others, strict=True))
        flags.update(zip((id(d) for d in same), acked_first, strict=True))
        for queue in ordered[1:]:
            if len(taken) >= count:
                break
            taken += self.queue_broker(queue).reserve([queue], count - len(taken), lease)
        return [flags[id(d)] for d in acks], taken

    def stop_waiting(self) -> list[Delivery]:
        handed: list[Delivery] = []
        for broker in list(self._brokers.values()):
            handed += broker.stop_waiting()
        return handed

    def wait(self, timeout: float) -> None:
        """On one queue: that queue's blocking wait. On several, each queue's in turn for
        up to 50 ms (a blocking pop cannot span slots), until one wakes or ``timeout``."""
        queues = [self.queue_broker(q) for q in getattr(self._local, "queues", ())]
        if not queues:
            time.sleep(timeout)
            return
        if len(queues) == 1:
            queues[0].wait(timeout)
            return
        deadline = time.monotonic() + timeout
        for broker in itertools.cycle(queues):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            began = time.monotonic()
            step = min(left, _SLICE)
            broker.wait(step)
            if time.monotonic() - began < step * 0.9:
                return  # woken, not timed out

    def extend(self, deliveries: Sequence[Delivery], lease: float) -> list[bool]:
        return self._per_queue(deliveries, lambda b, ds: b.extend(ds, lease))

    def ack(self, delivery: Delivery) -> bool:
        return self.queue_broker(delivery.queue).ack(delivery)

    def ack_many(self, deliveries: Sequence[Delivery]) -> list[bool]:
        if not deliveries:
            return []
        return self._per_queue(deliveries, lambda b, ds: b.ack_many(ds))

    def contains(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        left = list(ids)
        for queue in self._all_queues():
            if not left:
                break
            found |= self.queue_broker(queue).contains(left)
            left = [i for i in left if i not in found]
        return found

    def nack(self, delivery: Delivery, delay: float | None = None) -> bool:
        return self.queue_broker(delivery.queue).nack(delivery, delay)

    def nack_many(self, deliveries: Sequence[Delivery]) -> list[bool]:
        return self._per_queue(deliveries, lambda b, ds: b.nack_many(ds))

    def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        return self.queue_broker(delivery.queue).dead_letter(delivery, reason)

    def recover_expired(self) -> int:
        return sum(self.queue_broker(q).recover_expired() for q in self._all_queues())

    # -- administration -----------------------------------------------------------------

    def purge(self, queue: str | None = None) -> int:
        if queue:
            return self.queue_broker(queue).purge(queue)
        return sum(self.queue_broker(q).purge(q) for q in self._all_queues())

    def stats(self) -> dict[str, QueueStats]:
        counts: dict[str, QueueStats] = {}
        for queue in self._all_queues():
            counts.update(self.queue_broker(queue).stats())
        return dict(sorted(counts.items()))

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        if limit <= 0:
            return []
        letters: list[DeadLetter] = []
        for queue in self._all_queues():
            letters += self.queue_broker(queue).dead_letters(limit)
        letters.sort(key=lambda letter: letter.failed_at)
        return letters[:limit]

    def requeue_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        if ids is not None and not ids:
            return 0
        return sum(self.queue_broker(q).requeue_dead_letters(ids) for q in self._all_queues())

    def peek(self, messages: Sequence[tuple[str, str]]) -> list[Peeked]:
        """One round trip per queue."""
        groups: dict[str, list[tuple[str, str]]] = {}
        for queue, msg_id in messages:
            groups.setdefault(queue, []).append((queue, msg_id))
        found = {
            (p.queue, p.id): p
            for queue, named in groups.items()
            for p in self.queue_broker(queue).peek(named)
        }
        return [found[named] for named in messages if named in found]

    def delayed(self, queues: Sequence[str], limit: int = 1000) -> list[Peeked]:
        waiting: list[Peeked] = []
        for queue in dict.fromkeys(queues):
            waiting += self.queue_broker(queue).delayed([queue], limit)
        waiting.sort(key=lambda p: p.eta or 0.0)
        return waiting[: max(limit, 0)]

    def purge_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        if ids is not None and not ids:
            return 0
        return sum(self.queue_broker(q).purge_dead_letters(ids) for q in self._all_queues())

    # -- operations ---------------------------------------------------------------------

    def check_config(self) -> list[str]:
        return self._home.check_config()

    def add_events(
        self, events: Sequence[bytes], max_length: int, count: int | None = None
    ) -> None:
        self._home.add_events(events, max_length, count)

    def read_events(
        self,
        after: str | None = None,
        since: float | None = None,
        limit: int = 1000,
        match: bytes | None = None,
    ) -> list[StoredEvent]:
        return self._home.read_events(after, since, limit, match)

    def close(self) -> None:
        for broker in list(self._brokers.values()):
            broker.close()
        self._home.close()
