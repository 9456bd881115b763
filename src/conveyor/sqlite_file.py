"""One SQLite database file shared by the stores that live in it (broker, results,
coordinator, schedules): a connection per process and thread, never used across a fork."""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from conveyor.exceptions import BrokerError, ImproperlyConfigured

from .pids import current_pid

__all__ = ["SYNCHRONOUS", "SQLiteFile"]

SYNCHRONOUS = ("normal", "full")
"""The durability a SQLite store offers (``?synchronous=`` in its URL; docs/brokers.md).
``normal`` (the default): a commit survives the crash of any process, but the last
commits before a power loss or OS crash may be rolled back. ``full``: every commit is on
disk before it returns, so a confirmed send, ack or result survives power loss too."""

_inherited: list[sqlite3.Connection] = []
"""Connections a forked child inherited. Referenced forever so the child never closes them:
closing runs SQLite's lock and WAL cleanup on files the parent is still using."""
_files: weakref.WeakSet[SQLiteFile] = weakref.WeakSet()


def _disown_after_fork() -> None:
    for file in list(_files):
        _inherited.extend(file._opened)
        file._opened = []


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_disown_after_fork)


class SQLiteFile:
    """Connections to one database file: one per (process, thread), never used across fork.

    Shared by the SQLite broker and result backend, which may live in the same file.
    """

    def __init__(
        self, path: str | os.PathLike[str], timeout: float, synchronous: str = "normal"
    ) -> None:
        self.path = os.fspath(path)
        self.timeout = timeout
        if synchronous.lower() not in SYNCHRONOUS:
            raise ImproperlyConfigured(
                f"bad SQLite synchronous {synchronous!r}; valid choices: {', '.join(SYNCHRONOUS)}"
            )
        self.synchronous = synchronous.lower()
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        _files.add(self)

    def connection(self) -> sqlite3.Connection:
        local = self._local
        pid = current_pid()
        if getattr(local, "pid", None) == pid:
            conn: sqlite3.Connection = local.conn
            return conn
        if getattr(local, "conn", None) is not None:
            _inherited.append(local.conn)
        conn = sqlite3.connect(
            self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )
        self._opened.append(conn)
        local.pid, local.conn, local.version = pid, conn, None
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
        if self.synchronous == "full":
            conn.execute("PRAGMA fullfsync=ON")  # macOS: past the drive's cache too
        conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
        return conn

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn sqlite3 errors into BrokerError naming the file."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> BrokerError:
        name = getattr(exc, "sqlite_errorname", "")
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return BrokerError(
                f"SQLite database {self.path!r} stayed locked for more than "
                f"{self.timeout:g}s (another process holds a write transaction)"
            )
        return BrokerError(f"SQLite database {self.path!r}: {exc}")

    def insert(self, sql: str, params: Sequence[Any]) -> int:
        """One autocommit INSERT; the new row's rowid. (No context manager: a lone send's
        hot path.)"""
        try:
            return self.connection().execute(sql, params).lastrowid or 0
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    @contextmanager
    def transaction(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """By default a write transaction taken up front: it waits for the lock, never fails
        halfway on a stale snapshot. ``begin="BEGIN"`` gives a consistent read."""
        with self.errors():
            conn = self.connection()
            conn.execute(begin)
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """One autocommit statement, fully stepped so no transaction is left open."""
        with self.errors():
            return self.connection().execute(sql, params).fetchall()

    def changes(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self.errors():
            return self.connection().execute(sql, params).rowcount

    def data_version(self) -> int:
        """A number that changes whenever another connection commits to the file."""
        with self.errors():
            value: int = self.connection().execute("PRAGMA data_version").fetchone()[0]
            return value

    def remember_version(self, conn: sqlite3.Connection) -> None:
        """Note the data_version inside a transaction, so no commit after it goes unseen."""
        self._local.version = conn.execute("PRAGMA data_version").fetchone()[0]

    def forget_version(self) -> None:
        self._local.version = None

    def remembered_version(self) -> int:
        """The version noted by this thread's last ``remember_version``, else the current one."""
        self.connection()
        version: int | None = self._local.version
        return self.data_version() if version is None else version

    def ensure_schema(
        self,
        ddl: Sequence[str],
        version: int,
        shift: int,
        upgrades: Mapping[int, Sequence[str]] | None = None,
    ) -> None:
        """Create tables once per file; the version lives in 16 bits of ``user_version``.

        Broker and backend may share a file, so each owns its own bits of the header field.
        ``ddl`` creates the current schema (``IF NOT EXISTS``); ``upgrades[v]`` are the
        statements that take an existing file's tables from version ``v`` to ``v + 1``.
        """
        mask = 0xFFFF << shift
        if (self.execute("PRAGMA user_version")[0][0] & mask) >> shift == version:
            return
        with self.transaction() as conn:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            found = (current & mask) >> shift
            if found > version:
                raise BrokerError(
                    f"SQLite database {self.path!r} has schema version {found}, newer than "
                    f"this Conveyor understands ({version}); upgrade Conveyor"
                )
            for statement in ddl:
                conn.execute(statement)
            if found:
                for step in range(found, version):
                    for statement in (upgrades or {}).get(step, ()):
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version={(current & ~mask) | (version << shift)}")

    def close(self) -> None:
        """Close this process's connections, from every thread."""
        opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()
        self._local = threading.local()
