"""Consumers in this very process: ``threads`` (N consumer threads) or ``solo`` (one, in
the main thread), with a heartbeat thread that keeps their leases alive.

``conveyor worker -P threads|solo`` runs these consumers in a child of the prefork
supervisor instead (see prefork.py); this class serves the memory:// broker, which lives
in one process, and the test fixtures that run a worker inside the test's process. Hard
time limits cannot kill a thread: a task past its hard limit is reported, not stopped;
soft limits hold only under solo.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Sequence

from .. import signals
from ..app import Conveyor
from ..brokers.base import Delivery
from .consumer import Consumer, run_consumers
from .leases import LeaseKeeper
from .registry import Registration, Tally, describe_in, describing

__all__ = ["LocalPool"]

logger = logging.getLogger("conveyor.worker")


class ThreadTracker:
    def __init__(self, keeper: LeaseKeeper, tally: Tally) -> None:
        self.keeper = keeper
        self.tally = tally

    def reserved(self, deliveries: list[Delivery]) -> None:
        self.keeper.reserved(threading.get_ident(), deliveries)

    def started(
        self, delivery: Delivery, task_id: str, hard_deadline: float | None, fence: int
    ) -> None:
        self.keeper.started(delivery.id, task_id, hard_deadline, fence)

    def finished(self, delivery: Delivery, failed: bool = False) -> None:
        self.tally.count(self.keeper.done(delivery.id), failed)

    def ended(self, delivery: Delivery, failed: bool = False) -> None:
        self.finished(delivery, failed)

    def released(self, deliveries: list[Delivery]) -> None:
        self.keeper.released([d.id for d in deliveries])

    def flush(self) -> None:
        pass


class LocalPool:
    def __init__(
        self,
        app: Conveyor,
        queues: Sequence[str],
        concurrency: int,
        hostname: str,
        prefetch: int | None,
        solo: bool = False,
        install_signals: bool = True,
    ) -> None:
        self.app = app
        self.queues = list(queues)
        self.concurrency = 1 if solo else concurrency
        self.hostname = hostname
        self.prefetch = prefetch
        self.solo = solo
        self.install_signals = install_signals
        self.lease = float(app.conf.broker_lease)
        self.keeper = LeaseKeeper(app.broker, self.lease, app.coordinator)
        self.stop = threading.Event()
        self.finished = threading.Event()
        self._signals = 0
        self.tally = Tally()
        self.consumers: list[Consumer] = []
        self.registration = Registration(
            app,
            hostname,
            self,
            self._describe,
            self.keeper.snapshot,
            self.tally,
            owners_are_children=False,
        )

    def _consumer(self) -> Consumer:
        return Consumer(
            self.app,
            self.queues,
            self.hostname,
            ThreadTracker(self.keeper, self.tally),
            self.prefetch,
            stop=self.stop,
        )

    def _heartbeat(self) -> None:
        beat_every = max(self.lease / 3.0, 0.05)
        last_recover = 0.0
        next_beat = time.monotonic() + beat_every
        self.registration.beat()
        while not self.finished.wait(min(beat_every, self.registration.interval)):
            self.registration.beat()
            if time.monotonic() < next_beat:
                continue
            next_beat = time.monotonic() + beat_every
            self.keeper.extend_all()
            signals.heartbeat_sent.send(sender=self)
            for held in self.keeper.past_deadline(time.time()):
                logger.error(
                    "task %s is past its hard time limit; the %s pool cannot stop it",
                    held.delivery.id,
                    "solo" if self.solo else "threads",
                )
                held.deadline = None
            if time.monotonic() - last_recover > min(max(self.lease / 2, 0.1), 5.0):
                last_recover = time.monotonic()
                self.keeper.recover_expired()

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals += 1
        warm = self._signals == 1 and signum != signal.SIGQUIT
        signals.worker_shutting_down.send(
            sender=self.hostname,
            sig=signal.Signals(signum).name,
            how="Warm" if warm else "Cold",
            exitcode=0 if warm else 1,
        )
        if self._signals == 1:
            self.app.worker_stopping()
        if warm:
            logger.warning(
                "warm shutdown: finishing running tasks (signal again for cold shutdown)"
            )
            self.stop.set()
            return
        logger.warning("cold shutdown: running tasks go back to their queues")
        self._release_all()
        raise SystemExit(1)

    def _release_all(self) -> None:
        for held in list(self.keeper.held.values()):
            try:
                self.keeper.give_back(held)
            except Exception:
                logger.exception("could not hand back %s", held.delivery.id)
            self.keeper.released([held.delivery.id])

    # -- control commands (worker/registry.py runs them on the heartbeat) ---------------

    def _describe(self) -> dict[str, object]:
        return {
            "pool": "solo" if self.solo else "threads",
            "concurrency": self.concurrency,
            "queues": list(self.queues),
            "children": [],
            "prefetch": self.prefetch,
            "max_tasks_per_child": None,
        }

    def add_queue(self, queue: str) -> bool:
        if queue in self.queues:
            return False
        self.queues.append(queue)
        for consumer in self.consumers:
            consumer.queues.append(queue)  # read at its next reservation
        return True

    def cancel_queue(self, queue: str) -> bool:
        if self.queues == [queue]:
            return False
        self.queues.remove(queue)
        for consumer in self.consumers:
            consumer.queues.remove(queue)
        return True

    def resize(self, change: int) -> str | None:
        return "a pool of threads in this process has a fixed size"

    def set_time_limit(self, task_name: str, soft: float | None, hard: float | None) -> None:
        task = self.app.tasks[task_name]
        task.soft_time_limit, task.time_limit = soft, hard

    def request_shutdown(self) -> None:
        self.stop.set()

    def run(self) -> int:
        if self.install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
                signal.signal(sig, self._on_signal)
        hook = describing(describe_in(self.keeper))
        self.app.on_task_start.insert(0, hook)
        self.consumers = [self._consumer() for _ in range(self.concurrency)]
        beat = threading.Thread(target=self._heartbeat, name="conveyor-heartbeat", daemon=True)
        beat.start()
        signals.worker_process_init.send(sender=None)
        code = 1
        try:
            signals.worker_ready.send(sender=self)
            run_consumers(self.consumers, self.stop, in_main_thread=self.solo)
            code = 0
        finally:
            self.finished.set()
            self.app.on_task_start.remove(hook)
            beat.join(5.0)
            self.registration.leave()
            signals.worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=code)
        return 0
