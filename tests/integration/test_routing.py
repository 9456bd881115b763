"""Priorities order a queue; a queue is consumed only by workers that listen to it."""

from __future__ import annotations

from conveyor import states

from .support import DEFAULT_TIMEOUT, read_jsonl


def test_high_priority_tasks_run_first(tasks, workers, workdir):
    path = str(workdir / "order.jsonl")
    sent = []
    for i in range(3):
        sent.append(tasks.record_label.apply_async((path, f"low-{i}"), priority=1))
        sent.append(tasks.record_label.apply_async((path, f"high-{i}"), priority=8))

    workers.start("-c", "1", "--prefetch-multiplier", "1")

    for result in sent:
        result.get(timeout=DEFAULT_TIMEOUT)
    labels = [r["label"] for r in read_jsonl(path)]
    assert labels == ["high-0", "high-1", "high-2", "low-0", "low-1", "low-2"]


def test_priority_set_on_the_task_applies_and_a_call_can_override_it(tasks, workers, workdir):
    path = str(workdir / "order.jsonl")
    sent = [
        tasks.record_label.apply_async((path, "normal")),
        tasks.urgent_label.apply_async((path, "demoted"), priority=0),
        tasks.urgent_label.apply_async((path, "urgent")),
    ]

    workers.start("-c", "1", "--prefetch-multiplier", "1")

    for result in sent:
        result.get(timeout=DEFAULT_TIMEOUT)
    assert [r["label"] for r in read_jsonl(path)] == ["urgent", "normal", "demoted"]


def test_queue_is_consumed_only_by_a_worker_listening_to_it(tasks, workers):
    routed = tasks.where.apply_async(queue="high")
    plain = tasks.where.delay()

    default_worker = workers.start()
    assert plain.get(timeout=DEFAULT_TIMEOUT)["hostname"] == default_worker.hostname
    assert routed.state == states.PENDING
    assert tasks.app.broker.stats()["high"].ready == 1
    assert default_worker.stop() == 0

    high_worker = workers.start("-Q", "high")

    info = routed.get(timeout=DEFAULT_TIMEOUT)
    assert info["queue"] == "high"
    assert info["hostname"] == high_worker.hostname


def test_worker_consumes_several_queues(tasks, workers):
    results = [tasks.where.apply_async(queue=q) for q in ("alpha", "beta", "default")]

    workers.start("-Q", "alpha,beta")

    assert results[0].get(timeout=DEFAULT_TIMEOUT)["queue"] == "alpha"
    assert results[1].get(timeout=DEFAULT_TIMEOUT)["queue"] == "beta"
    assert results[2].state == states.PENDING
