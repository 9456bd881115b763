"""Messages as Celery handles them, through real workers: ``Reject`` with and without
requeue, unannotated values that keep their types, and revocation by stamped header."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from types import ModuleType

import pytest

from conveyor import TaskRevokedError, states

from .support import (
    APP_SPEC,
    WorkerProcess,
    Workers,
    extra_tasks,
    read_jsonl,
    start_worker_with,
)

TIMEOUT = 30.0
MODULE = "compat_tasks"


@pytest.fixture
def compat(tasks: ModuleType) -> Iterator[ModuleType]:
    with extra_tasks(MODULE, tasks) as module:
        yield module


def start(workers: Workers, *args: str) -> WorkerProcess:
    return start_worker_with(workers, MODULE, "compat.import_feed", *args)


def test_reject_with_requeue_is_redelivered(compat, workers, workdir):
    log = str(workdir / "feed.jsonl")
    start(workers)
    result = compat.import_feed.delay("prices", log, 3)

    assert result.get(timeout=TIMEOUT) == "prices imported"
    assert read_jsonl(log) == [
        {"delivery": 1, "redelivered": False},
        {"delivery": 2, "redelivered": True},
        {"delivery": 3, "redelivered": True},
    ]


def test_reject_requeued_forever_ends_in_the_dead_letters(compat, workers, workdir, cli):
    log = str(workdir / "feed.jsonl")
    start(workers)
    result = compat.import_feed.delay("rates", log, 1000)

    with pytest.raises(Exception, match="rejected by the task on each of its 3 deliveries"):
        result.get(timeout=TIMEOUT)
    assert result.state == states.REJECTED
    assert [line["delivery"] for line in read_jsonl(log)] == [1, 2, 3]
    listed = cli("dead-letters", "list", "-A", APP_SPEC)
    assert result.id in listed.stdout and "rates: the upstream is not ready" in listed.stdout


def test_reject_without_requeue_ends_rejected(compat, workers, cli):
    worker = start(workers)
    result = compat.parse_invoice.delay("<invoice")

    with pytest.raises(Exception, match="malformed invoice"):
        result.get(timeout=TIMEOUT)
    assert result.state == states.REJECTED
    listed = cli("dead-letters", "list", "-A", APP_SPEC)
    assert "rejected by the task: malformed invoice '<invoice'" in listed.stdout
    assert "dead-lettered" in worker.log()


def test_unannotated_values_keep_their_types_through_a_worker(compat, workers):
    start(workers)
    when = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    receipt = uuid.UUID("8d3c9f0e-2a6b-4c1d-9e8f-0a1b2c3d4e5f")
    sent = [b"\x89PNG", when, when.date(), when.time(), receipt, Decimal("19.99")]
    result = compat.describe.delay(sent[0], *sent[1:4], receipt=receipt, price=Decimal("19.99"))

    outcome = result.get(timeout=TIMEOUT)
    assert outcome["types"] == ["bytes", "datetime", "date", "time", "UUID", "Decimal"]
    assert outcome["values"] == sent


def test_revoke_by_stamped_headers_holds_for_workers_started_later(compat, workers):
    batch = [compat.describe.s(i).stamp(import_batch="2026-03-01").delay() for i in range(3)]
    other = compat.describe.s(9).stamp(import_batch="2026-03-02").delay()
    compat.app.control.revoke_by_stamped_headers({"import_batch": "2026-03-01"})
    start(workers)

    assert other.get(timeout=TIMEOUT) == {"types": ["int"], "values": [9]}
    for result in batch:
        with pytest.raises(TaskRevokedError, match="import_batch='2026-03-01'"):
            result.get(timeout=TIMEOUT)
        assert result.state == states.REVOKED


def test_argsrepr_is_what_logs_and_results_show(compat, workers, cli):
    worker = start(workers)
    result = compat.sign_in.apply_async(("ada", "hunter2"), argsrepr="('ada', '<hidden>')")

    with pytest.raises(PermissionError, match="ada may not sign in"):
        result.get(timeout=TIMEOUT)
    shown = cli("result", result.id, "-A", APP_SPEC).stdout
    assert "args: ('ada', '<hidden>')" in shown
    log = worker.wait_for_log("PermissionError: ada may not sign in (args ('ada', '<hidden>')")
    assert "hunter2" not in shown + log
