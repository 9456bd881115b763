"""The event stream's client side: task-sent from senders, a worker process's buffer, ages."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.brokers import MemoryBroker
from conveyor.events import (
    TaskReceived,
    TaskSent,
    TaskStarted,
    TaskSucceeded,
    parse_age,
    since_time,
)
from conveyor.exceptions import BrokerError
from conveyor.message import Message
from conveyor.records import TaskRecord
from conveyor.worker import events as worker_events
from conveyor.worker.events import EventBuffer


class FlakyBroker(MemoryBroker):
    """Refuses event writes while ``down``."""

    down = False

    def add_events(
        self, events: Sequence[bytes], max_length: int, count: int | None = None
    ) -> None:
        if self.down:
            raise BrokerError("broker unreachable")
        super().add_events(events, max_length, count)


class WatchedBroker(MemoryBroker):
    """Tells which thread wrote each packet."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: list[str] = []
        self.wrote = threading.Event()

    def add_events(
        self, events: Sequence[bytes], max_length: int, count: int | None = None
    ) -> None:
        self.writers.append(threading.current_thread().name)
        super().add_events(events, max_length, count)
        self.wrote.set()


class OneWriterBroker(WatchedBroker):
    one_writer = True


def make_app(broker: MemoryBroker | None = None, **settings: Any) -> Conveyor:
    app = Conveyor("events", broker=broker or MemoryBroker(), backend="memory://", **settings)

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


def test_task_sent_is_written_only_when_asked_for() -> None:
    app = make_app()
    app.tasks["t.add"].delay(1, 2)
    assert list(app.events.tail()) == []
    app.conf.task_send_sent_event = True
    result = app.tasks["t.add"].apply_async((3, 4), countdown=60)
    [sent] = list(app.events.tail())
    assert isinstance(sent, TaskSent)
    assert (sent.uuid, sent.name, sent.args, sent.queue) == (
        result.id,
        "t.add",
        "(3, 4)",
        "default",
    )
    assert sent.eta is not None and sent.root_id == result.id


def _due(buffer: EventBuffer) -> None:
    buffer.written -= worker_events.FLUSH_EVERY
    buffer.flush_due()


def test_the_background_thread_writes_what_is_due_unless_the_store_has_one_writer() -> None:
    """The consumer only wakes the thread (zlib and the round trip run beside it), except
    on a store like SQLite, where a second thread's write would wait on the consumer's."""
    broker = WatchedBroker()
    app = make_app(broker)
    buffer = EventBuffer(app)
    _ran(buffer, Message(id="quick", task="t.add"), 3)
    running = Message(id="running", task="t.add")
    buffer.running(running, "w1", time.time_ns())  # started just now: keeps its run line
    _due(buffer)
    assert broker.wrote.wait(5)
    assert broker.writers == ["conveyor-events"]
    assert [(e.type, getattr(e, "uuid", "")) for e in app.events.tail()] == [
        ("task-received", "quick"),
        ("task-started", "quick"),
        ("task-succeeded", "quick"),
    ]
    buffer.outcome(running, TaskRecord(status="SUCCESS", result=1), "w1", 0.001)
    buffer.flush()
    assert [e.type for e in app.events.tail()][3:] == [
        "task-received",
        "task-started",
        "task-succeeded",
    ]

    sqlite_like = OneWriterBroker()
    buffer = EventBuffer(make_app(sqlite_like))
    _ran(buffer, Message(id="quick", task="t.add"), 3)
    _due(buffer)
    assert sqlite_like.writers == [threading.current_thread().name]


