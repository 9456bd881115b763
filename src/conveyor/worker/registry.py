"""A worker's side of the registry and of control: its record written on the heartbeat,
its mailbox read at the same time, and the commands found there run.

The supervisor already knows what its children hold and run (they tell it over their pipe
what they reserved, started and finished), so a child pays nothing more per task than a
few bytes on a notice it sends anyway: the task's name and a short preview of its
arguments. Once per heartbeat the supervisor writes the whole record in one call and takes
its mailbox in another; commands run in the supervisor, between two passes of its loop.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..app import Conveyor
from ..control import COMMANDS, REPLY_TTL
from ..exceptions import BrokerError
from ..keys import WORKERS_GROUP, mailbox_key, reply_key
from ..message import Message, broker_key, preview, task_id_of
from ..outage import Outage
from ..redaction import HIDDEN, is_secret_option, redact_url
from ..registry import timing
from ..request import Request
from ..task import AnyTask
from ..version import installed_version
from .leases import Held, LeaseKeeper

__all__ = [
    "Registration",
    "Steerable",
    "Tally",
    "WorkerState",
    "describe_in",
    "describing",
]

logger = logging.getLogger("conveyor.worker")


@dataclass
class Tally:
    """Tasks whose code ran, in all and by name, and how many of them failed."""

    processed: int = 0
    failed: int = 0
    total: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, failed: bool = False) -> None:
        self.processed += 1
        self.failed += failed
        if name:
            self.total[name] = self.total.get(name, 0) + 1


class Steerable(Protocol):
    """What a pool lets control commands change."""

    queues: list[str]

    def add_queue(self, queue: str) -> bool: ...
    def cancel_queue(self, queue: str) -> bool: ...
    def resize(self, change: int) -> str | None:
        """Grow (positive) or shrink the pool; an error message when it cannot."""

    def set_time_limit(self, task_name: str, soft: float | None, hard: float | None) -> None: ...
    def request_shutdown(self) -> None: ...


@dataclass
class WorkerState:
    """What a custom control command's handler gets first: ``handler(state, **arguments)``."""

    app: Conveyor
    hostname: str
    pool: Steerable


