"""The SQLite broker's inbox: single sends wait in an unindexed table until the next
reservation (or batched send, purge, stats) moves them into the queues. Whatever the
move's timing, a user sees the same queues as if each send had gone straight in."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from conveyor.brokers import Envelope, QueueStats, SQLiteBroker
from conveyor.exceptions import BrokerError
from conveyor.testing import FakeClock

START = 1_700_000_000.0


def inbox_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        count: int = conn.execute("SELECT count(*) FROM conveyor_inbox").fetchone()[0]
    conn.close()
    return count


def test_single_sends_with_no_worker_are_found_counted_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    broker = SQLiteBroker(path, clock=FakeClock(START))
    ids = [f"m{i}" for i in range(2500)]
    for msg_id in ids:
        broker.publish_one(Envelope(msg_id, "q", b"x"))
    assert inbox_rows(path) < 1024  # the producer moved each full inbox itself
    assert broker.contains([*ids, "never-sent"]) == set(ids)
    assert broker.stats() == {"q": QueueStats(ready=2500)}
    got = broker.reserve(["q"], 3000, lease=30)
    assert [d.id for d in got] == ids
    broker.close()


def test_single_and_batched_sends_keep_send_order(tmp_path: Path) -> None:
    broker = SQLiteBroker(tmp_path / "b.db", clock=FakeClock(START))
    broker.publish_one(Envelope("a1", "q", b"x"))
    broker.publish_one(Envelope("a2", "q", b"x"))
    broker.publish([Envelope("b1", "q", b"x"), Envelope("b2", "q", b"x")])
    broker.publish_one(Envelope("c1", "q", b"x"))
    broker.publish_one(Envelope("urgent", "q", b"x", priority=9))
    got = broker.reserve(["q"], 10, lease=30)
    assert [d.id for d in got] == ["urgent", "a1", "a2", "b1", "b2", "c1"]
    broker.close()


def test_a_delayed_single_send_waits_for_its_eta(tmp_path: Path) -> None:
    clock = FakeClock(START)
    broker = SQLiteBroker(tmp_path / "b.db", clock=clock)
    broker.publish_one(Envelope("later", "q", b"x", eta=START + 60))
    broker.publish_one(Envelope("past", "q", b"x", eta=START - 60))
    assert [d.id for d in broker.reserve(["q"], 10, lease=30)] == ["past"]
    assert broker.stats()["q"] == QueueStats(delayed=1, reserved=1)
    clock.advance(61)
    assert [d.id for d in broker.reserve(["q"], 10, lease=30)] == ["later"]
    broker.close()


def test_purge_and_dead_letter_resends_see_single_sends(tmp_path: Path) -> None:
    broker = SQLiteBroker(tmp_path / "b.db", clock=FakeClock(START))
    broker.publish_one(Envelope("dead", "q", b"x"))
    [d] = broker.reserve(["q"], 1, lease=30)
    assert broker.dead_letter(d, "boom")
    broker.publish_one(Envelope("dead", "q", b"live again"))
    assert broker.requeue_dead_letters() == 0  # the live copy wins, as documented
    broker.publish_one(Envelope("other", "p", b"x"))
    assert broker.purge("q") == 1
    assert broker.stats() == {"p": QueueStats(ready=1)}
    broker.close()


def test_a_version_2_file_keeps_its_messages_and_older_code_refuses_version_3(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v2.db"
    broker = SQLiteBroker(path, clock=FakeClock(START))
    broker.publish([Envelope("old1", "q", b"x"), Envelope("old2", "q", b"x")])
    broker.close()
    with sqlite3.connect(path) as conn:  # as a version 2 broker left it
        conn.execute("DROP TABLE conveyor_inbox")
        conn.execute("PRAGMA user_version = 2")
    conn.close()
    broker = SQLiteBroker(path, clock=FakeClock(START))
    broker.publish_one(Envelope("new", "q", b"x"))
    assert [d.id for d in broker.reserve(["q"], 10, lease=30)] == ["old1", "old2", "new"]
    broker.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] & 0xFFFF == 3
        conn.execute("PRAGMA user_version = 4")  # a file from a newer Conveyor
    conn.close()
    with pytest.raises(BrokerError, match="schema version 4, newer than"):
        SQLiteBroker(path)


def test_stats_reads_without_the_write_lock_when_the_inbox_is_empty(tmp_path: Path) -> None:
    """A monitor's stats() is not held up by a worker's long write transaction."""
    path = tmp_path / "b.db"
    broker = SQLiteBroker(path, clock=FakeClock(START), timeout=0.2)
    broker.publish([Envelope("a", "q", b"x"), Envelope("b", "q", b"x")])
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        assert broker.stats() == {"q": QueueStats(ready=2)}
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    broker.close()
