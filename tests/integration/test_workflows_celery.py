"""Workflow behaviour of Celery's that ported code relies on, run by real workers:
calling a workflow sends it, ``group.link`` runs its callback once, and a chord whose
member fails raises that member's error from ``get()``."""

from __future__ import annotations

import pytest

from conveyor import ChordError, chain, chord, group

from .support import read_jsonl, wait_until
from .workflow_support import start_worker, wf

__all__ = ["wf"]

TIMEOUT = 30.0


def test_calling_workflows_sends_them(wf, workers):
    start_worker(workers, "-c", "2")
    total = chain(wf.add.s(2, 2), wf.add.s(4))()
    squares = group(wf.mul.s(i, i) for i in range(4))()
    summed = chord(wf.add.s(i, i) for i in range(4))(wf.tsum.s())

    assert total.get(timeout=TIMEOUT) == 8
    assert squares.get(timeout=TIMEOUT) == [0, 1, 4, 9]
    assert summed.get(timeout=TIMEOUT) == 12


def test_group_link_runs_its_callback_once(wf, workers, workdir):
    log = str(workdir / "announce.jsonl")
    start_worker(workers, "-c", "2")
    batch = group(wf.add.s(i, i) for i in range(5))
    batch.link(wf.announce.si(log, "batch"))
    result = batch.delay()

    assert result.get(timeout=TIMEOUT) == [0, 2, 4, 6, 8]

    def settled() -> bool:  # the callback ran and nothing is left to run
        return bool(read_jsonl(log)) and not sum(s.total for s in wf.app.broker.stats().values())

    wait_until(settled, what="the linked callback and an empty broker")
    assert read_jsonl(log) == [{"kind": "announce", "label": "batch"}]


def test_chord_member_failure_raises_the_members_error(wf, workers, workdir):
    log = str(workdir / "errors.jsonl")
    start_worker(workers, "-c", "2")
    header = [wf.add.s(1, 2), wf.add.s(3, 4), wf.fail.s("card-7")]
    callback = wf.callback_ran.s(log).on_error(wf.record_error.s(log))
    result = chord(header, callback)()

    with pytest.raises(wf.Declined, match="card-7"):
        result.get(timeout=TIMEOUT)
    with pytest.raises(ChordError, match="wf.fail"):
        result.get(timeout=TIMEOUT, follow_parents=False)
    errbacks = wait_until(lambda: [e for e in read_jsonl(log) if e["kind"] == "errback"])
    assert errbacks == [{"kind": "errback", "failed": result.id}]


def test_add_to_chord_from_a_member(wf, workers):
    start_worker(workers, "-c", "2")
    result = chord([wf.split_batch.s([1, 2, 3, 4, 5]), wf.add.s(10, 10)], wf.identity.s())()

    # the member added the rest of its batch, two rows at a time, before it finished
    assert result.get(timeout=TIMEOUT) == [3, 20, 7, 5]
