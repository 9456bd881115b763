"""The worker registry: which workers run, what they run and hold, read from the coordinator.

Each worker's supervisor writes one record (JSON) under its name in the coordinator group
``WORKERS_GROUP`` every heartbeat (``timing``: a second, less under a short broker lease),
so reading the whole cluster's state is one call, with no round trip to any worker. A
worker that stops cleanly deletes its record; one that dies stops refreshing it: it reads
as lost after ``LOST_BEATS`` missed heartbeats and is gone once its TTL passes (the broker
lease and those beats: by then every message it held is back in its queue).

=====================  =====================================================================
record field           meaning
=====================  =====================================================================
hostname               the worker's name (``-n``), the key of every inspect reply
pid                    the supervisor's process id
started, heartbeat     unix times: start, and the latest refresh of this record
interval               seconds between refreshes (readers judge "lost" by it)
version                Conveyor's version
pool, concurrency      the pool (prefork, threads, solo) and its size
prefetch               the prefetch multiplier (None: adaptive batches)
max_tasks_per_child    as configured (None: no limit)
queues                 the queues it consumes now
children               the pids of its child processes
processed              tasks whose code ran
failed                 of those, the ones that failed (raised and were not retried, or
                       were killed past their time limit)
total                  processed tasks by name (Celery's ``stats()["total"]``)
load                   the machine's load average (1, 5, 15 minutes)
active                 running tasks: id, name, args, kwargs (previews), time_start,
                       worker_pid, delivery_id, queue, redelivered
reserved               held, not started (nor ended, waiting for an ack): id, delivery_id,
                       queue, redelivered (``inspect().reserved()`` reads the rest from
                       the broker)
registered             the task names it knows
conf                   its settings, as JSON (values that are not JSON shown by repr)
=====================  =====================================================================
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .coordination.base import Coordinator
from .keys import WORKERS_GROUP

__all__ = ["LOST_BEATS", "WorkerEntry", "read_workers", "timing"]

LOST_BEATS = 3
"""Missed heartbeats after which a worker reads as lost."""


def timing(lease: float) -> tuple[float, float]:
    """Seconds between a worker's heartbeats, and how long its record outlives the last one.

    A heartbeat comes at least three times per broker lease, and at most once a second.
    """
    interval = min(1.0, max(lease / 3.0, 0.05))
    return interval, lease + LOST_BEATS * interval


@dataclass(frozen=True, slots=True)
class WorkerEntry:
    """One worker's record, and whether it missed its heartbeats (``lost``)."""

    name: str
    record: dict[str, Any]
    lost: bool

    @property
    def status(self) -> str:
        return "lost" if self.lost else "online"


def read_workers(
    coordinator: Coordinator, now: float, destination: Sequence[str] | None = None
) -> list[WorkerEntry]:
    """Every registered worker (or those ``destination`` names), sorted by name."""
    wanted = None if destination is None else set(destination)
    entries = []
    for name, text in coordinator.members(WORKERS_GROUP).items():
        if wanted is not None and name not in wanted:
            continue
        try:
            record = json.loads(text)
        except ValueError:
            continue
        interval = float(record.get("interval") or 1.0)
        lost = now - float(record.get("heartbeat") or 0.0) > LOST_BEATS * interval
        entries.append(WorkerEntry(name, record, lost))
    return sorted(entries, key=lambda entry: entry.name)
