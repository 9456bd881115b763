"""Messages a worker cannot run go to the dead letters with a reason; the worker carries on,
and ``conveyor dead-letters`` lists, re-sends and deletes them."""

from __future__ import annotations

import pytest

from conveyor import Conveyor, states
from conveyor.brokers.base import Envelope
from conveyor.exceptions import ContentDisallowed, NotRegistered

from .support import APP_SPEC, DEFAULT_TIMEOUT, wait_until


def dead_letter_ids(app) -> list[str]:
    return [letter.id for letter in app.broker.dead_letters()]


def test_unknown_task_name_is_dead_lettered_and_the_worker_carries_on(tasks, workers, cli):
    workers.start()

    result = tasks.app.send_task("no.such.task", [1])

    with pytest.raises(NotRegistered, match="no.such.task"):
        result.get(timeout=DEFAULT_TIMEOUT)
    assert result.state == states.FAILURE
    # The outcome is stored just before the message moves to the dead letters.
    wait_until(lambda: dead_letter_ids(tasks.app) == [result.id], what="the dead letter")
    listed = cli("dead-letters", "list", "-A", APP_SPEC)
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    assert line.startswith(result.id)
    assert "queue=default" in line
    assert "no task named 'no.such.task' is registered" in line
    assert "1 dead letter(s)" in listed.stderr
    # The worker is still serving.
    assert tasks.add.delay(1, 1).get(timeout=DEFAULT_TIMEOUT) == 2


def test_malformed_body_is_dead_lettered_with_the_reason(tasks, workers):
    worker = workers.start()

    tasks.app.broker.publish([Envelope(id="garbage-1", queue="default", body=b"not json")])

    wait_until(lambda: dead_letter_ids(tasks.app) == ["garbage-1"], what="the dead letter")
    (letter,) = tasks.app.broker.dead_letters()
    assert "malformed message" in letter.reason
    assert letter.body == b"not json"
    assert "dead-lettered message garbage-1" in worker.log()
    assert tasks.add.delay(2, 2).get(timeout=DEFAULT_TIMEOUT) == 4
    assert worker.running()


def test_pickled_message_is_refused_by_an_app_that_does_not_accept_pickle(
    tasks, workers, workdir, broker_url
):
    workers.start()
    marker = workdir / "ran"
    producer = Conveyor("producer", broker=broker_url, accept_content=["json", "pickle"])
    try:
        result = producer.send_task("sample_tasks.touch", [str(marker)], serializer="pickle")

        with pytest.raises(ContentDisallowed, match="does not accept pickle"):
            result.get(timeout=DEFAULT_TIMEOUT)
    finally:
        producer.close()
    wait_until(lambda: dead_letter_ids(tasks.app) == [result.id], what="the dead letter")
    (letter,) = tasks.app.broker.dead_letters()
    assert "refused a pickled message" in letter.reason
    assert not marker.exists()


def test_pickled_message_runs_on_a_worker_that_opted_in(tasks, workers, broker_url):
    workers.start(env={"CONVEYOR_ACCEPT_CONTENT": "json,pickle"})
    producer = Conveyor("producer", broker=broker_url, accept_content=["json", "pickle"])
    try:
        result = producer.send_task("sample_tasks.add", [3, 4], serializer="pickle")
        assert result.get(timeout=DEFAULT_TIMEOUT) == 7
    finally:
        producer.close()
    assert tasks.app.broker.dead_letters() == []


def test_dead_letters_retry_all_resends_them_to_a_fixed_worker(tasks, workers, cli):
    old = workers.start()
    result = tasks.app.send_task("sample_tasks.late_feature", [4])
    with pytest.raises(NotRegistered):
        result.get(timeout=DEFAULT_TIMEOUT)
    wait_until(lambda: dead_letter_ids(tasks.app) == [result.id], what="the dead letter")
    assert old.stop() == 0

    # The fix is deployed: this worker knows the task.
    workers.start(env={"SAMPLE_TASKS_LATE": "1"})
    retried = cli("-A", APP_SPEC, "dead-letters", "retry", "--all")

    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.strip() == "re-sent 1 message(s)"
    wait_until(lambda: result.state == states.SUCCESS, what="the re-sent task to succeed")
    assert result.get(timeout=1) == 40
    assert tasks.app.broker.dead_letters() == []


def test_dead_letters_retry_without_ids_or_all_is_a_usage_error(tasks, cli):
    refused = cli("-A", APP_SPEC, "dead-letters", "retry")

    assert refused.returncode == 2
    assert "pass --all" in refused.stderr


def test_dead_letters_purge_all_empties_them(tasks, workers, cli):
    workers.start()
    for i in range(3):
        tasks.app.broker.publish([Envelope(id=f"bad-{i}", queue="default", body=b"{")])
    wait_until(lambda: len(dead_letter_ids(tasks.app)) == 3, what="three dead letters")

    purged = cli("-A", APP_SPEC, "dead-letters", "purge", "--all")

    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.strip() == "deleted 3 dead letter(s)"
    listed = cli("-A", APP_SPEC, "dead-letters", "list")
    assert listed.stdout == ""
    assert "0 dead letter(s)" in listed.stderr
    assert tasks.app.broker.dead_letters() == []


def test_dead_letters_purge_by_id_keeps_the_others(tasks, workers, cli):
    workers.start()
    for name in ("keep", "drop"):
        tasks.app.broker.publish([Envelope(id=name, queue="default", body=b"\xff")])
    wait_until(lambda: len(dead_letter_ids(tasks.app)) == 2, what="two dead letters")

    purged = cli("-A", APP_SPEC, "dead-letters", "purge", "drop")

    assert purged.stdout.strip() == "deleted 1 dead letter(s)"
    assert dead_letter_ids(tasks.app) == ["keep"]
