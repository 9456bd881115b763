"""The executor, one delivery at a time: each outcome ends stored and acked, retried,
handed back or dead-lettered with a reason that says why."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from recording import RecordingTracker

from conveyor import Conveyor, GroupResult, Reject, Task, group, states
from conveyor.brokers.base import Delivery
from conveyor.exceptions import EncodeError, NotRegistered
from conveyor.result import result_from_tuple
from conveyor.testing import FakeClock, memory_app
from conveyor.worker.executor import Executor

NOW = 1_900_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def app(clock: FakeClock) -> Conveyor:
    return memory_app(f"executor-{uuid.uuid4().hex[:6]}", clock=clock, task_max_deliveries=2)


@pytest.fixture
def tracker() -> RecordingTracker:
    return RecordingTracker()


@pytest.fixture
def executor(app: Conveyor, tracker: RecordingTracker) -> Executor:
    return Executor(app, "executor@test", tracker)


def _reserve(app: Conveyor) -> Delivery:
    [delivery] = app.broker.reserve(["default"], 1, 30.0)
    return delivery


def _handle(app: Conveyor, executor: Executor) -> tuple[Delivery, str]:
    """Reserve the next message, run it and send its ack, as a consumer does."""
    delivery = _reserve(app)
    state = executor.handle(delivery)
    executor.outbox.flush_acks()
    return delivery, state


def _queued(app: Conveyor) -> tuple[int, int, int]:
    stats = app.broker.stats().get("default")
    return (0, 0, 0) if stats is None else (stats.ready, stats.delayed, stats.reserved)


def test_success_is_stored_then_acked(
    app: Conveyor, executor: Executor, tracker: RecordingTracker
) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(2, 3)
    delivery, state = _handle(app, executor)
    assert state == states.SUCCESS
    assert result.get(timeout=1) == 5
    assert _queued(app) == (0, 0, 0)
    assert tracker.released_ids == [delivery.id]


def test_failure_is_stored_and_the_message_acked(app: Conveyor, executor: Executor) -> None:
    @app.task
    def charge(order_id: int) -> None:
        raise ValueError(f"card declined for order {order_id}")

    result = charge.delay(7)
    _, state = _handle(app, executor)
    assert state == states.FAILURE
    assert result.state == states.FAILURE
    assert isinstance(result.result, ValueError)
    assert str(result.result) == "card declined for order 7"
    assert _queued(app) == (0, 0, 0)
    assert app.broker.dead_letters() == []


def test_retry_publishes_the_next_attempt_after_its_countdown(
    app: Conveyor, executor: Executor, clock: FakeClock
) -> None:
    @app.task(bind=True, max_retries=3)
    def fetch(self: Task, url: str) -> str:
        if self.request.retries == 0:
            raise self.retry(countdown=30)
        return f"{url} fetched on try {self.request.retries + 1}"

    result = fetch.delay("https://example.com")
    _, state = _handle(app, executor)
    assert state == states.RETRY
    assert result.state == states.RETRY
    assert _queued(app) == (0, 1, 0)
    clock.advance(29)
    assert app.broker.reserve(["default"], 1, 30.0) == []
    clock.advance(1)
    _, state = _handle(app, executor)
    assert state == states.SUCCESS
    assert result.get(timeout=1) == "https://example.com fetched on try 2"


def test_reject_with_requeue_hands_the_message_back_as_a_new_delivery(
    app: Conveyor, executor: Executor
) -> None:
    @app.task(bind=True)
    def consume(self: Task) -> int:
        if not self.request.delivery_info["redelivered"]:
            raise Reject("not ready yet", requeue=True)
        return self.request.delivery_count

    result = consume.delay()
    _, state = _handle(app, executor)
    assert state == states.REJECTED
    assert _queued(app) == (1, 0, 0)
    _, state = _handle(app, executor)
    assert state == states.SUCCESS
    assert result.get(timeout=1) == 2


def test_reject_without_requeue_dead_letters_the_message(app: Conveyor, executor: Executor) -> None:
    @app.task
    def parse(payload: str) -> None:
        raise Reject(f"malformed payload {payload!r}", requeue=False)

    result = parse.delay("<xml")
    _, state = _handle(app, executor)
    assert state == states.REJECTED
    assert result.state == states.REJECTED
    [letter] = app.broker.dead_letters()
    assert letter.reason == "rejected by the task: malformed payload '<xml'"
    assert _queued(app) == (0, 0, 0)


def test_an_unknown_task_is_dead_lettered_and_recorded(app: Conveyor, executor: Executor) -> None:
    result = app.send_task("billing.tasks.refund", args=[7])
    _, state = _handle(app, executor)
    assert state == states.FAILURE
    [letter] = app.broker.dead_letters()
    assert letter.id == result.id
    assert letter.reason.startswith("no task named 'billing.tasks.refund' is registered")
    assert isinstance(result.result, NotRegistered)


def test_arguments_that_do_not_fit_are_dead_lettered(app: Conveyor, executor: Executor) -> None:
    runs: list[int] = []

    @app.task
    def resize(width: int) -> None:
        runs.append(width)

    result = app.send_task(resize.name, args=["wide"])
    _, state = _handle(app, executor)
    assert state == states.FAILURE
    assert runs == []
    [letter] = app.broker.dead_letters()
    assert letter.reason.startswith(f"{resize.name}: argument 'width': expected int")
    assert isinstance(result.result, TypeError)


def test_a_worker_error_counts_the_delivery_and_dead_letters_at_the_limit(
    app: Conveyor, executor: Executor
) -> None:
    @app.task
    def ping() -> str:
        return "pong"

    result = ping.delay()
    first = _reserve(app)
    executor.worker_error(first, RuntimeError("pool broke"))
    assert app.broker.dead_letters() == []
    second = _reserve(app)
    assert second.delivery_count == 2
    executor.worker_error(second, RuntimeError("pool broke again"))
    [letter] = app.broker.dead_letters()
    assert letter.reason == (
        "the worker failed on each of its 2 deliveries (task_max_deliveries is 2), "
        "the last time with RuntimeError: pool broke again"
    )
    assert result.state == states.FAILURE
    assert _queued(app) == (0, 0, 0)


def test_a_return_value_that_does_not_fit_its_annotation_fails(
    app: Conveyor, executor: Executor
) -> None:
    @app.task
    def count_orders() -> int:
        return "many"  # type: ignore[return-value]

    result = count_orders.delay()
    _, state = _handle(app, executor)
    assert state == states.FAILURE
    assert isinstance(result.result, EncodeError)
    assert "does not fit its return annotation int" in str(result.result)
    assert _queued(app) == (0, 0, 0)


def test_a_returned_result_handle_is_stored_as_ids_the_caller_rebuilds(
    app: Conveyor, executor: Executor
) -> None:
    @app.task
    def resize(size: int) -> int:
        return size // 2

    @app.task
    def start_thumbnails() -> Any:
        return group(resize.s(640), resize.s(320)).delay()

    handle = start_thumbnails.delay()
    _, state = _handle(app, executor)
    assert state == states.SUCCESS
    thumbnails = result_from_tuple(handle.get(timeout=1), app)
    assert isinstance(thumbnails, GroupResult)
    _handle(app, executor)
    _handle(app, executor)
    assert thumbnails.get(timeout=1) == [320, 160]
