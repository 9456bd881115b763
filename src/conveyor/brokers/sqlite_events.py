"""The SQLite broker's event stream: a table of event packets, trimmed as it grows.

Each ``add_events`` call is one row (an ``EventPacket``: the batch a worker process wrote,
compressed), so a busy worker writes a row every fraction of a second, not three per task.
Rows are numbered by an AUTOINCREMENT key, never reused after trimming, so a reader's
cursor (``<row>:<index>``) stays valid. ``total`` counts events up to and including the
row: trimming deletes whole rows at the start of the key while the rest still hold at
least ``max_length`` events. The table is created on first use, apart from the broker's
versioned schema, so a file made by an older Conveyor gains it without a migration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from conveyor.brokers.base import EventPacket, StoredEvent
from conveyor.event_runs import count_events
from conveyor.sqlite_file import SQLiteFile

__all__ = ["SQLiteEvents"]

_DDL = """CREATE TABLE IF NOT EXISTS conveyor_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    total INTEGER NOT NULL,
    data BLOB NOT NULL)"""
_INDEX = "CREATE INDEX IF NOT EXISTS conveyor_events_total ON conveyor_events (total)"
"""Trimming looks up the first row to keep by ``total``: a short index walk, however many
small packets (an idle cluster's heartbeats) the table holds."""
_ROWS = 64
"""Packets read per statement."""


class SQLiteEvents:
    def __init__(self, db: SQLiteFile, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            with self._db.transaction() as conn:
                conn.execute(_DDL)
                conn.execute(_INDEX)
            self._ready = True

    def add(self, events: Sequence[bytes], max_length: int, count: int | None = None) -> None:
        if not events:
            return
        self._ensure()
        packet = EventPacket.pack(events)
        with self._db.transaction() as conn:
            last = conn.execute(
                "SELECT total FROM conveyor_events ORDER BY id DESC LIMIT 1"
            ).fetchone()
            total = (last[0] if last else 0) + (count_events(events) if count is None else count)
            conn.execute(
                "INSERT INTO conveyor_events (at, total, data) VALUES (?, ?, ?)",
                (self._clock(), total, packet),
            )
            # a row may go when the rows after it hold max_length events without it
            conn.execute(
                """DELETE FROM conveyor_events WHERE id < (SELECT min(id) FROM conveyor_events
                WHERE total > ?)""",
                (total - max(max_length, 1),),
            )

    def read(
        self, after: str | None, since: float | None, limit: int, match: bytes | None
    ) -> list[StoredEvent]:
        if limit <= 0:
            return []
        self._ensure()
        skip = 0
        if after is not None:
            number, skip = EventPacket.cursor(after)
            start, condition = int(number), "id >= ?"
        elif since is not None:
            found = self._db.execute("SELECT min(id) FROM conveyor_events WHERE at >= ?", (since,))
            if found[0][0] is None:
                return []
            start, condition = int(found[0][0]), "id >= ?"
        else:
            start, condition = 0, "id > ?"
        found_events: list[StoredEvent] = []
        while len(found_events) < limit:
            rows = self._db.execute(
                f"SELECT id, data FROM conveyor_events WHERE {condition} ORDER BY id LIMIT ?",
                (start, _ROWS),
            )
            for number, data in rows:
                found_events += EventPacket.events(
                    str(number), bytes(data), skip if number == start else 0, match
                )
            if len(rows) < _ROWS:
                break
            start, condition = rows[-1][0], "id > ?"
        return found_events[:limit]