class Registration:
    """One worker's record in the registry and its mailbox, both kept on its heartbeat."""

    def __init__(
        self,
        app: Conveyor,
        hostname: str,
        pool: Steerable,
        describe: Callable[[], dict[str, Any]],
        held: Callable[[], Iterable[Held]],
        tally: Tally,
        clock: Callable[[], float] = time.time,
        owners_are_children: bool = True,
    ) -> None:
        self.app = app
        self.hostname = hostname
        self.pool = pool
        self.describe = describe
        self.held = held
        self.tally = tally
        self.clock = clock
        self.owners_are_children = owners_are_children
        """Whether a held message's owner is the pid of the child running it (prefork), or
        a thread of this process (the in-process pools)."""
        self.interval, self.ttl = timing(float(app.conf.broker_lease))
        self.started = clock()
        self.next_beat = 0.0
        keeper = getattr(pool, "keeper", None)
        self.outage: Outage = getattr(keeper, "outage", None) or Outage(logger)
        """The pool's outage (``LeaseKeeper.outage``): one report for all its loops."""
        self._static = {
            "hostname": hostname,
            "pid": os.getpid(),
            "started": self.started,
            "interval": self.interval,
            "registered": sorted(app.tasks),
            "conf": _shown_settings(app.conf.as_dict()),
        }

    def beat(self) -> None:
        """Run waiting commands and refresh the record, once per interval (call it often).

        Replies go out after the record is written, so whoever reads a reply then reads
        the registry sees what the command changed.
        """
        now = time.monotonic()
        if now < self.next_beat:
            return
        self.next_beat = now + self.interval
        coordinator = self.app.coordinator
        try:
            commands = coordinator.take(mailbox_key(self.hostname))
            replies = [reply for reply in map(self.run, commands) if reply is not None]
            record = json.dumps(self.record())
            coordinator.put_members(WORKERS_GROUP, [(self.hostname, record)], self.ttl)
            for key, answer in replies:
                coordinator.push(key, [answer], REPLY_TTL)
        except BrokerError as exc:
            self.outage.failed("worker registry", exc)
            return
        except Exception:
            logger.exception("writing the worker registry failed")
            return
        self.outage.ended("worker registry")

    def leave(self) -> None:
        """A clean stop: the record goes at once."""
        try:
            self.app.coordinator.delete_member(WORKERS_GROUP, self.hostname)
        except Exception as exc:
            logger.warning("could not remove this worker from the registry: %s", exc)

    def record(self) -> dict[str, Any]:
        active, reserved = [], []
        for held in self.held():
            delivery = held.delivery
            base = {
                "id": held.task_id or task_id_of(delivery.id),
                "delivery_id": delivery.id,
                "queue": delivery.queue,
                "redelivered": delivery.delivery_count > 1,
            }
            if held.started:
                base.update(
                    name=held.name,
                    args=held.args,
                    kwargs=held.kwargs,
                    time_start=held.since,
                    worker_pid=held.owner if self.owners_are_children else os.getpid(),
                )
                active.append(base)
            elif not held.ran:  # not one whose task ended, held until its ack goes out
                reserved.append(base)
        tally = self.tally
        return {
            **self._static,
            "version": installed_version("unknown"),  # read at the first heartbeat, after the fork
            **self.describe(),
            "heartbeat": self.clock(),
            "processed": tally.processed,
            "failed": tally.failed,
            "total": dict(tally.total),
            "load": list(os.getloadavg()) if hasattr(os, "getloadavg") else [],
            "active": active,
            "reserved": reserved,
        }

    # -- commands -------------------------------------------------------------------------

    def run(self, text: str) -> tuple[str, str] | None:
        """Run one command from the mailbox; its reply (key and JSON) when one is asked."""
        try:
            request = json.loads(text)
            name = str(request["command"])
            arguments = dict(request.get("arguments") or {})
        except (ValueError, KeyError, TypeError):
            logger.warning("ignored a malformed control command: %.200s", text)
            return None
        if name == "shutdown" and float(request.get("sent") or 0.0) < self.started:
            logger.info("ignored a shutdown sent before this worker started")
            return None
        logger.info("control command %s %s", name, arguments or "")
        try:
            reply = self.execute(name, arguments)
        except Exception as exc:
            logger.exception("control command %s failed", name)
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        if not (request.get("reply") and request.get("id")):
            return None
        answer = json.dumps({"worker": self.hostname, "reply": reply}, default=repr)
        return reply_key(str(request["id"])), answer

    def execute(self, name: str, arguments: dict[str, Any]) -> Any:
        builtin = getattr(self, f"_do_{name}", None)
        if builtin is not None:
            return builtin(**arguments)
        command = COMMANDS.get(name)
        if command is None:
            return {"error": f"unknown command {name!r}"}
        return command.handler(WorkerState(self.app, self.hostname, self.pool), **arguments)

    def _do_ping(self) -> Any:
        return {"ok": "pong"}

    def _do_add_consumer(self, queue: str, **_: Any) -> Any:
        if not self.pool.add_queue(queue):
            return {"ok": f"already consuming from {queue!r}"}
        return {"ok": f"add consumer {queue}"}

    def _do_cancel_consumer(self, queue: str, **_: Any) -> Any:
        if queue not in self.pool.queues:
            return {"error": f"not consuming from {queue!r}"}
        if not self.pool.cancel_queue(queue):
            return {"error": f"{queue!r} is the only queue left: stop the worker instead"}
        return {"ok": f"no longer consuming from {queue}"}

    def _do_pool_grow(self, n: int = 1) -> Any:
        error = self.pool.resize(int(n))
        return {"error": error} if error else {"ok": f"pool will grow by {n}"}

    def _do_pool_shrink(self, n: int = 1) -> Any:
        error = self.pool.resize(-int(n))
        return {"error": error} if error else {"ok": f"pool will shrink by {n}"}

    def _do_autoscale(self, max: int, min: int | None = None) -> Any:
        return {
            "error": f"this pool does not autoscale (max={max}, min={min}): "
            "use pool_grow and pool_shrink"
        }

    def _do_time_limit(
        self, task_name: str, soft: float | None = None, hard: float | None = None
    ) -> Any:
        if task_name not in self.app.tasks:
            return {"error": f"unknown task {task_name!r}"}
        self.pool.set_time_limit(task_name, soft, hard)
        return {"ok": "time limits set successfully"}

    def _do_revoke_by_stamped_headers(self, headers: str, terminate: bool = False, **_: Any) -> Any:
        """The revocation is in the coordinator already (every worker checks it before a
        task starts); running tasks see it through ``is_aborted()``, and with ``terminate``
        the supervisor of a prefork worker stops those carrying the stamps."""
        if terminate:
            return {"ok": f"headers {headers} revoked; running tasks carrying them terminated"}
        return {"ok": f"headers {headers} flagged as revoked, but not terminated"}

    def _do_shutdown(self, **_: Any) -> Any:
        self.pool.request_shutdown()
        return {"ok": "shutting down"}


def _shown_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as JSON values (others by repr), fit to be shown: URLs without their
    credentials, and settings named like secrets (passwords, keys, tokens) hidden."""
    shown: dict[str, Any] = {}
    for name, value in sorted(settings.items()):
        if is_secret_option(name) and value:
            shown[name] = HIDDEN
        elif isinstance(value, str) and "://" in value:
            shown[name] = redact_url(value)
        else:
            shown[name] = json.loads(json.dumps(value, default=repr))
    return shown


def describing(sink: Callable[[Message], None]) -> Callable[[AnyTask, Request], None]:
    """An ``app.on_task_start`` hook that hands ``sink`` the message of each task that
    starts (what the registry's ``active`` list shows of it)."""

    def hook(task: AnyTask, context: Request) -> None:
        if context.message is not None:
            sink(context.message)

    return hook


def describe_in(keeper: LeaseKeeper) -> Callable[[Message], None]:
    """A ``describing`` sink that notes a started message's name and previews in ``keeper``."""

    def sink(message: Message) -> None:
        keeper.describe(broker_key(message), message.task, *preview(message))

    return sink
