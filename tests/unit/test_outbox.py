"""The outbox's order: an outcome is stored before its message is acked, and an outcome
that continues a workflow is stored, and the workflow continued, before the next task starts."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from recording import RecordingTracker

from conveyor import Conveyor, chain, states
from conveyor.records import TaskRecord
from conveyor.serialization import decode_message
from conveyor.testing import memory_app
from conveyor.worker.executor import Executor
from conveyor.worker.outbox import Outbox


@pytest.fixture
def app() -> Conveyor:
    return memory_app(f"outbox-{uuid.uuid4().hex[:6]}")


def test_an_outcome_is_stored_before_its_ack(
    app: Conveyor, monkeypatch: pytest.MonkeyPatch
) -> None:
    @app.task
    def ping() -> str:
        return "pong"

    result = ping.delay()
    [delivery] = app.broker.reserve(["default"], 1, 30.0)
    message = decode_message(delivery.body)
    events: list[str] = []
    write, ack_many = app.results.write_encoded, app.broker.ack_many

    def writing(*args: Any, **kwargs: Any) -> list[bool]:
        events.append("stored")
        return write(*args, **kwargs)

    def acking(*args: Any, **kwargs: Any) -> list[bool]:
        events.append("acked")
        return ack_many(*args, **kwargs)

    monkeypatch.setattr(app.results, "write_encoded", writing)
    monkeypatch.setattr(app.broker, "ack_many", acking)
    tracker = RecordingTracker()
    outbox = Outbox(app, tracker)
    try:
        outbox.outcome(delivery, message, TaskRecord(status=states.SUCCESS, result="pong"), 1)
        outbox.ack(delivery, message)
        assert events == []  # both wait for the batch
        outbox.flush_acks()
    finally:
        outbox.close()
    assert events == ["stored", "acked"]
    assert result.get(timeout=1) == "pong"
    assert tracker.released_ids == [delivery.id]


def test_a_workflow_goes_on_before_the_next_task_starts(app: Conveyor) -> None:
    seen: dict[str, Any] = {}

    @app.task
    def fetch(order_id: int) -> int:
        return order_id * 10

    @app.task
    def total(amount: int) -> int:
        return amount + 1

    @app.task
    def audit() -> None:
        queued = app.broker.stats()["default"]
        seen["fetch"] = fetched.state
        seen["ready"] = queued.ready

    fetched = chain(fetch.s(4), total.s()).delay().parent
    assert fetched is not None
    audit.delay()
    executor = Executor(app, "outbox@test", RecordingTracker())
    try:
        for _ in range(2):  # fetch, then audit: total is published when audit starts
            [delivery] = app.broker.reserve(["default"], 1, 30.0)
            executor.handle(delivery)
        executor.outbox.flush_acks()
    finally:
        executor.outbox.close()
    assert seen == {"fetch": states.SUCCESS, "ready": 1}
    [delivery] = app.broker.reserve(["default"], 1, 30.0)
    assert decode_message(delivery.body).task == total.name
