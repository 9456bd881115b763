"""An in-process broker with the SQLite broker's exact semantics, for tests and single-process use.

Leases, tokens, fencing, the delayed store, priorities and dead letters all behave as in
the durable brokers, so code tested against it meets no surprises in production.
"""

from __future__ import annotations

import heapq
import itertools
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from conveyor.brokers.base import Broker, DeadLetter, Delivery, Envelope, Peeked, QueueStats

__all__ = ["MemoryBroker"]


@dataclass(slots=True)
class _Message:
    id: str
    queue: str
    body: bytes
    priority: int
    seq: int
    delivery_count: int = 0
    resends: int = 0
    eta: float | None = None
    """Set while in the delayed store."""
    token: str | None = None
    """Set while reserved."""
    lease_until: float = 0.0


class MemoryBroker(Broker):
    """Thread-safe; ``wait`` wakes at once when a message is published or given back."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._seq = itertools.count()
        self._rotation = itertools.count()
        self._messages: dict[str, _Message] = {}
        self._ready: dict[str, list[tuple[int, int, str]]] = {}
        """Per queue, a heap of (-priority, seq, id): highest priority, then oldest, first."""
        self._delayed: list[tuple[float, int, str]] = []
        self._reserved: dict[str, _Message] = {}
        self._dead: dict[str, DeadLetter] = {}
        self._generation = 0
        """Bumped whenever a message may have become ready; ``wait`` watches it."""
        self._local = threading.local()

    def _make_ready(self, msg: _Message) -> None:
        msg.eta, msg.token = None, None
        heapq.heappush(self._ready.setdefault(msg.queue, []), (-msg.priority, msg.seq, msg.id))

    def _delay(self, msg: _Message, eta: float) -> None:
        msg.eta, msg.token, msg.seq = eta, None, next(self._seq)
        heapq.heappush(self._delayed, (eta, msg.seq, msg.id))

    def _changed(self) -> None:
        self._generation += 1
        self._cond.notify_all()

    def _owned(self, delivery: Delivery) -> _Message | None:
        msg = self._reserved.get(delivery.id)
        return msg if msg is not None and msg.token == delivery.token else None

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        with self._cond:
            now = self._clock()
            added = False
            for e in envelopes:
                if e.id in self._messages:
                    continue
                msg = _Message(e.id, e.queue, e.body, e.priority, next(self._seq))
                self._messages[e.id] = msg
                if e.eta is None or e.eta <= now:
                    self._make_ready(msg)
                else:
                    self._delay(msg, e.eta)
                added = True
            if added:
                self._changed()

    def reserve(self, queues: Sequence[str], count: int, lease: float) -> list[Delivery]:
        if count <= 0 or not queues:
            return []
        with self._cond:
            now = self._clock()
            while self._delayed and self._delayed[0][0] <= now:
                msg = self._messages[heapq.heappop(self._delayed)[2]]
                msg.seq = next(self._seq)
                self._make_ready(msg)
            token = secrets.token_hex(8)
            start = next(self._rotation) % len(queues)
            deliveries: list[Delivery] = []
            for queue in (*queues[start:], *queues[:start]):
                heap = self._ready.get(queue)
                while heap and len(deliveries) < count:
                    msg = self._messages[heapq.heappop(heap)[2]]
                    msg.token, msg.lease_until = token, now + lease
                    msg.delivery_count += 1
                    self._reserved[msg.id] = msg
                    deliveries.append(
                        Delivery(
                            msg.id,
                            queue,
                            msg.body,
                            msg.priority,
                            token,
                            msg.delivery_count,
                            resends=msg.resends,
                        )
                    )
                if not heap:
                    self._ready.pop(queue, None)
            self._local.generation = self._generation
            return deliveries

    def extend(self, deliveries: Sequence[Delivery], lease: float) -> list[bool]:
        with self._cond:
            until = self._clock() + lease
            owned = [self._owned(d) for d in deliveries]
            for msg in owned:
                if msg is not None:
                    msg.lease_until = until
            return [msg is not None for msg in owned]

    def ack(self, delivery: Delivery) -> bool:
        with self._cond:
            if self._owned(delivery) is None:
                return False
            del self._reserved[delivery.id], self._messages[delivery.id]
            return True

    def contains(self, ids: Sequence[str]) -> set[str]:
        with self._cond:
            return {i for i in ids if i in self._messages}

    def nack(self, delivery: Delivery, delay: float | None = None) -> bool:
        with self._cond:
            msg = self._owned(delivery)
            if msg is None:
                return False
            del self._reserved[msg.id]
            msg.delivery_count -= 1
            if delay is None or delay <= 0:
                self._make_ready(msg)
            else:
                self._delay(msg, self._clock() + delay)
            self._changed()
            return True

    def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        with self._cond:
            msg = self._owned(delivery)
            if msg is None:
                return False
            del self._reserved[msg.id], self._messages[msg.id]
            self._dead.pop(msg.id, None)
            self._dead[msg.id] = DeadLetter(
                msg.id, msg.queue, msg.body, msg.priority, reason, self._clock(), msg.resends
            )
            return True

    def recover_expired(self) -> int:
        with self._cond:
            now = self._clock()
            expired = [m for m in self._reserved.values() if m.lease_until <= now]
            for msg in expired:
                del self._reserved[msg.id]
                self._make_ready(msg)
            if expired:
                self._changed()
            return len(expired)

    def purge(self, queue: str | None = None) -> int:
        with self._cond:
            doomed = [
                m
                for m in self._messages.values()
                if m.token is None and (queue is None or m.queue == queue)
            ]
            for msg in doomed:
                del self._messages[msg.id]
            if queue is None:
                self._ready.clear()
                self._delayed.clear()
            else:
                self._ready.pop(queue, None)
                self._delayed = [entry for entry in self._delayed if entry[2] in self._messages]
                heapq.heapify(self._delayed)
            return len(doomed)

    def stats(self) -> dict[str, QueueStats]:
        with self._cond:
            counts: dict[str, list[int]] = {}
            for msg in self._messages.values():
                state = 2 if msg.token is not None else 1 if msg.eta is not None else 0
                counts.setdefault(msg.queue, [0, 0, 0])[state] += 1
            return {queue: QueueStats(*c) for queue, c in sorted(counts.items())}

    def peek(self, messages: Sequence[tuple[str, str]]) -> list[Peeked]:
        with self._cond:
            found = [self._messages.get(msg_id) for _, msg_id in messages]
            return [_peeked(msg) for msg in found if msg is not None]

    def delayed(self, queues: Sequence[str], limit: int = 1000) -> list[Peeked]:
        wanted = set(queues)
        with self._cond:
            waiting = [
                m for m in self._messages.values() if m.eta is not None and m.queue in wanted
            ]
            waiting.sort(key=lambda m: (m.eta, m.seq))
            return [_peeked(msg) for msg in waiting[: max(limit, 0)]]

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        with self._cond:
            letters = list(self._dead.values())
        letters.sort(key=lambda letter: letter.failed_at)
        return letters[:limit]

    def requeue_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        """A dead letter whose id is live again is dropped, not counted: the live copy wins."""
        with self._cond:
            chosen = list(self._dead) if ids is None else [i for i in ids if i in self._dead]
            sent = 0
            for letter in sorted((self._dead.pop(i) for i in chosen), key=lambda x: x.failed_at):
                if letter.id in self._messages:
                    continue
                msg = _Message(
                    letter.id,
                    letter.queue,
                    letter.body,
                    letter.priority,
                    next(self._seq),
                    resends=letter.resends + 1,
                )
                self._messages[msg.id] = msg
                self._make_ready(msg)
                sent += 1
            if sent:
                self._changed()
            return sent

    def purge_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        with self._cond:
            if ids is None:
                count = len(self._dead)
                self._dead.clear()
                return count
            return sum(self._dead.pop(i, None) is not None for i in ids)

    def _event_time(self) -> float:
        return self._clock()

    def wait(self, timeout: float) -> None:
        """Return once anything was published or given back since this thread's last reserve."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = getattr(self._local, "generation", None)
            self._local.generation = None
            baseline = self._generation if seen is None else seen
            while self._generation == baseline:
                left = deadline - time.monotonic()
                if self._delayed:
                    left = min(left, self._delayed[0][0] - self._clock())
                if left <= 0:
                    return
                self._cond.wait(left)


def _peeked(msg: _Message) -> Peeked:
    return Peeked(msg.id, msg.queue, msg.body, msg.priority, msg.eta)
