"""A dead letter re-sent with ``conveyor dead-letters retry`` is a new attempt: it runs with
a fresh set of deliveries, and its outcome replaces the failure that sent it to the dead
letters. On the SQLite file and on Redis, with real worker processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import states
from conveyor.exceptions import TimeoutError

from .support import APP_SPEC, read_jsonl, wait_until


@pytest.fixture(params=["sqlite", "redis"])
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """This module's tests run twice: on a SQLite file, and on the private redis-server
    under a key prefix of the test's own (broker, results and coordinator alike)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'conveyor.db'}"
    pytest.importorskip("redis")
    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    return f"{url}?prefix={prefix}"


def dead_letter_ids(app) -> list[str]:
    return [letter.id for letter in app.broker.dead_letters()]


def test_a_message_that_used_up_its_deliveries_succeeds_when_resent(tasks, workers, workdir, cli):
    # Two deliveries allowed: the task kills its process on both, and the third delivery
    # is refused. The failure is stored with the fence of delivery 3.
    workers.start(env={"CONVEYOR_TASK_MAX_DELIVERIES": "2"})
    fixed, log = workdir / "fixed", workdir / "runs.jsonl"
    result = tasks.crash_until.delay(str(fixed), str(log))
    wait_until(lambda: dead_letter_ids(tasks.app) == [result.id], what="the dead letter")
    assert result.state == states.FAILURE

    fixed.touch()
    resent = cli("-A", APP_SPEC, "dead-letters", "retry", result.id)

    assert resent.returncode == 0, resent.stderr
    assert resent.stdout.strip() == "re-sent 1 message(s)"
    # The re-send's first delivery outranks delivery 3 of the attempt before it.
    wait_until(lambda: result.state == states.SUCCESS, what="the re-sent task to succeed")
    assert result.get(timeout=1) == "survived"
    assert [run["delivery_count"] for run in read_jsonl(log)] == [1, 2, 1]
    assert dead_letter_ids(tasks.app) == []


def test_a_resent_message_gets_a_full_set_of_deliveries(tasks, workers, workdir, cli):
    workers.start(env={"CONVEYOR_TASK_MAX_DELIVERIES": "2"})
    fixed, log = workdir / "fixed", workdir / "runs.jsonl"
    result = tasks.crash_until.delay(str(fixed), str(log))
    wait_until(lambda: dead_letter_ids(tasks.app) == [result.id], what="the dead letter")

    # Still broken: the re-sent message is delivered twice again (it is not refused at once
    # for the deliveries before the re-send) and ends in the dead letters once more.
    assert cli("-A", APP_SPEC, "dead-letters", "retry", "--all").returncode == 0
    wait_until(lambda: len(read_jsonl(log)) == 4, what="two more runs")
    wait_until(lambda: dead_letter_ids(tasks.app) == [result.id], what="the dead letter again")
    assert result.state == states.FAILURE

    fixed.touch()
    assert cli("-A", APP_SPEC, "dead-letters", "retry", "--all").returncode == 0
    wait_until(lambda: result.state == states.SUCCESS, what="the second re-send to succeed")
    assert result.get(timeout=1) == "survived"
    assert [run["delivery_count"] for run in read_jsonl(log)] == [1, 2, 1, 2, 1]


def test_a_resent_task_reads_pending_until_its_new_attempt_ends(tasks, workers, workdir, cli):
    worker = workers.start(env={"CONVEYOR_TASK_MAX_DELIVERIES": "2"})
    fixed, log = workdir / "fixed", workdir / "runs.jsonl"
    result = tasks.crash_until.delay(str(fixed), str(log))
    wait_until(lambda: dead_letter_ids(tasks.app) == [result.id], what="the dead letter")
    assert worker.stop() == 0
    fixed.touch()

    assert cli("-A", APP_SPEC, "dead-letters", "retry", result.id).returncode == 0

    # No worker runs: the old failure is forgotten, the task waits as a sent task does.
    assert result.state == states.PENDING
    with pytest.raises(TimeoutError, match="state PENDING"):
        result.get(timeout=0.2)
    workers.start(env={"CONVEYOR_TASK_MAX_DELIVERIES": "2"})
    assert result.get(timeout=15) == "survived"
