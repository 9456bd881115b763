"""Canvas behaviour that ported Celery code relies on: calling a workflow sends it, empty
workflows, ``group.link``, how nested and single-member groups shape results, lazy chord
headers, ``chain.freeze(id)``, and the eager chain's stop at Ignore.

Each workflow is written the way a Celery project writes it and drained in this thread
with ``run_until_empty`` (the worker's own executor).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from conveyor import ChordError, Conveyor, GroupResult, Ignore, Task, chain, chord, group, states
from conveyor.testing import memory_app, run_until_empty


@pytest.fixture
def app() -> Conveyor:
    return memory_app(f"celery-canvas-{uuid.uuid4().hex[:6]}")


@pytest.fixture
def t(app: Conveyor) -> SimpleNamespace:
    calls: list[tuple[str, tuple[Any, ...]]] = []

    @app.task(name="cc.add")
    def add(x: int, y: int) -> int:
        calls.append(("add", (x, y)))
        return x + y

    @app.task(name="cc.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.task(name="cc.notify")
    def notify(*args: Any) -> None:
        calls.append(("notify", args))

    @app.task(name="cc.skip")
    def skip(*args: Any) -> None:
        raise Ignore()

    @app.task(name="cc.identity")
    def identity(value: Any) -> Any:
        return value

    return SimpleNamespace(
        add=add, tsum=tsum, notify=notify, skip=skip, identity=identity, calls=calls
    )


def drain(app: Conveyor) -> None:
    run_until_empty(app, max_tasks=10_000)


def test_calling_a_chain_group_or_chord_sends_it(app: Conveyor, t: SimpleNamespace) -> None:
    flow = chain(t.add.s(2, 2), t.add.s(4))()
    parallel = group(t.add.s(i, i) for i in range(3))()
    partial = group(t.add.s(1), t.add.s(2))(10)  # the arguments complete every member's
    summed = chord(t.add.s(i, i) for i in range(3))(t.tsum.s())
    drain(app)
    assert flow.get(timeout=1) == 8 and flow.parent.get(timeout=1) == 4
    assert parallel.get(timeout=1) == [0, 2, 4]
    assert partial.get(timeout=1) == [11, 12]
    assert summed.get(timeout=1) == 6


def test_calling_a_task_signature_still_runs_the_function_here(
    app: Conveyor, t: SimpleNamespace
) -> None:
    assert t.add.s(2)(3) == 5
    assert app.broker.stats() == {}


def test_an_empty_chain_sends_nothing(app: Conveyor, t: SimpleNamespace) -> None:
    assert chain()() is None
    assert chain().apply_async() is None
    assert chain(chain(), chain()).delay() is None
    assert sum(s.total for s in app.broker.stats().values()) == 0
    app.conf.task_always_eager = True
    assert chain().apply_async() is None


def test_an_empty_group_gives_an_empty_group_result(app: Conveyor, t: SimpleNamespace) -> None:
    called = group([])()
    sent = group([]).apply_async()
    assert isinstance(called, GroupResult) and isinstance(sent, GroupResult)
    assert called.results == [] and sent.get(timeout=1) == [] and sent.successful()
    assert sum(s.total for s in app.broker.stats().values()) == 0


def test_empty_groups_and_chains_inside_a_workflow_are_skipped(
    app: Conveyor, t: SimpleNamespace
) -> None:
    flow = chain(t.add.s(1, 1), group([]), t.add.s(3)).delay()
    members = group(t.add.s(1, 1), chain(), t.add.s(2, 2)).delay()
    drain(app)
    assert flow.get(timeout=1) == 5
    assert members.get(timeout=1) == [2, 4]


def test_group_link_calls_the_callback_once_without_the_results(
    app: Conveyor, t: SimpleNamespace
) -> None:
    batch = group(t.add.s(1, 1), t.add.s(2, 2), t.add.s(3, 3))
    batch.link(t.notify.s("batch done"))
    result = batch.delay()
    drain(app)
    assert result.get(timeout=1) == [2, 4, 6]
    assert [c for c in t.calls if c[0] == "notify"] == [("notify", ("batch done",))]


def test_group_link_error_still_reaches_every_member(app: Conveyor, t: SimpleNamespace) -> None:
    @app.task(name="cc.fail")
    def fail(*args: Any) -> None:
        raise ValueError("no")

    batch = group(fail.s(), t.add.s(1, 1), fail.s())
    batch.link_error(t.notify.si("failed"))
    batch.delay()
    drain(app)
    assert [c for c in t.calls if c[0] == "notify"] == [("notify", ("failed",))] * 2


def test_nested_and_single_member_groups_shape_results_as_in_celery(
    app: Conveyor, t: SimpleNamespace
) -> None:
    add, tsum = t.add, t.tsum
    flows = {
        # a group inside a group is unrolled into it
        "nested": (group(add.si(1, 10), group(add.si(1, 100), group(add.si(1, 1000)))), None),
        # a group of one after a task in a chain is its one task: the next step gets a value
        "one in a chain": (chain(add.s(1, 1), group(add.s(1)), add.s(3)), None),
        # a group of one piped into a task is a chord: the task gets a list
        "one piped": (group(add.s(1, 1)) | tsum.s(), None),
        # a group of one chain ending in a group gives that group's results
        "chain to a group": (group(chain(add.s(1, 1), group(add.s(1), add.s(2)))), None),
        "beside a task": (group(chain(add.s(1, 1), group(add.s(1), add.s(2))), add.s(5, 5)), None),
        "chord in a group of one": (group(chord([add.si(40, 2)], tsum.s())), None),
    }
    results = {name: flow.delay() for name, (flow, _) in flows.items()}
    drain(app)
    values = {name: result.get(timeout=1) for name, result in results.items()}
    assert values == {
        "nested": [11, 101, 1001],
        "one in a chain": 6,
        "one piped": 2,
        "chain to a group": [3, 4],
        "beside a task": [[3, 4], 10],
        "chord in a group of one": [42],
    }


def test_a_group_made_of_one_group_is_that_group(app: Conveyor, t: SimpleNamespace) -> None:
    inner = group(t.add.s(2, 2), t.add.s(4, 4))
    outer = group(inner)
    assert outer.tasks is inner.tasks
    result = outer.delay()
    drain(app)
    assert result.get(timeout=1) == [4, 8]
    assert len(result.results) == 2


def test_a_chain_as_a_chord_header_runs_its_steps_in_parallel_as_in_celery(
    app: Conveyor, t: SimpleNamespace
) -> None:
    header = chain(t.add.si(1, 1), t.add.si(2, 2))
    built = chord(header, t.tsum.s())
    sent = chord.from_dict(json.loads(json.dumps(built)), app=app).delay()
    result = built.delay()
    drain(app)
    assert result.get(timeout=1) == sent.get(timeout=1) == 6
    assert len(header.tasks) == 2 and not header.tasks[0].options  # the chain is left as it was


def test_one_signature_listed_several_times_runs_each_time(
    app: Conveyor, t: SimpleNamespace
) -> None:
    plus_one = t.add.s(1)
    thrice = chain(t.add.s(1, 1), *[plus_one] * 3)
    steps = thrice.freeze()
    ping = t.add.si(2, 2)
    header = group([ping] * 3)
    members = header.freeze()
    ten = t.add.si(5, 5)
    results = thrice.delay(), header.delay(), chord([ten] * 3, t.tsum.s()).delay()
    drain(app)
    assert len({steps.id, steps.parent.id, steps.parent.parent.id}) == 3
    assert len({member.id for member in members.results}) == 3
    assert [result.get(timeout=1) for result in results] == [5, [4, 4, 4], 30]


def test_a_one_task_header_hands_the_callback_a_list(app: Conveyor, t: SimpleNamespace) -> None:
    add = t.add

    @app.task(name="cc.bump_all", bind=True)
    def bump_all(self: Task, totals: list[int], by: int) -> Any:  # type: ignore[type-arg]
        raise self.replace(group(add.s(total, by) for total in totals))

    @app.task(name="cc.extend")
    def extend(values: list[Any], extra: list[Any]) -> list[Any]:
        return values + extra

    as_chord = chord([add.s(2, 5)], bump_all.s(9)).delay()
    as_pipe = (group([add.s(2, 5)]) | bump_all.s(9)).delay()
    nested = chord(
        [
            group([add.s(1, 2), add.s(3, 4)]) | extend.s([5]),
            group([add.s(6, 7)]) | extend.s([10]),
        ],
        extend.s([0]),
    ).delay()
    drain(app)
    assert as_chord.get(timeout=1) == [16]
    assert as_pipe.get(timeout=1) == [16]
    assert nested.get(timeout=1) == [[3, 7, 5], [13, 10], 0]


def test_a_header_chain_ending_in_a_group_gives_the_callback_one_list(
    app: Conveyor, t: SimpleNamespace
) -> None:
    add, identity = t.add, t.identity
    fan_out = chain(add.s(1, 1), group(add.s(10), add.s(20)))
    alone = chord(group(fan_out), identity.s()).delay()
    beside = chord([fan_out, add.s(5, 5), group(add.s(1, 2), add.s(3, 4))], identity.s()).delay()
    drain(app)
    assert alone.get(timeout=1) == [[12, 22]]
    assert beside.get(timeout=1) == [[12, 22], 10, 3, 7]


def test_a_generator_chord_header_is_read_when_the_chord_is_sent(
    app: Conveyor, t: SimpleNamespace
) -> None:
    read: list[int] = []

    def parts() -> Iterator[Any]:
        for i in range(3):
            read.append(i)
            yield t.add.s(i, i)

    workflow = chord(parts(), t.tsum.s())
    assert read == []  # building the chord reads nothing
    first = workflow.delay()
    second = workflow.delay()  # every send sees every member
    drain(app)
    assert read == [0, 1, 2]
    assert first.get(timeout=1) == second.get(timeout=1) == 6


def test_chain_freeze_with_an_id_sets_the_chains_id(app: Conveyor, t: SimpleNamespace) -> None:
    workflow = chain(t.add.s(1, 1), t.add.s(2))
    frozen = workflow.freeze("order-42-total")
    assert workflow.id == frozen.id == "order-42-total"
    result = workflow.delay()
    drain(app)
    assert result.id == "order-42-total" and app.AsyncResult("order-42-total").get(timeout=1) == 4


def test_an_eager_chain_stops_at_a_task_that_raises_ignore(
    app: Conveyor, t: SimpleNamespace
) -> None:
    app.conf.task_always_eager = True
    result = chain(t.add.s(1, 1), t.skip.s(), t.add.s(5)).delay()
    assert result.state == states.IGNORED
    assert t.calls == [("add", (1, 1))]


def test_add_to_chord_from_a_member(app: Conveyor, t: SimpleNamespace) -> None:
    @app.task(bind=True, name="cc.crawl")
    def crawl(self: Task, page: int, last: int) -> int:  # type: ignore[type-arg]
        if page < last:
            self.add_to_chord(crawl.s(page + 1, last))  # sent at once
        if page == 1:
            later = self.add_to_chord(t.add.s(1000, 0), lazy=True)
            later.delay()  # prepared, sent by the task itself
        return page

    small = chord([crawl.s(1, 3), t.add.s(5, 5)], t.identity.s()).delay()
    large = chord([t.add.s(i, 0) for i in range(100)] + [crawl.s(1, 2)], t.tsum.s()).delay()
    drain(app)
    assert small.get(timeout=1) == [1, 10, 2, 1000, 3]  # header results, then in added order
    assert large.get(timeout=1) == sum(range(100)) + 1 + 1000 + 2


def test_add_to_chord_outside_a_chord_or_with_a_failing_member(
    app: Conveyor, t: SimpleNamespace
) -> None:
    @app.task(bind=True, name="cc.grow_badly")
    def grow_badly(self: Task) -> None:  # type: ignore[type-arg]
        self.add_to_chord(t.skip.s())

    alone = grow_badly.delay()
    workflow = chord([grow_badly.s(), t.add.s(1, 1)], t.tsum.s()).delay()
    drain(app)
    with pytest.raises(ValueError, match="not a member of any chord"):
        alone.get(timeout=1)
    with pytest.raises(ChordError, match="was ignored"):
        workflow.get(timeout=1)