def test_a_write_is_due_once_enough_successes_hold_their_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A success's run line is made at the write, so until then it holds its message: so
    many of them make a write due before FLUSH_EVERY passed."""
    monkeypatch.setattr(worker_events, "MAX_HELD", 3)
    broker = OneWriterBroker()
    app = make_app(broker)
    buffer = EventBuffer(app)
    for n in range(2):
        _ran(buffer, Message(id=f"t{n}", task="t.add"), n)
    buffer.flush_due()
    assert broker.writers == []
    _ran(buffer, Message(id="t2", task="t.add", args=[1, 2], argsrepr="(1, '***')"), 2)
    buffer.flush_due()
    assert len(broker.writers) == 1
    events = list(app.events.tail())
    assert [getattr(e, "uuid", "") for e in events] == ["t0"] * 3 + ["t1"] * 3 + ["t2"] * 3
    assert events[-3].args == "(1, '***')"  # type: ignore[union-attr]
    assert events[-1].result == "2"  # type: ignore[union-attr]


def test_a_buffer_keeps_its_events_while_the_broker_is_down() -> None:
    broker = FlakyBroker()
    app = make_app(broker)
    buffer = EventBuffer(app)
    message = app.build_message(app.tasks["t.add"], (1, 2), {}, {}, None, False)
    broker.down = True
    buffer.received(message, "w1", time.time_ns())
    buffer.flush()  # fails: kept
    buffer.received(message, "w1", time.time_ns())
    broker.down = False
    buffer.flush()
    seen = list(app.events.tail())
    assert [type(e) for e in seen] == [TaskReceived, TaskReceived]
    assert seen[0].timestamp <= seen[1].timestamp


def test_a_buffer_drops_the_oldest_beyond_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_events, "MAX_BUFFERED", 3)
    broker = FlakyBroker()
    app = make_app(broker)
    buffer = EventBuffer(app)
    broker.down = True
    for n in range(5):
        message = app.build_message(app.tasks["t.add"], (n, n), {}, {}, None, False)
        buffer.received(message, "w1", time.time_ns())
        buffer.flush()
    broker.down = False
    buffer.flush()
    assert [e.args for e in app.events.tail()] == ["(2, 2)", "(3, 3)", "(4, 4)"]  # type: ignore[union-attr]


def _ran(buffer: EventBuffer, message: Message, result: Any) -> None:
    buffer.running(message, "w1", time.time_ns())
    buffer.outcome(message, TaskRecord(status="SUCCESS", result=result), "w1", 0.0025)


@pytest.mark.parametrize("sqlite", [False, True], ids=["memory", "sqlite"])
def test_a_quick_task_reads_back_as_its_three_events(sqlite: bool, tmp_path: Any) -> None:
    app = make_app() if not sqlite else Conveyor("events", broker=f"sqlite:///{tmp_path}/e.db")
    app.conf.task_always_eager = False
    message = Message(
        id="t-1",
        task="t.add",
        args=[1, 2],
        kwargs={"z": "a\nb"},
        queue="q",
        root_id="t-1",
        parent_id="p-0",
    )
    buffer = EventBuffer(app)
    _ran(buffer, message, {"n": 3})
    buffer.flush()

    received, started, succeeded = app.events.tail()
    assert isinstance(received, TaskReceived)
    assert (received.uuid, received.name, received.args, received.kwargs) == (
        "t-1",
        "t.add",
        "(1, 2)",
        "{'z': 'a\\nb'}",
    )
    assert (received.queue, received.root_id, received.parent_id) == ("q", "t-1", "p-0")
    assert isinstance(started, TaskStarted) and started.uuid == "t-1"
    assert isinstance(succeeded, TaskSucceeded)
    assert (succeeded.result, succeeded.runtime) == ("{'n': 3}", pytest.approx(0.0025))
    assert {e.hostname for e in (received, started, succeeded)} == {"w1"}
    assert received.timestamp <= started.timestamp <= succeeded.timestamp
    assert len({e.id for e in (received, started, succeeded)}) == 3
    assert list(app.events.tail(after=received.id)) == [started, succeeded]


def test_a_task_running_at_a_write_has_its_start_written_and_its_end_later() -> None:
    app = make_app()
    buffer = EventBuffer(app)
    long = Message(id="long", task="t.add", args=[1, 2], kwargs={})
    buffer.running(long, "w1", time.time_ns())
    buffer.flush()  # the task still runs
    assert [type(e) for e in app.events.tail()] == [TaskReceived, TaskStarted]

    buffer.outcome(long, TaskRecord(status="SUCCESS", result=3), "w1", 9.0)
    _ran(buffer, Message(id="quick", task="t.add", args=[], kwargs={}), None)
    buffer.flush()
    seen = [(e.type, getattr(e, "uuid", "")) for e in app.events.tail()]
    assert seen == [
        ("task-received", "long"),
        ("task-started", "long"),
        ("task-succeeded", "long"),
        ("task-received", "quick"),
        ("task-started", "quick"),
        ("task-succeeded", "quick"),
    ]


def test_the_stream_keeps_max_length_events_counting_each_run_as_three(tmp_path: Any) -> None:
    """A packet store trims whole packets while the newer ones hold ``max_length``."""
    app = Conveyor("events", broker=f"sqlite:///{tmp_path}/e.db", events_max_length=4)
    buffer = EventBuffer(app)
    for n in range(3):
        _ran(buffer, Message(id=f"t{n}", task="t.add", args=[], kwargs={}), n)
        buffer.flush()
    assert [getattr(e, "uuid", "") for e in app.events.tail()] == [
        "t1",
        "t1",
        "t1",
        "t2",
        "t2",
        "t2",
    ]


def test_events_off_gives_no_buffer() -> None:
    assert worker_events.event_buffer(make_app(worker_send_task_events=False)) is None
    assert worker_events.event_buffer(make_app()) is not None


def test_ages_and_start_times() -> None:
    assert parse_age("90s") == 90 and parse_age("15m") == 900 and parse_age("2d") == 172800
    assert parse_age("1.5h") == 5400 and parse_age("30") == 30
    with pytest.raises(ValueError, match="like 90s, 15m, 1h or 2d"):
        parse_age("yesterday")
    assert since_time("1h", now=10_000.0) == 6400.0
    assert since_time(None, now=1.0) is None and since_time(5, now=1.0) == 5.0


def test_celerys_receiver_hands_event_dicts_to_handlers() -> None:
    app = make_app(task_send_sent_event=True)
    app.tasks["t.add"].delay(0, 0)  # before capture: not handed over
    got: list[dict[str, Any]] = []
    receiver = app.events.Receiver(None, handlers={"task-sent": got.append})
    sender = threading.Timer(0.05, lambda: app.tasks["t.add"].delay(1, 2))
    sender.start()
    receiver.capture(limit=1, timeout=5)
    sender.join()
    [event] = got
    assert event["type"] == "task-sent" and event["args"] == "(1, 2)" and event["name"] == "t.add"
    idle = app.events.Receiver(handlers={"*": got.append})
    idle.capture(timeout=0.05)  # nothing new: returns after the timeout
    assert len(got) == 1
