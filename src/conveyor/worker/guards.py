"""Checks that run before a task starts: revocation, locks, concurrency and rate limits.

Each may let the task run, end it (revoked, skipped) or postpone it. A postponed message
goes back to the broker's delayed store with a nack that does not count as a delivery, so
a limited task waits in the broker, not in a worker's memory, and never blocks the tasks
behind it.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..app import Conveyor
from ..brokers.base import UNREAD, Delivery
from ..control import parse_rate
from ..keys import concurrency_key, rate_bucket_key, rate_override_key, revoked_key, task_lock_key
from ..message import Message, task_id_of
from ..task import AnyTask, format_key

__all__ = ["Guards", "Verdict"]

logger = logging.getLogger("conveyor.worker")

REVOKE, SKIP, POSTPONE = "revoke", "skip", "postpone"

RATE_RECHECK = 2.0
"""Longest a rate-limited message waits before it asks again, so a rate raised at run time
reaches messages that were postponed under the old one."""

FRESH = 0.1
"""Seconds a batch's revocation check stands in for a check just before each task."""


@dataclass(slots=True)
class Verdict:
    action: str
    reason: str
    delay: float = 0.0


@dataclass(slots=True)
class Admission:
    """What a task may do, and the slots to give back when it ends."""

    verdict: Verdict | None = None
    slots: list[tuple[str, str]] = field(default_factory=list)


class Guards:
    def __init__(self, app: Conveyor, clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.coordinator = app.coordinator
        self.lease = float(app.conf.broker_lease)
        self.clock = clock
        self._rates: dict[str, tuple[float, float | None]] = {}
        self._revoked: dict[str, str | None] = {}
        self._revoked_at = float("-inf")
        app.broker.read_revocations_from(self.coordinator)

    def prefetch(self, deliveries: list[Delivery]) -> None:
        """Read the revocations of a whole reserved batch in one call (none when the broker
        read them with the reservation)."""
        ids = [task_id_of(d.id) for d in deliveries]
        read = [d.revocation for d in deliveries]
        if any(value is UNREAD for value in read):
            values = self.coordinator.get_many([revoked_key(i) for i in ids])
        else:
            values = [value for value in read if value is not UNREAD]
        self._revoked = dict(zip(ids, values, strict=True))
        self._revoked_at = self.clock()

    def _revocation(self, task_id: str) -> str | None:
        if task_id in self._revoked and self.clock() - self._revoked_at < FRESH:
            return self._revoked[task_id]
        return self.coordinator.get(revoked_key(task_id))

    def admit(
        self,
        task: AnyTask,
        message: Message,
        delivery: Delivery,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Admission:
        admission = Admission()
        revoked = self._revocation(message.id)
        if revoked is None and message.headers.get("stamped_headers"):
            revoked = self.app.control.stamp_revocation(message.headers)
        if revoked is not None:
            reason = json.loads(revoked).get("reason", "revoked")
            admission.verdict = Verdict(REVOKE, reason)
            return admission
        holder = delivery.id
        if task.lock:
            key = task_lock_key(format_key(task.lock, task, args, kwargs))
            ttl = float(task.lock_timeout or self.lease)
            if not self.coordinator.acquire(key, holder, 1, ttl):
                if task.on_locked == "retry":
                    admission.verdict = Verdict(POSTPONE, f"{key} is held", _jitter(1.0))
                else:
                    admission.verdict = Verdict(SKIP, f"skipped: {key} is held by another run")
                return admission
            admission.slots.append((key, holder))
        if task.concurrency_limit:
            value = None
            if task.concurrency_key:
                value = format_key("{" + task.concurrency_key + "}", task, args, kwargs)
            key = concurrency_key(str(task.name), value)
            if not self.coordinator.acquire(key, holder, int(task.concurrency_limit), self.lease):
                self.release(admission)
                admission.verdict = Verdict(POSTPONE, f"{key} is at its limit", _jitter(0.5))
                return admission
            admission.slots.append((key, holder))
        rate = self._rate(task)
        if rate is not None:
            wait = self.coordinator.take_token(rate_bucket_key(str(task.name)), rate, 1.0)
            if wait > 0:
                self.release(admission)
                wait = min(wait, _jitter(RATE_RECHECK))
                admission.verdict = Verdict(POSTPONE, f"rate limit of {task.name}", wait)
                return admission
        return admission

    def release(self, admission: Admission) -> None:
        for key, holder in admission.slots:
            try:
                self.coordinator.release(key, holder)
            except Exception:
                logger.exception("could not release %s; it expires by itself", key)
        admission.slots.clear()

    def _rate(self, task: AnyTask) -> float | None:
        """The task's rate (per second), with run-time overrides read at most once a second."""
        name = task.name or ""
        now = self.clock()
        cached = self._rates.get(name)
        if cached is not None and now - cached[0] < 1.0:
            return cached[1]
        override = self.coordinator.get(rate_override_key(name))
        rate = parse_rate(override if override is not None else task.rate_limit)
        self._rates[name] = (now, rate)
        return rate


def _jitter(base: float) -> float:
    return base * random.uniform(0.75, 1.25)
