"""The SQLite schedule store: entries in the broker's file, in tables of their own.

Run state sits in columns (times as whole microseconds, so SQL compares them exactly) and
the definition in one JSON column; every write bumps a version row in the same
transaction, which is what schedulers poll to notice edits.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from ..sqlite_file import SQLiteFile
from .entries import Entry
from .store import ScheduleStore, decode_entry, encode_definition, first_version

__all__ = ["SQLiteStore"]

logger = logging.getLogger("conveyor.beat")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DDL = (
    """CREATE TABLE IF NOT EXISTS conveyor_beat_entries (
        name TEXT PRIMARY KEY,
        definition TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        last_run_at INTEGER,
        total_run_count INTEGER NOT NULL,
        since INTEGER)""",
    "CREATE TABLE IF NOT EXISTS conveyor_beat_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)
_BUMP = """INSERT INTO conveyor_beat_meta (key, value) VALUES ('version', ?)
    ON CONFLICT (key) DO UPDATE SET value = value + 1"""
"""Its parameter: ``first_version()``, for a missing row (an emptied table)."""
_COLUMNS = "name, definition, enabled, last_run_at, total_run_count, since"


def _micros(value: datetime | None) -> int | None:
    """Times as whole microseconds since the epoch: exact, so comparisons in SQL are too."""
    return None if value is None else (value - _EPOCH) // timedelta(microseconds=1)


def _time(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


class SQLiteStore(ScheduleStore):
    """Entries in the broker's SQLite file, in tables of their own."""

    def __init__(
        self, path: str | os.PathLike[str], *, timeout: float = 30.0, synchronous: str = "normal"
    ) -> None:
        self.path = os.fspath(path)
        self._db = SQLiteFile(self.path, timeout, synchronous)
        self._local = threading.local()
        with self._db.transaction() as conn:
            for statement in _DDL:
                conn.execute(statement)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if getattr(self._local, "conn", None) is not None:
            yield
            return
        with self._db.transaction() as conn:
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None

    def atomic(self) -> AbstractContextManager[None]:
        return self._transaction()

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn.execute(sql, params).fetchall()
        return self._db.execute(sql, params)

    def _write(self, sql: str, params: tuple[Any, ...]) -> bool:
        with self._transaction():
            changed = self._local.conn.execute(sql, params).rowcount > 0
            if changed:
                self._local.conn.execute(_BUMP, (first_version(),))
            return bool(changed)

    def _row(self, row: tuple[Any, ...]) -> Entry | None:
        name, definition, enabled, last_run_at, total, since = row
        try:
            return decode_entry(name, definition, enabled, _time(last_run_at), total, _time(since))
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            logger.error("beat: entry %r in %s cannot be read, skipped: %s", name, self.path, exc)
            return None

    def list(self) -> list[Entry]:
        rows = self._query(f"SELECT {_COLUMNS} FROM conveyor_beat_entries ORDER BY name")
        return [entry for entry in map(self._row, rows) if entry is not None]

    def get(self, name: str) -> Entry | None:
        rows = self._query(f"SELECT {_COLUMNS} FROM conveyor_beat_entries WHERE name = ?", (name,))
        return self._row(rows[0]) if rows else None

    def save(self, entry: Entry) -> None:
        self._write(
            f"INSERT OR REPLACE INTO conveyor_beat_entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            (
                entry.name,
                encode_definition(entry).decode(),
                int(entry.enabled),
                _micros(entry.last_run_at),
                entry.total_run_count,
                _micros(entry.since),
            ),
        )

    def remove(self, name: str) -> bool:
        return self._write("DELETE FROM conveyor_beat_entries WHERE name = ?", (name,))

    def record_run(self, name: str, due: datetime, ran_at: datetime, manual: bool = False) -> bool:
        if manual:
            return self._write(
                "UPDATE conveyor_beat_entries SET last_run_at = ?, "
                "total_run_count = total_run_count + 1 WHERE name = ?",
                (_micros(ran_at), name),
            )
        return self._write(
            "UPDATE conveyor_beat_entries SET since = ?1, last_run_at = ?2, "
            "total_run_count = total_run_count + 1 "
            "WHERE name = ?3 AND (since IS NULL OR since < ?1)",
            (_micros(due), _micros(ran_at), name),
        )

    def skip_to(self, name: str, until: datetime) -> bool:
        return self._write(
            "UPDATE conveyor_beat_entries SET since = ?1 WHERE name = ?2 "
            "AND (since IS NULL OR since < ?1)",
            (_micros(until), name),
        )

    def version(self) -> int:
        rows = self._query("SELECT value FROM conveyor_beat_meta WHERE key = 'version'")
        return int(rows[0][0]) if rows else 0

    def close(self) -> None:
        self._db.close()
