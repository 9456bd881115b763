"""The consume loop: reserve a batch, run it one by one, hand back what is left on shutdown."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from .. import signals
from ..app import Conveyor
from ..brokers.base import Delivery
from ..exceptions import BrokerError
from ..outage import Outage
from . import notify
from .executor import Executor, Tracker

__all__ = ["Consumer", "hand_back_on_stop", "run_consumers"]

FAST_TASK = 0.002
"""Seconds per task under which a batch counts as quick."""
GROWTH = 32
"""How many times the prefetch a batch of quick tasks may grow to."""

logger = logging.getLogger("conveyor.worker")


class Consumer:
    """One consumer runs one task at a time; a worker runs several (processes or threads)."""

    def __init__(
        self,
        app: Conveyor,
        queues: Sequence[str],
        hostname: str,
        tracker: Tracker,
        prefetch: int,
        max_tasks: int | None = None,
        stop: threading.Event | None = None,
        alive: Callable[[], bool] = lambda: True,
    ) -> None:
        self.app = app
        self.queues = list(queues)
        self.prefetch = max(1, prefetch)
        self.max_tasks = max_tasks
        self.stop = stop or threading.Event()
        self.alive = alive
        self.tracker = tracker
        self.executor = Executor(app, hostname, tracker)
        self.broker = app.broker
        self.lease = float(app.conf.broker_lease)
        self.buffer: deque[Delivery] = deque()
        self._taking = threading.Lock()
        """Held while the buffer changes: a warm shutdown empties it from another thread."""
        self.batch_size = self.prefetch
        self.track_received = bool(app.conf.task_track_received)
        self._batch_started = 0.0
        self._batch_len = 0
        self.done = 0

    def run(self) -> None:
        idle_wait = 0.001
        outage = Outage(logger)
        while not self.stop.is_set() and self.alive():
            if not self.buffer:
                try:
                    batch = self._next_batch()
                    if not batch:
                        self.tracker.flush()
                        self.broker.wait(idle_wait)
                except BrokerError as exc:
                    outage.failed("consumer", exc)
                    self.stop.wait(outage.pause())
                    continue
                outage.ended("consumer")
                if not batch:
                    idle_wait = min(idle_wait * 2, 0.05)
                    continue
                idle_wait = 0.001
                self._batch_started, self._batch_len = time.monotonic(), len(batch)
                self.tracker.reserved(batch)
                self.executor.guards.prefetch(batch)
                if self.track_received:
                    self.executor.received(batch)
                if signals.task_received.receivers:
                    notify.received(self.executor, batch)
                with self._taking:
                    self.buffer.extend(batch)
            with self._taking:
                if self.stop.is_set() or not self.buffer:
                    continue
                delivery = self.buffer.popleft()
            try:
                self.executor.handle(delivery)
            except BrokerError as exc:  # not the message's fault: handed back uncounted
                outage.failed("consumer", exc)
                self._give_back([delivery])
                self.stop.wait(outage.pause())
                continue
            except Exception as exc:
                logger.exception("worker error on message %s; it counts as a delivery", delivery.id)
                try:
                    self.executor.worker_error(delivery, exc)
                except Exception:
                    logger.exception("could not hand back %s; its lease will expire", delivery.id)
                self.stop.wait(0.1)
            self.done += 1
            if self.max_tasks is not None and self.done >= self.max_tasks:
                break
        self.release()

    def _next_batch(self) -> list[Delivery]:
        """Ack the last batch and reserve the next one, in one call where the broker can."""
        acks = self.executor.outbox.take_acks()
        self._adapt()
        try:
            done, batch = self.broker.ack_and_reserve(
                [delivery for delivery, _ in acks], self.queues, self.batch_size, self.lease
            )
        except BaseException:
            self.executor.outbox.untake_acks(acks)
            raise
        self.executor.outbox.acked(acks, done)
        return batch

    def _adapt(self) -> None:
        """Reserve bigger batches while tasks are quick, back to the base when they are not.

        A full batch whose tasks took under FAST_TASK each doubles the next one, up to
        GROWTH times the prefetch: a queue of tiny tasks then costs a few round trips per
        dozen tasks, while slow tasks keep the configured prefetch (and its fairness).
        """
        if not self._batch_len:
            return
        per_task = (time.monotonic() - self._batch_started) / self._batch_len
        full = self._batch_len >= self.batch_size
        if full and per_task < FAST_TASK:
            self.batch_size = min(self.batch_size * 2, self.prefetch * GROWTH)
        elif per_task >= FAST_TASK:
            self.batch_size = self.prefetch
        self._batch_len = 0

    def hand_back_unstarted(self) -> None:
        """Warm shutdown, from any thread: reserved messages not started yet go back to
        their queues now, not when the running task ends (``stop`` is set already, so
        nothing more is taken from the buffer)."""
        with self._taking:
            waiting = list(self.buffer)
            self.buffer.clear()
        if waiting:
            logger.info("warm shutdown: %d reserved message(s) handed back", len(waiting))
            self._give_back(waiting)
            self.tracker.flush()

    def release(self) -> None:
        """Ack what finished; hand reserved, unstarted messages back to their queues at once."""
        try:
            self.executor.outbox.flush_acks()
        finally:
            self.executor.outbox.close()
        try:
            self.buffer.extend(self.broker.stop_waiting())
        except BrokerError as exc:
            logger.warning(
                "%s; a message handed to this worker comes back when its lease passes", exc
            )
        if self.buffer:
            self._give_back(list(self.buffer))
            self.buffer.clear()
        self.tracker.flush()

    def _give_back(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            self.executor.forget(delivery)
            try:
                self.broker.nack(delivery)
            except BrokerError as exc:
                logger.warning("%s not handed back, its lease will pass: %s", delivery.id, exc)
            except Exception:
                logger.exception("could not hand back %s; its lease will expire", delivery.id)
            self.tracker.released([delivery])


def hand_back_on_stop(stop: threading.Event, consumers: Sequence[Consumer]) -> threading.Thread:
    """A thread that hands back the consumers' unstarted messages as soon as ``stop`` is set,
    while their running tasks go on (warm shutdown)."""

    def watch() -> None:
        stop.wait()
        for consumer in consumers:
            try:
                consumer.hand_back_unstarted()
            except Exception:
                logger.exception("handing back reserved messages failed; their leases will pass")

    thread = threading.Thread(target=watch, name="conveyor-handback", daemon=True)
    thread.start()
    return thread


def run_consumers(
    consumers: Sequence[Consumer], stop: threading.Event, in_main_thread: bool = False
) -> None:
    """Run consumers until they stop: one in this thread, or each in a thread of its own."""
    hand_back_on_stop(stop, consumers)
    if in_main_thread:
        for consumer in consumers:
            consumer.run()
        return
    threads = [
        threading.Thread(target=consumer.run, name=f"conveyor-{i}", daemon=True)
        for i, consumer in enumerate(consumers)
    ]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        for thread in threads:
            thread.join(0.2)
