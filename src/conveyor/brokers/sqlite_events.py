"""The SQLite broker's event stream: a table trimmed to a maximum length as it grows.

Rows are numbered by an AUTOINCREMENT key, so a number is never reused after the oldest
rows are trimmed and a reader's cursor (the number of the last row it read) stays valid.
Trimming deletes by that key (``id <= newest - max_length``), a range at the start of
the primary key: appending a batch of events costs one short transaction. The table is
created on first use, apart from the broker's versioned schema, so files made by an
older Conveyor gain it without a migration.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from conveyor.brokers.base import StoredEvent
from conveyor.sqlite_file import SQLiteFile

__all__ = ["SQLiteEvents"]

_DDL = """CREATE TABLE IF NOT EXISTS conveyor_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    data BLOB NOT NULL)"""
_SCAN = 5000
"""Rows a ``match`` search reads per statement."""


class SQLiteEvents:
    def __init__(self, db: SQLiteFile, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            with self._db.transaction() as conn:
                conn.execute(_DDL)
            self._ready = True

    def add(self, events: Sequence[bytes], max_length: int) -> None:
        if not events:
            return
        self._ensure()
        now = self._clock()
        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT INTO conveyor_events (at, data) VALUES (?, ?)",
                [(now, data) for data in events],
            )
            newest = conn.execute("SELECT last_insert_rowid()").fetchone()[0]
            conn.execute("DELETE FROM conveyor_events WHERE id <= ?", (newest - max_length,))

    def read(
        self, after: str | None, since: float | None, limit: int, match: bytes | None
    ) -> list[StoredEvent]:
        if limit <= 0:
            return []
        self._ensure()
        if after is not None:
            start = int(after)
        elif since is not None:
            found = self._db.execute("SELECT min(id) FROM conveyor_events WHERE at >= ?", (since,))
            if found[0][0] is None:
                return []
            start = int(found[0][0]) - 1
        else:
            start = 0
        if match is None:
            rows = self._db.execute(
                "SELECT id, data FROM conveyor_events WHERE id > ? ORDER BY id LIMIT ?",
                (start, limit),
            )
            return [StoredEvent(str(i), bytes(data)) for i, data in rows]
        return self._search(start, limit, match)

    def _search(self, start: int, limit: int, match: bytes) -> list[StoredEvent]:
        """Rows containing ``match``, picked by SQLite (``instr`` on the blob) over ranges
        of ``_SCAN`` ids, so a long search never holds the file for long."""
        newest = self._db.execute("SELECT max(id) FROM conveyor_events")[0][0] or 0
        found: list[StoredEvent] = []
        while len(found) < limit and start < newest:
            rows = self._db.execute(
                """SELECT id, data FROM conveyor_events
                WHERE id > ? AND id <= ? AND instr(data, ?) > 0 ORDER BY id LIMIT ?""",
                (start, start + _SCAN, sqlite3.Binary(match), limit - len(found)),
            )
            found += [StoredEvent(str(i), bytes(data)) for i, data in rows]
            start += _SCAN
        return found
