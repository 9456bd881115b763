"""The same workflows on every broker and result backend: memory, SQLite and Redis.

Workflows use only the Broker and ResultBackend interfaces, so each scenario here must
give the same answer on each. Tasks run in this thread (``run_until_empty``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conveyor import Conveyor, GroupResult, chain, chord, group
from conveyor.backends import MemoryBackend, SQLiteBackend
from conveyor.brokers import SQLiteBroker
from conveyor.brokers.base import Envelope
from conveyor.brokers.memory import MemoryBroker
from conveyor.testing import run_until_empty


def memory_app(tmp: Path, request: pytest.FixtureRequest) -> Conveyor:
    return Conveyor("wf-memory", broker=MemoryBroker(), backend=MemoryBackend())


def sqlite_app(tmp: Path, request: pytest.FixtureRequest) -> Conveyor:
    path = tmp / "wf.db"
    return Conveyor("wf-sqlite", broker=SQLiteBroker(path), backend=SQLiteBackend(path))


def redis_app(tmp: Path, request: pytest.FixtureRequest) -> Conveyor:
    from conveyor.backends.redis import RedisBackend
    from conveyor.brokers.redis import RedisBroker

    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return Conveyor(
        "wf-redis",
        broker=RedisBroker(url, prefix=prefix),
        backend=RedisBackend(url, prefix=prefix),
    )


APPS: dict[str, Callable[[Path, pytest.FixtureRequest], Conveyor]] = {
    "memory": memory_app,
    "sqlite": sqlite_app,
    "redis": redis_app,
}


@pytest.fixture(params=sorted(APPS))
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Conveyor]:
    instance = APPS[request.param](tmp_path, request)
    try:
        yield instance
    finally:
        instance.close()


class Boom(Exception):
    pass


@pytest.fixture
def t(app: Conveyor) -> SimpleNamespace:
    runs: dict[str, int] = {}
    suffix = uuid.uuid4().hex[:6]

    @app.task(name=f"b.add.{suffix}")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name=f"b.tsum.{suffix}")
    def tsum(values: list[int]) -> int:
        runs["tsum"] = runs.get("tsum", 0) + 1
        return sum(values)

    @app.task(name=f"b.identity.{suffix}")
    def identity(value: Any) -> Any:
        return value

    @app.task(name=f"b.fail.{suffix}")
    def fail(*args: Any) -> None:
        raise Boom("no")

    @app.task(name=f"b.replacer.{suffix}", bind=True)
    def replacer(self: Any, x: int) -> Any:
        return self.replace(add.s(x, 100))

    return SimpleNamespace(
        add=add, tsum=tsum, identity=identity, fail=fail, replacer=replacer, runs=runs
    )


def drain(app: Conveyor) -> None:
    run_until_empty(app, max_tasks=10_000)


def test_chain_group_and_chord(app: Conveyor, t: SimpleNamespace) -> None:
    flow = chain(t.add.s(1, 1), group(t.add.s(i) for i in range(3)), t.tsum.s())
    batch = group(t.add.s(i, i) for i in range(50)).apply_async()
    result = flow.apply_async()
    big = chord((t.add.s(i, 0) for i in range(100)), t.tsum.s()).apply_async()
    drain(app)
    assert result.get(timeout=5) == 9
    assert batch.get(timeout=5) == [2 * i for i in range(50)]
    assert big.get(timeout=5) == sum(range(100))
    restored = GroupResult.restore(batch.id, app=app)
    assert restored is not None and restored.completed_count() == 50


def test_a_frozen_signature_repeated_in_a_chord_header_fills_each_place(
    app: Conveyor, t: SimpleNamespace
) -> None:
    frozen = t.add.s(1, 2)
    frozen.freeze()
    result = chord([frozen] * 3 + [t.add.s(10, 0)], t.tsum.s()).apply_async()
    drain(app)
    assert result.get(timeout=5) == 19  # Celery's answer: each place gets the member's result
    assert t.runs["tsum"] == 1


def test_a_frozen_callback_fires_in_each_chord_it_ends(app: Conveyor, t: SimpleNamespace) -> None:
    callback = t.tsum.s()
    callback.freeze()
    first = chord([t.add.s(1, 1), t.add.s(2, 2)], callback).apply_async()
    drain(app)
    assert first.get(timeout=5) == 6
    second = chord([t.add.s(10, 10), t.add.s(20, 20)], callback).apply_async()
    drain(app)
    assert second.get(timeout=5) == 60 and t.runs["tsum"] == 2  # Celery runs it in each


def test_nested_chords_and_replace(app: Conveyor, t: SimpleNamespace) -> None:
    header = [
        chain(t.add.s(1, 1), t.add.s(10)),
        group(t.add.s(1, 0), t.add.s(2, 0)),
        chord([t.add.s(5, 5), t.add.s(6, 6)], t.tsum.s()),
        t.replacer.s(1),
    ]
    result = chain(chord(header, t.identity.s()), t.identity.s()).apply_async()
    drain(app)
    assert result.get(timeout=5) == [12, 1, 2, 22, 101]


def test_failing_member_and_duplicate_member(app: Conveyor, t: SimpleNamespace) -> None:
    failing = chord([t.add.s(1, 1), t.fail.s()], t.tsum.s()).apply_async()
    published: list[Envelope] = []
    publish = app.broker.publish

    def keep(envelopes: Any) -> None:
        published.extend(envelopes)
        publish(envelopes)

    app.broker.publish = keep  # type: ignore[method-assign]
    twice = chord([t.add.s(1, 1), t.add.s(2, 2)], t.tsum.s()).apply_async()
    app.broker.publish = publish  # type: ignore[method-assign]
    drain(app)
    publish([published[0]])  # a member's message delivered again after all ran
    drain(app)
    with pytest.raises(Boom):  # the failed member's own error, as in Celery
        failing.get(timeout=5)
    assert "Boom" in str(failing.get(timeout=5, follow_parents=False, propagate=False))
    assert twice.get(timeout=5) == 6
    assert t.runs["tsum"] == 1
