"""The prefork pool: a supervisor process and N forked children that each consume on their own.

Children tell the supervisor over a pipe what they reserved and finished, and show in
shared memory what they run (slots.py; ``async def`` starts go on the pipe too). The
supervisor extends those leases (so a child stuck in C code still keeps its lease),
kills a child whose task passed its hard time limit, replaces children that die, and
runs warm and cold shutdown.

The threads and solo pools run under the same supervisor, as one child whose consumer
threads share its pipe: when a task kills that process, the supervisor still knows which
messages were running (their redelivery counts) and which were only reserved (they go
back uncounted), so a poison task never charges the innocent ones reserved beside it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import selectors
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from .. import signals, states
from ..app import Conveyor
from ..brokers.base import Delivery
from ..exceptions import BrokerError, TimeLimitExceeded
from ..keys import lost_key, revoked_key
from ..records import ErrorRecord, TaskRecord, retries_of
from .child import TERMINATE, WARM_STOP, ChildSettings, child_main
from .leases import Held, LeaseKeeper
from .registry import Registration, Tally
from .slots import SlotTable

__all__ = ["PreforkPool"]

logger = logging.getLogger("conveyor.worker")

KILL_GRACE = 5.0
"""Seconds a child has to exit after a terminate signal other than SIGKILL."""
LOST_NOTE_TTL = 7 * 24 * 3600.0
"""Seconds the note of a child's death while running a message is kept."""
NOTICE_PAUSE = 0.05
"""Seconds the supervisor rests after reading children's notices: a busy child then wakes
it twenty times a second, not once per task or two, and keeps the CPU for its tasks (each
look at the children costs ~50-100 us; at 5 ms an async round trip read ~8-17 us slower,
bench/README.md). A child's pipe holds what it writes meanwhile (``PIPE_SIZE``); where a
pipe cannot be made that large, the supervisor rests ``SHORT_PAUSE``."""
SHORT_PAUSE = 0.005
_READ = 65536
PIPE_SIZE = 1 << 20
"""Bytes a child's pipe holds (Linux's default limit for an unprivileged process): at
~100 bytes of notices a task, a child running 20,000 tasks a second fills 100 KB a pause."""


@dataclass
class Child:
    pid: int
    fd: int
    index: int
    slots: SlotTable
    buffer: bytes = b""
    killed_for: dict[str, tuple[Held, TaskRecord]] = field(default_factory=dict)


