"""The SQLite broker: the embedded default, shared safely by threads and processes on one host.

Ready and reserved messages live in one table; a partial index over the unreserved rows
keeps ``reserve`` a short index walk however many messages are in flight. Delayed
messages live in their own table ordered by eta, so a million of them cost the ready scan
nothing. Every reservation is a single ``UPDATE ... RETURNING`` inside ``BEGIN
IMMEDIATE``: SQLite serialises writers, so two processes can never take the same row.

A message sent on its own goes to an inbox table with no index but its rowid, so its
commit writes one page instead of three (the table, the ready index and a random page of
the id index). The next write transaction that reads the queues (a reservation, a batched
send, purge, stats, a re-send of dead letters) moves the whole inbox, in send order, into
the messages and delayed tables, where duplicate ids are dropped as before. A producer
that finds 1,024 rows waiting (no worker running) moves them itself, so ``contains``,
which scans the inbox, stays cheap.
"""

from __future__ import annotations

import itertools
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

from conveyor.brokers.base import (
    Broker,
    DeadLetter,
    Delivery,
    Envelope,
    Peeked,
    QueueStats,
    StoredEvent,
)
from conveyor.brokers.sqlite_events import SQLiteEvents
from conveyor.sqlite_file import SQLiteFile

__all__ = ["SQLiteBroker"]

