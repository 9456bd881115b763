"""Keeping leases alive from outside the task's thread, and noticing tasks past their hard limit."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from ..brokers.base import Broker, Delivery
from ..coordination.base import Coordinator
from ..exceptions import BrokerError
from ..outage import Outage
from .slots import Running

__all__ = ["Held", "LeaseKeeper"]

logger = logging.getLogger("conveyor.worker")


@dataclass(slots=True)
class Held:
    delivery: Delivery
    owner: Hashable
    started: bool = False
    ran: bool = False
    """Its task started at some point: giving it back must count as a delivery."""
    task_id: str = ""
    deadline: float | None = None
    fence: int = 0
    name: str = ""
    """What the worker registry shows of a running task: its name, argument previews and
    start time (unix)."""
    args: str = ""
    kwargs: str = ""
    since: float = 0.0
    parent_id: str = ""
    root_id: str = ""
    """Its message's lineage (when it has one), for the outcome the supervisor writes if it
    kills the task."""


class LeaseKeeper:
    """Every delivery a worker holds, by id; thread-safe."""

    def __init__(
        self, broker: Broker, lease: float, coordinator: Coordinator | None = None
    ) -> None:
        self.broker = broker
        self.coordinator = coordinator
        self.lease = lease
        self.held: dict[str, Held] = {}
        self._slotted: dict[Hashable, set[str]] = {}
        """By owner: the deliveries its slots showed running at the last ``sync_slots``."""
        self._lock = threading.Lock()
        self.outage = Outage(logger)
        """The broker outage this keeper's loops see (the supervisor's, or a local pool's)."""

    def reserved(self, owner: Hashable, deliveries: list[Delivery]) -> None:
        with self._lock:
            for delivery in deliveries:
                self.held[delivery.id] = Held(delivery, owner)

    def started(
        self,
        delivery_id: str,
        task_id: str,
        deadline: float | None,
        fence: int,
        shown: Sequence[str] = (),
    ) -> None:
        """A held message's task started; ``shown``: its name and argument previews."""
        with self._lock:
            held = self.held.get(delivery_id)
            if held is not None:
                _started(held, task_id, deadline, fence, time.time())
                if len(shown) == 3:
                    held.name, held.args, held.kwargs = shown

    def sync_slots(self, owner: Hashable, running: Sequence[Running]) -> None:
        """What ``owner``'s slots show running now: those started, and the ones they
        showed before and no longer do ended (their "finished" notice may come later)."""
        with self._lock:
            before = self._slotted.get(owner, set())
            now: set[str] = set()
            for shown in running:
                held = self.held.get(shown.delivery_id)
                if held is None or held.owner != owner:
                    continue
                now.add(shown.delivery_id)
                if shown.delivery_id in before:
                    continue  # seen at the last look
                _started(held, shown.task_id, shown.deadline, shown.fence, shown.since)
                held.name, held.args, held.kwargs = shown.name, shown.args, shown.kwargs
                held.parent_id, held.root_id = shown.parent_id, shown.root_id
            for ended in before - now:
                held = self.held.get(ended)
                if held is not None:
                    held.started, held.deadline = False, None
            if now or before:
                self._slotted[owner] = now

    def lineage(self, delivery_id: str, parent_id: str, root_id: str) -> None:
        """A held message's parent and root task ids (empty when it has none)."""
        with self._lock:
            held = self.held.get(delivery_id)
            if held is not None:
                held.parent_id, held.root_id = parent_id, root_id

    def describe(self, delivery_id: str, name: str, args: str, kwargs: str) -> None:
        """What the registry shows of a started task: its name and argument previews."""
        with self._lock:
            held = self.held.get(delivery_id)
            if held is not None:
                held.name, held.args, held.kwargs = name, args, kwargs

    def snapshot(self) -> list[Held]:
        """Every held delivery, at this moment."""
        with self._lock:
            return list(self.held.values())

    def running(self) -> list[Held]:
        with self._lock:
            return [h for h in self.held.values() if h.started]

    def done(self, delivery_id: str) -> str:
        """The task's code ended; the message stays held (and leased) until released.
        The task's name, when known ("" otherwise)."""
        with self._lock:
            held = self.held.get(delivery_id)
            if held is None:
                return ""
            held.started, held.deadline = False, None
            return held.name

    def released(self, delivery_ids: list[str]) -> None:
        with self._lock:
            for delivery_id in delivery_ids:
                self.held.pop(delivery_id, None)

    def owned_by(self, owner: Hashable) -> list[Held]:
        with self._lock:
            return [h for h in self.held.values() if h.owner == owner]

    def drop_owner(self, owner: Hashable) -> list[Held]:
        with self._lock:
            self._slotted.pop(owner, None)
            mine = [h for h in self.held.values() if h.owner == owner]
            for held in mine:
                del self.held[held.delivery.id]
            return mine

    def _extend_slots(self, items: list[Held]) -> bool:
        """Extend the concurrency slots and locks the running tasks hold; False when the
        broker failed."""
        if self.coordinator is None:
            return True
        try:
            self.coordinator.extend([h.delivery.id for h in items if h.started], self.lease)
        except BrokerError as exc:
            self.outage.failed("lease heartbeat", exc)
            return False
        except Exception:
            logger.exception("extending concurrency slots and locks failed")
        return True

    def recover_expired(self) -> int:
        """Put messages whose lease passed (any worker's) back in their queues; how many.
        A broker failure is reported through ``outage`` and counts as none."""
        try:
            count = self.broker.recover_expired()
        except BrokerError as exc:
            self.outage.failed("lease recovery", exc)
            return 0
        except Exception:
            logger.exception("recovering expired leases failed")
            return 0
        self.outage.ended("lease recovery")
        if count:
            logger.warning("recovered %d message(s) whose lease passed (a worker died?)", count)
        return count

    def past_deadline(self, now: float) -> list[Held]:
        with self._lock:
            return [h for h in self.held.values() if h.deadline is not None and now >= h.deadline]

    def give_back(self, held: Held) -> None:
        """Return a held message to its queue. One whose task ran lets its lease pass now
        instead, so the redelivery counts and finds any outcome already stored."""
        if held.ran:
            self.broker.extend([held.delivery], 0.0)
        else:
            self.broker.nack(held.delivery)

    def extend_all(self) -> None:
        """Push every held lease forward; forget the ones whose token went stale."""
        with self._lock:
            items = list(self.held.values())
        if not items:
            self.outage.ended("lease heartbeat")
            return
        try:
            alive = self.broker.extend([h.delivery for h in items], self.lease)
        except BrokerError as exc:
            self.outage.failed("lease heartbeat", exc)
            return
        except Exception:
            logger.exception("lease heartbeat failed; retrying at the next beat")
            return
        if self._extend_slots(items):
            self.outage.ended("lease heartbeat")
        lost = [h for h, ok in zip(items, alive, strict=True) if not ok]
        if lost:
            with self._lock:
                for held in lost:
                    current = self.held.get(held.delivery.id)
                    if current is held:
                        del self.held[held.delivery.id]
            for held in lost:
                if held.started:
                    logger.debug("lease of %s not extended: acked, or lost", held.delivery.id)


def _started(held: Held, task_id: str, deadline: float | None, fence: int, since: float) -> None:
    """``held``'s task started (from a start line or its slot): its running fields."""
    held.started = held.ran = True
    held.task_id, held.deadline, held.fence, held.since = task_id, deadline, fence, since
