"""``ResultBackend.list_json`` over every backend, and ``ResultStore.list`` on top of it:
filters and pages done by the store, newest first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_backend_contract import BACKENDS, START

from conveyor import states
from conveyor.backends.base import Listing, ResultBackend
from conveyor.keys import TASK_PREFIX
from conveyor.records import ResultStore, TaskRecord
from conveyor.testing import FakeClock
from integration.cluster_support import redis_cluster  # noqa: F401  (a fixture)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture(params=sorted(BACKENDS))
def backend(
    request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path
) -> Iterator[ResultBackend]:
    instance = BACKENDS[request.param](clock, tmp_path, request)
    yield instance
    instance.close()


def put(backend: ResultBackend, clock: FakeClock, n: int, **fields: object) -> None:
    clock.advance(1)
    value = json.dumps({"n": n, **fields}).encode()
    backend.set(f"{TASK_PREFIX}{n:04d}", value, ttl=3600, fence=1)


def numbers(rows: list[tuple[str, bytes]]) -> list[int]:
    return [json.loads(value)["n"] for _, value in rows]


def test_listing_filters_and_pages_newest_first(backend: ResultBackend, clock: FakeClock) -> None:
    for n in range(30):
        put(backend, clock, n, status="FAILURE" if n % 3 == 0 else "SUCCESS", task=f"t{n % 2}")
    backend.set("not-a-task", b"{}", ttl=3600)
    everything = Listing(TASK_PREFIX, limit=100)
    assert numbers(backend.list_json(everything)) == list(reversed(range(30)))
    assert numbers(backend.list_json(everything._replace(limit=5, offset=3))) == [
        26,
        25,
        24,
        23,
        22,
    ]
    failed = Listing(TASK_PREFIX, (("status", "FAILURE"),), limit=3)
    assert numbers(backend.list_json(failed)) == [27, 24, 21]
    assert numbers(backend.list_json(failed._replace(offset=3))) == [18, 15, 12]
    both = Listing(TASK_PREFIX, (("status", "FAILURE"), ("task", "t0")), limit=100)
    assert numbers(backend.list_json(both)) == [24, 18, 12, 6, 0]
    recent = Listing(TASK_PREFIX, at_least=("n", 25), limit=100)
    assert numbers(backend.list_json(recent)) == [29, 28, 27, 26, 25]
    assert backend.list_json(everything._replace(offset=30)) == []


def test_listing_leaves_out_expired_and_deleted(backend: ResultBackend, clock: FakeClock) -> None:
    put(backend, clock, 1)
    backend.set(f"{TASK_PREFIX}short", json.dumps({"n": 2}).encode(), ttl=5)
    put(backend, clock, 3)
    backend.delete([f"{TASK_PREFIX}0003"])
    clock.advance(10)
    assert numbers(backend.list_json(Listing(TASK_PREFIX))) == [1]


def test_result_store_lists_task_records(backend: ResultBackend, clock: FakeClock) -> None:
    store = ResultStore(backend, expires=3600, clock=clock)
    for n in range(6):
        clock.advance(60)
        status = states.FAILURE if n in (1, 4) else states.SUCCESS
        store.write(f"id-{n}", TaskRecord(status=status, task="a" if n < 3 else "b"), fence=1)
    failed = store.list(state=states.FAILURE)
    assert [task_id for task_id, _ in failed] == ["id-4", "id-1"]
    assert all(record.status == states.FAILURE for _, record in failed)
    assert [i for i, _ in store.list(name="a", limit=2)] == ["id-2", "id-1"]
    assert [i for i, _ in store.list(since=START + 250)] == ["id-5", "id-4"]
    assert [i for i, _ in store.list(limit=2, offset=2)] == ["id-3", "id-2"]
