"""The Redis schedule store: entries in the broker's Redis, for schedulers on many machines.

Keys (under the broker's prefix, ``conveyor:`` by default):

* ``beat:entries``  hash, entry name -> JSON row (definition, enabled, last run, count, since)
* ``beat:version``  integer, bumped with every write in the same MULTI; schedulers poll it
* ``beat:lock``     string, the token of the process inside ``atomic()`` (expires by itself)

Every write goes through ``atomic()``, a lock held with a token, so a read-check-write
(``record_run``, ``sync``) never interleaves with another scheduler's.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

import msgspec

from ..exceptions import BrokerError
from ..redis_connection import RedisLink
from .entries import Entry
from .store import ScheduleStore, decode_entry, encode_definition, first_version

__all__ = ["RedisStore"]

_LOCK_TTL_MS = 10_000
_RELEASE = """if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0"""
"""KEYS[1] the lock key; ARGV[1] this holder's token. Deletes the lock only for its holder."""


class _Row(msgspec.Struct, array_like=True):
    definition: str
    enabled: bool
    last_run_at: datetime | None
    total_run_count: int
    since: datetime | None


class RedisStore(ScheduleStore):
    def __init__(
        self,
        url: str,
        *,
        prefix: str | None = None,
        link: RedisLink | None = None,
        **redis_options: Any,
    ) -> None:
        self._link = link or RedisLink(url, prefix=prefix, **redis_options)
        self.url = url
        base = self._link.prefix
        self._entries, self._version, self._lock_key = (
            f"{base}beat:entries",
            f"{base}beat:version",
            f"{base}beat:lock",
        )
        self._local = threading.local()

    def _call(self, what: str, fn: Any) -> Any:
        return self._link.call(what, fn, 1)

    @staticmethod
    def _decode(name: str, raw: bytes) -> Entry:
        row = msgspec.json.decode(raw, type=_Row)
        return decode_entry(
            name, row.definition, row.enabled, row.last_run_at, row.total_run_count, row.since
        )

    @staticmethod
    def _encode(entry: Entry) -> bytes:
        row = _Row(
            encode_definition(entry).decode(),
            entry.enabled,
            entry.last_run_at,
            entry.total_run_count,
            entry.since,
        )
        return msgspec.json.encode(row)

    def list(self) -> list[Entry]:
        rows = self._call("reading the schedule", lambda: self._link.client.hgetall(self._entries))
        return [self._decode(k.decode(), v) for k, v in sorted(rows.items())]

    def get(self, name: str) -> Entry | None:
        raw = self._call(
            "reading the schedule", lambda: self._link.client.hget(self._entries, name)
        )
        return None if raw is None else self._decode(name, raw)

    def _write(self, name: str, value: bytes | None) -> None:
        def run() -> None:
            pipe = self._link.pipeline(True)
            if value is None:
                pipe.hdel(self._entries, name)
            else:
                pipe.hset(self._entries, name, value)
            pipe.set(self._version, first_version(), nx=True)
            pipe.incr(self._version)
            pipe.execute()

        self._call("writing the schedule", run)

    def save(self, entry: Entry) -> None:
        with self.atomic():
            self._write(entry.name, self._encode(entry))

    def remove(self, name: str) -> bool:
        with self.atomic():
            if self.get(name) is None:
                return False
            self._write(name, None)
            return True

    def record_run(self, name: str, due: datetime, ran_at: datetime, manual: bool = False) -> bool:
        with self.atomic():
            current = self.get(name)
            if current is None or (
                not manual and current.since is not None and current.since >= due
            ):
                return False
            current.last_run_at = ran_at
            current.total_run_count += 1
            if not manual:
                current.since = due
            self._write(name, self._encode(current))
            return True

    def skip_to(self, name: str, until: datetime) -> bool:
        with self.atomic():
            current = self.get(name)
            if current is None or (current.since is not None and current.since >= until):
                return False
            current.since = until
            self._write(name, self._encode(current))
            return True

    def version(self) -> int:
        raw = self._call("reading the schedule", lambda: self._link.client.get(self._version))
        return int(raw or 0)

    def atomic(self) -> AbstractContextManager[None]:
        return self._held()

    @contextmanager
    def _held(self) -> Iterator[None]:
        """Re-entrant within a thread; other processes wait for the lock (at most its TTL)."""
        depth = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        token = uuid.uuid4().hex
        deadline = time.monotonic() + _LOCK_TTL_MS / 1000 * 2
        client = self._link.client
        while not self._call(
            "locking the schedule",
            lambda: client.set(self._lock_key, token, nx=True, px=_LOCK_TTL_MS),
        ):
            if time.monotonic() > deadline:
                raise BrokerError(f"the schedule lock {self._lock_key!r} stayed held")
            time.sleep(0.005)
        self._local.depth = 1
        try:
            yield
        finally:
            self._local.depth = 0
            self._call(
                "unlocking the schedule", lambda: client.eval(_RELEASE, 1, self._lock_key, token)
            )

    def close(self) -> None:
        self._link.close()
