"""The event stream's contract (``Broker.add_events`` / ``read_events``), over every broker.

The brokers are made as the broker contract makes them (``BROKERS`` there), with a fake
clock: ``since`` is judged by the time the broker stamps on each event.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_broker_contract import BROKERS, START

from conveyor.brokers import Broker
from conveyor.events import (
    Events,
    TaskFailed,
    TaskReceived,
    TaskSucceeded,
    WorkerOnline,
    decode_event,
    encode_event,
)
from conveyor.testing import FakeClock
from integration.cluster_support import redis_cluster  # noqa: F401  (a fixture)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture(params=sorted(BROKERS))
def broker(request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path) -> Iterator[Broker]:
    instance = BROKERS[request.param](clock, tmp_path, request)
    yield instance
    instance.close()


def data(n: int) -> bytes:
    return f'{{"n":{n}}}'.encode()


def test_events_come_back_in_order_with_cursors(broker: Broker) -> None:
    assert broker.read_events() == []
    broker.add_events([data(1), data(2)], 100)
    broker.add_events([data(3)], 100)
    stored = broker.read_events()
    assert [e.data for e in stored] == [data(1), data(2), data(3)]
    assert broker.read_events(after=stored[0].id) == stored[1:]
    assert broker.read_events(after=stored[2].id) == []
    assert broker.read_events(limit=2) == stored[:2]
    broker.add_events([], 100)
    assert len(broker.read_events()) == 3


def test_since_reads_from_a_time(broker: Broker, clock: FakeClock) -> None:
    broker.add_events([data(1)], 100)
    clock.advance(10)
    broker.add_events([data(2)], 100)
    assert [e.data for e in broker.read_events(since=START + 5)] == [data(2)]
    assert [e.data for e in broker.read_events(since=START)] == [data(1), data(2)]
    assert broker.read_events(since=START + 60) == []


def test_the_stream_keeps_about_the_newest_max_length(broker: Broker) -> None:
    for start in range(0, 1500, 100):
        broker.add_events([data(n) for n in range(start, start + 100)], 50)
    kept = broker.read_events(limit=10_000)
    numbers = [int(e.data[5:-1]) for e in kept]
    assert numbers == sorted(numbers)
    assert numbers[-50:] == list(range(1450, 1500))  # the newest are all there
    assert 50 <= len(kept) <= 300  # Redis trims whole stream nodes (~100 entries)


def test_many_small_packets_go_at_once_when_the_bound_is_passed(broker: Broker) -> None:
    """A stream of heartbeat-sized packets: one write may drop many of them."""
    for n in range(30):
        broker.add_events([data(n)], 1000)
    broker.add_events([data(n) for n in range(30, 33)], 3)
    assert [int(e.data[5:-1]) for e in broker.read_events(limit=100)][-3:] == [30, 31, 32]
    assert len(broker.read_events(limit=100)) <= 10


def test_cursor_stays_valid_after_trimming(broker: Broker) -> None:
    broker.add_events([data(n) for n in range(5)], 3)
    last = broker.read_events()[-1]
    broker.add_events([data(n) for n in range(5, 400)], 3)
    after = broker.read_events(after=last.id, limit=1000)
    assert after and after[-1].data == data(399)
    assert all(e.data != data(4) for e in after)


def test_match_finds_one_tasks_events_in_the_store(broker: Broker) -> None:
    events = Events(broker, _Conf())
    batch = [
        TaskReceived(timestamp=START, uuid=f"id-{n}", name="t", hostname="w1") for n in range(3000)
    ]
    events.send(batch)
    events.send([TaskSucceeded(timestamp=START + 1, uuid="id-7", name="t", runtime=0.5)])
    timeline = events.of_task("id-7")
    assert [e.type for e in timeline] == ["task-received", "task-succeeded"]
    assert isinstance(timeline[1], TaskSucceeded) and timeline[1].runtime == 0.5
    assert events.read(task_id="id-2999")[0].uuid == "id-2999"  # type: ignore[union-attr]
    assert events.of_task("id-77") == [events.read(task_id="id-77")[0]]
    assert events.of_task("never-sent") == []


def test_events_round_trip_as_celery_names_them() -> None:
    failed = TaskFailed(timestamp=1.5, uuid="a", exception="ValueError: no", hostname="w")
    back = decode_event(encode_event(failed), id="7")
    assert back == TaskFailed(
        timestamp=1.5, uuid="a", exception="ValueError: no", hostname="w", id="7"
    )
    assert back.type == "task-failed"
    assert back.to_dict()["type"] == "task-failed"
    online = WorkerOnline(timestamp=2.0, hostname="w", freq=10.0)
    assert decode_event(encode_event(online)) == online
    assert decode_event(b'{"type":"from-the-future","timestamp":1}') is None


def test_tail_follows_from_a_cursor(broker: Broker, clock: FakeClock) -> None:
    events = Events(broker, _Conf(), clock=clock)
    events.send([TaskReceived(timestamp=START, uuid="a"), TaskReceived(timestamp=START, uuid="b")])
    seen = list(events.tail())
    assert [e.uuid for e in seen] == ["a", "b"]  # type: ignore[union-attr]
    events.send([TaskReceived(timestamp=START, uuid="c")])
    assert [e.uuid for e in events.tail(after=seen[-1].id)] == ["c"]  # type: ignore[union-attr]


class _Conf:
    events_max_length = 100_000
