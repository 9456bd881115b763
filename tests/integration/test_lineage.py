"""A task's lineage as Celery keeps it, read from another process than the worker's:
``AsyncResult.children`` (what a task sent while it ran), ``parent`` and ``root_id``."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest

from conveyor import AsyncResult, GroupResult, chain, states
from conveyor.exceptions import TimeLimitExceeded

from .support import Workers, extra_tasks, start_worker_with, wait_until

TIMEOUT = 30.0


@pytest.fixture
def lineage(tasks: ModuleType) -> Iterator[ModuleType]:
    with extra_tasks("lineage_tasks", tasks) as module:
        yield module


def start(workers: Workers) -> None:
    start_worker_with(workers, "lineage_tasks", "lineage.report", "-c", "2")


def test_children_are_the_tasks_a_task_sent(lineage, workers):
    start(workers)
    result = lineage.report.delay(["north", "south", "east"])
    assert result.get(timeout=TIMEOUT) == "sent"

    # a handle rebuilt from the id alone, as a web view in another process has it
    again = AsyncResult(result.id, app=lineage.app)
    children = again.children
    assert children is not None and len(children) == 3
    assert [child.get(timeout=TIMEOUT) for child in children] == [5, 5, 4]
    meta = again._get_task_meta()
    assert [c.id for c in meta["children"]] == [c.id for c in children]

    # each child knows who sent it, and the workflow's root
    first = AsyncResult(children[0].id, app=lineage.app)
    wait_until(lambda: first.ready(), what="the first child's outcome")
    assert first.parent is not None and first.parent.id == result.id
    assert first.root_id == result.id
    assert first.children == []


def test_a_group_and_a_chain_sent_from_a_task(lineage, workers):
    start(workers)
    result = lineage.nightly.delay()
    assert result.get(timeout=TIMEOUT) == "scheduled"

    sent_group, chain_start = AsyncResult(result.id, app=lineage.app).children
    # the group is one child, with its members; the chain is its first step (the later
    # steps are sent by the steps before them), as in Celery
    assert isinstance(sent_group, GroupResult)
    assert sent_group.get(timeout=TIMEOUT) == [5, 5]
    assert chain_start.get(timeout=TIMEOUT) == 4


def test_a_task_that_sends_nothing_has_no_children(lineage, workers):
    start(workers)
    result = lineage.quiet.delay()
    pending = AsyncResult(result.id, app=lineage.app)
    assert result.get(timeout=TIMEOUT) == "nothing sent"
    assert pending.children == []
    assert pending.parent is None
    assert pending.root_id == result.id
    assert pending._get_task_meta()["children"] == []


def test_children_are_none_before_the_outcome(lineage):
    # no worker: the task is still PENDING, and Celery answers None until it is ready
    result = lineage.report.delay(["north"])
    assert AsyncResult(result.id, app=lineage.app).children is None


def test_an_async_task_records_what_it_sent(lineage, workers):
    start(workers)
    result = lineage.notify_all.delay(["north", "west"])
    assert result.get(timeout=TIMEOUT) == 2

    children = AsyncResult(result.id, app=lineage.app).children
    assert [child.get(timeout=TIMEOUT) for child in children] == [5, 4]


def test_a_chain_steps_parent_is_found_from_its_id_alone(lineage, workers):
    start(workers)
    sent = chain(lineage.count_region.s("east"), lineage.count_region.si("west")).delay()
    assert sent.get(timeout=TIMEOUT) == 4

    last = AsyncResult(sent.id, app=lineage.app)  # no parent given: read from its record
    assert last.parent is not None and last.parent.id == sent.parent.id
    assert last.root_id == sent.parent.id
    assert last.parent.get(timeout=TIMEOUT) == 4
    # as in Celery, a step's children include the step after it
    assert [c.id for c in AsyncResult(sent.parent.id, app=lineage.app).children] == [sent.id]


def test_link_callbacks_are_children_of_the_task_they_follow(lineage, workers):
    start(workers)
    sent = lineage.count_region.apply_async(("north",), link=lineage.count_region.si("far"))
    assert sent.get(timeout=TIMEOUT) == 5

    (callback,) = AsyncResult(sent.id, app=lineage.app).children
    assert callback.get(timeout=TIMEOUT) == 3


def test_a_task_killed_at_its_time_limit_keeps_its_place_in_the_workflow(lineage, workers):
    # the supervisor stores the killed step's failure, the workflow code the step after it
    start(workers)
    sent = chain(
        lineage.count_region.si("east"), lineage.hang.si(), lineage.count_region.si("west")
    ).delay()
    with pytest.raises(TimeLimitExceeded):
        sent.get(timeout=TIMEOUT)
    first = sent.parent.parent

    killed = AsyncResult(sent.parent.id, app=lineage.app)
    assert killed.state == states.FAILURE
    assert isinstance(killed.result, TimeLimitExceeded)
    assert killed.root_id == first.id
    assert killed.parent is not None and killed.parent.id == first.id
    stopped = AsyncResult(sent.id, app=lineage.app)
    assert stopped.root_id == first.id
    assert stopped.parent is not None and stopped.parent.id == killed.id
