"""The event loop that runs ``async def`` tasks: one loop thread per worker process.

Every pool (each prefork child, the threads and solo pools, ``--pool asyncio``) runs its
async tasks here, so thousands of coroutines interleave on one loop while the consumer
thread stays free to reserve more and to run ``def`` tasks. The consumer hands a task over
(``AsyncRunner.submit``) and takes its ``Outcome`` back later, on its own thread, to store
and acknowledge it (``Executor.collect``): only the consumer's thread touches its outbox
and runs workflow hooks.

Limits act by cancelling the task's coroutine: at the soft limit SoftTimeLimitExceeded is
raised where the coroutine waits (or, when it waits on something shared with other code,
such as ``asyncio.to_thread``, it is cancelled and the outcome is SoftTimeLimitExceeded);
at the hard limit and on revoke with ``terminate=True`` it is cancelled. The supervisor is
told a hard deadline ``HARD_GRACE`` later than the task's, so a coroutine that ignores the
cancellation, or a loop blocked by a synchronous call, gets its process replaced.

A watchdog thread logs a coroutine that keeps the loop from running others for more than
``BLOCKED_AFTER`` seconds, and checks the revocations of the running tasks.

``--pool asyncio`` runs the loop inline instead: on the consumer's own thread, whenever the
consumer waits (for a slot, for quick coroutines to end, for messages while coroutines are in
flight). A message then reaches its coroutine, and the outcome its store, with no hand-off
between threads; the price is that the loop does not run while the consumer calls the broker
or runs a ``def`` task.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import threading
import time
from asyncio import events
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .. import states
from ..coordination.base import Coordinator
from ..exceptions import SoftTimeLimitExceeded, Terminated, TimeLimitExceeded
from ..keys import revoked_key
from ..request import Request
from ..stamps import stamp_keys
from ..task import AnyTask
from .trace import Outcome, atrace

__all__ = [
    "BLOCKED_AFTER",
    "HARD_GRACE",
    "AsyncRunner",
    "EagerLoop",
    "Job",
    "new_event_loop",
    "run_to_end",
    "runner_for",
]

logger = logging.getLogger("conveyor.worker")

T = TypeVar("T")

HARD_GRACE = 3.0
"""Seconds a coroutine cancelled at its hard time limit has to end before its process is
replaced (the supervisor's deadline for it is this much later than the task's)."""
BLOCKED_AFTER = 1.0
"""Seconds without the loop running anything else before the coroutine holding it is logged."""
TICK = 0.1
"""How often the loop notes that it is alive, for the watchdog."""
WATCH_EVERY = 0.25
"""How often the watchdog looks at the loop."""
REVOKE_CHECK_EVERY = 0.5
"""How often the watchdog reads the revocations of the running tasks."""


@dataclass(slots=True, eq=False)
class Job:
    """One async task handed to the loop, and where its outcome goes."""

    task: AnyTask
    context: Request
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    soft_limit: float | None
    time_limit: float | None
    done: Callable[[Job, Outcome, float], None]
    """Called on the loop thread with the outcome and the seconds it ran."""
    owner: Any = None
    """What the submitter needs back with the outcome."""
    cause: BaseException | None = None
    """Why the coroutine was cancelled: a time limit or a terminate."""
    handle: asyncio.Task[None] | None = None
    timers: list[asyncio.TimerHandle] = field(default_factory=list)

    @property
    def task_id(self) -> str:
        return self.context.id or ""

    def interrupted(self, cancelled: BaseException) -> BaseException:
        return self.cause or cancelled


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when it is installed, else asyncio's."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


_Step = tuple[Callable[..., object], tuple[Any, ...], Any]
"""A callback the loop was asked to schedule: the callable, its arguments, its context."""


class EagerLoop(asyncio.SelectorEventLoop):
    """The inline runner's loop (``--pool asyncio``): a task made with
    ``create_eager_task`` runs its first step at once, on the caller's thread with this
    loop as its running loop, as Python 3.12's eager tasks do. The consumer runs the loop
    only while it waits, so a coroutine that ends without waiting (a cache read, a no-op)
    would otherwise cost a run of the loop (~10-20 us) before its outcome can be stored.

    The task is an ordinary ``asyncio.Task`` (``current_task()`` names it, cancellation and
    timeouts work as usual): its first step, which the task asks the loop to schedule as
    it is made, is taken from ``call_soon`` and run here instead."""

    def __init__(self) -> None:
        self._taking: list[_Step] | None = None
        self._stepping = False
        super().__init__()

    def is_running(self) -> bool:
        return self._stepping or super().is_running()

    def call_soon(  # type: ignore[override]
        self, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.Handle:
        taking = self._taking
        if taking is None:
            return super().call_soon(callback, *args, context=context)
        self._taking = None
        taking.append((callback, args, context))
        return asyncio.Handle(callback, args, self, context)

    def create_eager_task(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        taken: list[_Step] = []
        self._taking = taken
        try:
            task = self.create_task(coro, name=name)
        finally:
            self._taking = None
        if not taken:
            return task
        step, args, context = taken[0]
        if events._get_running_loop() is not None:  # inside a running loop: not here
            super().call_soon(step, *args, context=context)
            return task
        events._set_running_loop(self)
        self._stepping = True
        try:
            if context is None:
                step(*args)
            else:
                context.run(step, *args)
        finally:
            self._stepping = False
            events._set_running_loop(None)
        return task


class AsyncRunner:
    """A loop thread (or, ``inline``, the consumer's thread), at most ``limit`` tasks in
    flight on it, and its watchdog."""

    def __init__(
        self, limit: int, coordinator: Coordinator | None = None, inline: bool = False
    ) -> None:
        self.limit = max(1, limit)
        self.inline = inline
        """The loop runs on the thread that made the runner, while it waits (``_drive``)."""
        self.coordinator = coordinator
        main = threading.current_thread() is threading.main_thread()
        # uvloop's loop sets up its signal handling (a socket pair) each time it starts on a
        # main thread: an inline loop, started at every wait, would pay that each time
        self.loop = EagerLoop() if inline and main else new_event_loop()
        self.jobs: dict[Job, None] = {}
        """The jobs running on the loop (changed on the loop thread only)."""
        self._slots = threading.Condition()
        self._busy = 0
        self._incoming: list[Job] = []
        self._incoming_lock = threading.Lock()
        self._tick = time.monotonic()
        self._closed = threading.Event()
        self._driving = False
        """Inline: the consumer runs the loop until a task ends (``_drive``)."""
        if inline:  # not the thread's current loop: a def task's own asyncio stays its own
            self.loop.call_soon(self._beat)
        else:
            thread = threading.Thread(target=self._run_loop, name="conveyor-asyncio", daemon=True)
            thread.start()
        threading.Thread(target=self._watch, name="conveyor-asyncio-watch", daemon=True).start()

    # -- from the consumer's thread -----------------------------------------------------

    def acquire(self, waiting: Callable[[], None]) -> None:
        """Take a slot. While all are taken, call ``waiting`` (outside the lock: it starts
        the tasks handed over and stores the ended ones), then wait for one to end."""
        while True:
            with self._slots:
                if self._busy < self.limit:
                    self._busy += 1
                    return
            waiting()
            if self.inline:
                if self._busy >= self.limit:
                    self._drive(0.05)
                continue
            with self._slots:
                if self._busy >= self.limit:
                    self._slots.wait(0.05)

    def give_back_slot(self) -> None:
        """A slot taken with ``acquire`` whose job was never submitted."""
        with self._slots:
            self._busy -= 1
            self._slots.notify_all()

    def submit(self, jobs: list[Job]) -> None:
        """Start ``jobs`` on the loop (their slots taken with ``acquire``). Jobs handed over
        together wake the loop once: a wake-up costs more than starting a task. Inline, the
        loop is this thread's: their tasks are made now, and their first steps run when the
        consumer next runs the loop (a pass of the loop less than a callback making them)."""
        if self.inline:
            for job in jobs:
                self._start(job)
            return
        with self._incoming_lock:
            wake = not self._incoming
            self._incoming += jobs
        if wake:
            self.loop.call_soon_threadsafe(self._start_incoming)

    def wait_slot_freed(self, timeout: float, until: Callable[[], bool] = lambda: False) -> None:
        """Sleep until a task ends (a slot is freed) or ``timeout`` passes; not at all when
        ``until()`` holds already. ``until`` is read under the lock a task's end notifies
        with, so an end between the caller's last look and this wait is not missed."""
        if self.inline:
            if not until():
                self._drive(timeout)
            return
        with self._slots:
            if not until():
                self._slots.wait(timeout)

    def run_ready(self) -> None:
        """Inline: run what is ready now (the first steps of the tasks just submitted, the
        callbacks of waits that ended), then return."""
        loop = self.loop
        loop.call_soon(loop.call_soon, loop.stop)  # after the steps the first pass schedules
        loop.run_forever()

    def _drive(self, timeout: float) -> None:
        """Inline: run the loop on this thread until a task ends or ``timeout`` passes."""
        loop = self.loop
        timer = loop.call_later(timeout, loop.stop)
        self._driving = True
        self._tick = time.monotonic()
        try:
            loop.run_forever()
        finally:
            self._driving = False
            timer.cancel()
            self._tick = time.monotonic()

    def close(self) -> None:
        self._closed.set()
        self.loop.call_soon_threadsafe(self.loop.stop)

    # -- on the loop --------------------------------------------------------------------

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._beat)
        self.loop.run_forever()

    def _beat(self) -> None:
        self._tick = time.monotonic()
        self.loop.call_later(TICK, self._beat)

    def _start_incoming(self) -> None:
        with self._incoming_lock:
            jobs, self._incoming = self._incoming, []
        for job in jobs:
            self._start(job)

    def _start(self, job: Job) -> None:
        """Start ``job``'s task; inline, its first step runs now (``EagerLoop``): a
        coroutine that does not wait ends here, without a pass of the loop. Its timers
        come first, so the coroutine's end cancels them."""
        name = f"{job.task.name}[{job.task_id}]"
        loop = self.loop
        self.jobs[job] = None
        if job.soft_limit:
            job.timers.append(loop.call_later(job.soft_limit, self._soft_limit, job))
        if job.time_limit:
            job.timers.append(loop.call_later(job.time_limit, self._hard_limit, job))
        if isinstance(loop, EagerLoop):
            self._tick = time.monotonic()  # the watchdog times the step from here
            job.handle = loop.create_eager_task(self._run(job), name)
        else:
            job.handle = loop.create_task(self._run(job), name=name)

    async def _run(self, job: Job) -> None:
        started = time.monotonic()
        try:
            outcome = await atrace(job.task, job.context, job.args, job.kwargs, job.interrupted)
        except BaseException as exc:  # cancelled without a cause (the loop stops), or worse
            outcome = Outcome(states.FAILURE, exc=exc)
        for timer in job.timers:
            timer.cancel()
        self.jobs.pop(job, None)
        try:
            job.done(job, outcome, time.monotonic() - started)
        finally:  # after ``done``: whoever wakes up finds the outcome
            with self._slots:
                self._busy -= 1
                self._slots.notify_all()
            if self._driving:
                self.loop.stop()

    def _soft_limit(self, job: Job) -> None:
        """Raise SoftTimeLimitExceeded where the coroutine waits, when it waits on a future
        of its own (a sleep, a socket read); else cancel it, to the same outcome."""
        handle = job.handle
        if handle is None or handle.done():
            return
        error = SoftTimeLimitExceeded("soft time limit exceeded")
        waiter = getattr(handle, "_fut_waiter", None)
        if (
            isinstance(waiter, asyncio.Future)
            and not isinstance(waiter, asyncio.Task)
            and not waiter.done()
            and len(getattr(waiter, "_callbacks", None) or ()) == 1  # only the task waits
        ):
            waiter.set_exception(error)
            return
        job.cause = error
        handle.cancel()

    def _hard_limit(self, job: Job) -> None:
        self._cancel(
            job, TimeLimitExceeded("hard time limit exceeded: the coroutine was cancelled")
        )

    def _cancel(self, job: Job, cause: BaseException) -> None:
        if job.handle is not None and not job.handle.done():
            logger.warning("%s[%s] cancelled: %s", job.task.name, job.task_id, cause)
            job.cause = cause
            job.handle.cancel()

    # -- the watchdog -------------------------------------------------------------------

    def _watch(self) -> None:
        reported = 0.0
        next_revoke_check = time.monotonic()
        while not self._closed.wait(WATCH_EVERY):
            now = time.monotonic()
            tick = self._tick
            if self.inline and not self._driving and not self.jobs:
                tick = now  # nothing in flight: the consumer waits in the broker
            if now - tick > BLOCKED_AFTER and tick != reported:
                reported = tick
                self._report_blocked(now - tick)
            if self.coordinator is not None and now >= next_revoke_check:
                next_revoke_check = now + REVOKE_CHECK_EVERY
                self._check_revocations()

    def _report_blocked(self, seconds: float) -> None:
        running = asyncio.current_task(self.loop)
        if running is not None:
            name = running.get_name()
        elif self.inline and not self._driving:
            name = "a def task or a broker call on its thread"
        else:
            name = "a callback"
        logger.warning(
            "the event loop of pid %d is blocked: %s has not yielded for %.1fs; async tasks "
            "that share the loop wait (run blocking calls with await asyncio.to_thread(...))",
            os.getpid(),
            name,
            seconds,
        )

    def _check_revocations(self) -> None:
        """Cancel the running tasks revoked with ``terminate=True``."""
        jobs = list(self.jobs)
        if not jobs or self.coordinator is None:
            return
        keys: list[str] = []
        counts: list[int] = []
        for job in jobs:  # its id's revocation, then its stamps' (revoke_by_stamped_headers)
            message = job.context.message
            headers = message.headers if message is not None else None
            own = [revoked_key(job.task_id), *(stamp_keys(headers) if headers else ())]
            keys += own
            counts.append(len(own))
        try:
            flags = iter(self.coordinator.get_many(keys))
        except Exception as exc:
            logger.debug("reading revocations for async tasks failed: %s", exc)
            return
        for job, count in zip(jobs, counts, strict=True):
            found = [next(flags) for _ in range(count)]
            if any(_terminates(flag) for flag in found):
                cause = Terminated("revoked with terminate=True")
                self.loop.call_soon_threadsafe(self._cancel, job, cause)


