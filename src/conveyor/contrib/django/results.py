"""``DjangoResultBackend``: task results in the project's database.

Opt in with ``CONVEYOR_RESULT_BACKEND = "django://"``. Task records go to ``TaskResult``
rows (one per task id: the state, result, traceback, worker and timing copied into columns
for the admin and for queries, arguments noted by the worker), everything else (group
records, counters, sets) to ``ResultValue`` rows. Writes are single conditional UPDATEs
(the fence check is in the WHERE clause) with an INSERT when there is no row; the
read-modify-write operations lock their row first with a no-op UPDATE, which also keeps
SQLite from failing a lock upgrade between a read and a write.
"""

from __future__ import annotations

import builtins
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import msgspec
from django.db import IntegrityError, models, transaction
from django.db.models import Case, F, Q, Value, When

from ... import states
from ...backends.base import ResultBackend
from ...records import ResultStore, TaskRecord
from .db import heal
from .models import ResultValue, TaskResult
from .store import to_db

__all__ = ["DjangoResultBackend"]

_TASK_PREFIX = ResultStore.prefix
_CHUNK = 500
_ATTEMPTS = 5
_record_decoder = msgspec.json.Decoder(TaskRecord)

Row = TaskResult | ResultValue


_CALLS_KEPT = 10_000
"""Calls whose outcome was not written here (the process died mid-task, another worker
finished it) are forgotten after this many newer ones."""


