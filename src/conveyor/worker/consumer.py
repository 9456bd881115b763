"""The consume loop: reserve a batch, run it one by one, hand back what is left when a task
turns out long (fairness.py) or the worker stops."""

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
from .fairness import FAIR_AFTER, FairWatch

__all__ = ["DEFAULT_PREFETCH", "Consumer", "hand_back_on_stop", "run_consumers"]

DEFAULT_PREFETCH = 4
"""The batch a consumer starts from when ``worker_prefetch_multiplier`` is not set."""
FAST_TASK = 0.002
"""Seconds per task under which a batch counts as quick."""
GROWTH = 32
"""How many times the prefetch a batch of quick tasks may grow to."""

logger = logging.getLogger("conveyor.worker")


class Consumer:
    """One consumer runs one task at a time; a worker runs several (processes or threads).

    ``prefetch`` None (the default): batches adapt to the tasks (``_adapt``) and a batch
    held behind a long task goes back to the queues (fairness.py). A number (the user set
    ``worker_prefetch_multiplier``): Celery's meaning, each batch is that many messages,
    kept until they run.

    ``inline_async`` (``--pool asyncio``): ``async def`` tasks run on an event loop that this
    consumer's own thread runs while it waits, not on a loop thread (aio.py).
    """

    def __init__(
        self,
        app: Conveyor,
        queues: Sequence[str],
        hostname: str,
        tracker: Tracker,
        prefetch: int | None,
        max_tasks: int | None = None,
        stop: threading.Event | None = None,
        alive: Callable[[], bool] = lambda: True,
        inline_async: bool = False,
    ) -> None:
        self.app = app
        self.queues = list(queues)
        self.fair = prefetch is None
        """Whether batches adapt and are handed back behind a long task."""
        self.prefetch = max(1, DEFAULT_PREFETCH if prefetch is None else prefetch)
        self.max_tasks = max_tasks
        self.stop = stop or threading.Event()
        self.alive = alive
        self.tracker = tracker
        self.executor = Executor(app, hostname, tracker, inline_async)
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
        self.begun = 0
        """Tasks started; the fairness watcher reads it to tell a long task from many."""
        self._kept = -1
        """``begun`` when a hand-back failed: the buffer stays until the next task starts."""
        self.watch: FairWatch | None = None
        """Set by ``run_consumers`` for a fair consumer."""

    def run(self) -> None:
        idle_wait = 0.001
        outage = Outage(logger)
        while not self.stop.is_set() and self.alive():
            if not self.buffer:
                if self.executor.in_flight:  # async tasks: start the new, store the ended
                    self._between_batches()
                try:
                    batch = self._next_batch()
                    if not batch:
                        self.tracker.flush()
                        self.executor.wait_idle(self.broker, idle_wait)
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
                if len(batch) > 1 and self.watch is not None:
                    self.watch.wake()
            with self._taking:
                if self.stop.is_set() or not self.buffer:
                    continue
                delivery = self.buffer.popleft()
                self.begun += 1
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

    def _between_batches(self) -> None:
        """Start the async tasks handed over and collect the ended ones, whose outcomes
        ``_next_batch`` then stores before anything else: no late write is due for them."""
        outbox = self.executor.outbox
        outbox.flushes_next = True
        try:
            self.executor.between_batches()
        finally:
            outbox.flushes_next = False

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
        """Reserve bigger batches while tasks are quick, smaller ones when they are not
        (fair consumers only; a prefetch the user set is the batch, always).

        A full batch whose tasks took under FAST_TASK each doubles the next one, up to
        GROWTH times the prefetch: a queue of tiny tasks then costs a few round trips per
        dozen tasks. Tasks of FAST_TASK or more go back to the prefetch; tasks of
        FAIR_AFTER or more (long enough to have their batch handed back) to one message at
        a time, since a batch behind them would only go back to the queue.
        """
        if not self._batch_len:
            return
        per_task = (time.monotonic() - self._batch_started) / self._batch_len
        full = self._batch_len >= self.batch_size
        self._batch_len = 0
        if not self.fair:
            return
        if full and per_task < FAST_TASK:
            self.batch_size = min(self.batch_size * 2, self.prefetch * GROWTH)
        elif per_task >= FAIR_AFTER:
            self.batch_size = 1
        elif per_task >= FAST_TASK:
            self.batch_size = self.prefetch

    def hand_back_held(self, begun: int) -> int:
        """Fair dispatch, from the watcher's thread: the task this consumer runs is long, so
        its unstarted messages go back to their queues (uncounted), for idle consumers.

        Nothing is handed back if a task started since the watcher read ``begun``. When the
        broker cannot take them (an outage), they stay here and run after the task, as
        before: a lease left to pass would count as a delivery. Not tried again before the
        next task starts.
        """
        with self._taking:
            if self.begun != begun or self.begun == self._kept or self.stop.is_set():
                return 0
            waiting = list(self.buffer)
            self._batch_len -= len(waiting)  # before the buffer empties: _adapt then reads it
            self.buffer.clear()
        if not waiting:
            return 0
        try:
            self.broker.nack_many(waiting)
        except Exception as exc:
            kept, waiting = self._still_held(waiting)
            with self._taking:
                self.buffer.extendleft(reversed(kept))
                self._batch_len += len(kept)
                self._kept = begun
            if kept:
                logger.warning(
                    "%d reserved message(s) wait for the task that runs: %s", len(kept), exc
                )
            if not waiting:
                return 0
        logger.debug(
            "a task runs past %g s: reserved message(s) handed back: %s",
            FAIR_AFTER,
            " ".join(delivery.id for delivery in waiting),
        )
        for delivery in waiting:
            self.executor.forget(delivery)
        self.tracker.released(waiting)
        self.tracker.flush()
        return len(waiting)

    def _still_held(self, deliveries: list[Delivery]) -> tuple[list[Delivery], list[Delivery]]:
        """After a hand-back that failed, the messages still leased to this consumer, and
        those handed back after all: the call may have handed some back before it failed
        (a batch half done), and running one of those here would run it twice. Extending
        a lease is fenced by its token, so it answers which; if that fails too, nothing is
        known and every one stays."""
        try:
            held = self.broker.extend(deliveries, self.lease)
        except Exception:
            return deliveries, []
        kept = [delivery for delivery, ours in zip(deliveries, held, strict=True) if ours]
        gone = [delivery for delivery, ours in zip(deliveries, held, strict=True) if not ours]
        return kept, gone

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
        self.executor.finish_async()  # running async tasks end first (warm shutdown)
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
        with self._taking:  # the fairness watcher may be handing the buffer back too
            waiting = list(self.buffer)
            self.buffer.clear()
        if waiting:
            self._give_back(waiting)
        self.tracker.flush()

    def _give_back(self, deliveries: list[Delivery]) -> None:
        """Back to their queues now, uncounted, in one broker call where it can."""
        for delivery in deliveries:
            self.executor.forget(delivery)
        ids = " ".join(delivery.id for delivery in deliveries)
        try:
            self.broker.nack_many(deliveries)
        except BrokerError as exc:
            logger.warning("%s not handed back, their leases will pass: %s", ids, exc)
        except Exception:
            logger.exception("could not hand back %s; their leases will expire", ids)
        self.tracker.released(deliveries)


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
    """Run consumers until they stop: one in this thread, or each in a thread of its own;
    fair ones are watched (fairness.py)."""
    hand_back_on_stop(stop, consumers)
    fair = [consumer for consumer in consumers if consumer.fair]
    watch = FairWatch(fair, stop)
    for consumer in fair:
        consumer.watch = watch
    if fair:
        watch.start()
    try:
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
    finally:
        watch.close()
