"""The SQLite Coordinator: shared state in the embedded database file, for every local process."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from ..sqlite_file import SQLiteFile
from .base import Coordinator

__all__ = ["SQLiteCoordinator"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS conveyor_coord_values (
        key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS conveyor_coord_slots (
        key TEXT NOT NULL, holder TEXT NOT NULL, expires_at REAL NOT NULL,
        PRIMARY KEY (key, holder))""",
    "CREATE INDEX IF NOT EXISTS conveyor_coord_slots_holder ON conveyor_coord_slots (holder)",
    """CREATE TABLE IF NOT EXISTS conveyor_coord_buckets (
        key TEXT PRIMARY KEY, tokens REAL NOT NULL, updated REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS conveyor_coord_members (
        grp TEXT NOT NULL, member TEXT NOT NULL, value TEXT NOT NULL, expires_at REAL NOT NULL,
        PRIMARY KEY (grp, member))""",
    """CREATE TABLE IF NOT EXISTS conveyor_coord_lists (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, value TEXT NOT NULL,
        expires_at REAL NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS conveyor_coord_lists_key ON conveyor_coord_lists (key, seq)",
)

_PUT_VALUE = (
    "INSERT OR REPLACE INTO conveyor_coord_values (key, value, expires_at) VALUES (?, ?, ?)"
)
_PUT_SLOT = "INSERT OR REPLACE INTO conveyor_coord_slots (key, holder, expires_at) VALUES (?, ?, ?)"
_PUT_BUCKET = (
    "INSERT OR REPLACE INTO conveyor_coord_buckets (key, tokens, updated) VALUES (?, ?, ?)"
)


class SQLiteCoordinator(Coordinator):
    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 30.0,
        synchronous: str = "normal",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self._db = SQLiteFile(path, timeout, synchronous)
        with self._db.transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)

    def get_many(self, keys: Sequence[str]) -> list[str | None]:
        if not keys:
            return []
        now = self.clock()
        found: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, value FROM conveyor_coord_values WHERE key IN ({marks}) "
                "AND expires_at > ?",
                [*chunk, now],
            )
            found.update(rows)
        return [found.get(key) for key in keys]

    def put_many(self, items: Sequence[tuple[str, str]], ttl: float) -> None:
        expires = self.clock() + ttl
        with self._db.transaction() as conn:
            conn.executemany(
                _PUT_VALUE,
                [(key, value, expires) for key, value in items],
            )

    def put_if_absent(self, key: str, value: str, ttl: float) -> str | None:
        now = self.clock()
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT value FROM conveyor_coord_values WHERE key = ? AND expires_at > ?",
                (key, now),
            ).fetchone()
            if row is not None:
                existing: str = row[0]
                return existing
            conn.execute(
                _PUT_VALUE,
                (key, value, now + ttl),
            )
            return None

    def delete(self, key: str, value: str | None = None) -> bool:
        now = self.clock()
        if value is None:
            sql, params = (
                "DELETE FROM conveyor_coord_values WHERE key = ? AND expires_at > ?",
                (key, now),
            )
        else:
            sql = "DELETE FROM conveyor_coord_values WHERE key = ? AND value = ? AND expires_at > ?"
            params = (key, value, now)  # type: ignore[assignment]
        return self._db.changes(sql, params) > 0

    def acquire(self, key: str, holder: str, limit: int, ttl: float) -> bool:
        now = self.clock()
        with self._db.transaction() as conn:
            conn.execute(
                "DELETE FROM conveyor_coord_slots WHERE key = ? AND expires_at <= ?", (key, now)
            )
            mine = conn.execute(
                "SELECT 1 FROM conveyor_coord_slots WHERE key = ? AND holder = ?", (key, holder)
            ).fetchone()
            if mine is None:
                held = conn.execute(
                    "SELECT count(*) FROM conveyor_coord_slots WHERE key = ?", (key,)
                ).fetchone()[0]
                if held >= limit:
                    return False
            conn.execute(
                _PUT_SLOT,
                (key, holder, now + ttl),
            )
            return True

    def release(self, key: str, holder: str) -> bool:
        return (
            self._db.changes(
                "DELETE FROM conveyor_coord_slots WHERE key = ? AND holder = ? AND expires_at > ?",
                (key, holder, self.clock()),
            )
            > 0
        )

    def extend(self, holders: Sequence[str], ttl: float) -> None:
        if not holders:
            return
        until = self.clock() + ttl
        with self._db.transaction() as conn:
            conn.executemany(
                "UPDATE conveyor_coord_slots SET expires_at = ? WHERE holder = ?",
                [(until, holder) for holder in holders],
            )

    def take_token(self, key: str, rate: float, capacity: float) -> float:
        now = self.clock()
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT tokens, updated FROM conveyor_coord_buckets WHERE key = ?", (key,)
            ).fetchone()
            tokens, updated = (capacity, now) if row is None else row
            tokens = min(capacity, tokens + max(0.0, now - updated) * rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / rate
            conn.execute(
                _PUT_BUCKET,
                (key, tokens, now),
            )
            return wait

    def put_members(self, group: str, items: Sequence[tuple[str, str]], ttl: float) -> None:
        expires = self.clock() + ttl
        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO conveyor_coord_members (grp, member, value, expires_at) "
                "VALUES (?, ?, ?, ?)",
                [(group, member, value, expires) for member, value in items],
            )

    def members(self, group: str) -> dict[str, str]:
        rows = self._db.execute(
            "SELECT member, value FROM conveyor_coord_members WHERE grp = ? AND expires_at > ?",
            (group, self.clock()),
        )
        return dict(rows)

    def delete_member(self, group: str, member: str) -> bool:
        sql = "DELETE FROM conveyor_coord_members WHERE grp = ? AND member = ? AND expires_at > ?"
        return self._db.changes(sql, (group, member, self.clock())) > 0

    def push(self, key: str, values: Sequence[str], ttl: float) -> None:
        expires = self.clock() + ttl
        with self._db.transaction() as conn:
            conn.executemany(
                "INSERT INTO conveyor_coord_lists (key, value, expires_at) VALUES (?, ?, ?)",
                [(key, value, expires) for value in values],
            )

    def take(self, key: str) -> list[str]:
        # A read first, so polling an empty mailbox never takes the write lock.
        if not self._db.execute("SELECT 1 FROM conveyor_coord_lists WHERE key = ? LIMIT 1", (key,)):
            return []
        now = self.clock()
        with self._db.transaction() as conn:
            rows = conn.execute(
                "SELECT value, expires_at FROM conveyor_coord_lists WHERE key = ? ORDER BY seq",
                (key,),
            ).fetchall()
            conn.execute("DELETE FROM conveyor_coord_lists WHERE key = ?", (key,))
        return [value for value, expires_at in rows if expires_at > now]

    def cleanup(self) -> int:
        now = self.clock()
        with self._db.transaction() as conn:
            removed = conn.execute(
                "DELETE FROM conveyor_coord_values WHERE expires_at <= ?", (now,)
            ).rowcount
            removed += conn.execute(
                "DELETE FROM conveyor_coord_slots WHERE expires_at <= ?", (now,)
            ).rowcount
            removed += conn.execute(
                "DELETE FROM conveyor_coord_members WHERE expires_at <= ?", (now,)
            ).rowcount
            removed += conn.execute(
                "DELETE FROM conveyor_coord_lists WHERE expires_at <= ?", (now,)
            ).rowcount
            return int(removed)