def _terminates(flag: str | None) -> bool:
    """Whether a stored revocation asks for the running task to be stopped."""
    if flag is None:
        return False
    try:
        return bool(json.loads(flag).get("terminate"))
    except (ValueError, AttributeError):
        return False


_runners: dict[tuple[int, int], AsyncRunner] = {}
_runners_lock = threading.Lock()


def runner_for(limit: int, coordinator: Coordinator, inline: bool = False) -> AsyncRunner:
    """This process's runner for an app's coordinator, started on first use; a forked
    child starts its own (the parent's loop thread did not survive the fork). An inline
    runner is the calling thread's own."""
    if inline:
        return AsyncRunner(limit, coordinator, inline=True)
    key = (os.getpid(), id(coordinator))
    runner = _runners.get(key)
    if runner is None:
        with _runners_lock:
            runner = _runners.get(key)
            if runner is None:
                for stale in [k for k in _runners if k[0] != key[0]]:
                    del _runners[stale]
                runner = _runners[key] = AsyncRunner(limit, coordinator)
    return runner


def run_to_end(make: Callable[[], Coroutine[Any, Any, T]], name: str) -> T:
    """Run a coroutine to its end here, with ``asyncio.run``: how ``apply()`` and eager
    mode run an async task. Refused inside a running loop, which it would have to block."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    raise RuntimeError(
        f"{name}: an async def task cannot be applied eagerly inside a running event loop "
        "(apply() and task_always_eager would block it); await its coroutine instead "
        "(await task(...) runs it here), or call apply() from a thread: "
        "await asyncio.to_thread(task.apply, args)"
    )