_SCHEMA_VERSION = 3
_DDL = (
    """CREATE TABLE IF NOT EXISTS conveyor_messages (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        queue TEXT NOT NULL,
        priority INTEGER NOT NULL,
        body BLOB NOT NULL,
        token TEXT,
        lease_until REAL,
        delivery_count INTEGER NOT NULL,
        resends INTEGER NOT NULL DEFAULT 0)""",
    """CREATE INDEX IF NOT EXISTS conveyor_messages_ready
        ON conveyor_messages (queue, priority DESC, seq) WHERE lease_until IS NULL""",
    """CREATE INDEX IF NOT EXISTS conveyor_messages_leased
        ON conveyor_messages (lease_until) WHERE lease_until IS NOT NULL""",
    """CREATE TABLE IF NOT EXISTS conveyor_delayed (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        queue TEXT NOT NULL,
        priority INTEGER NOT NULL,
        body BLOB NOT NULL,
        delivery_count INTEGER NOT NULL,
        eta REAL NOT NULL,
        resends INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS conveyor_delayed_eta ON conveyor_delayed (eta)",
    """CREATE TABLE IF NOT EXISTS conveyor_dead_letters (
        id TEXT PRIMARY KEY,
        queue TEXT NOT NULL,
        priority INTEGER NOT NULL,
        body BLOB NOT NULL,
        reason TEXT NOT NULL,
        failed_at REAL NOT NULL,
        resends INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS conveyor_inbox (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL,
        queue TEXT NOT NULL,
        priority INTEGER NOT NULL,
        body BLOB NOT NULL,
        eta REAL)""",
)
_UPGRADES = {
    1: tuple(
        f"ALTER TABLE {table} ADD COLUMN resends INTEGER NOT NULL DEFAULT 0"
        for table in ("conveyor_messages", "conveyor_delayed", "conveyor_dead_letters")
    ),
}
"""Version 2: ``resends`` (how many times a message was re-sent from the dead letters).
Version 3: ``conveyor_inbox`` (made by the DDL; older code refuses a version 3 file, so it
never misses messages waiting there)."""

_INSERT_READY = """INSERT OR IGNORE INTO conveyor_messages
    (id, queue, priority, body, delivery_count)
    SELECT ?1, ?2, ?3, ?4, 0 WHERE NOT EXISTS (SELECT 1 FROM conveyor_delayed WHERE id = ?1)"""
_INSERT_DELAYED = """INSERT OR IGNORE INTO conveyor_delayed
    (id, queue, priority, body, delivery_count, eta)
    SELECT ?1, ?2, ?3, ?4, 0, ?5 WHERE NOT EXISTS (SELECT 1 FROM conveyor_messages WHERE id = ?1)"""
_TO_INBOX = "INSERT INTO conveyor_inbox (id, queue, priority, body, eta) VALUES (?, ?, ?, ?, ?)"
_INBOX_LIMIT = 1024
"""Rows are only ever deleted all at once, so a new row's rowid is the inbox's length."""
_ANY_IN_INBOX = "SELECT 1 FROM conveyor_inbox LIMIT 1"
_FIRST_SENT = "seq IN (SELECT min(seq) FROM conveyor_inbox GROUP BY id)"
"""Of several sends of one id, only the first counts (as the queue tables' unique ids do)."""
_INBOX_READY = f"""INSERT OR IGNORE INTO conveyor_messages
    (id, queue, priority, body, delivery_count)
    SELECT id, queue, priority, body, 0 FROM conveyor_inbox AS i
    WHERE (eta IS NULL OR eta <= ?1) AND {_FIRST_SENT}
    AND NOT EXISTS (SELECT 1 FROM conveyor_delayed WHERE id = i.id) ORDER BY seq"""
_INBOX_DELAYED = f"""INSERT OR IGNORE INTO conveyor_delayed
    (id, queue, priority, body, delivery_count, eta)
    SELECT id, queue, priority, body, 0, eta FROM conveyor_inbox AS i
    WHERE eta > ?1 AND {_FIRST_SENT}
    AND NOT EXISTS (SELECT 1 FROM conveyor_messages WHERE id = i.id) ORDER BY seq"""
_ANY_DUE = "SELECT 1 FROM conveyor_delayed WHERE eta <= ? LIMIT 1"
_MOVE_DUE = """INSERT OR IGNORE INTO conveyor_messages
    (id, queue, priority, body, delivery_count, resends)
    SELECT id, queue, priority, body, delivery_count, resends FROM conveyor_delayed
    WHERE eta <= ?1 ORDER BY eta, seq LIMIT ?2"""
_DROP_DUE = """DELETE FROM conveyor_delayed WHERE seq IN
    (SELECT seq FROM conveyor_delayed WHERE eta <= ?1 ORDER BY eta, seq LIMIT ?2)"""
_MOVE_DUE_BATCH = 5000
_PEEK_CHUNK = 400
"""Ids per lookup of ``peek`` (twice as many parameters: SQLite allows 32766)."""
_RESERVE = """UPDATE conveyor_messages
    SET token = ?1, lease_until = ?2, delivery_count = delivery_count + 1
    WHERE seq IN (SELECT seq FROM conveyor_messages WHERE queue = ?3 AND lease_until IS NULL
                  ORDER BY priority DESC, seq LIMIT ?4)
    RETURNING seq, id, queue, priority, body, delivery_count, resends"""
_NACK = """UPDATE conveyor_messages SET token = NULL, lease_until = NULL,
    delivery_count = delivery_count - 1 WHERE id = ? AND token = ?"""
_TAKE = """DELETE FROM conveyor_messages WHERE id = ? AND token = ?
    RETURNING id, queue, priority, body, delivery_count, resends"""


def _reserved_order(row: tuple[Any, ...]) -> tuple[int, int]:
    return -row[3], row[0]


class SQLiteBroker(Broker):
    """A broker in one SQLite file; every process on the host opening it shares the queues."""

    one_writer = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        timeout: float = 30.0,
        synchronous: str = "normal",
    ) -> None:
        self.path = os.fspath(path)
        self._clock = clock
        self._db = SQLiteFile(self.path, timeout, synchronous)
        self._db.ensure_schema(_DDL, _SCHEMA_VERSION, shift=0, upgrades=_UPGRADES)
        self._rotation = itertools.count()
        self._events = SQLiteEvents(self._db, clock)

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        if len(envelopes) == 1:
            e = envelopes[0]
            waiting = self._db.insert(_TO_INBOX, (e.id, e.queue, e.priority, e.body, e.eta))
            if waiting >= _INBOX_LIMIT:
                with self._db.transaction() as conn:
                    self._empty_inbox(conn, self._clock())
            return
        if not envelopes:
            return
        now = self._clock()
        ready = [
            (e.id, e.queue, e.priority, e.body) for e in envelopes if e.eta is None or e.eta <= now
        ]
        delayed = [
            (e.id, e.queue, e.priority, e.body, e.eta)
            for e in envelopes
            if e.eta is not None and e.eta > now
        ]
        with self._db.transaction() as conn:
            self._empty_inbox(conn, now)
            conn.executemany(_INSERT_READY, ready)
            conn.executemany(_INSERT_DELAYED, delayed)

    @staticmethod
    def _empty_inbox(conn: sqlite3.Connection, now: float) -> None:
        """Move single sends into the queue tables, in send order (inside a write transaction)."""
        if conn.execute(_ANY_IN_INBOX).fetchone() is None:
            return
        conn.execute(_INBOX_READY, (now,))
        conn.execute(_INBOX_DELAYED, (now,))
        conn.execute("DELETE FROM conveyor_inbox")

    def reserve(self, queues: Sequence[str], count: int, lease: float) -> list[Delivery]:
        if count <= 0 or not queues:
            return []
        now = self._clock()
        token, until = secrets.token_hex(8), now + lease
        start = next(self._rotation) % len(queues)
        deliveries: list[Delivery] = []
        with self._db.transaction() as conn:
            self._empty_inbox(conn, now)
            if conn.execute(_ANY_DUE, (now,)).fetchone() is not None:
                conn.execute(_MOVE_DUE, (now, _MOVE_DUE_BATCH))
                conn.execute(_DROP_DUE, (now, _MOVE_DUE_BATCH))
            for queue in (*queues[start:], *queues[:start]):
                params = (token, until, queue, count - len(deliveries))
                rows = conn.execute(_RESERVE, params).fetchall()
                rows.sort(key=_reserved_order)
                deliveries += [
                    Delivery(msg_id, queue, body, priority, token, delivered, resends=resends)
                    for _, msg_id, _, priority, body, delivered, resends in rows
                ]
                if len(deliveries) >= count:
                    break
            if not deliveries:
                self._db.remember_version(conn)
        return deliveries

    def extend(self, deliveries: Sequence[Delivery], lease: float) -> list[bool]:
        if not deliveries:
            return []
        until = self._clock() + lease
        sql = "UPDATE conveyor_messages SET lease_until = ? WHERE id = ? AND token = ?"
        with self._db.transaction() as conn:
            return [conn.execute(sql, (until, d.id, d.token)).rowcount == 1 for d in deliveries]

    def ack(self, delivery: Delivery) -> bool:
        sql = "DELETE FROM conveyor_messages WHERE id = ? AND token = ?"
        return self._db.changes(sql, (delivery.id, delivery.token)) == 1

    def ack_many(self, deliveries: Sequence[Delivery]) -> list[bool]:
        if len(deliveries) < 2:
            return [self.ack(d) for d in deliveries]
        sql = "DELETE FROM conveyor_messages WHERE id = ? AND token = ?"
        with self._db.transaction() as conn:
            return [conn.execute(sql, (d.id, d.token)).rowcount == 1 for d in deliveries]

    def contains(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), 400):
            chunk = list(ids[start : start + 400])
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT id FROM conveyor_messages WHERE id IN ({marks}) "
                f"UNION ALL SELECT id FROM conveyor_delayed WHERE id IN ({marks}) "
                f"UNION ALL SELECT id FROM conveyor_inbox WHERE id IN ({marks})",
                chunk * 3,
            )
            found.update(row[0] for row in rows)
        return found

    def nack(self, delivery: Delivery, delay: float | None = None) -> bool:
        if delay is None or delay <= 0:
            return self._db.changes(_NACK, (delivery.id, delivery.token)) == 1
        with self._db.transaction() as conn:
            row = conn.execute(_TAKE, (delivery.id, delivery.token)).fetchone()
            if row is None:
                return False
            conn.execute(
                """INSERT INTO conveyor_delayed
                (id, queue, priority, body, delivery_count, eta, resends)
                VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (*row[:4], row[4] - 1, self._clock() + delay, row[5]),
            )
            return True

    def nack_many(self, deliveries: Sequence[Delivery]) -> list[bool]:
        if len(deliveries) < 2:
            return [self.nack(d) for d in deliveries]
        with self._db.transaction() as conn:
            return [conn.execute(_NACK, (d.id, d.token)).rowcount == 1 for d in deliveries]

    def dead_letter(self, delivery: Delivery, reason: str) -> bool:
        with self._db.transaction() as conn:
            row = conn.execute(_TAKE, (delivery.id, delivery.token)).fetchone()
            if row is None:
                return False
            conn.execute(
                """INSERT OR REPLACE INTO conveyor_dead_letters
                (id, queue, priority, body, reason, failed_at, resends)
                VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (*row[:4], reason, self._clock(), row[5]),
            )
            return True

    def recover_expired(self) -> int:
        sql = """UPDATE conveyor_messages SET token = NULL, lease_until = NULL
            WHERE lease_until IS NOT NULL AND lease_until <= ?"""
        return self._db.changes(sql, (self._clock(),))

    def purge(self, queue: str | None = None) -> int:
        where, params = ("", ()) if queue is None else (" AND queue = ?", (queue,))
        with self._db.transaction() as conn:
            self._empty_inbox(conn, self._clock())
            ready = "DELETE FROM conveyor_messages WHERE lease_until IS NULL" + where
            delayed = "DELETE FROM conveyor_delayed WHERE 1" + where
            return int(
                conn.execute(ready, params).rowcount + conn.execute(delayed, params).rowcount
            )

    def _settle_inbox(self) -> None:
        """Move the inbox before a read that shows messages (a write lock only when there
        is work for it)."""
        if self._db.execute(_ANY_IN_INBOX):
            with self._db.transaction() as conn:
                self._empty_inbox(conn, self._clock())

    def stats(self) -> dict[str, QueueStats]:
        counts: dict[str, list[int]] = {}
        self._settle_inbox()
        with self._db.transaction("BEGIN") as conn:
            for queue, ready, reserved in conn.execute(
                """SELECT queue, sum(lease_until IS NULL), sum(lease_until IS NOT NULL)
                FROM conveyor_messages GROUP BY queue"""
            ):
                counts[queue] = [ready, 0, reserved]
            for queue, delayed in conn.execute(
                "SELECT queue, count(*) FROM conveyor_delayed GROUP BY queue"
            ):
                counts.setdefault(queue, [0, 0, 0])[1] = delayed
        return {queue: QueueStats(*c) for queue, c in sorted(counts.items())}

    def peek(self, messages: Sequence[tuple[str, str]]) -> list[Peeked]:
        ids = list(dict.fromkeys(msg_id for _, msg_id in messages))
        if not ids:
            return []
        self._settle_inbox()
        found: dict[str, Peeked] = {}
        for at in range(0, len(ids), _PEEK_CHUNK):
            chunk = ids[at : at + _PEEK_CHUNK]
            marks = ",".join("?" * len(chunk))
            sql = f"""SELECT id, queue, body, priority, NULL FROM conveyor_messages
                WHERE id IN ({marks}) UNION ALL
                SELECT id, queue, body, priority, eta FROM conveyor_delayed WHERE id IN ({marks})"""
            for row in self._db.execute(sql, (*chunk, *chunk)):
                found[row[0]] = Peeked(*row)
        return [found[msg_id] for _, msg_id in messages if msg_id in found]

    def delayed(self, queues: Sequence[str], limit: int = 1000) -> list[Peeked]:
        if not queues or limit <= 0:
            return []
        self._settle_inbox()
        marks = ",".join("?" * len(queues))
        rows = self._db.execute(
            f"""SELECT id, queue, body, priority, eta FROM conveyor_delayed
            WHERE queue IN ({marks}) ORDER BY eta, seq LIMIT ?""",
            (*queues, limit),
        )
        return [Peeked(*row) for row in rows]

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = self._db.execute(
            """SELECT id, queue, body, priority, reason, failed_at, resends
            FROM conveyor_dead_letters
            ORDER BY failed_at, rowid LIMIT ?""",
            (limit,),
        )
        return [DeadLetter(*row) for row in rows]

    def requeue_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        """A dead letter whose id is live again is dropped, not counted: the live copy wins."""
        insert = """INSERT OR IGNORE INTO conveyor_messages
            (id, queue, priority, body, delivery_count, resends)
            SELECT id, queue, priority, body, 0, resends + 1 FROM conveyor_dead_letters AS d
            WHERE NOT EXISTS (SELECT 1 FROM conveyor_delayed WHERE id = d.id)"""
        delete = "DELETE FROM conveyor_dead_letters"
        with self._db.transaction() as conn:
            self._empty_inbox(conn, self._clock())
            if ids is None:
                sent = conn.execute(insert + " ORDER BY failed_at, rowid").rowcount
                conn.execute(delete)
            else:
                sent = conn.executemany(insert + " AND id = ?", [(i,) for i in ids]).rowcount
                conn.executemany(delete + " WHERE id = ?", [(i,) for i in ids])
            return int(sent)

    def purge_dead_letters(self, ids: Sequence[str] | None = None) -> int:
        if ids is None:
            return self._db.changes("DELETE FROM conveyor_dead_letters")
        with self._db.transaction() as conn:
            sql = "DELETE FROM conveyor_dead_letters WHERE id = ?"
            return int(conn.executemany(sql, [(i,) for i in ids]).rowcount)

    def wait(self, timeout: float) -> None:
        """Poll ``data_version`` (cheap, no table read) until another connection commits.

        Also returns once the earliest delayed message comes due, so it can be moved.
        """
        deadline = time.monotonic() + timeout
        baseline = self._db.remembered_version()
        next_eta = self._db.execute("SELECT min(eta) FROM conveyor_delayed")[0][0]
        try:
            while next_eta is None or self._clock() < next_eta:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                time.sleep(min(0.001, left))
                if self._db.data_version() != baseline:
                    return
        finally:
            self._db.forget_version()

    # -- the event stream (sqlite_events.py) ----------------------------------------------

    def add_events(
        self, events: Sequence[bytes], max_length: int, count: int | None = None
    ) -> None:
        self._events.add(events, max_length, count)

    def read_events(
        self,
        after: str | None = None,
        since: float | None = None,
        limit: int = 1000,
        match: bytes | None = None,
    ) -> list[StoredEvent]:
        return self._events.read(after, since, limit, match)

    def close(self) -> None:
        self._db.close()
