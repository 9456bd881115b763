"""Signatures, chains, groups, chords and friends on the in-memory broker.

Every test drains the queue in this thread with ``run_until_empty``, through the same
executor (and so the same workflow hooks) a worker uses.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

import conveyor
from conveyor import (
    AsyncResult,
    ChordError,
    Conveyor,
    GroupResult,
    Signature,
    Task,
    chain,
    chord,
    chunks,
    group,
    signature,
    states,
)
from conveyor.brokers.base import Envelope
from conveyor.exceptions import BrokerError
from conveyor.result import result_from_tuple
from conveyor.testing import FakeClock, memory_app, run_until_empty


class Boom(Exception):
    pass


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def app(clock: FakeClock) -> Conveyor:
    return memory_app(f"canvas-{uuid.uuid4().hex[:6]}", clock=clock)


@pytest.fixture
def t(app: Conveyor) -> SimpleNamespace:
    """Tasks on ``app``; ``t.seen`` collects what bound tasks observed."""
    seen: list[dict[str, Any]] = []
    calls: dict[str, int] = {}

    def count(name: str) -> None:
        calls[name] = calls.get(name, 0) + 1

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        count("add")
        return x + y

    @app.task(name="t.mul")
    def mul(x: int, y: int) -> int:
        return x * y

    @app.task(name="t.tsum")
    def tsum(values: list[int]) -> int:
        count("tsum")
        return sum(values)

    @app.task(name="t.identity")
    def identity(value: Any) -> Any:
        return value

    @app.task(name="t.fail")
    def fail(*args: Any) -> None:
        count("fail")
        raise Boom(f"boom {args}")

    @app.task(name="t.noop")
    def noop(*args: Any) -> str:
        return "noop"

    @app.task(name="t.who", bind=True)
    def who(self: Task, value: Any = None) -> Any:
        request = self.request
        seen.append(
            {
                "task": "who",
                "value": value,
                "id": request.id,
                "parent_id": request.parent_id,
                "root_id": request.root_id,
                "group_id": request.group_id,
                "group_index": request.group_index,
                "correlation_id": request.headers.get("correlation_id"),
            }
        )
        return value

    @app.task(name="t.on_error")
    def on_error(task_id: str) -> str:
        seen.append({"task": "on_error", "failed": task_id})
        return task_id

    @app.task(name="t.error_handler")
    def error_handler(request: Any, exc: BaseException, traceback: Any) -> None:
        seen.append(
            {"task": "error_handler", "failed": request.id, "exc": f"{type(exc).__name__}: {exc}"}
        )

    @app.task(name="t.replacer", bind=True)
    def replacer(self: Task, x: int) -> Any:
        return self.replace(add.s(x, 100))

    @app.task(name="t.replace_with_group", bind=True)
    def replace_with_group(self: Task, n: int) -> Any:
        return self.replace(group(add.s(i, i) for i in range(n)))

    @app.task(name="t.replace_with_chain", bind=True)
    def replace_with_chain(self: Task, x: int) -> Any:
        return self.replace(add.s(x, 1) | mul.s(2))

    return SimpleNamespace(**{k: v for k, v in locals().items() if k not in ("app",)})


def drain(app: Conveyor) -> int:
    return run_until_empty(app, max_tasks=100_000)


class PublishSpy:
    """Counts broker.publish calls and keeps every envelope published."""

    def __init__(self, app: Conveyor) -> None:
        self.calls = 0
        self.envelopes: list[Envelope] = []
        self._publish = app.broker.publish
        app.broker.publish = self  # type: ignore[method-assign]

    def __call__(self, envelopes: Any) -> None:
        self.calls += 1
        self.envelopes.extend(envelopes)
        self._publish(envelopes)

    def of(self, task_id: str) -> Envelope:
        return next(e for e in self.envelopes if e.id == task_id)


# -- signatures -----------------------------------------------------------------------------


def test_signature_forms_and_options(app: Conveyor, t: SimpleNamespace) -> None:
    by_name = signature("t.add", args=(2, 2), countdown=10, app=app)
    assert by_name.task == "t.add" and by_name.args == (2, 2)
    assert by_name.options == {"countdown": 10}
    assert t.add.s(2, 2) == Signature("t.add", (2, 2))
    assert t.add.si(2).immutable and not t.add.s(2).immutable
    sig = t.add.s(2).set(queue="fast", priority=5)
    assert sig.options == {"queue": "fast", "priority": 5}
    assert isinstance(sig, dict) and sig["task"] == "t.add"


def test_clone_completes_partial_arguments(t: SimpleNamespace) -> None:
    partial = t.add.s(2)
    full = partial.clone(args=(10,))
    assert full.args == (10, 2) and partial.args == (2,)
    assert t.add.si(2, 3).clone(args=(10,)).args == (2, 3)  # immutable ignores them
    kw = t.add.s(x=1).clone(kwargs={"y": 2})
    assert kw.kwargs == {"x": 1, "y": 2}


def test_signature_is_plain_data_and_comes_back(app: Conveyor, t: SimpleNamespace) -> None:
    flow = chain(t.add.s(1, 1), group(t.add.s(i) for i in range(2)), t.tsum.s())
    data = json.loads(msgspec.json.encode(flow))
    assert data["subtask_type"] == "chain"
    again = signature(data, app=app)
    assert isinstance(again, chain)
    # As in Celery, a group followed by a task in a chain is a chord.
    assert isinstance(again.tasks[1], chord) and again.tasks[1].tasks[0].task == "t.add"
    assert again == signature(json.loads(json.dumps(data)), app=app)
    result = again.apply_async()
    drain(app)
    assert result.get(timeout=1) == 5  # 2 -> (2+0, 2+1) -> 5


def test_signature_passed_as_a_task_argument(app: Conveyor, t: SimpleNamespace) -> None:
    @app.task(name="t.run_it")
    def run_it(sig: dict[str, Any], x: int) -> int:
        return int(signature(sig, app=app)(x))

    result = run_it.delay(t.add.s(5), 10)
    drain(app)
    assert result.get(timeout=1) == 15


def test_delay_and_apply_async_on_a_signature(app: Conveyor, t: SimpleNamespace) -> None:
    r1 = t.add.s(2).delay(3)
    r2 = t.add.s(1, 1).apply_async(task_id="fixed-id")
    r3 = signature("t.add", (4, 4), app=app).apply_async()
    drain(app)
    assert (r1.get(timeout=1), r2.get(timeout=1), r3.get(timeout=1)) == (5, 2, 8)
    assert r2.id == "fixed-id"


def test_calling_a_signature_runs_it_here(t: SimpleNamespace) -> None:
    assert t.add.s(2)(3) == 5


# -- chains -------------------------------------------------------------------------------


def test_chain_passes_each_result_on(app: Conveyor, t: SimpleNamespace) -> None:
    result = chain(t.add.s(2, 2), t.add.s(4), t.mul.s(8)).apply_async()
    drain(app)
    assert result.get(timeout=1) == 64
    assert result.parent is not None and result.parent.get(timeout=1) == 8
    assert result.parent.parent is not None and result.parent.parent.get(timeout=1) == 4
    assert result.parent.parent.parent is None


def test_pipe_operator_and_immutable_steps(app: Conveyor, t: SimpleNamespace) -> None:
    flow = t.add.s(1, 1) | t.add.s(1) | t.noop.si() | t.identity.s()
    assert isinstance(flow, chain) and len(flow.tasks) == 4
    result = flow.delay()
    drain(app)
    assert result.get(timeout=1) == "noop"


def test_chain_of_ten(app: Conveyor, t: SimpleNamespace) -> None:
    result = chain(t.add.s(0, 1), *[t.add.s(1) for _ in range(9)]).apply_async()
    drain(app)
    assert result.get(timeout=1) == 10
    ids = []
    node: AsyncResult | None = result
    while node is not None:
        ids.append(node.id)
        node = node.parent
    assert len(ids) == 10 and len(set(ids)) == 10


def test_chain_with_initial_arguments(app: Conveyor, t: SimpleNamespace) -> None:
    result = chain(t.add.s(1), t.mul.s(3)).apply_async((4,))
    drain(app)
    assert result.get(timeout=1) == 15


def test_failure_stops_the_chain_and_runs_errbacks(app: Conveyor, t: SimpleNamespace) -> None:
    flow = chain(t.add.s(1, 1), t.fail.s(), t.add.s(100), t.add.s(1000))
    result = flow.apply_async(link_error=t.on_error.s())
    drain(app)
    assert t.calls.get("add") == 1  # the steps after the failure never ran
    with pytest.raises(Boom):
        result.get(timeout=1)  # the chain's result carries the failure
    assert result.state == states.FAILURE
    failed_id = result.parent.parent.id  # type: ignore[union-attr]
    assert [s for s in t.seen if s["task"] == "on_error"] == [
        {"task": "on_error", "failed": failed_id}
    ]


def test_new_style_errback_gets_request_exc_and_traceback(
    app: Conveyor, t: SimpleNamespace
) -> None:
    result = chain(t.add.s(1, 1), t.fail.s()).on_error(t.error_handler.s()).apply_async()
    drain(app)
    with pytest.raises(Boom):
        result.get(timeout=1)
    [seen] = [s for s in t.seen if s["task"] == "error_handler"]
    assert seen["failed"] == result.id and seen["exc"].startswith("Boom: boom")


def test_link_and_link_error_on_apply_async(app: Conveyor, t: SimpleNamespace) -> None:
    ok = t.add.apply_async((2, 3), link=t.who.s())
    bad = t.fail.apply_async((1,), link=t.who.s(), link_error=t.on_error.s())
    drain(app)
    assert ok.get(timeout=1) == 5
    assert [s["value"] for s in t.seen if s["task"] == "who"] == [5]
    assert {"task": "on_error", "failed": bad.id} in t.seen


def test_link_on_a_signature(app: Conveyor, t: SimpleNamespace) -> None:
    sig = t.add.s(1, 2)
    sig.link(t.who.s())
    sig.link_error(t.on_error.s())
    result = sig.delay()
    drain(app)
    assert result.get(timeout=1) == 3
    assert [s["parent_id"] for s in t.seen if s["task"] == "who"] == [result.id]


# -- groups -------------------------------------------------------------------------------


def test_group_keeps_order_and_reports_progress(app: Conveyor, t: SimpleNamespace) -> None:
    result = group(t.add.s(i, i) for i in range(20)).apply_async()
    assert isinstance(result, GroupResult) and len(result) == 20
    assert not result.ready() and result.completed_count() == 0 and result.waiting()
    run_until_empty(app, max_tasks=5)
    assert result.completed_count() == 5 and not result.ready()
    drain(app)
    assert result.get(timeout=1) == [i * 2 for i in range(20)]
    assert result.join(timeout=1) == result.get(timeout=1)
    assert result.ready() and result.successful() and not result.failed()
    assert result.state == states.SUCCESS


def test_group_with_a_failure(app: Conveyor, t: SimpleNamespace) -> None:
    result = group([t.add.s(1, 1), t.fail.s(), t.add.s(2, 2)]).apply_async()
    drain(app)
    assert result.failed() and not result.successful() and result.ready()
    assert result.completed_count() == 2
    with pytest.raises(Boom):
        result.get(timeout=1)
    values = result.get(timeout=1, propagate=False)
    assert values[0] == 2 and isinstance(values[1], Boom) and values[2] == 4


def test_group_result_save_restore_from_another_app(app: Conveyor, t: SimpleNamespace) -> None:
    result = group(t.add.s(i, 1) for i in range(5)).apply_async()
    drain(app)
    other = Conveyor("other", broker=app.broker, backend=app.backend, set_as_current=False)
    restored = GroupResult.restore(result.id, app=other)  # saved when the group was sent
    assert restored is not None and restored.id == result.id
    assert [r.id for r in restored] == [r.id for r in result]
    assert restored.get(timeout=1) == [1, 2, 3, 4, 5]
    custom = GroupResult("my-group", list(result.results), app=app).save()
    assert GroupResult.restore("my-group", app=app) == custom
    custom.delete()
    assert GroupResult.restore("my-group", app=app) is None


@dataclasses.dataclass
class Total:
    amount: int
    currency: str


def test_results_rebuilt_from_ids_come_back_as_the_annotated_type(app: Conveyor) -> None:
    @app.task
    def total(amount: int) -> Total:
        return Total(amount, "EUR")

    result = group(total.s(i) for i in range(3)).apply_async()
    drain(app)
    restored = GroupResult.restore(result.id, app=app)
    assert restored is not None
    assert restored.get(timeout=1) == [Total(0, "EUR"), Total(1, "EUR"), Total(2, "EUR")]
    by_id = app.AsyncResult(result.results[1].id)
    assert by_id.get(timeout=1) == Total(1, "EUR") and by_id.result == Total(1, "EUR")


def test_group_revoke_revokes_every_member(app: Conveyor, t: SimpleNamespace) -> None:
    result = group(t.add.s(i, 1) for i in range(3)).apply_async()
    result.revoke()
    drain(app)
    assert t.calls.get("add") is None
    assert [r.state for r in result] == [states.REVOKED] * 3


def test_group_of_ten_thousand_is_published_in_one_call(app: Conveyor, t: SimpleNamespace) -> None:
    spy = PublishSpy(app)
    calls: dict[str, int] = {}
    backend = app.backend
    for name in ("set", "set_many", "get", "mget"):
        original = getattr(backend, name)

        def counted(*args: Any, _name: str = name, _original: Any = original) -> Any:
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args)

        setattr(backend, name, counted)
    result = group(t.noop.si() for _ in range(10_000)).apply_async()
    assert spy.calls == 1 and len(spy.envelopes) == 10_000
    assert sum(calls.values()) <= 2, calls
    assert len(result) == 10_000


def test_nested_groups_flatten(app: Conveyor, t: SimpleNamespace) -> None:
    result = group(group(t.add.s(1, 1), t.add.s(2, 2)), t.add.s(3, 3)).apply_async()
    drain(app)
    assert result.get(timeout=1) == [2, 4, 6]


def test_group_with_partial_argument(app: Conveyor, t: SimpleNamespace) -> None:
    result = group(t.add.s(i) for i in range(3)).apply_async((10,))
    drain(app)
    assert result.get(timeout=1) == [10, 11, 12]


# -- chords -------------------------------------------------------------------------------


def test_chord_gets_results_in_header_order(app: Conveyor, t: SimpleNamespace) -> None:
    result = chord((t.identity.s(i) for i in range(10)), t.identity.s()).apply_async()
    drain(app)
    assert result.get(timeout=1) == list(range(10))
    assert isinstance(result.parent, GroupResult) and len(result.parent) == 10


def test_chord_callback_form_and_group_pipe(app: Conveyor, t: SimpleNamespace) -> None:
    r1 = chord(t.add.s(i, i) for i in range(5))(t.tsum.s())
    r2 = (group(t.add.s(i, i) for i in range(5)) | t.tsum.s()).delay()
    drain(app)
    assert r1.get(timeout=1) == r2.get(timeout=1) == 20


def test_large_chord_counts_in_buckets(app: Conveyor, t: SimpleNamespace) -> None:
    result = chord((t.add.s(i, 0) for i in range(500)), t.tsum.s()).apply_async()
    drain(app)
    assert result.get(timeout=1) == sum(range(500))
    assert t.calls["tsum"] == 1


def test_empty_chord_header_calls_back_at_once(app: Conveyor, t: SimpleNamespace) -> None:
    result = chord([], t.tsum.s()).apply_async()
    drain(app)
    assert result.get(timeout=1) == 0


def test_member_run_twice_is_counted_once(app: Conveyor, t: SimpleNamespace) -> None:
    spy = PublishSpy(app)
    result = chord((t.add.s(i, 0) for i in range(3)), t.tsum.s()).apply_async()
    first = result.parent.results[0].id  # type: ignore[union-attr]
    envelope = spy.of(first)
    run_until_empty(app, max_tasks=1)  # member 0 runs and is acked ...
    app.broker.publish([envelope])  # ... then the same message arrives again
    run_until_empty(app, max_tasks=1)
    assert t.calls["add"] == 2
    assert t.calls.get("tsum") is None  # two runs of one member do not complete 3
    drain(app)
    assert result.get(timeout=1) == 3 and t.calls["tsum"] == 1
    app.broker.publish([envelope])  # and once more after the callback ran
    drain(app)
    assert t.calls["tsum"] == 1


def test_crash_between_storing_and_counting(
    app: Conveyor, t: SimpleNamespace, clock: FakeClock
) -> None:
    result = chord((t.add.s(i, 0) for i in range(3)), t.tsum.s()).apply_async()
    run_until_empty(app, max_tasks=2)
    backend = app.backend
    original = backend.add_to_set

    def dies_once(key: str, member: str, ttl: float) -> int:
        backend.add_to_set = original  # type: ignore[method-assign]
        raise BrokerError("the worker died after storing the result")

    backend.add_to_set = dies_once  # type: ignore[method-assign]
    # The worker survives: the member's ack is withheld and its message comes round again.
    run_until_empty(app, max_tasks=1)
    last = result.parent.results[2]  # type: ignore[union-attr]
    assert last.state == states.SUCCESS and t.calls.get("tsum") is None
    clock.advance(app.conf.broker_lease + 1)
    app.broker.recover_expired()
    run_until_empty(app)  # redelivered: already done, so only the workflow resumes
    assert result.get(timeout=1) == 3
    assert t.calls["tsum"] == 1 and t.calls["add"] == 3


def test_crash_after_publishing_the_callback(
    app: Conveyor, t: SimpleNamespace, clock: FakeClock
) -> None:
    result = chord((t.add.s(i, 0) for i in range(3)), t.tsum.s()).apply_async()
    run_until_empty(app, max_tasks=2)
    backend = app.backend
    original = backend.set

    def dies_on_marker(key: str, value: bytes, ttl: float, fence: int | None = None) -> bool:
        if key.endswith(".fired"):
            backend.set = original  # type: ignore[method-assign]
            raise BrokerError("died right after publishing")
        return original(key, value, ttl, fence)

    backend.set = dies_on_marker  # type: ignore[method-assign]
    # The worker survives: the member's ack is withheld and its message comes round again.
    run_until_empty(app, max_tasks=1)
    run_until_empty(app)  # the callback was published: it runs
    clock.advance(app.conf.broker_lease + 1)
    app.broker.recover_expired()
    run_until_empty(app)  # the last member comes back: the callback is not sent again
    assert result.get(timeout=1) == 3
    assert t.calls["tsum"] == 1


def test_failed_member_fails_the_chord_once(app: Conveyor, t: SimpleNamespace) -> None:
    header = [t.add.s(1, 1), t.fail.s(7), t.fail.s(8), t.add.s(2, 2)]
    result = chord(header, t.tsum.s()).apply_async(link_error=t.on_error.s())
    drain(app)
    assert t.calls.get("tsum") is None
    with pytest.raises(Boom, match=r"boom \(7,\)"):  # the first failed member's, as in Celery
        result.get(timeout=1)
    caught = result.get(timeout=1, propagate=False)  # what is stored for the callback
    assert isinstance(caught, ChordError)
    failed = result.parent.results[1].id  # type: ignore[union-attr]
    assert failed in str(caught) and "t.fail" in str(caught) and "Boom" in str(caught)
    assert result.state == states.FAILURE
    assert [s for s in t.seen if s["task"] == "on_error"] == [
        {"task": "on_error", "failed": result.id}
    ]


def test_failed_member_fails_what_follows_the_chord(app: Conveyor, t: SimpleNamespace) -> None:
    flow = chain(t.add.s(1, 1), chord([t.add.s(1), t.fail.s()], t.tsum.s()), t.add.s(5))
    result = flow.apply_async()
    drain(app)
    with pytest.raises(Boom):
        result.get(timeout=1)
    assert isinstance(result.get(timeout=1, propagate=False), ChordError)


# -- link, chunks, map --------------------------------------------------------------------


def test_chunks_map_and_starmap(app: Conveyor, t: SimpleNamespace) -> None:
    pairs = [(i, i) for i in range(10)]
    r1 = t.add.chunks(pairs, 3).apply_async()
    r2 = chunks(t.add.s(), pairs, 5).group().apply_async()
    r3 = t.identity.map([1, 2, 3]).delay()
    r4 = t.add.starmap(pairs[:3]).delay()
    r5 = chord(t.add.chunks(pairs, 4).group(), t.identity.s()).delay()
    drain(app)
    assert r1.get(timeout=1) == [[0, 2, 4], [6, 8, 10], [12, 14, 16], [18]]
    assert r2.get(timeout=1) == [[0, 2, 4, 6, 8], [10, 12, 14, 16, 18]]
    assert r3.get(timeout=1) == [1, 2, 3]
    assert r4.get(timeout=1) == [0, 2, 4]
    assert r5.get(timeout=1) == [[0, 2, 4, 6], [8, 10, 12, 14], [16, 18]]


# -- nesting ------------------------------------------------------------------------------


def test_group_in_a_chain_followed_by_a_task_becomes_a_chord(
    app: Conveyor, t: SimpleNamespace
) -> None:
    flow = chain(t.add.s(1, 1), group(t.add.s(i) for i in range(3)), t.tsum.s())
    normalized = flow.clone()
    normalized.freeze()
    assert isinstance(normalized.tasks[1], chord)
    result = flow.apply_async()
    drain(app)
    assert result.get(timeout=1) == 2 + 3 + 4
    assert isinstance(result.parent, GroupResult)
    assert result.parent.parent is not None and result.parent.parent.get(timeout=1) == 2


def test_chain_ending_in_a_group(app: Conveyor, t: SimpleNamespace) -> None:
    result = chain(t.add.s(1, 1), group(t.add.s(i) for i in range(3))).apply_async()
    drain(app)
    assert isinstance(result, GroupResult)
    assert result.get(timeout=1) == [2, 3, 4]
    assert result.parent is not None and result.parent.get(timeout=1) == 2


def test_chord_inside_a_chain(app: Conveyor, t: SimpleNamespace) -> None:
    flow = chain(
        t.add.s(1, 1),
        chord([t.add.s(10), t.add.s(20)], t.tsum.s()),
        t.mul.s(2),
    )
    result = flow.apply_async()
    drain(app)
    assert result.get(timeout=1) == (12 + 22) * 2


def test_chain_of_chords(app: Conveyor, t: SimpleNamespace) -> None:
    flow = chain(
        chord([t.add.s(1, 1), t.add.s(2, 2)], t.tsum.s()),  # 6
        chord([t.add.s(1), t.add.s(2)], t.tsum.s()),  # 7 + 8 = 15
        chord([t.mul.s(2), t.mul.s(3)], t.tsum.s()),  # 30 + 45 = 75
    )
    result = flow.apply_async()
    drain(app)
    assert result.get(timeout=1) == 75


def test_chord_header_with_chains_and_groups(app: Conveyor, t: SimpleNamespace) -> None:
    header = [
        chain(t.add.s(1, 1), t.mul.s(10)),  # 20
        group(t.add.s(1, 0), t.add.s(2, 0)),  # 1, 2 (flattened)
        t.add.s(3, 0),  # 3
        chord([t.add.s(5, 5), t.add.s(6, 6)], t.tsum.s()),  # 22
    ]
    result = chord(header, t.identity.s()).apply_async()
    drain(app)
    assert result.get(timeout=1) == [20, 1, 2, 3, 22]


def test_group_of_chords(app: Conveyor, t: SimpleNamespace) -> None:
    flow = group(chord([t.add.s(i, j) for j in range(3)], t.tsum.s()) for i in range(4))
    result = flow.apply_async()
    drain(app)
    assert result.get(timeout=1) == [3 * i + 3 for i in range(4)]


def test_group_of_chains(app: Conveyor, t: SimpleNamespace) -> None:
    result = group(chain(t.add.s(i, i), t.mul.s(10)) for i in range(4)).apply_async()
    drain(app)
    assert result.get(timeout=1) == [0, 20, 40, 60]
    assert result.results[1].parent is not None


def test_chord_of_chords_with_a_chain_after(app: Conveyor, t: SimpleNamespace) -> None:
    inner = [chord([t.add.s(i, 1), t.add.s(i, 2)], t.tsum.s()) for i in range(3)]
    flow = chain(chord(inner, t.tsum.s()), t.add.s(1000))
    result = flow.apply_async()
    drain(app)
    assert result.get(timeout=1) == sum(2 * i + 3 for i in range(3)) + 1000


def test_seeds_order_workflow(app: Conveyor, t: SimpleNamespace) -> None:
    @app.task(name="orders.validate", bind=True)
    def validate_order(self: Task, order_id: int) -> int:
        t.seen.append({"task": "validate", "cid": self.request.headers.get("correlation_id")})
        return order_id

    @app.task(name="orders.item", bind=True)
    def process_item(self: Task, order_id: int, item_id: int) -> int:
        t.seen.append({"task": "item", "cid": self.request.headers.get("correlation_id")})
        return item_id * 10

    @app.task(name="orders.finalize", bind=True)
    def finalize_order(self: Task, totals: list[int], order_id: int) -> dict[str, Any]:
        t.seen.append({"task": "finalize", "cid": self.request.headers.get("correlation_id")})
        return {"order": order_id, "total": sum(totals)}

    @app.task(name="orders.confirm", bind=True)
    def send_confirmation(self: Task, summary: dict[str, Any]) -> str:
        t.seen.append({"task": "confirm", "cid": self.request.headers.get("correlation_id")})
        return f"order {summary['order']}: {summary['total']}"

    order_id, item_ids = 42, [1, 2, 3]
    workflow = chain(
        validate_order.s(order_id),
        chord([process_item.s(item_id) for item_id in item_ids], finalize_order.s(order_id)),
        send_confirmation.s(),
    )
    result = workflow.apply_async(headers={"correlation_id": "abc-123"})
    drain(app)
    assert result.get(timeout=1) == "order 42: 60"
    assert len(t.seen) == 6 and {s["cid"] for s in t.seen} == {"abc-123"}


# -- ids and headers ----------------------------------------------------------------------


def test_root_parent_and_group_ids_at_every_step(app: Conveyor, t: SimpleNamespace) -> None:
    flow = chain(
        t.who.s(1),
        group(t.who.s(), t.who.s()),
        t.who.s(),
        chord([t.who.s(), t.who.s()], t.who.s()),
    )
    result = flow.apply_async(headers={"correlation_id": "c-1"})
    drain(app)
    assert result.get(timeout=1) == [[1, 1], [1, 1]]
    seen = {s["id"]: s for s in t.seen}
    first = result.parent.parent.parent.parent  # type: ignore[union-attr]
    root = first.id
    assert all(s["root_id"] == root for s in t.seen)
    assert all(s["correlation_id"] == "c-1" for s in t.seen)
    assert seen[root]["parent_id"] is None
    group1 = result.parent.parent.parent  # type: ignore[union-attr]
    for index, member in enumerate(group1.results):
        assert seen[member.id]["parent_id"] == root
        assert seen[member.id]["group_id"] == group1.id
        assert seen[member.id]["group_index"] == index
    middle = result.parent.parent  # type: ignore[union-attr]
    assert seen[middle.id]["parent_id"] in {m.id for m in group1.results}
    header = result.parent
    for member in header.results:  # type: ignore[union-attr]
        assert seen[member.id]["parent_id"] == middle.id
        assert seen[member.id]["group_id"] == header.id  # type: ignore[union-attr]
    assert seen[result.id]["parent_id"] in {m.id for m in header.results}  # type: ignore[union-attr]


def test_workflow_sent_from_a_task_inherits_its_root(app: Conveyor, t: SimpleNamespace) -> None:
    @app.task(name="t.spawner", bind=True)
    def spawner(self: Task) -> str:
        return str(chain(t.who.s(1), t.who.s()).apply_async().id)

    outer = spawner.delay()
    drain(app)
    assert len(t.seen) == 2
    assert {s["root_id"] for s in t.seen} == {outer.id}
    assert t.seen[0]["parent_id"] == outer.id


# -- replace ------------------------------------------------------------------------------


def test_replace_keeps_the_id_and_the_rest_of_the_chain(app: Conveyor, t: SimpleNamespace) -> None:
    result = chain(t.add.s(1, 1), t.replacer.s(), t.mul.s(2)).apply_async()
    drain(app)
    assert result.get(timeout=1) == (2 + 100) * 2
    assert result.parent is not None and result.parent.get(timeout=1) == 102
    plain = t.replacer.delay(5)
    drain(app)
    assert plain.get(timeout=1) == 105 and plain.state == states.SUCCESS


def test_replace_inside_a_chord_and_with_a_group(app: Conveyor, t: SimpleNamespace) -> None:
    header = [t.replacer.s(1), t.replace_with_group.s(3), t.replace_with_chain.s(4)]
    result = chord(header, t.identity.s()).apply_async()
    drain(app)
    assert result.get(timeout=1) == [101, [0, 2, 4], 10]


def test_replace_failure_reaches_the_replaced_id(app: Conveyor, t: SimpleNamespace) -> None:
    @app.task(name="t.replace_with_failure", bind=True)
    def replace_with_failure(self: Task) -> Any:
        return self.replace(t.fail.s())

    result = replace_with_failure.apply_async(link_error=t.on_error.s())
    drain(app)
    with pytest.raises(Boom):
        result.get(timeout=1)
    assert any(s["task"] == "on_error" for s in t.seen)


# -- results ------------------------------------------------------------------------------


def test_results_by_id_from_another_app(app: Conveyor, t: SimpleNamespace) -> None:
    result = chain(t.add.s(1, 1), chord([t.add.s(1), t.add.s(2)], t.tsum.s())).apply_async()
    drain(app)
    other = Conveyor("other", broker=app.broker, backend=app.backend, set_as_current=False)
    assert AsyncResult(result.id, app=other).get(timeout=1) == 7
    header = GroupResult.restore(result.parent.id, app=other)  # type: ignore[union-attr]
    assert header is not None and header.get(timeout=1) == [3, 4]
    again = result_from_tuple(json.loads(json.dumps(result.as_tuple())), other)
    assert again.id == result.id and again.parent is not None
    assert again.parent.parent is not None and again.parent.parent.get(timeout=1) == 2


def test_freeze_gives_ids_before_sending(app: Conveyor, t: SimpleNamespace) -> None:
    flow = chain(t.add.s(1, 1), t.add.s(2))
    frozen = flow.freeze()
    result = flow.apply_async()
    assert result.id == frozen.id and result.parent.id == frozen.parent.id  # type: ignore[union-attr]
    drain(app)
    assert result.get(timeout=1) == 4


def test_eager_workflows(clock: FakeClock) -> None:
    app = memory_app("eager", clock=clock, task_always_eager=True)

    @app.task(name="e.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="e.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    assert chain(add.s(1, 1), add.s(2)).apply_async().get() == 4
    assert group(add.s(i, i) for i in range(3)).apply_async().get() == [0, 2, 4]
    assert chord((add.s(i, i) for i in range(3)), tsum.s()).apply_async().get() == 6
    assert (add.s(1, 1) | add.s(1)).apply().get() == 3


def test_public_names() -> None:
    for name in ("chain", "chord", "group", "signature", "chunks", "GroupResult", "ChordError"):
        assert name in conveyor.__all__


def test_workflow_goes_to_its_tasks_app_not_the_current_one(clock: FakeClock) -> None:
    mine = memory_app("mine", clock=clock)
    memory_app("someone-else", clock=clock)  # becomes the current app

    @mine.task(name="m.add")
    def add(x: int, y: int) -> int:
        return x + y

    @mine.task(name="m.tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    result = chord([add.s(1, 1), add.s(2, 2)], tsum.s()).apply_async()
    flow = chain(add.s(1, 1), add.s(1)).apply_async()
    run_until_empty(mine)
    assert result.get(timeout=1) == 6 and flow.get(timeout=1) == 3


# -- other ways a member can end ----------------------------------------------------------


def test_ignored_member_fails_the_chord(app: Conveyor, t: SimpleNamespace) -> None:
    @app.task(name="t.skip")
    def skip() -> None:
        raise conveyor.Ignore()

    result = chord([t.add.s(1, 1), skip.s()], t.tsum.s()).apply_async()
    drain(app)
    with pytest.raises(ChordError, match="was ignored"):
        result.get(timeout=1)
    assert t.calls.get("tsum") is None


def test_expired_member_fails_the_chord(
    app: Conveyor, t: SimpleNamespace, clock: FakeClock
) -> None:
    header = [t.add.s(1, 1), t.add.s(2, 2).set(expires=5)]
    result = chord(header, t.tsum.s()).apply_async(link_error=t.on_error.s())
    clock.advance(10)
    drain(app)
    with pytest.raises(conveyor.TaskRevokedError, match="expired"):
        result.get(timeout=1)
    assert "TaskRevokedError" in str(result.get(timeout=1, propagate=False))
    assert {"task": "on_error", "failed": result.id} in t.seen


def test_revoked_chain_step_stops_the_chain(app: Conveyor, t: SimpleNamespace) -> None:
    result = chain(t.add.s(1, 1), t.add.s(1), t.add.s(1)).apply_async()
    app.control.revoke(result.parent.id)  # type: ignore[union-attr]
    drain(app)
    assert t.calls["add"] == 1
    assert result.parent.state == states.REVOKED  # type: ignore[union-attr]
    with pytest.raises(conveyor.TaskRevokedError):
        result.get(timeout=1)


def test_continuation_that_cannot_be_sent_fails_in_place(app: Conveyor, t: SimpleNamespace) -> None:
    result = chain(t.add.s(1, 1), t.add.s(1, 2), t.add.s(3)).apply_async(link_error=t.on_error.s())
    drain(app)  # add(2, 1, 2) does not fit add(x, y): it fails where it would be sent
    with pytest.raises(TypeError, match="t.add"):
        result.get(timeout=1)
    with pytest.raises(TypeError):
        result.parent.get(timeout=1)  # type: ignore[union-attr]
    assert {"task": "on_error", "failed": result.parent.id} in t.seen  # type: ignore[union-attr]


def test_ignore_result_steps_still_chain(app: Conveyor, t: SimpleNamespace) -> None:
    result = chain(t.add.s(1, 1).set(ignore_result=True), t.add.s(1)).apply_async()
    drain(app)
    assert result.get(timeout=1) == 3
    assert result.parent.state == states.UNKNOWN  # type: ignore[union-attr]


def test_retrying_member_counts_once_it_succeeds(
    app: Conveyor, t: SimpleNamespace, clock: FakeClock
) -> None:
    @app.task(name="t.flaky", bind=True, default_retry_delay=1)
    def flaky(self: Task, x: int) -> int:
        if self.request.retries < 2:
            raise self.retry(exc=Boom("not yet"))
        return x

    result = chord([flaky.s(5), t.add.s(1, 1)], t.tsum.s()).apply_async()
    for _ in range(3):
        drain(app)
        clock.advance(2)
    drain(app)
    assert result.get(timeout=1) == 7 and t.calls["tsum"] == 1


def test_group_states_while_waiting(app: Conveyor, t: SimpleNamespace) -> None:
    result = group(t.add.s(1, 1), t.add.s(2, 2)).apply_async()
    assert result.state == states.PENDING
    assert result._states() == [states.PENDING, states.PENDING]
    drain(app)
    assert result.state == states.SUCCESS


def test_send_task_by_name_keeps_its_link() -> None:
    from conveyor.testing import memory_app, run_until_empty

    app = memory_app("send-task-link")
    doubled: list[int] = []

    @app.task(name="link.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="link.double")
    def double(x: int) -> None:
        doubled.append(x * 2)

    result = app.send_task("link.add", [2, 3], link=double.s())
    run_until_empty(app)
    assert result.get(timeout=1) == 5
    assert doubled == [10]
