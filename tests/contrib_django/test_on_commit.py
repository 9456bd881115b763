"""Sending on commit: ``delay_on_commit``, the ``send_on_commit`` setting, and the plain
``transaction.on_commit(lambda: task.delay(...))``; with a real worker, a rolled-back
transaction sends nothing and a committed one runs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from django.db import transaction

from contrib_django.testapp.models import Tick
from contrib_django.testapp.tasks import tick
from conveyor import Conveyor, group, shared_task
from conveyor.contrib.django.conf import configure
from conveyor.contrib.django.task import DjangoTask
from conveyor.contrib.django.testing import eager

from .conftest import Worker, wait_until

HELD = "held"  # a queue no worker consumes: what was sent stays visible


class Rollback(Exception):
    pass


@pytest.fixture
def held(project_app: Conveyor) -> Iterator[Conveyor]:
    yield project_app
    project_app.broker.purge(HELD)


def sent(app: Conveyor, task_id: str) -> bool:
    return bool(app.broker.contains([task_id]))


def test_apply_async_on_commit_waits_for_the_commit(held: Conveyor) -> None:
    with transaction.atomic():
        result = tick.apply_async_on_commit(["x"], queue=HELD)
        assert not sent(held, result.id)  # built (it has an id), not yet published
    assert sent(held, result.id)


def test_nothing_is_sent_when_the_transaction_rolls_back(held: Conveyor) -> None:
    with pytest.raises(Rollback), transaction.atomic():
        result = tick.apply_async_on_commit(["x"], queue=HELD)
        raise Rollback
    assert not sent(held, result.id)
    assert held.broker.stats().get(HELD) is None or held.broker.stats()[HELD].ready == 0


def test_a_rolled_back_send_leaves_its_idempotency_key_free(held: Conveyor) -> None:
    key = f"tick-{time.monotonic_ns()}"
    with pytest.raises(Rollback), transaction.atomic():
        dropped = tick.apply_async_on_commit(["x"], queue=HELD, idempotency_key=key)
        raise Rollback
    with transaction.atomic():
        kept = tick.apply_async_on_commit(["x"], queue=HELD, idempotency_key=key)
    assert kept.id != dropped.id
    assert sent(held, kept.id) and not sent(held, dropped.id)
    again = tick.apply_async_on_commit(["x"], queue=HELD, idempotency_key=key)
    assert again.id == kept.id  # within the window, the committed send holds the key


def test_outside_a_transaction_on_commit_sends_at_once(held: Conveyor) -> None:
    result = tick.apply_async_on_commit(["x"], queue=HELD)
    assert sent(held, result.id)


def test_nested_blocks_wait_for_the_outermost_commit(held: Conveyor) -> None:
    with transaction.atomic():
        with transaction.atomic():
            kept = tick.apply_async_on_commit(["x"], queue=HELD)
        with pytest.raises(Rollback), transaction.atomic():
            dropped = tick.apply_async_on_commit(["y"], queue=HELD)
            raise Rollback
        assert not sent(held, kept.id)
    assert sent(held, kept.id)
    assert not sent(held, dropped.id)


def test_the_setting_makes_every_send_in_a_transaction_wait(held: Conveyor) -> None:
    held.conf.send_on_commit = True
    try:
        with transaction.atomic():
            one = tick.apply_async(["x"], queue=HELD)
            two = held.send_task("testapp.tick", ["y"], queue=HELD)
            three = group(tick.s("z").set(queue=HELD), tick.s("w").set(queue=HELD)).apply_async()
            assert not any(sent(held, r.id) for r in (one, two, *three.results))
        assert all(sent(held, r.id) for r in (one, two, *three.results))

        with pytest.raises(Rollback), transaction.atomic():
            lost = tick.apply_async(["x"], queue=HELD)
            raise Rollback
        assert not sent(held, lost.id)
        now = tick.apply_async(["x"], queue=HELD)  # no transaction: at once
        assert sent(held, now.id)
    finally:
        held.conf.send_on_commit = False


def test_without_the_setting_a_send_in_a_transaction_goes_at_once(held: Conveyor) -> None:
    with pytest.raises(Rollback), transaction.atomic():
        result = tick.apply_async(["x"], queue=HELD)
        assert sent(held, result.id)
        raise Rollback


def test_eager_tasks_on_commit_run_at_the_commit() -> None:
    with eager():
        with transaction.atomic():
            tick.delay_on_commit("eager")
            assert not Tick.objects.filter(label="eager").exists()
        assert Tick.objects.filter(label="eager").count() == 1
        with pytest.raises(Rollback), transaction.atomic():
            tick.delay_on_commit("rolled-back")
            raise Rollback
    assert not Tick.objects.filter(label="rolled-back").exists()


def test_with_a_worker_a_rollback_sends_nothing_and_a_commit_runs(worker: Worker) -> None:
    with pytest.raises(Rollback), transaction.atomic():
        Tick.objects.create(label="row")
        transaction.on_commit(lambda: tick.delay("styleguide"))
        tick.delay_on_commit("method")
        raise Rollback
    with transaction.atomic():
        transaction.on_commit(lambda: tick.delay("styleguide-committed"))
        tick.delay_on_commit("method-committed")

    wait_until(lambda: Tick.objects.filter(label="method-committed").exists())
    wait_until(lambda: Tick.objects.filter(label="styleguide-committed").exists())
    time.sleep(0.3)  # time enough for anything wrongly sent to have run too
    assert set(Tick.objects.values_list("label", flat=True)) == {
        "method-committed",
        "styleguide-committed",
    }


def test_every_task_of_the_project_sends_on_commit_whenever_it_was_defined(
    project_app: Conveyor,
) -> None:
    @project_app.task
    def archive(order_id: int) -> None:
        pass

    @shared_task
    def reindex(order_id: int) -> None:
        pass

    late = Conveyor("configured-late", set_as_current=False)

    @late.task
    def defined_before_configure(order_id: int) -> None:  # as in a project's proj/conveyor.py
        pass

    assert not isinstance(defined_before_configure, DjangoTask)
    configure(late)
    project_app.set_current()  # configure made the late app current
    for task in (tick, archive, reindex, defined_before_configure):
        assert isinstance(task, DjangoTask), task
    with transaction.atomic():
        result = reindex.apply_async_on_commit([7], queue=HELD)
        assert not sent(project_app, result.id)
    assert sent(project_app, result.id)
    project_app.broker.purge(HELD)


def test_a_task_of_an_app_outside_django_has_no_on_commit_sends() -> None:
    plain = Conveyor("no-django", broker="memory://", set_as_current=False)

    @plain.task
    def archive(order_id: int) -> None:
        pass

    assert not isinstance(archive, DjangoTask)
    assert not hasattr(archive, "delay_on_commit")