class DjangoResultBackend(ResultBackend):
    """Results in database ``using`` (the default one); ``clock`` is for tests."""

    poll_interval = 0.01

    def __init__(self, using: str | None = None, *, clock: Callable[[], float] = time.time):
        self.using = using
        self.url = f"django://{using or 'default'}"
        self._clock = clock
        self._calls: OrderedDict[str, tuple[Any, Any]] = OrderedDict()
        self._calls_lock = threading.Lock()

    # -- the worker notes each call's arguments (see conf.py) --------------------------

    def remember_call(self, task_id: str, args: Any, kwargs: Any) -> None:
        """Arguments to store with the task's records written by this process (from any
        thread: a worker may write an outcome from its background writer), until its
        outcome; the oldest are forgotten past ``_CALLS_KEPT``."""
        with self._calls_lock:
            self._calls[task_id] = (args, kwargs)
            while len(self._calls) > _CALLS_KEPT:
                self._calls.popitem(last=False)

    # -- where a key lives --------------------------------------------------------------

    def _table(self, key: str) -> tuple[type[Row], dict[str, str]]:
        if key.startswith(_TASK_PREFIX):
            return TaskResult, {"task_id": key[len(_TASK_PREFIX) :]}
        return ResultValue, {"key": key}

    def _rows(self, key: str) -> models.QuerySet[Any]:
        model, lookup = self._table(key)
        return model.objects.using(self.using).filter(**lookup)

    def _live(self, now: float) -> Q:
        return Q(expires_at__gt=now)

    def _kept_fence(self, now: float) -> Case:
        """An unfenced write keeps a live row's fence; an expired row's guards nothing."""
        return Case(
            When(self._live(now), then=F("fence")),
            default=Value(None),
            output_field=models.BigIntegerField(),
        )

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        heal(self.using)
        with transaction.atomic(using=self.using):
            yield

    def _create(
        self, key: str, value: bytes, fence: int | None, expires: float, **extra: Any
    ) -> None:
        model, lookup = self._table(key)
        if model is TaskResult:
            extra.setdefault("date_created", _when(self._clock()))
        with transaction.atomic(using=self.using):  # a savepoint: a lost race stays recoverable
            model.objects.using(self.using).create(
                **lookup, value=value, fence=fence, expires_at=expires, **extra
            )

    # -- ResultBackend ------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        heal(self.using)
        found = self._rows(key).filter(self._live(self._clock())).values_list("value").first()
        return None if found is None else bytes(found[0])

    def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        heal(self.using)
        now = self._clock()
        found: dict[str, bytes] = {}
        tasks = [key for key in keys if key.startswith(_TASK_PREFIX)]
        others = [key for key in keys if not key.startswith(_TASK_PREFIX)]
        for start in range(0, len(tasks), _CHUNK):
            ids = [key[len(_TASK_PREFIX) :] for key in tasks[start : start + _CHUNK]]
            rows = TaskResult.objects.using(self.using).filter(self._live(now), task_id__in=ids)
            for task_id, value in rows.values_list("task_id", "value"):
                found[_TASK_PREFIX + task_id] = bytes(value)
        for start in range(0, len(others), _CHUNK):
            chunk = others[start : start + _CHUNK]
            values = ResultValue.objects.using(self.using).filter(self._live(now), key__in=chunk)
            found.update((key, bytes(value)) for key, value in values.values_list("key", "value"))
        return [found.get(key) for key in keys]

    def set(self, key: str, value: bytes, ttl: float, fence: int | None = None) -> bool:
        heal(self.using)
        now = self._clock()
        extra = self._columns(key, value, now)
        for attempt in range(_ATTEMPTS):
            rows = self._rows(key)
            changes: dict[str, Any]
            if fence is None:
                changes = {"fence": self._kept_fence(now)}
            else:
                rows = rows.filter(Q(fence__isnull=True) | ~self._live(now) | Q(fence__lte=fence))
                changes = {"fence": Value(fence)}
            if rows.update(value=value, expires_at=now + ttl, **changes, **extra):
                return True
            if fence is not None and self._rows(key).exists():
                return False  # a newer attempt's record stands
            try:
                self._create(key, value, fence, now + ttl, **extra)
                return True
            except IntegrityError:  # created meanwhile: update it instead
                if attempt == _ATTEMPTS - 1:
                    raise
        return False  # pragma: no cover - the loop returns or raises

    def set_many(self, items: Sequence[tuple[str, bytes]], ttl: float) -> None:
        others = dict(item for item in items if not item[0].startswith(_TASK_PREFIX))
        for key, value in items:
            if key.startswith(_TASK_PREFIX):
                self.set(key, value, ttl)
        if not others:
            return
        now = self._clock()
        keys = list(others)
        with self._atomic():
            fences: dict[str, int | None] = {}
            manager = ResultValue.objects.using(self.using)
            for start in range(0, len(keys), _CHUNK):
                chunk = manager.filter(self._live(now), key__in=keys[start : start + _CHUNK])
                fences.update(chunk.values_list("key", "fence"))
                manager.filter(key__in=keys[start : start + _CHUNK]).delete()
            manager.bulk_create(
                [
                    ResultValue(key=k, value=v, fence=fences.get(k), expires_at=now + ttl)
                    for k, v in others.items()
                ],
                batch_size=_CHUNK,
            )

    def delete(self, keys: Sequence[str]) -> int:
        if not keys:
            return 0
        now = self._clock()
        existed = 0
        with self._atomic():
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                ids = [k[len(_TASK_PREFIX) :] for k in chunk if k.startswith(_TASK_PREFIX)]
                for rows in (
                    TaskResult.objects.using(self.using).filter(task_id__in=ids),
                    ResultValue.objects.using(self.using).filter(key__in=chunk),
                ):
                    existed += rows.filter(self._live(now)).count()
                    rows.delete()
        return existed

    def incr(self, key: str, amount: int, ttl: float) -> int:
        def change(current: bytes | None) -> tuple[bytes, int]:
            total = int(current or b"0") + amount
            return str(total).encode(), total

        return self._modify(key, ttl, change)

    def add_to_set(self, key: str, member: str, ttl: float) -> int:
        def change(current: bytes | None) -> tuple[bytes, int]:
            members = msgspec.json.decode(current) if current else []
            if member not in members:
                members.append(member)
            return msgspec.json.encode(members), len(members)

        return self._modify(key, ttl, change)

    def set_members(self, key: str) -> builtins.set[str]:
        raw = self.get(key)
        return builtins.set(msgspec.json.decode(raw, type=list[str])) if raw else builtins.set()

    def expire(self, key: str, ttl: float) -> bool:
        heal(self.using)
        now = self._clock()
        return self._rows(key).filter(self._live(now)).update(expires_at=now + ttl) > 0

    def cleanup(self) -> int:
        heal(self.using)
        now = self._clock()
        deleted = 0
        for model in (TaskResult, ResultValue):
            deleted += model.objects.using(self.using).filter(expires_at__lte=now).delete()[0]
        return deleted

    # -- helpers ------------------------------------------------------------------------

    def _modify(
        self, key: str, ttl: float, change: Callable[[bytes | None], tuple[bytes, int]]
    ) -> int:
        """Read, change and write one value under its row lock (the set TTL is refreshed)."""
        for attempt in range(_ATTEMPTS):
            now = self._clock()
            try:
                with self._atomic():
                    rows = self._rows(key)
                    rows.update(fence=F("fence"))  # lock the row before reading it
                    found = rows.values_list("value", "expires_at").first()
                    current = bytes(found[0]) if found and found[1] > now else None
                    value, answer = change(current)
                    if found is None:
                        self._create(key, value, None, now + ttl, **self._columns(key, value, now))
                    else:
                        rows.update(value=value, expires_at=now + ttl, fence=self._kept_fence(now))
                    return answer
            except IntegrityError:
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _columns(self, key: str, value: bytes, now: float) -> dict[str, Any]:
        """For a task record: its fields as columns, the timing, and the noted arguments."""
        if not key.startswith(_TASK_PREFIX):
            return {}
        try:
            record = _record_decoder.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return {}
        task_id = key[len(_TASK_PREFIX) :]
        columns: dict[str, Any] = {
            "state": record.status,
            "task_name": record.task or "",
            "result": _json_safe(record.result),
            "traceback": (record.traceback or "").replace("\x00", "\ufffd"),
            "worker": record.worker or "",
            "retries": record.retries,
            "date_done": _when(record.date_done) if record.date_done else None,
        }
        if record.status == states.STARTED:
            columns["date_started"] = _when(now)
        elif record.status in states.READY_STATES:
            done = record.date_done or now
            started = self._rows(key).values_list("date_started").first()
            if started is not None and started[0] is not None:
                began = started[0] if started[0].tzinfo else started[0].replace(tzinfo=UTC)
                columns["runtime"] = max(0.0, done - began.timestamp())
            elif record.runtime is not None:  # a quick task: its STARTED was never written
                columns["date_started"] = _when(done - record.runtime)
            if record.runtime is not None:
                columns["runtime"] = record.runtime
        with self._calls_lock:
            call = self._calls.get(task_id)
            if call is not None and (
                record.status in states.READY_STATES or record.status == states.RETRY
            ):
                del self._calls[task_id]
        if call is not None:
            columns["args"], columns["kwargs"] = map(_json_safe, call)
        return columns


def _when(timestamp: float) -> datetime | None:
    return to_db(datetime.fromtimestamp(timestamp, UTC))


def _json_safe(value: Any) -> Any:
    """PostgreSQL's JSON and text columns refuse NUL characters: the copy shown in the admin
    gets U+FFFD instead (the record itself, in ``value``, is kept whole)."""
    encoded = msgspec.json.encode(value)
    if b"\\u0000" not in encoded:
        return value
    return msgspec.json.decode(encoded.replace(b"\\u0000", b"\\ufffd"))
