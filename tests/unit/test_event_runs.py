"""How a worker's quick tasks are written (run lines, packets) and read back the same."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from conveyor import Conveyor
from conveyor.brokers import MemoryBroker
from conveyor.brokers.base import EventPacket
from conveyor.event_runs import RunLine, expand_run
from conveyor.message import Message
from conveyor.records import TaskRecord
from conveyor.worker.events import EventBuffer

FIELDS = (1700000000.25, 120, 480, "w1", 42, "t-1", "t.add", "(1, 2)", "{}", 0, None, None)
MORE = ("default", 0, None, "3", 2_500_000)


def test_a_run_line_is_encoded_as_the_array_earlier_versions_wrote() -> None:
    run = RunLine(*FIELDS, *MORE)
    assert msgspec.json.encode(run) == msgspec.json.encode((*FIELDS, *MORE))
    received, started, succeeded = map(msgspec.json.decode, expand_run(msgspec.json.encode(run)))
    assert (received["type"], received["root_id"], received["queue"]) == (
        "task-received",
        "t-1",
        "default",
    )
    assert started["timestamp"] == pytest.approx(1700000000.25 + 120e-6)
    assert (succeeded["result"], succeeded["runtime"]) == ("3", pytest.approx(0.0025))


def test_packets_of_400_bytes_or_more_are_compressed_and_both_kinds_read() -> None:
    event = b'{"type":"task-sent","timestamp":1.0,"uuid":"s-1"}'
    run = msgspec.json.encode((*FIELDS, *MORE))
    items = [event, run, run, run, run, run]
    compressed = EventPacket.pack(items)
    assert compressed == b"z" + zlib.compress(b"\n".join(items), 1)
    assert EventPacket.pack([event]) == b"j" + event  # too small to gain
    plain = b"j" + b"\n".join(items)
    assert list(EventPacket.events("7", compressed, 0, None)) == list(
        EventPacket.events("7", plain, 0, None)
    )
    assert [e.id for e in EventPacket.events("7", compressed, 14, None)] == ["7:14", "7:15"]


def test_an_sqlite_stream_written_by_an_earlier_version_reads_the_same(tmp_path: Path) -> None:
    app = Conveyor("events", broker=f"sqlite:///{tmp_path}/e.db")
    app.events.send([])
    list(app.events.tail())  # makes the table
    run = msgspec.json.encode((*FIELDS, *MORE))
    with sqlite3.connect(tmp_path / "e.db") as db:
        db.execute(
            "INSERT INTO conveyor_events (at, total, data) VALUES (?, ?, ?)",
            (1.0, 3, b"z" + zlib.compress(run, 1)),
        )
    assert [e.type for e in app.events.tail()] == [
        "task-received",
        "task-started",
        "task-succeeded",
    ]
    app.close()


@pytest.fixture
def switching() -> Iterator[None]:
    """Threads switch as often as the interpreter allows, so races show."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("switching")
def test_writes_racing_executors_lose_and_repeat_no_event() -> None:
    """Executors in threads note their tasks while another thread writes again and again:
    every task reads back as received, started, succeeded, once each."""
    app = Conveyor("events", broker=MemoryBroker(), backend="memory://")
    app.conf.events_max_length = 1_000_000
    buffer = EventBuffer(app)
    done = threading.Event()

    def execute(worker: int) -> None:
        for n in range(400):
            message = Message(id=f"{worker}-{n}", task="t.add")
            buffer.running(message, f"w{worker}", time.time_ns())
            buffer.outcome(message, TaskRecord(status="SUCCESS", result=n), f"w{worker}", 0.1)

    def write() -> None:
        while not done.is_set():
            buffer.flush()

    writer = threading.Thread(target=write)
    executors = [threading.Thread(target=execute, args=(w,)) for w in range(3)]
    writer.start()
    for thread in executors:
        thread.start()
    for thread in executors:
        thread.join()
    done.set()
    writer.join()
    buffer.flush()
    kinds: dict[str, list[str]] = {}
    for event in app.events.tail():
        kinds.setdefault(getattr(event, "uuid", ""), []).append(event.type)
    assert len(kinds) == 3 * 400
    assert {tuple(seen) for seen in kinds.values()} == {
        ("task-received", "task-started", "task-succeeded")
    }
