"""The scheduler: publishes each due run of each entry once, however many schedulers run.

Due times come from the schedule and the entry's ``since`` alone, so every scheduler
computes the same ones. Before sending a run, a scheduler claims
``beat:<entry>:<due time, UTC ISO>`` in the coordinator (``put_if_absent``: cluster-wide,
kept longer than the schedule's period) and sends with that key as the idempotency key;
a scheduler that finds the claim taken moves on. Between runs it sleeps until the next
due time, looking at the store's version at most every ``poll_interval`` seconds, so an
edit made anywhere takes effect without a restart.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from ..exceptions import BrokerError, ImproperlyConfigured
from ..keys import beat_claim_key
from ..outage import Outage
from ..redaction import redact_url
from .entries import Entry, code_entries
from .schedules import BEGINNING, Schedule, crontab, get_zone
from .store import ScheduleStore, SyncReport, default_store

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..result import AnyResult

__all__ = ["Scheduler", "due_key", "run_now"]

logger = logging.getLogger("conveyor.beat")

SENDING_CLAIM = 30.0
"""Seconds a claim lasts while its run is being sent; then it is made as long as the run's
own claim. A scheduler that dies mid-send blocks the run for at most this long."""
_LOOKBACK = (timedelta(minutes=1), timedelta(hours=1), timedelta(days=1), timedelta(days=32))
"""Windows searched, narrowest first, for the newest missed run (so a long outage does not
mean walking every missed minute)."""


def due_key(name: str, due: datetime) -> str:
    """The deterministic key of one scheduled run: ``entry:due-time`` in UTC."""
    return f"{name}:{due.astimezone(UTC).isoformat()}"


class Scheduler:
    """Runs an app's periodic tasks from a store: ``Scheduler(app).run()``.

    ``clock`` (epoch seconds) and ``sleep`` are injectable so tests drive time themselves;
    ``tick()`` does one pass and returns the seconds until the next run is due.
    ``grace``: a run noticed more than this many seconds after its due time counts as
    missed and follows the entry's catch-up policy.
    """

    def __init__(
        self,
        app: Conveyor,
        store: ScheduleStore | None = None,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], object] | None = None,
        poll_interval: float = 1.0,
        grace: float = 1.0,
        sync: bool = True,
        max_batch: int = 100,
        retry_delay: float = 1.0,
    ) -> None:
        self.app = app
        self.store = store if store is not None else default_store(app)
        self.clock = clock or app.clock
        self._stopped = threading.Event()
        self.sleep = sleep or self._stopped.wait
        self.poll_interval = poll_interval
        self.grace = timedelta(seconds=grace)
        self.sync = sync
        self.max_batch = max_batch
        self.retry_delay = retry_delay
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lock = threading.Lock()
        """Held while the scheduler touches the store or the broker (see ``BeatThread``)."""
        self._entries: list[Entry] = []
        self._version: int | None = None
        self._fired: dict[str, tuple[Schedule, datetime]] = {}
        self.outage = Outage(logger)
        """A broker or store outage is logged once, not at every pass (see ``Outage``)."""
        try:
            self.timezone  # noqa: B018 - fail now, not on every pass
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from None

    @property
    def timezone(self) -> tzinfo:
        """The app's zone, in which schedules are evaluated."""
        return get_zone(self.app.conf.timezone, "timezone setting")

    @property
    def entries(self) -> list[Entry]:
        return list(self._entries)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # -- lifecycle ----------------------------------------------------------------------

    def setup(self) -> SyncReport | None:
        """Copy the code's entries into the store (when ``sync``) and load them."""
        report = None
        if self.sync:
            report = self.store.sync(code_entries(self.app), self.now())
            for what, names in (
                ("added", report.added),
                ("updated", report.updated),
                ("disabled (no longer in code)", report.disabled),
            ):
                if names:
                    logger.info("beat: %s %s", what, ", ".join(names))
        self.refresh(force=True)
        return report

    def run(self, setup: bool = True) -> None:
        """Sync (unless done already: ``setup=False``), then send due runs until ``stop()``."""
        if setup:
            with self.lock:
                self.setup()
        logger.info(
            "beat: %d of %d entries enabled (store %s, timezone %s)",
            sum(e.enabled for e in self._entries),
            len(self._entries),
            redact_url(self.store.url) if self.store.url else type(self.store).__name__,
            self.app.conf.timezone,
        )
        while not self._stopped.is_set():
            try:
                with self.lock:
                    delay = self.tick()
            except BrokerError as exc:
                self.outage.failed("beat: reading the schedule", exc)
                delay = self.retry_delay
            except Exception:
                logger.exception("beat: reading the schedule store failed")
                delay = self.retry_delay
            else:
                self.outage.ended("beat: reading the schedule")
            self._wait(delay)
        logger.info("beat: stopped")

    def stop(self) -> None:
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def _wait(self, delay: float) -> None:
        """Sleep ``delay`` seconds, or less when the store changes or ``stop()`` is called."""
        deadline = self.clock() + delay
        while not self._stopped.is_set():
            remaining = deadline - self.clock()
            if remaining <= 0:
                return
            self.sleep(min(remaining, self.poll_interval))
            if self._stopped.is_set():
                return
            try:
                with self.lock:
                    if self.refresh():
                        return
            except BrokerError as exc:
                self.outage.failed("beat: reading the schedule", exc)
            except Exception:
                logger.exception("beat: polling the schedule store failed")
            else:
                self.outage.ended("beat: reading the schedule")

    def refresh(self, force: bool = False) -> bool:
        """Reload the entries when the store's version moved; whether it did."""
        version = self.store.version()
        if not force and version == self._version:
            return False
        self._entries = self.store.list()
        self._version = version
        return True

    # -- one pass -----------------------------------------------------------------------

    def tick(self) -> float:
        """Publish every run that is due now; the seconds until the next one."""
        now = self.now()
        self.refresh()
        wait = math.inf
        sent = True
        for entry in self._entries:
            if not entry.enabled:
                continue
            try:
                wait = min(wait, self._process(entry, now))
            except BrokerError as exc:
                self.outage.failed("beat: sending due runs", exc)
                wait = min(wait, self.retry_delay)
                sent = False
            except Exception:
                logger.exception("beat: entry %r failed; trying again shortly", entry.name)
                wait = min(wait, self.retry_delay)
        if sent:
            self.outage.ended("beat: sending due runs")
        return max(wait, 0.0)

    def _since(self, entry: Entry) -> datetime | None:
        """Where the entry's unfired runs start: the store's view, or what this scheduler
        fired since (a claim lost to another scheduler is not written to the store)."""
        since = entry.since
        fired = self._fired.get(entry.name)
        if fired is not None and fired[0] == entry.schedule:
            since = fired[1] if since is None else max(since, fired[1])
        return None if since is None else since.astimezone(UTC)

    def _next(self, schedule: Schedule, after: datetime) -> datetime | None:
        found = schedule.next_run(after.astimezone(self.timezone))
        return None if found is None else found.astimezone(UTC)

    def _pending(self, schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
        """Due times in (start, end], oldest first, at most ``max_batch + 1``."""
        found: list[datetime] = []
        due = self._next(schedule, start)
        while due is not None and due <= end and len(found) <= self.max_batch:
            found.append(due)
            due = self._next(schedule, due)
        return found

    def _latest(self, schedule: Schedule, start: datetime, end: datetime) -> datetime | None:
        """The newest due time in (start, end]."""
        for window in (*_LOOKBACK, None):
            low = start if window is None else max(start, end - window)
            latest = None
            due = self._next(schedule, low)
            while due is not None and due <= end:
                latest, due = due, self._next(schedule, due)
            if latest is not None or low == start:
                return latest
        return None  # pragma: no cover - the last window always returns

    def _skip_past_deadline(self, entry: Entry, start: datetime, now: datetime) -> datetime:
        """Drop a crontab's runs missed by more than ``beat_cron_starting_deadline`` seconds
        (Celery's setting; runs late by less than ``grace`` always go); where runs now start."""
        deadline = self.app.conf.beat_cron_starting_deadline
        if deadline is None or not isinstance(entry.schedule, crontab):
            return start
        oldest = now - max(timedelta(seconds=deadline), self.grace)
        first = self._next(entry.schedule, start)
        if first is None or first >= oldest:
            return start
        until = oldest - timedelta(microseconds=1)
        logger.info(
            "beat: %s skipped runs due before %s (beat_cron_starting_deadline is %gs)",
            entry.name,
            oldest.astimezone(self.timezone).isoformat(),
            deadline,
        )
        self.store.skip_to(entry.name, until)
        self._fired[entry.name] = (entry.schedule, until)
        return until

    def _process(self, entry: Entry, now: datetime) -> float:
        since = self._since(entry)
        if since is None and entry.schedule.origin(now) is not None:
            # A store that left `since` empty: count this entry's runs from now on.
            self.store.skip_to(entry.name, now)
            self._fired[entry.name] = (entry.schedule, now)
        start = self._skip_past_deadline(entry, self._since(entry) or BEGINNING, now)
        cutoff = now - self.grace
        on_time = self._pending(entry.schedule, max(start, cutoff), now)
        fire = on_time
        if start < cutoff and entry.catch_up == "all":
            fire = self._pending(entry.schedule, start, cutoff) + on_time
        elif start < cutoff:
            missed = self._latest(entry.schedule, start, cutoff)
            if missed is not None and entry.catch_up == "latest" and not on_time:
                logger.info(
                    "beat: %s missed runs; catching up with the one due %s", entry.name, missed
                )
                fire = [missed]
            elif missed is not None:
                logger.info("beat: %s skipped missed runs up to %s", entry.name, missed)
                if not on_time:
                    self.store.skip_to(entry.name, missed)
                    self._fired[entry.name] = (entry.schedule, missed)
        for due in fire[: self.max_batch]:
            if not self._fire(entry, due, now):
                return self.retry_delay
        if len(fire) > self.max_batch:
            return 0.0
        after = max(self._since(entry) or start, now)
        upcoming = self._next(entry.schedule, after)
        if upcoming is None:
            logger.info("beat: %s has no runs left; disabling it", entry.name)
            self.store.disable(entry.name)
            return math.inf
        return (upcoming - now).total_seconds()

    def _fire(self, entry: Entry, due: datetime, now: datetime) -> bool:
        """Claim and send one run; False while another scheduler is still sending it.

        The claim is taken for SENDING_CLAIM seconds and made long only once the run is
        sent, so a scheduler that dies in between leaves a claim that soon expires and
        another scheduler sends the run (the idempotency key it is sent with keeps a run
        the dead one did send from being enqueued twice).
        """
        key = due_key(entry.name, due)
        claim = beat_claim_key(key)
        ttl = self._claim_ttl(entry.schedule, due)
        mine = f"sending:{self.id}"
        holder = self.app.coordinator.put_if_absent(claim, mine, min(ttl, SENDING_CLAIM))
        if holder is not None:
            if holder.startswith("sending:"):
                logger.debug("beat: %s is being sent by %s", key, holder.partition(":")[2])
                return False
            logger.debug("beat: %s was sent by %s", key, holder.partition(":")[2])
            self._fired[entry.name] = (entry.schedule, due)
            return True
        try:
            result = send_entry(self.app, entry, key, due)
        except (TypeError, ValueError, ImproperlyConfigured) as exc:
            # The entry itself is wrong (arguments, options): sending again cannot help.
            logger.error("beat: cannot send %s, run skipped: %s", key, exc)
            self.store.skip_to(entry.name, due)
            self._fired[entry.name] = (entry.schedule, due)
            return True
        except BaseException:
            self.app.coordinator.delete(claim, mine)
            raise
        self.app.coordinator.put_many([(claim, f"sent:{self.id}")], ttl)
        self._fired[entry.name] = (entry.schedule, due)
        self.store.record_run(entry.name, due, now)
        logger.info(
            "beat: sent %s (%s) due %s as %s",
            entry.name,
            entry.task,
            due.astimezone(self.timezone).isoformat(),
            result.id,
        )
        return True

    def _claim_ttl(self, schedule: Schedule, due: datetime) -> float:
        """Longer than the schedule's period and the app's idempotency window."""
        window = float(self.app.conf.idempotency_window)
        period = schedule.period(due.astimezone(self.timezone))
        return max(window, 2 * period) if period is not None else max(window, 86400.0)


def send_entry(app: Conveyor, entry: Entry, key: str, due: datetime) -> AnyResult:
    """Send one run of ``entry`` with ``key`` as its idempotency key."""
    options = dict(entry.options)
    headers = {
        **dict(options.pop("headers", None) or {}),
        "beat_entry": entry.name,
        "beat_due": due.astimezone(UTC).isoformat(),
    }
    return app.send_task(
        entry.task, entry.args, entry.kwargs, idempotency_key=key, headers=headers, **options
    )


def run_now(app: Conveyor, name: str, store: ScheduleStore | None = None) -> AnyResult:
    """Send one run of entry ``name`` now, outside its schedule; KeyError when there is none.

    It is counted and shown as the last run, but leaves the schedule's own runs alone.
    """
    store = store if store is not None else default_store(app)
    entry = store.get(name)
    if entry is None:
        raise KeyError(name)
    at = datetime.fromtimestamp(app.clock(), UTC)
    result = send_entry(app, entry, f"{name}:run-now:{at.isoformat()}", at)
    store.record_run(name, at, at, manual=True)
    return result
