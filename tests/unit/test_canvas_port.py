"""Canvas API that Celery projects port as it is: subclasses of the primitives registered
with ``Signature.register_type()``, and the smaller Celery conveniences on signatures.

Each workflow is written the way a Celery project writes it and drained in this thread
with ``run_until_empty`` (the worker's own executor).
"""

from __future__ import annotations

import json
import time
import uuid
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from conveyor import Conveyor, Signature, chain, chord, chunks, group, signature
from conveyor.exceptions import ImproperlyConfigured
from conveyor.testing import memory_app, run_until_empty


@pytest.fixture
def app() -> Conveyor:
    return memory_app(f"canvas-port-{uuid.uuid4().hex[:6]}")


@pytest.fixture
def t(app: Conveyor) -> SimpleNamespace:
    @app.task(name="cp.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="cp.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    return SimpleNamespace(add=add, tsum=tsum)


def drain(app: Conveyor) -> None:
    run_until_empty(app, max_tasks=1_000)


@Signature.register_type()
class audited_group(group):
    """A project's own group: it names its kind, so it survives a trip through JSON."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subtask_type = "audited_group"

    def describe(self) -> str:
        return f"{len(self.tasks)} audited tasks"


@Signature.register_type(name="batch_chain")
class BatchChain(chain):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subtask_type = "batch_chain"


def test_a_registered_group_subclass_comes_back_from_json_and_runs(
    app: Conveyor, t: SimpleNamespace
) -> None:
    flow = audited_group([t.add.s(1, 1), t.add.s(2, 2)], app=app)
    assert flow.subtask_type == "audited_group"
    data = json.loads(msgspec.json.encode(flow))
    again = signature(data, app=app)
    assert isinstance(again, audited_group)
    assert again.describe() == "2 audited tasks"
    assert isinstance(again.clone(), audited_group)
    result = again.apply_async()
    drain(app)
    assert result.get(timeout=1) == [2, 4]


def test_register_type_takes_the_kind_name_it_is_given(app: Conveyor, t: SimpleNamespace) -> None:
    flow = BatchChain(t.add.s(1, 2), t.add.s(10), app=app)
    again = Signature.from_dict(json.loads(json.dumps(flow.to_dict())), app=app)
    assert type(again) is BatchChain
    result = again.apply_async()
    drain(app)
    assert result.get(timeout=1) == 13


def test_a_kind_this_process_never_registered_is_rebuilt_as_what_it_is_made_on(
    app: Conveyor, t: SimpleNamespace
) -> None:
    # A worker that never imported the module defining the subclass still runs it.
    data = json.loads(msgspec.json.encode(chord([t.add.s(1, 1), t.add.s(2, 2)], t.tsum.s())))
    data["subtask_type"] = "somebody_elses_chord"
    again = signature(data, app=app)
    assert isinstance(again, chord)
    result = again.apply_async()
    drain(app)
    assert result.get(timeout=1) == 6


def test_a_group_then_a_task_in_a_chain_is_a_chord(app: Conveyor, t: SimpleNamespace) -> None:
    flow = chain(t.add.s(1, 1), group(t.add.s(10), t.add.s(20)), t.tsum.s())
    assert len(flow.tasks) == 2 and isinstance(flow.tasks[1], chord)
    assert isinstance(chain(group(t.add.s(1, 1), t.add.s(2, 2)), t.tsum.s()), chord)
    result = flow.apply_async()
    drain(app)
    assert result.get(timeout=1) == 34  # 2 -> (12, 22) -> 34


def test_consecutive_chords_in_a_chain_become_one(app: Conveyor, t: SimpleNamespace) -> None:
    flow = chain(
        group(t.add.s(i, i) for i in range(3)),
        group(t.tsum.s(), t.tsum.s()),
        t.tsum.s(),
    )
    assert isinstance(flow, chord) and isinstance(flow.body, chord)
    result = flow.apply_async()
    drain(app)
    assert result.get(timeout=1) == 12  # [0, 2, 4] -> (6, 6) -> 12


def test_piping_into_a_chord_extends_its_callback(app: Conveyor, t: SimpleNamespace) -> None:
    summed = chord([t.add.s(1, 1), t.add.s(2, 2)], t.tsum.s())
    grown = summed | t.add.s(100)
    assert isinstance(grown, chord) and isinstance(grown.body, chain)
    assert isinstance(summed | group(t.add.s(1)), chord)  # a group of one is its task
    nested = chord([t.add.s(1, 1)], group(t.add.s(1), t.add.s(2))) | t.tsum.s()
    assert isinstance(nested, chord) and isinstance(nested.body, chord)
    result = grown.apply_async()
    drain(app)
    assert result.get(timeout=1) == 106


def test_a_chain_taken_into_another_gives_its_callbacks_to_its_steps(
    app: Conveyor, t: SimpleNamespace
) -> None:
    inner = t.add.s(1, 1) | t.add.s(2)
    inner.link(t.add.si(0, 0))
    inner.link_error(t.tsum.si([]))
    outer = chain(inner, t.add.s(3))
    assert "link" not in outer.options and "link_error" not in outer.options
    first, second, third = outer.tasks
    assert "link" not in first.options and second.options["link"] == [t.add.si(0, 0)]
    assert first.options["link_error"] == second.options["link_error"] == [t.tsum.si([])]
    assert "link_error" not in third.options
    assert "link_error" in inner.options and "link_error" not in inner.tasks[0].options
    with pytest.raises(TypeError, match="cannot chain"):
        inner | 10


def test_linking_the_same_callback_twice_runs_it_once(app: Conveyor, t: SimpleNamespace) -> None:
    sig = t.add.s(2, 2)
    sig.link(t.add.s(10))
    sig.link(t.add.s(10))
    sig.link_error(t.tsum.si([]))
    sig.link_error(t.tsum.si([]))
    assert len(sig.options["link"]) == 1 and len(sig.options["link_error"]) == 1


def test_flatten_links_lists_the_whole_callback_tree(t: SimpleNamespace) -> None:
    first, second, third = t.add.s(2, 2), t.add.s(4), t.add.s(8)
    first.link(second)
    second.link(third)
    assert first.flatten_links() == [first, second, third]


def test_signature_async_result_and_freeze_with_workflow_ids(
    app: Conveyor, t: SimpleNamespace
) -> None:
    assert t.add.s(1, 1).AsyncResult("some-id").id == "some-id"
    assert signature("not.registered.anywhere", app=app).AsyncResult("x").id == "x"
    sig = t.add.s(1, 1)
    result = sig.freeze("task-1", group_id="g-1", root_id="r-1", parent_id="p-1", group_index=3)
    assert result.id == "task-1"
    assert sig.options["group_id"] == "g-1" and sig.options["group_index"] == 3
    assert (sig.options["root_id"], sig.options["parent_id"]) == ("r-1", "p-1")
    batch = group(t.add.s(1, 1), t.add.s(2, 2))
    assert batch.freeze(group_id="g-2").id == "g-2"


def test_group_skew_spreads_the_countdowns(t: SimpleNamespace) -> None:
    batch = group(t.add.s(i, i) for i in range(5)).skew(start=1, stop=3, step=1)
    assert [task.options["countdown"] for task in batch.tasks] == [1, 2, 3, 3, 3]


def test_reprs_read_as_celerys(app: Conveyor) -> None:
    @app.task(name="proj.tasks.add")
    def add(x: int, y: int = 0) -> int:
        return x + y

    @app.task(name="proj.tasks.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    assert repr(add.s(2, 2) | add.s(4)) == "proj.tasks.add(2, 2) | add(4)"
    assert repr(group(add.s(1), add.s(2))) == "group([proj.tasks.add(1), add(2)])"
    assert repr(group([])) == "group(<empty>)"
    assert repr(chord([add.s(1), add.s(2)], tsum.s())) == "%proj.tasks.tsum([add(1), add(2)])"
    assert "without body" in repr(chord([add.s(1)]))


def test_a_signature_given_its_task_object_runs_that_task(
    app: Conveyor, t: SimpleNamespace
) -> None:
    sig = Signature("renamed.elsewhere", (2, 3), type=t.add, app=app)
    assert sig.type is t.add
    assert sig.apply().get() == 5


def test_replacing_a_task_with_an_empty_chain_fails_it_clearly(
    app: Conveyor, t: SimpleNamespace
) -> None:
    @app.task(name="cp.nothing_left", bind=True)
    def nothing_left(self: Any, *_: Any) -> Any:
        return self.replace(chain())

    result = chain(t.add.s(1, 1), nothing_left.s()).delay()
    drain(app)
    with pytest.raises(ImproperlyConfigured, match="Cannot replace with an empty chain"):
        result.get(timeout=1)


def test_a_chord_copies_a_header_given_as_a_list(app: Conveyor, t: SimpleNamespace) -> None:
    header = [t.add.si(1, 1), t.add.si(2, 2)]
    summed = chord(header, t.tsum.s())
    for member in summed.tasks:
        member.link_error(t.tsum.si([]))
    assert all(sig == t.add.si(*sig.args) for sig in header)  # the caller's stay as written
    assert all("link_error" in member.options for member in summed.tasks)
    batch = group(header)
    assert batch.tasks[0] is header[0]  # a group keeps the signatures it is given, as Celery's


@pytest.mark.parametrize("on_header", [False, True])
def test_chord_errbacks_with_and_without_celerys_header_setting(
    app: Conveyor, t: SimpleNamespace, on_header: bool
) -> None:
    calls: list[str] = []

    @app.task(name="cp.fail")
    def fail() -> None:
        raise ValueError("no")

    @app.task(name="cp.note")
    def note(text: str) -> None:
        calls.append(text)

    app.conf.task_allow_error_cb_on_chord_header = on_header
    flow = chain(group(fail.si(), t.add.si(1, 1), fail.si()), t.tsum.s())
    assert isinstance(flow, chord)  # a group then a task: a chord, as in Celery
    flow.link_error(note.si("failed"))
    result = flow.delay()
    drain(app)
    with pytest.raises(ValueError):
        result.get(timeout=1)
    assert calls == ["failed"] * (3 if on_header else 1)  # each failed member, then the chord


def test_a_chords_link_goes_on_its_callback(app: Conveyor, t: SimpleNamespace) -> None:
    seen: list[int] = []

    @app.task(name="cp.record")
    def record(value: int) -> None:
        seen.append(value)

    summed = chord([t.add.s(1, 1), t.add.s(2, 2)], t.tsum.s())
    summed.link(record.s())
    summed.link_error(record.si(-1))
    assert "link" not in summed.options and summed.body.options["link"] == [record.s()]
    assert summed.body.options["link_error"] == [record.si(-1)]
    summed.delay()
    drain(app)
    assert seen == [6]


def test_a_generator_header_is_sent_as_it_is_read(app: Conveyor, t: SimpleNamespace) -> None:
    from conveyor.testing import worker_thread

    done: list[int] = []

    @app.task(name="cp.mark")
    def mark(i: int) -> int:
        done.append(i)
        return i

    def header(size: int) -> Any:
        for i in range(size):
            if i == size - 1:  # the first member has run before the last is even made
                deadline = time.monotonic() + 10
                while 0 not in done and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert 0 in done, "the chord header was read whole before sending"
            yield mark.s(i)

    with worker_thread(app):
        result = chord(header(5), t.tsum.s()).delay()
        assert result.get(timeout=10) == 10
    assert sorted(done) == [0, 1, 2, 3, 4]


def test_a_generator_header_of_one_and_of_none(app: Conveyor, t: SimpleNamespace) -> None:
    one = chord((t.add.s(i, i) for i in range(1)), t.tsum.s()).delay()
    none = chord((t.add.s(i, i) for i in range(0)), t.tsum.s()).delay()
    drain(app)
    assert one.get(timeout=1) == 0 and none.get(timeout=1) == 0
    many = chord((t.add.s(i, 1) for i in range(70)), t.tsum.s())  # past the bucket size
    result = many.delay()
    drain(app)
    assert result.get(timeout=1) == sum(range(70)) + 70
    assert [len(r.parent) for r in [result]] == [70]


def test_chunks_keep_their_items_as_given(app: Conveyor, t: SimpleNamespace) -> None:
    pairs = t.add.chunks(zip(range(6), range(6), strict=True), 2)
    assert pairs.kwargs["it"][0] == [0, 0]  # argument tuples as lists: their JSON shape
    single = t.add.chunks(range(100), 10)  # built and rebuilt as Celery's are
    again = signature(json.loads(json.dumps(single.to_dict())), app=app)
    assert isinstance(again, chunks) and again == single and len(again.group().tasks) == 10
    result = pairs.apply_async()
    drain(app)
    assert result.get(timeout=1) == [[0, 2], [4, 6], [8, 10]]


def test_an_eager_chain_result_walks_back_through_its_steps(t: SimpleNamespace) -> None:
    result = chain(t.add.s(4, 4), t.add.s(8), t.add.s(10)).apply()
    assert result.get() == 26
    assert result.parent.get() == 16 and result.parent.parent.get() == 8
    assert result.parent.parent.parent is None


def test_one_errback_object_linked_to_several_workflows_runs_for_each(
    app: Conveyor, t: SimpleNamespace
) -> None:
    failed: list[str] = []

    @app.task(name="cp.boom")
    def boom(*args: Any) -> None:
        raise ValueError("boom")

    @app.task(name="cp.on_error")
    def on_error(request_id: str) -> None:
        failed.append(request_id)

    errback = on_error.s()  # one object, as a module-level errback is
    first = chord([boom.s()], t.tsum.s())
    first.link_error(errback)
    first_id = first.body.freeze().id  # freezing one workflow must not fix the errback's id
    second = chord([t.add.si(1, 1)], boom.s())
    second.link_error(errback)
    second_id = second.body.freeze().id
    first.delay()
    second.delay()
    drain(app)
    assert sorted(failed) == sorted([first_id, second_id])
