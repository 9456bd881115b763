"""``Reject`` as Celery's: requeue gives a new, counted delivery that the task sees as
redelivered; without requeue the task ends REJECTED and its message is dead-lettered."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from conveyor import Conveyor, Reject, Task, states
from conveyor.testing import memory_app, run_until_empty


@pytest.fixture
def app() -> Conveyor:
    return memory_app(f"reject-{uuid.uuid4().hex[:6]}", task_max_deliveries=3)


def test_requeue_is_a_new_delivery_marked_redelivered(app: Conveyor) -> None:
    seen: list[dict[str, Any]] = []

    @app.task(bind=True)
    def consume(self: Task, order_id: int) -> str:
        seen.append(dict(self.request.delivery_info, count=self.request.delivery_count))
        if not self.request.delivery_info["redelivered"]:
            raise Reject("the warehouse is not ready", requeue=True)
        return f"order {order_id} consumed"

    result = consume.delay(7)
    run_until_empty(app)
    assert result.get(timeout=1) == "order 7 consumed"
    assert [(s["redelivered"], s["count"]) for s in seen] == [(False, 1), (True, 2)]
    assert seen[0]["routing_key"] == seen[0]["queue"] == "default"


def test_a_task_that_always_requeues_ends_in_the_dead_letters(app: Conveyor) -> None:
    runs: list[int] = []

    @app.task(bind=True)
    def never_ready(self: Task) -> None:
        runs.append(self.request.delivery_count)
        raise Reject("upstream down", requeue=True)

    result = never_ready.delay()
    run_until_empty(app)
    assert runs == [1, 2, 3]  # task_max_deliveries
    assert result.state == states.REJECTED
    [letter] = app.broker.dead_letters()
    assert letter.id == result.id
    assert letter.reason == (
        "rejected by the task on each of its 3 deliveries (task_max_deliveries is 3): upstream down"
    )
    with pytest.raises(Exception, match="rejected"):
        result.get(timeout=1)


def test_reject_without_requeue_is_dead_lettered_with_the_reason(app: Conveyor) -> None:
    @app.task
    def parse(payload: str) -> None:
        raise Reject(f"malformed payload {payload!r}", requeue=False)

    result = parse.delay("<xml")
    run_until_empty(app)
    assert result.state == states.REJECTED
    [letter] = app.broker.dead_letters()
    assert letter.reason == "rejected by the task: malformed payload '<xml'"