class PreforkPool:
    def __init__(
        self,
        app: Conveyor,
        queues: Sequence[str],
        concurrency: int,
        hostname: str,
        prefetch: int | None,
        max_tasks_per_child: int | None,
        child_pool: str = "prefork",
    ) -> None:
        self.app = app
        self.queues = list(queues)
        self.child_pool = child_pool
        self.threads = concurrency
        """Consumer threads in the one child of the threads and solo pools."""
        self.concurrency = concurrency if child_pool == "prefork" else 1
        self.stops_tasks = child_pool != "threads"
        """Whether a task can be stopped by killing its process (not when threads share it)."""
        self.hostname = hostname
        self.prefetch = prefetch
        self.max_tasks_per_child = max_tasks_per_child
        self.lease = float(app.conf.broker_lease)
        self.keeper = LeaseKeeper(app.broker, self.lease, app.coordinator)
        self.children: dict[int, Child] = {}
        self.selector = selectors.DefaultSelector()
        self.stopping = False
        self.cold = False
        self._signals: list[int] = []
        self.terminating: dict[str, tuple[float, TaskRecord]] = {}
        self.stamps: dict[str, list[str]] = {}
        """The revocation keys of the stamps of running tasks, by delivery id (``T``)."""
        self.tally = Tally()
        self.registration: Registration | None = None
        self.notice_pause = NOTICE_PAUSE

    # -- supervisor ---------------------------------------------------------------------

    def run(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        self.selector.register(wake_r, selectors.EVENT_READ, None)
        old_wakeup = signal.set_wakeup_fd(wake_w)
        handlers = {
            sig: signal.signal(sig, self._on_signal)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGQUIT)
        }
        self.registration = Registration(
            self.app, self.hostname, self, self._describe, self.keeper.snapshot, self.tally
        )
        try:
            for index in range(self.concurrency):
                self._spawn(index)
            signals.worker_ready.send(sender=self)
            self._loop(wake_r)
        finally:
            self.registration.leave()
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            os.close(wake_r)
            os.close(wake_w)
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals.append(signum)

    def _loop(self, wake_fd: int) -> None:
        beat_every = max(self.lease / 3.0, 0.05)
        next_beat = time.monotonic() + beat_every
        next_recover = time.monotonic()
        next_cleanup = time.monotonic() + 60
        next_revoke_check = time.monotonic()
        while True:
            timeout = max(0.0, min(next_beat - time.monotonic(), 0.25))
            notices = False
            for key, _ in self.selector.select(timeout):
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_fd, 4096)
                else:
                    self._read_child(key.data)
                    notices = True
            self._handle_signals()
            self._reap()
            self._sync_slots()
            if self.stopping and not self.children:
                return
            now = time.monotonic()
            if now >= next_beat:
                self.keeper.extend_all()
                signals.heartbeat_sent.send(sender=self)
                next_beat = now + beat_every
            self._enforce_time_limits()
            if now >= next_revoke_check:
                self._terminate_revoked()
                next_revoke_check = now + 0.5
            if not self.stopping and now >= next_recover:
                self._recover()
                next_recover = now + min(max(self.lease / 2, 0.1), 5.0)
            if not self.stopping and now >= next_cleanup:
                self._cleanup()
                next_cleanup = now + 60
            if self.registration is not None:
                self.registration.beat()
            if notices and not self.stopping:
                time.sleep(self.notice_pause)  # let the children's notices gather in their pipes

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum == signal.SIGCHLD:
                continue
            if signum == signal.SIGQUIT or self.stopping:
                self._cold_shutdown(signum)
            else:
                self._warm_shutdown(signum)

    def _warm_shutdown(self, signum: int) -> None:
        signals.worker_shutting_down.send(
            sender=self.hostname, sig=_signal_name(signum), how="Warm", exitcode=0
        )
        logger.warning(
            "warm shutdown: finishing running tasks, handing back reserved ones "
            "(signal again for cold shutdown)"
        )
        self.stopping = True
        self.app.worker_stopping()
        for child in list(self.children.values()):
            _kill(child.pid, WARM_STOP)

    def _cold_shutdown(self, signum: int) -> None:
        if self.cold:
            return
        signals.worker_shutting_down.send(
            sender=self.hostname, sig=_signal_name(signum), how="Cold", exitcode=0
        )
        logger.warning("cold shutdown: stopping running tasks; they go back to their queues")
        self.stopping = self.cold = True
        self.app.worker_stopping()
        for child in list(self.children.values()):
            _kill(child.pid, signal.SIGKILL)

    def _spawn(self, index: int) -> None:
        slots = SlotTable(self.threads if self.child_pool == "threads" else 1)
        read_fd, write_fd = os.pipe()
        if not _enlarge(read_fd):
            self.notice_pause = SHORT_PAUSE
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            os.close(read_fd)
            for other in self.children.values():
                os.close(other.fd)
            child_main(self._child_settings(), index, write_fd, slots)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        child = Child(pid, read_fd, index, slots)
        self.children[pid] = child
        self.selector.register(read_fd, selectors.EVENT_READ, child)
        logger.debug("started child %d (pid %d)", index, pid)

    def _child_settings(self) -> ChildSettings:
        """What a child spawned now consumes with (control may have changed the queues)."""
        return ChildSettings(
            self.app,
            list(self.queues),
            self.hostname,
            self.prefetch,
            self.max_tasks_per_child,
            self.child_pool,
            self.threads,
        )

    def _read_child(self, child: Child) -> None:
        """Every notice ``child`` has written so far."""
        while True:
            try:
                data = os.read(child.fd, _READ)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                return
            lines = (child.buffer + data).split(b"\n")
            child.buffer = lines.pop()
            for line in lines:
                self._apply(child, line.decode().split("\t"))
            if len(data) < _READ:
                return

    def _apply(self, child: Child, parts: list[str]) -> None:
        kind = parts[0]
        if kind == "R":
            _, msg_id, token, count, queue = parts
            delivery = Delivery(msg_id, queue, b"", 0, token, int(count))
            self.keeper.reserved(child.pid, [delivery])
        elif kind == "S":  # with the task's name and argument previews when described
            msg_id, task_id, deadline, fence = parts[1:5]
            self.keeper.started(
                msg_id, task_id, float(deadline) if deadline else None, int(fence), parts[5:8]
            )
        elif kind == "D":  # then "F" if it failed, and its name if it ran from its slot
            self.stamps.pop(parts[1], None)
            name = self.keeper.done(parts[1])
            self.tally.count(parts[3] if len(parts) > 3 else name, failed=parts[2:3] == ["F"])
        elif kind == "F":
            self.stamps.pop(parts[1], None)
            self.keeper.released([parts[1]])
        elif kind == "T":  # the stamps of a task that started
            self.stamps[parts[1]] = parts[2:]
        elif kind == "L":  # the parent and root of a task about to start
            self.keeper.lineage(parts[1], parts[2], parts[3])

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue
            self._read_child(child)
            self._sync_slots(child)  # what it died running
            self.selector.unregister(child.fd)
            os.close(child.fd)
            self._after_exit(child, status)
            child.slots.close()

    def _after_exit(self, child: Child, status: int) -> None:
        leftovers = self.keeper.drop_owner(child.pid)
        for held, record in child.killed_for.values():
            self._conclude_killed(held, record)
        crashed = False
        for held in leftovers:
            if held.delivery.id in child.killed_for:
                continue
            try:
                if held.ran:
                    # The redelivery counts, so a task that kills its process every time ends
                    # in the dead letters instead of looping forever.
                    crashed = True
                    if held.started and not self.cold:
                        self._note_lost(child, held, status)
                self.keeper.give_back(held)
            except Exception:
                logger.exception("could not hand back %s; its lease will expire", held.delivery.id)
        if crashed:
            self._recover()
        code = os.waitstatus_to_exitcode(status)
        if code != 0 and not child.killed_for and not self.stopping:
            logger.error("child pid %d exited with %s; replacing it", child.pid, code)
        if not self.stopping and child.index < self.concurrency:
            self._spawn(child.index)

    def _note_lost(self, child: Child, held: Held, status: int) -> None:
        """Log a child's death while running a task, and leave a note that the executor
        quotes when the message is dead-lettered for too many deliveries."""
        code = os.waitstatus_to_exitcode(status)
        cause = f"killed by {_signal_name(-code)}" if code < 0 else f"exit code {code}"
        delivery = held.delivery
        logger.error(
            "child pid %d died while running %s (%s), delivery %d of at most %d",
            child.pid,
            held.task_id,
            cause,
            delivery.delivery_count,
            self.app.conf.task_max_deliveries,
        )
        note = f"pid {child.pid}, {cause}"
        try:
            self.app.coordinator.put_many([(lost_key(delivery.id), note)], LOST_NOTE_TTL)
        except Exception as exc:
            logger.warning("could not note the death of %s: %s", held.task_id, exc)

    def _kill_for(self, child: Child, held: Held, record: TaskRecord, signum: int) -> None:
        child.killed_for[held.delivery.id] = (held, record)
        _kill(child.pid, signum)

    def _sync_slots(self, *children: Child) -> None:
        """Learn from the slots of ``children`` (all by default) which ``def`` tasks they
        run now (slots.py)."""
        for child in children or self.children.values():
            self.keeper.sync_slots(child.pid, child.slots.read())

    def _still_running(self, child: Child, held: Held) -> bool:
        """Whether ``held``'s task still runs, from what ``child`` told and shows now: the
        last look may be a heartbeat's Redis call old, long enough for the task to have
        ended and the next to have begun, which a SIGKILL would take down too."""
        self._read_child(child)
        self._sync_slots(child)
        return held.started

    def _enforce_time_limits(self) -> None:
        for held in self.keeper.past_deadline(time.time()):
            child = self.children.get(held.owner)  # type: ignore[call-overload]
            if child is None or held.delivery.id in child.killed_for:
                continue
            if not self.stops_tasks:
                if self._on_event_loop(held):  # cancelled at its limit, it has not ended since
                    why = "did not end when cancelled at its hard time limit"
                else:
                    why = "is past its hard time limit"
                logger.error("%s %s; the threads pool cannot stop it", held.task_id, why)
                held.deadline = None
                continue
            if not self._still_running(child, held) or held.deadline is None:
                continue
            logger.error(
                "%s passed its hard time limit; killing child pid %d", held.task_id, child.pid
            )
            error = TimeLimitExceeded("hard time limit exceeded: the task's process was killed")
            record = TaskRecord(
                status=states.FAILURE,
                result=str(error),
                exception=ErrorRecord.from_exception(error),
                traceback=f"{type(error).__name__}: {error}",
                worker=self.hostname,
            )
            self._kill_for(child, held, record, signal.SIGKILL)
        for delivery_id, (deadline, revoked) in list(self.terminating.items()):
            stuck = self.keeper.held.get(delivery_id)
            if stuck is None or not stuck.started:  # it ended; its ack may come later
                del self.terminating[delivery_id]
            elif time.monotonic() >= deadline:
                del self.terminating[delivery_id]
                child = self.children.get(stuck.owner)  # type: ignore[call-overload]
                if child is not None and self._still_running(child, stuck):
                    logger.error(
                        "%s ignored the terminate request; killing child pid %d",
                        stuck.task_id,
                        child.pid,
                    )
                    self._kill_for(child, stuck, revoked, signal.SIGKILL)

    def _on_event_loop(self, held: Held) -> bool:
        """An ``async def`` task: its process's event loop cancels it on terminate and at its
        hard limit, which a threads pool cannot do to a ``def`` task."""
        task = self.app.tasks.get(held.name) if held.name else None
        return task is not None and task.is_async

    def _terminate_revoked(self) -> None:
        """Kill children running tasks revoked with terminate=True, on any worker's request."""
        running = self.keeper.running()
        if not running:
            # those of tasks in children that died; not of one held, whose stamps came
            # before its slot shows it started
            holding = self.keeper.held
            for delivery_id in [d for d in self.stamps if d not in holding]:
                del self.stamps[delivery_id]
            self.keeper.outage.ended("revocation check")
            return
        keys = [revoked_key(h.task_id) for h in running]
        stamped = [self.stamps.get(h.delivery.id, ()) for h in running] if self.stamps else []
        for each in stamped:  # stamped tasks run: their stamps' revocations, in the same read
            keys.extend(each)
        try:
            found = self.app.coordinator.get_many(keys)
        except BrokerError as exc:
            self.keeper.outage.failed("revocation check", exc)
            return
        except Exception:
            logger.exception("reading revocations failed")
            return
        self.keeper.outage.ended("revocation check")
        flags = found[: len(running)]
        by_stamp = iter(found[len(running) :])
        for i, each in enumerate(stamped):
            for stamp_flag in [next(by_stamp) for _ in each]:
                if flags[i] is None:
                    flags[i] = stamp_flag
        for held, flag in zip(running, flags, strict=True):
            if flag is None:
                continue
            request = json.loads(flag)
            child = self.children.get(held.owner)  # type: ignore[call-overload]
            if not request.get("terminate") or child is None:
                continue
            if not self.stops_tasks:
                if held.delivery.id not in self.terminating:
                    if self._on_event_loop(held):  # its loop cancels it (worker/aio.py)
                        logger.debug("%s revoked: its event loop cancels it", held.task_id)
                    else:
                        logger.warning("%s revoked: the threads pool cannot stop it", held.task_id)
                    self.terminating[held.delivery.id] = (
                        math.inf,
                        TaskRecord(status=states.REVOKED),
                    )
                continue
            if held.delivery.id in child.killed_for or held.delivery.id in self.terminating:
                continue  # signalled already: it has KILL_GRACE to end
            signum = int(request.get("signal") or signal.SIGTERM)
            if signum == signal.SIGKILL and not self._still_running(child, held):
                continue  # a SIGKILL names no task: it ended since the last look
            logger.warning(
                "terminating %s (revoked): signal %s to child pid %d",
                held.task_id,
                request.get("signal"),
                child.pid,
            )
            record = TaskRecord(
                status=states.REVOKED, result=request.get("reason", "revoked"), worker=self.hostname
            )
            if signum == signal.SIGKILL:
                self._kill_for(child, held, record, signal.SIGKILL)
            else:
                child.slots.aim(held.delivery.id)
                _kill(child.pid, TERMINATE)
                self.terminating[held.delivery.id] = (time.monotonic() + KILL_GRACE, record)

    def _conclude_killed(self, held: Held, record: TaskRecord) -> None:
        """Store the outcome of a task whose child was killed, then let its message go round once
        more: the consumer that gets it finds the outcome stored, runs the workflow hooks
        (chain, chord, errbacks) that only the message knows, and acks it without running it."""
        record.retries = retries_of(held.fence)
        record.parent_id = held.parent_id or None
        if held.root_id != held.task_id:
            record.root_id = held.root_id or None
        self.tally.count(held.name, failed=record.status == states.FAILURE)
        try:
            self.app.results.write(held.task_id, record, held.fence)
            self.app.broker.extend([held.delivery], 0.0)
            self.app.broker.recover_expired()
        except Exception:
            logger.exception("could not record the end of %s", held.task_id)

    def _recover(self) -> None:
        self.keeper.recover_expired()

    def _cleanup(self) -> None:
        try:
            self.app.backend.cleanup()
        except BrokerError as exc:
            logger.warning("result cleanup failed: %s", exc)
        except Exception:
            logger.exception("result cleanup failed")

    # -- control commands (worker/registry.py runs them on the heartbeat) ---------------

    def _describe(self) -> dict[str, object]:
        """The registry record's pool fields."""
        prefork = self.child_pool == "prefork"
        return {
            "pool": self.child_pool,
            "concurrency": self.concurrency if prefork else self.threads,
            "queues": list(self.queues),
            "children": sorted(self.children),
            "prefetch": self.prefetch,
            "max_tasks_per_child": self.max_tasks_per_child,
        }

    def _recycle(self) -> None:
        """Replace every child (each once its running task ends) so the new ones start
        with the supervisor's current queues and task settings."""
        for child in list(self.children.values()):
            _kill(child.pid, WARM_STOP)

    def add_queue(self, queue: str) -> bool:
        if queue in self.queues:
            return False
        self.queues.append(queue)
        self._recycle()
        return True

    def cancel_queue(self, queue: str) -> bool:
        if self.queues == [queue]:
            return False
        self.queues.remove(queue)
        self._recycle()
        return True

    def resize(self, change: int) -> str | None:
        if self.child_pool != "prefork":
            return f"the {self.child_pool} pool has a fixed size: restart it with another -c"
        if self.stopping:
            return "the worker is shutting down"
        size = self.concurrency + change
        if size < 1:
            return f"cannot shrink the pool of {self.concurrency} by {-change}: one must stay"
        old, self.concurrency = self.concurrency, size
        for index in range(old, size):
            self._spawn(index)
        for child in list(self.children.values()):
            if child.index >= size:
                _kill(child.pid, WARM_STOP)
        logger.warning("pool resized from %d to %d child processes", old, size)
        return None

    def set_time_limit(self, task_name: str, soft: float | None, hard: float | None) -> None:
        task = self.app.tasks[task_name]
        task.soft_time_limit, task.time_limit = soft, hard
        self._recycle()

    def request_shutdown(self) -> None:
        self._signals.append(signal.SIGTERM)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _enlarge(fd: int) -> bool:
    """Make the pipe of ``fd`` hold ``PIPE_SIZE`` bytes; whether it could (Linux only)."""
    setting = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setting is None:
        return False
    try:
        fcntl.fcntl(fd, setting, PIPE_SIZE)
    except OSError:  # above /proc/sys/fs/pipe-max-size, or the user's pipe quota spent
        return False
    return True
